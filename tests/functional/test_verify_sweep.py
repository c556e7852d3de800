"""playbooks/verify.yml with verify_sweep: every point's Job in its mode, the sweep saved and drawn.

Stand-ins for the Job controller and the kubelet (tests/support/fortio_cluster.py) play every Job the
role creates (the baseline and mesh runs, then one per sweep point); a stand-in Prometheus answers
the proxy queries of each point's window.
"""

from __future__ import annotations

import itertools
import json

import pytest
import yaml

from tests.functional.test_verify_role import fake_prometheus
from tests.support.ansible_runner import REPO_ROOT, run_playbook
from tests.support.fortio_cluster import Cluster, kube_apis

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(400)]

HOST = "cluster-a"
NAMESPACE = "meshtune-load"
INJECT = "sidecar.istio.io/inject"
MODES = {"baseline": ("false", "false"), "server": ("true", "false"), "both": ("true", "true")}


def test_each_point_runs_in_its_mode_and_the_sweep_is_drawn(kubeapi, tmp_path):
    apis = kube_apis(kubeapi.kubeconfig)
    points = list(itertools.product(MODES, (50,), (4,)))
    names = ["meshtune-verify"] + [
        f"meshtune-verify-{mode}-{qps}-{connections}" for mode, qps, connections in points]
    clusters = {name: Cluster(kubeapi, apis, name=name, namespace=NAMESPACE, job_timeout=300)
                for name in names}
    for cluster in clusters.values():
        cluster.start()
    inventory = tmp_path / "hosts.yml"
    with fake_prometheus() as prometheus:
        inventory.write_text(yaml.safe_dump({"all": {"hosts": {HOST: {
            "ansible_connection": "local", "meshtune_kubeconfig": str(kubeapi.kubeconfig),
            "meshtune_report_dir": str(tmp_path / "reports"), "verify_engine": "fortio",
            "verify_qps": 50, "verify_connections": 4, "verify_duration": "1s", "verify_warmup": "0s",
            "verify_timeout": "1s", "verify_sweep": {"qps": [50], "connections": [4]},
            "verify_baseline": False,
            "verify_sweep_label": "istio-1-24", "verify_proxy_query_delay": 0,
            "verify_prometheus_url": f"http://127.0.0.1:{prometheus.server_port}",
            "meshtune_verify_targets": {"p99_ms": 100}}}}}))
        result = run_playbook(REPO_ROOT / "playbooks" / "verify.yml", inventory=str(inventory))
    for cluster in clusters.values():
        cluster.join(timeout=10)
    assert result.returncode == 0, result.stdout[-4000:]
    for name, cluster in clusters.items():
        assert cluster.error is None, (name, cluster.error)

    for mode, qps, connections in points:
        cluster = clusters[f"meshtune-verify-{mode}-{qps}-{connections}"]
        server, client = MODES[mode]
        assert cluster.seen["Deployment"]["spec"]["template"]["metadata"]["labels"][INJECT] == server
        assert cluster.seen["Job"]["spec"]["template"]["metadata"]["labels"][INJECT] == client
        args = cluster.seen["Job"]["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[args.index("-qps") + 1] == str(qps) and args[args.index("-c") + 1] == "4"

    sweep_dir = tmp_path / "reports" / HOST / "latest" / "sweep"
    sweep = json.loads((sweep_dir / "sweep.json").read_text())
    assert sweep["label"] == "istio-1-24"
    assert [(p["mode"], p["qps"], p["connections"]) for p in sweep["points"]] == points
    for point in sweep["points"]:
        assert (sweep_dir / point["result_file"]).is_file()
        # The stand-in Prometheus answers 0.25 vCPU per 1000 requests/s and 42.5 MiB.
        expected = None if point["mode"] == "baseline" else {"cpu_per_1k_rps": 0.25, "memory_mib": 42.5}
        assert point.get("proxy") == expected
    report = json.loads((sweep_dir / "report.json").read_text())
    assert len(report["points"]) == len(points)
    for name in ("report.md", "sweep-latency.png", "sweep-added-latency.png", "sweep-proxy-cost.png"):
        assert (sweep_dir / name).is_file(), name
    # Each point's proxy figures are those of its own fortio server.
    queries = " ".join(request.get("query", "") for request in prometheus.requests)
    for mode in ("server", "both"):
        assert f'pod=~"meshtune-verify-{mode}-50-4-server-' in queries, mode
    assert 'pod=~"meshtune-verify-baseline-50-4-server-' not in queries
