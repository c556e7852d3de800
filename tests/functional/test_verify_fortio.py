"""playbooks/verify.yml with the in-cluster fortio engine, against the test API server.

Two stand-ins for the Job controller and the kubelet (tests/support/fortio_cluster.py) play the baseline
run's Job and then the mesh run's, whose pods answer 1.5 times slower: the role must create its
namespace, run both Jobs with the right sidecar switch through the inventory's kubeconfig, merge
each run's pods, judge the added latency and leave no object behind.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.support.ansible_runner import REPO_ROOT, run_playbook
from tests.support.fortio_cluster import Cluster, kube_apis, samples_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

HOST = "cluster-a"
NAMESPACE = "meshtune-load"
INJECT = "sidecar.istio.io/inject"


def test_baseline_and_mesh_jobs_run_in_the_cluster_and_are_judged(kubeapi, tmp_path):
    apis = kube_apis(kubeapi.kubeconfig)
    baseline = Cluster(kubeapi, apis, name="meshtune-verify-baseline", namespace=NAMESPACE,
                       job_timeout=180)
    mesh = Cluster(kubeapi, apis, name="meshtune-verify", namespace=NAMESPACE, scale=1.5, job_timeout=180)
    baseline.start()
    mesh.start()
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {HOST: {
        "ansible_connection": "local", "meshtune_kubeconfig": str(kubeapi.kubeconfig),
        "meshtune_report_dir": str(tmp_path / "reports"), "verify_engine": "fortio",
        "verify_client_pods": 2, "verify_qps": 100, "verify_connections": 4, "verify_duration": "1s",
        "verify_warmup": "0s", "verify_timeout": "1s",
        "meshtune_verify_targets": {"p99_ms": 100, "added_p50_ms": 50, "success_rate": 0.99}}}}}))
    result = run_playbook(REPO_ROOT / "playbooks" / "verify.yml", inventory=str(inventory))
    baseline.join(timeout=10)
    mesh.join(timeout=10)
    assert result.returncode == 0, result.stdout[-4000:]
    assert baseline.error is None and mesh.error is None, (baseline.error, mesh.error)

    assert apis["core"].read_namespace(NAMESPACE).metadata.name == NAMESPACE
    for run, inject in ((baseline, "false"), (mesh, "true")):
        assert run.seen["Job"]["spec"]["template"]["metadata"]["labels"][INJECT] == inject
        assert run.seen["Deployment"]["spec"]["template"]["metadata"]["labels"][INJECT] == inject
        assert run.seen["Job"]["spec"]["parallelism"] == 2
    url = mesh.seen["Job"]["spec"]["template"]["spec"]["containers"][0]["args"][-1]
    assert url == f"http://meshtune-verify-server.{NAMESPACE}.svc:8080/echo"

    report = json.loads((tmp_path / "reports" / HOST / "latest" / "report.json").read_text())
    assert report["checks_passed"] is True
    requests = len(samples_for(0)) + len(samples_for(1))
    assert report["runs"][0]["requests"] == requests and report["baseline"]["requests"] == requests
    assert report["runs"][0]["added_latency"]["p50_ms"]["ms"] > 0

    selector = "app.kubernetes.io/managed-by=meshtune"
    left = [item.metadata.name for lister in (apis["batch"].list_namespaced_job,
                                              apis["apps"].list_namespaced_deployment,
                                              apis["core"].list_namespaced_service,
                                              apis["core"].list_namespaced_service_account)
            for item in lister(NAMESPACE, label_selector=selector).items]
    assert left == []
