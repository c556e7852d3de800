"""meshtune.mesh.load_test with engine fortio against the test API server.

The test server runs no pods, so a background thread (tests/support/fortio_cluster.py) plays the Job
controller and the kubelet. Each pod's result has its own, known latency samples, so the merged
percentiles can be checked against one histogram of all samples.
"""

from __future__ import annotations

import json

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils import run_result
from ansible_collections.meshtune.mesh.plugins.module_utils.histogram import DEFAULT_PERCENTILES
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen import fortio_run
from ansible_collections.meshtune.mesh.plugins.modules.load_test import main
from tests.support.ansible_runner import run_module
from tests.support.fortio_cluster import NAMESPACE, Cluster, histogram_of, kube_apis, pod_result, samples_for
from tests.support.module_harness import call_module

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch):
    monkeypatch.setattr(fortio_run, "POLL_INTERVAL", 0.05)


@pytest.fixture(scope="module")
def apis(kubeapi):
    apis = kube_apis(kubeapi.kubeconfig)
    apis["core"].create_namespace({"metadata": {"name": NAMESPACE}})
    return apis


def module_args(kubeapi, **options):
    return {"engine": "fortio", "namespace": NAMESPACE, "kubeconfig": str(kubeapi.kubeconfig),
            "qps": 100, "connections": 4, "duration": "1s", "start_timeout": "5s",
            "timeout": "1s", **options}


def run_with_cluster(kubeapi, apis, args, **cluster_options):
    cluster = Cluster(kubeapi, apis, name=args.get("name", "meshtune-load"), **cluster_options)
    cluster.start()
    result = call_module(main, args)
    cluster.join(timeout=10)
    assert cluster.error is None, cluster.error
    return result, cluster


def remaining(apis, name="meshtune-load"):
    """The run's objects still in the namespace (pods aside: the test server has no GC)."""
    selector = f"meshtune.io/load-test={name}"
    core, apps, batch = apis["core"], apis["apps"], apis["batch"]
    found = []
    for kind, lister in (("ServiceAccount", core.list_namespaced_service_account),
                         ("Deployment", apps.list_namespaced_deployment),
                         ("Service", core.list_namespaced_service),
                         ("Secret", core.list_namespaced_secret),
                         ("Job", batch.list_namespaced_job)):
        found += [f"{kind} {item.metadata.name}" for item in
                  lister(NAMESPACE, label_selector=selector).items]
    return found


def delete_pods(apis, names):
    for name in names:
        apis["core"].delete_namespaced_pod(name, NAMESPACE)


def test_a_run_creates_the_objects_merges_the_pod_results_and_cleans_up(kubeapi, apis, tmp_path):
    result_file = tmp_path / "fortio.json"
    progress_file = tmp_path / "progress.log"
    args = module_args(kubeapi, client_pods=2, warmup="2s", headers={"X-Test": "1"},
                       result_file=str(result_file), progress_file=str(progress_file))
    result, cluster = run_with_cluster(kubeapi, apis, args)
    assert not result.get("failed"), result
    assert result["changed"] is False
    url = "http://meshtune-load-server.load.svc:8080/echo"
    assert result["url"] == url

    # The objects, as they were while the load ran.
    seen = cluster.seen
    assert seen["ServiceAccount"]["automountServiceAccountToken"] is False
    assert seen["RoleBindings"] == [] and seen["Roles"] == []
    labels = {"app.kubernetes.io/managed-by": "meshtune", "meshtune.io/load-test": "meshtune-load"}
    for kind in ("ServiceAccount", "Deployment", "Service", "Job"):
        assert labels.items() <= seen[kind]["metadata"]["labels"].items(), kind
    service = seen["Service"]["spec"]
    assert service["ports"][0]["port"] == 8080 and service["ports"][0]["name"] == "http"
    server = seen["Deployment"]["spec"]["template"]
    assert server["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"
    assert server["spec"]["containers"][0]["args"][:3] == ["server", "-http-port", "8080"]
    assert service["selector"].items() <= server["metadata"]["labels"].items()
    job = seen["Job"]["spec"]
    assert job["parallelism"] == job["completions"] == 2
    assert job["completionMode"] == "Indexed" and job["backoffLimit"] == 0
    assert job["activeDeadlineSeconds"] == 5 + 2 + 1 + 2 * 1
    assert "ttlSecondsAfterFinished" not in job
    pod = job["template"]
    assert pod["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"
    assert pod["metadata"]["annotations"]["sidecar.istio.io/nativeSidecar"] == "true"
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "meshtune-load"
    assert spec["automountServiceAccountToken"] is False and spec["restartPolicy"] == "Never"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] > 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in spec["containers"] + spec["initContainers"]:
        assert container["image"] == "fortio/fortio:1.77.0"
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["limits"]["memory"]
    # Header values come from the headers Secret through the environment, never in the spec.
    assert spec["containers"][0]["args"] == [
        "load", "-json", "-", "-qps", "50", "-c", "2", "-t", "1s", "-timeout", "1s",
        "-r", "0.0001", "-p", "50,75,90,99,99.9", "-labels", "meshtune-load",
        "-H", "$(MESHTUNE_HEADER_0)", url]
    for container in spec["containers"] + spec["initContainers"]:
        assert container["env"] == [{"name": "MESHTUNE_HEADER_0", "valueFrom": {"secretKeyRef": {
            "name": "meshtune-load-headers", "key": "header-0"}}}]
    warmup = spec["initContainers"][0]
    assert warmup["name"] == "warmup"
    assert "-json" not in warmup["args"]
    assert warmup["args"][warmup["args"].index("-t") + 1] == "2s"
    assert warmup["args"][warmup["args"].index("-qps") + 1] == "50"

    # The merged result is that of one histogram of every pod's samples.
    everything = histogram_of(samples_for(0) + samples_for(1))
    merged = result["result"]
    histogram = merged["DurationHistogram"]
    assert histogram["Count"] == everything.count == 400 + 500
    expected = everything.percentiles(DEFAULT_PERCENTILES)
    for entry, value in zip(histogram["Percentiles"], expected, strict=True):
        assert entry["Value"] == pytest.approx(value, rel=1e-12), entry
    assert result["summary"]["p99_ms"] == pytest.approx(round(everything.percentile(99) * 1000, 3))
    assert result["summary"]["requests"] == 900
    assert result["summary"]["errors"] == 1
    assert merged["RetCodes"] == {"200": 899, "503": 1}
    assert result["errors"] == {"timeout": 0, "connection_refused": 0, "connection_reset": 0,
                                "protocol": 0, "tls": 0, "not_sent": 0, "other": 0}
    assert merged["ActualQPS"] == pytest.approx(99.8)
    assert merged["RequestedQPS"] == "100"
    assert [pod["index"] for pod in result["pods"]] == [0, 1]
    assert [pod["node"] for pod in result["pods"]] == ["worker-0", "worker-1"]
    assert result["pods"][0]["summary"]["requests"] == 400
    assert result["pods"][0]["summary"]["p50_ms"] < result["pods"][1]["summary"]["p50_ms"]
    assert run_result.loads(result_file.read_text()) == merged
    progress = progress_file.read_text()
    for phase in ("start: fortio 1.77.0, 2 client pods", "server ready", "job running 2/2 pods",
                  "done: p50="):
        assert phase in progress, progress

    # Everything is gone again.
    assert [(entry["kind"], entry["state"]) for entry in result["objects"]] == [
        ("ServiceAccount", "deleted"), ("Deployment", "deleted"), ("Service", "deleted"),
        ("Secret", "deleted"), ("Job", "deleted")]
    assert remaining(apis) == []
    delete_pods(apis, cluster.pods)


def test_a_given_url_deploys_no_server_and_a_baseline_has_no_sidecars(kubeapi, apis):
    url = "http://productpage.shop.svc:9080/productpage"
    args = module_args(kubeapi, url=url, name="baseline", sidecar=False, requests=100,
                       duration=None, qps=0, job_timeout="30s", method="POST", body="{}",
                       validate_certs=False, fortio_args=["-uniform"], labels="base")
    args = {key: value for key, value in args.items() if value is not None}
    result, cluster = run_with_cluster(kubeapi, apis, args)
    assert not result.get("failed"), result
    assert "Deployment" not in cluster.seen and "Service" not in cluster.seen
    assert [entry["kind"] for entry in result["objects"]] == ["ServiceAccount", "Job"]
    job = cluster.seen["Job"]["spec"]
    pod = job["template"]
    assert pod["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    assert pod["metadata"]["labels"]["istio.io/dataplane-mode"] == "none"
    assert "sidecar.istio.io/nativeSidecar" not in (pod["metadata"].get("annotations") or {})
    assert "initContainers" not in pod["spec"]
    assert job["activeDeadlineSeconds"] == 30
    assert pod["spec"]["containers"][0]["args"] == [
        "load", "-json", "-", "-qps", "0", "-c", "4", "-n", "100", "-timeout", "1s", "-r", "0.0001",
        "-p", "50,75,90,99,99.9", "-labels", "base", "-X", "POST", "-payload", "{}", "-k",
        "-uniform", url]
    # One pod: its result is returned as fortio wrote it.
    assert result["result"] == json.loads(json.dumps(pod_result(0, url)))
    assert remaining(apis, "baseline") == []
    delete_pods(apis, cluster.pods)


def test_a_revision_labels_the_pods_for_that_control_plane(kubeapi, apis):
    args = module_args(kubeapi, name="canary", revision="canary", cleanup=False)
    result, cluster = run_with_cluster(kubeapi, apis, args)
    assert not result.get("failed"), result
    for kind in ("Deployment", "Job"):
        labels = cluster.seen[kind]["spec"]["template"]["metadata"]["labels"]
        assert labels["istio.io/rev"] == "canary"
        assert "sidecar.istio.io/inject" not in labels


def test_cleanup_false_keeps_the_objects_and_a_rerun_fails_clearly(kubeapi, apis):
    # The previous test kept its objects (cleanup false).
    assert sorted(remaining(apis, "canary")) == [
        "Deployment canary-server", "Job canary-client", "Service canary-server",
        "ServiceAccount canary"]
    kubeapi.reset_stats()
    result = call_module(main, module_args(kubeapi, name="canary"))
    assert result["failed"]
    assert "Job canary-client" in result["msg"] and "ServiceAccount canary" in result["msg"]
    assert "meshtune.io/load-test=canary" in result["msg"]
    assert kubeapi.stats()["requests"]["by_verb"].get("create", 0) == 0


def test_a_kept_run_reports_changed_and_names_the_objects(kubeapi, apis):
    result, _cluster = run_with_cluster(kubeapi, apis, module_args(kubeapi, name="kept", cleanup=False))
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert {entry["state"] for entry in result["objects"]} == {"kept"}
    assert len(remaining(apis, "kept")) == 4


def test_a_failed_pod_fails_the_task_with_its_log_and_cleans_up(kubeapi, apis):
    args = module_args(kubeapi, name="broken", client_pods=2)
    result, cluster = run_with_cluster(kubeapi, apis, args, fail_index=1)
    assert result["failed"]
    message = result["msg"]
    assert "client pod broken-client-1-x1k2p" in message
    assert "exited with code 1" in message
    assert "Aborting because of dial tcp: connection refused" in message
    assert {entry["state"] for entry in result["objects"]} == {"deleted"}
    assert remaining(apis, "broken") == []
    delete_pods(apis, cluster.pods)


def test_pods_that_never_finish_time_out_and_are_cleaned_up(kubeapi, apis):
    args = module_args(kubeapi, name="stuck", start_timeout="1s", duration="100ms", qps=100,
                       timeout="100ms")
    result, cluster = run_with_cluster(kubeapi, apis, args, pods_finish=False)
    assert result["failed"]
    assert "did not finish within" in result["msg"]
    assert "stuck-client-0-x0k2p running" in result["msg"]
    assert remaining(apis, "stuck") == []
    delete_pods(apis, cluster.pods)


def test_a_job_without_pods_fails_at_the_start_timeout(kubeapi, apis):
    result = call_module(main, module_args(kubeapi, name="nopods", start_timeout="300ms",
                                           url="http://example.svc/"))
    assert result["failed"]
    assert "only 0 of 1 client pods" in result["msg"]
    assert "created no pods" in result["msg"]
    assert remaining(apis, "nopods") == []


def test_pods_finished_before_the_job_counts_them_are_enough(kubeapi, apis):
    """A classic sidecar keeps the pod running: the fortio container's exit is what counts."""
    result, cluster = run_with_cluster(kubeapi, apis, module_args(kubeapi, name="classic"),
                                       complete_job=False, classic_sidecar=True)
    assert not result.get("failed"), result
    assert result["summary"]["requests"] == 400
    delete_pods(apis, cluster.pods)


def test_a_missing_namespace_fails_before_creating_anything(kubeapi):
    kubeapi.reset_stats()
    result = call_module(main, module_args(kubeapi, namespace="absent"))
    assert result["failed"]
    assert "namespace absent does not exist" in result["msg"]
    assert kubeapi.stats()["requests"]["by_verb"].get("create", 0) == 0


def test_check_mode_creates_nothing_and_lists_the_objects(kubeapi, apis):
    kubeapi.reset_stats()
    result = call_module(main, module_args(kubeapi, name="dry"), check_mode=True)
    assert not result.get("failed"), result
    assert result["changed"] is False
    assert "result" not in result
    assert [(entry["kind"], entry["name"], entry["state"]) for entry in result["objects"]] == [
        ("ServiceAccount", "dry", "would create"), ("Deployment", "dry-server", "would create"),
        ("Service", "dry-server", "would create"), ("Job", "dry-client", "would create")]
    verbs = kubeapi.stats()["requests"]["by_verb"]
    assert set(verbs) <= {"get", "list"}, verbs


@pytest.mark.parametrize(("options", "expected"), [
    ({"client_pods": 3, "connections": 8}, "connections: expected a multiple of client_pods (3)"),
    ({"client_pods": 2, "requests": 101, "duration": None}, "requests: expected a multiple"),
    ({"engine": "local", "url": "http://127.0.0.1:9/"}, "namespace: expected no namespace with engine local"),
    ({"engine": "local", "namespace": None, "url": "http://127.0.0.1:9/", "cleanup": False},
     "cleanup: expected no cleanup with engine local"),
    ({"engine": "local", "namespace": None}, "url: expected a URL"),
    ({"name": "Bad_Name"}, "name: expected a DNS-1035 label"),
    ({"name": "x" * 51}, "name: expected a DNS-1035 label of at most 50"),
    ({"namespace": "Load"}, "namespace: expected a DNS-1123 label"),
    ({"fortio_image": "fortio/fortio:1.77.0"}, "fortio_image: expected an image name without tag"),
    ({"fortio_version": "latest please"}, "fortio_version:"),
    ({"sidecar": False, "revision": "canary"}, "revision: expected no revision with sidecar false"),
    ({"start_timeout": "5 minutes"}, "start_timeout:"),
    ({"fortio_args": ["-qps", "10"]}, "fortio_args[0]: expected a flag meshtune does not set"),
    ({"fortio_args": ["-r=0.0001"]}, "fortio_args[0]"),
    ({"client_resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
     "client_resources.limits.cpu"),
    ({"server_resources": {"requests": {"gpu": 1}}}, "server_resources.requests"),
    ({"pod_annotations": {"bad key!": "x"}}, "pod_annotations.bad key!"),
    ({"requests": 100, "duration": None, "qps": 0}, "job_timeout: expected a duration"),
    ({"kubeconfig": 5}, "kubeconfig: expected the path of a kubeconfig file or a kubeconfig mapping"),
])
def test_bad_options_fail_with_no_request(kubeapi, options, expected):
    args = {key: value for key, value in module_args(kubeapi, **options).items() if value is not None}
    kubeapi.reset_stats()
    result = call_module(main, args)
    assert result["failed"]
    assert expected in result["msg"], result["msg"]
    assert kubeapi.stats()["requests"]["total"] == 0


def test_a_kubeconfig_that_is_not_yaml_fails_with_no_request(kubeapi, tmp_path):
    broken = tmp_path / "kubeconfig"
    broken.write_text("clusters: [unclosed\n")
    kubeapi.reset_stats()
    result = call_module(main, module_args(kubeapi, kubeconfig=str(broken)))
    assert result["failed"] and "kubeconfig" in result["msg"], result
    assert "Traceback" not in json.dumps(result)
    assert kubeapi.stats()["requests"]["total"] == 0


def test_the_api_key_is_not_shown_when_refused(kubeapi):
    result = call_module(main, {"url": "http://127.0.0.1:9/", "duration": "1s",
                                "api_key": "s3cr3t-token"})
    assert result["failed"]
    assert "api_key: expected no api_key with engine local" in result["msg"]
    assert "s3cr3t" not in json.dumps(result)


def test_the_fortio_engine_runs_under_ansible_playbook(kubeapi, apis, tmp_path):
    """AnsiballZ packs the fortio engine and kube with the module, as on a real controller."""
    cluster = Cluster(kubeapi, apis, name="packed")
    cluster.start()
    outcome = run_module(tmp_path, "meshtune.mesh.load_test",
                         module_args(kubeapi, name="packed"))
    cluster.join(timeout=10)
    assert cluster.error is None, cluster.error
    assert not outcome.get("failed"), outcome
    assert outcome["summary"]["requests"] == 400
    assert remaining(apis, "packed") == []
    delete_pods(apis, cluster.pods)


@pytest.mark.parametrize(("sidecar", "server_injected", "client_injected"), [
    (True, True, True), ("server", True, False), (False, False, False), ("yes", True, True)])
def test_each_sidecar_mode_injects_the_pods_it_names(kubeapi, apis, sidecar, server_injected,
                                                     client_injected):
    name = f"mode-{str(sidecar).lower()}"
    result, cluster = run_with_cluster(kubeapi, apis, module_args(kubeapi, name=name,
                                                                  sidecar=sidecar))
    assert not result.get("failed"), result
    pods = {"server": cluster.seen["Deployment"]["spec"]["template"]["metadata"],
            "client": cluster.seen["Job"]["spec"]["template"]["metadata"]}
    for component, expected in (("server", server_injected), ("client", client_injected)):
        labels = pods[component]["labels"]
        annotations = pods[component].get("annotations") or {}
        assert labels["sidecar.istio.io/inject"] == ("true" if expected else "false"), component
        assert ("istio.io/dataplane-mode" in labels) is not expected, component
        native = component == "client" and expected
        assert (annotations.get("sidecar.istio.io/nativeSidecar") == "true") is native, component
    assert remaining(apis, name) == []
    delete_pods(apis, cluster.pods)


def test_the_server_mode_takes_a_revision_for_the_server_only(kubeapi, apis):
    result, cluster = run_with_cluster(kubeapi, apis, module_args(
        kubeapi, name="server-canary", sidecar="server", revision="canary"))
    assert not result.get("failed"), result
    server = cluster.seen["Deployment"]["spec"]["template"]["metadata"]["labels"]
    client = cluster.seen["Job"]["spec"]["template"]["metadata"]["labels"]
    assert server["istio.io/rev"] == "canary" and "sidecar.istio.io/inject" not in server
    assert client["sidecar.istio.io/inject"] == "false" and "istio.io/rev" not in client
    delete_pods(apis, cluster.pods)


def test_an_unknown_sidecar_mode_is_refused_with_the_three_modes(kubeapi):
    result = call_module(main, module_args(kubeapi, sidecar="client"))
    assert result["failed"]
    assert "sidecar: expected true (client and server sidecars), server" in result["msg"]
