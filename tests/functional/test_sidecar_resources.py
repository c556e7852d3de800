"""meshtune.mesh.sidecar_resources against the test API server."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.support.ansible_runner import run_module

MODULE = "meshtune.mesh.sidecar_resources"
NAMESPACES = ["shop", "payments", "catalog"]
KINDS = 3
CPU = "sidecar.istio.io/proxyCPU"
CPU_LIMIT = "sidecar.istio.io/proxyCPULimit"
MEMORY = "sidecar.istio.io/proxyMemory"
MEMORY_LIMIT = "sidecar.istio.io/proxyMemoryLimit"
PROXY_CONFIG = "proxy.istio.io/config"
CART_CONFIG = "holdApplicationUntilProxyStarts: true\ntracing:\n  sampling: 10\n"
SETTINGS = {"cpu_request": "100m", "cpu_limit": "1", "memory_request": "128Mi",
            "memory_limit": "512Mi", "concurrency": 2}
OURS = {CPU: "100m", CPU_LIMIT: "1", MEMORY: "128Mi", MEMORY_LIMIT: "512Mi"}


def workload(kind: str, namespace: str, name: str, labels: dict | None = None,
             template_labels: dict | None = None, annotations: dict | None = None) -> dict:
    """A minimal valid workload; DaemonSets have no replicas."""
    selector = {"app": name}
    template_meta = {"labels": {**selector, **(template_labels or {})}}
    if annotations:
        template_meta["annotations"] = annotations
    spec = {"selector": {"matchLabels": selector},
            "template": {"metadata": template_meta,
                         "spec": {"containers": [{"name": name, "image": "nginx:1.27"}]}}}
    if kind != "DaemonSet":
        spec["replicas"] = 2
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "labels": {**selector, **(labels or {})}},
            "spec": spec}


def apply(server, *objects: dict) -> None:
    server.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))


def namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


WORKLOADS = [
    workload("Deployment", "shop", "web", labels={"tier": "frontend"}),
    workload("Deployment", "shop", "cart", labels={"tier": "backend"},
             annotations={"prometheus.io/scrape": "true", PROXY_CONFIG: CART_CONFIG}),
    workload("Deployment", "shop", "legacy", template_labels={"sidecar.istio.io/inject": "false"}),
    workload("StatefulSet", "shop", "db", labels={"tier": "backend"}),
    workload("Deployment", "payments", "api", labels={"tier": "backend"}),
    workload("DaemonSet", "payments", "agent"),
    workload("Deployment", "catalog", "search", labels={"tier": "frontend"}),
    workload("StatefulSet", "catalog", "cache"),
    workload("DaemonSet", "catalog", "logs", annotations={"sidecar.istio.io/inject": "false"}),
]
KIND_NAMES = {"Deployment": "deployment", "StatefulSet": "statefulset", "DaemonSet": "daemonset"}


@pytest.fixture(scope="module")
def cluster(kubeapi):
    apply(kubeapi, *(namespace(name) for name in NAMESPACES))
    apply(kubeapi, *WORKLOADS)
    return kubeapi


def writes(stats: dict) -> int:
    verbs = stats["requests"]["by_verb"]
    return sum(verbs.get(v, 0) for v in ("create", "update", "patch", "delete"))


def annotations(server, kind: str, namespace: str, name: str) -> dict:
    live = json.loads(server.kubectl("get", KIND_NAMES[kind], name, "-n", namespace,
                                     "-o", "json").stdout)
    return live["spec"]["template"]["metadata"].get("annotations") or {}


def by_name(result: dict) -> dict:
    return {(entry["namespace"], entry["name"]): entry for entry in result["results"]}


def args_for(server, **extra) -> dict:
    return {"kubeconfig": str(server.kubeconfig), "namespaces": NAMESPACES, **extra}


def test_check_mode_and_diff_write_nothing(cluster, tmp_path):
    cluster.reset_stats()
    planned = run_module(tmp_path, MODULE, args_for(cluster, **SETTINGS), "--check", "--diff")
    assert planned["changed"] is True, planned
    assert planned["summary"]["updated"] == 7
    assert planned["summary"]["skipped"] == 2
    assert writes(cluster.stats()) == 0
    diffs = {d["before_header"]: d for d in planned["diff"]}
    cart = diffs["Deployment shop/cart"]
    assert cart["before"]["spec"]["template"]["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true", PROXY_CONFIG: CART_CONFIG}
    after = cart["after"]["spec"]["template"]["metadata"]["annotations"]
    assert after["prometheus.io/scrape"] == "true"
    assert after[CPU] == "100m"
    assert "concurrency: 2" in after[PROXY_CONFIG]
    assert annotations(cluster, "Deployment", "shop", "cart") == {
        "prometheus.io/scrape": "true", PROXY_CONFIG: CART_CONFIG}
    assert annotations(cluster, "Deployment", "shop", "web") == {}


def test_one_call_tunes_all_and_keeps_other_annotations(cluster, tmp_path):
    cluster.reset_stats()
    result = run_module(tmp_path, MODULE, args_for(cluster, **SETTINGS))
    assert result["changed"] is True, result
    assert result["summary"]["updated"] == 7
    assert result["summary"]["skipped"] == 2
    assert result["summary"]["total"] == 9
    requests = cluster.stats()["requests"]
    assert requests["by_verb"] == {"list": len(NAMESPACES) * KINDS, "patch": 7}
    assert requests["total"] <= len(NAMESPACES) * KINDS + 7
    entries = by_name(result)
    assert entries[("shop", "legacy")]["action"] == "skipped"
    assert "sidecar.istio.io/inject" in entries[("shop", "legacy")]["reason"]
    assert entries[("catalog", "logs")]["action"] == "skipped"
    assert entries[("shop", "db")] == {"kind": "StatefulSet", "namespace": "shop", "name": "db",
                                       "action": "updated"}

    for obj in WORKLOADS:
        kind, meta = obj["kind"], obj["metadata"]
        live = annotations(cluster, kind, meta["namespace"], meta["name"])
        original = obj["spec"]["template"]["metadata"].get("annotations") or {}
        if meta["name"] in ("legacy", "logs"):
            assert live == original, "opted-out workloads are not touched"
        elif meta["name"] == "cart":
            assert {k: live[k] for k in OURS} == OURS
            assert live["prometheus.io/scrape"] == "true"
            assert yaml.safe_load(live[PROXY_CONFIG]) == {
                "holdApplicationUntilProxyStarts": True, "tracing": {"sampling": 10},
                "concurrency": 2}
        else:
            assert live == {**OURS, PROXY_CONFIG: "concurrency: 2\n"}


def test_rerun_is_idempotent_with_one_list_per_namespace_and_kind(cluster, tmp_path):
    cluster.reset_stats()
    again = run_module(tmp_path, MODULE, args_for(cluster, **SETTINGS))
    assert again["changed"] is False, again
    assert again["summary"]["unchanged"] == 7
    stats = cluster.stats()
    assert writes(stats) == 0
    assert stats["requests"]["total"] <= len(NAMESPACES) * KINDS

    # The same quantities spelled differently restart nothing.
    cluster.reset_stats()
    respelled = run_module(tmp_path, MODULE, args_for(
        cluster, **{**SETTINGS, "cpu_request": "0.1", "memory_limit": "0.5Gi"}))
    assert respelled["changed"] is False, respelled
    assert writes(cluster.stats()) == 0


def test_names_and_label_selector_select(cluster, tmp_path):
    cluster.reset_stats()
    named = run_module(tmp_path, MODULE, args_for(cluster, names=["web", "api"],
                                                  memory_limit="1Gi"))
    assert named["summary"] == {"created": 0, "updated": 2, "unchanged": 0, "deleted": 0,
                                "skipped": 0, "failed": 0, "total": 2}
    assert writes(cluster.stats()) == 2
    assert annotations(cluster, "Deployment", "shop", "web")[MEMORY_LIMIT] == "1Gi"
    assert annotations(cluster, "Deployment", "payments", "api")[MEMORY_LIMIT] == "1Gi"
    assert annotations(cluster, "Deployment", "catalog", "search")[MEMORY_LIMIT] == "512Mi"

    cluster.reset_stats()
    selected = run_module(tmp_path, MODULE, args_for(cluster, label_selector="tier=frontend",
                                                     kinds=["Deployment"], memory_limit="1Gi"))
    assert sorted(by_name(selected)) == [("catalog", "search"), ("shop", "web")]
    assert by_name(selected)[("shop", "web")]["action"] == "unchanged"
    assert by_name(selected)[("catalog", "search")]["action"] == "updated"
    assert cluster.stats()["requests"]["by_verb"] == {"list": len(NAMESPACES), "patch": 1}

    cluster.reset_stats()
    set_based = run_module(tmp_path, MODULE, args_for(
        cluster, label_selector="tier in (backend),app!=cart", cpu_request="100m"))
    assert sorted(by_name(set_based)) == [("payments", "api"), ("shop", "db")]
    assert set_based["changed"] is False


def test_unknown_name_fails_before_any_write(cluster, tmp_path):
    cluster.reset_stats()
    outcome = run_module(tmp_path, MODULE, args_for(cluster, names=["web", "nosuch"],
                                                    cpu_request="300m"))
    assert outcome["failed"] is True
    assert "nosuch" in outcome["msg"] and "nothing was changed" in outcome["msg"]
    assert writes(cluster.stats()) == 0
    assert annotations(cluster, "Deployment", "shop", "web")[CPU] == "100m"


def test_absent_removes_only_ours(cluster, tmp_path):
    only_concurrency = run_module(tmp_path, MODULE, args_for(
        cluster, namespaces=["shop"], names=["cart"], concurrency=2, state="absent"))
    assert by_name(only_concurrency)[("shop", "cart")]["action"] == "updated"
    cart = annotations(cluster, "Deployment", "shop", "cart")
    assert cart[PROXY_CONFIG] == CART_CONFIG, "only the concurrency key is removed"
    assert {k: cart[k] for k in OURS} == OURS

    cluster.reset_stats()
    removed = run_module(tmp_path, MODULE, args_for(cluster, state="absent"), "--diff")
    assert removed["changed"] is True
    assert removed["summary"]["updated"] == 7
    assert removed["summary"]["skipped"] == 2
    assert writes(cluster.stats()) == 7
    assert annotations(cluster, "Deployment", "shop", "cart") == {
        "prometheus.io/scrape": "true", PROXY_CONFIG: CART_CONFIG}
    assert annotations(cluster, "Deployment", "shop", "web") == {}
    assert annotations(cluster, "DaemonSet", "payments", "agent") == {}
    assert annotations(cluster, "DaemonSet", "catalog", "logs") == {"sidecar.istio.io/inject": "false"}
    web_diff = next(d for d in removed["diff"] if d["before_header"] == "Deployment shop/web")
    assert web_diff["after"]["spec"]["template"]["metadata"]["annotations"] == {}

    cluster.reset_stats()
    again = run_module(tmp_path, MODULE, args_for(cluster, state="absent"))
    assert again["changed"] is False
    assert writes(cluster.stats()) == 0


def test_unusable_workloads_fail_alone(cluster, tmp_path):
    apply(cluster, namespace("broken"),
          workload("Deployment", "broken", "garbled", annotations={PROXY_CONFIG: "concurrency: [2"}),
          workload("Deployment", "broken", "listed", annotations={PROXY_CONFIG: "- concurrency"}),
          workload("Deployment", "broken", "heavy", annotations={CPU: "2"}),
          workload("Deployment", "broken", "fine"))
    cluster.reset_stats()
    outcome = run_module(tmp_path, MODULE, {"kubeconfig": str(cluster.kubeconfig),
                                            "namespaces": ["broken"], "kinds": ["Deployment"],
                                            "cpu_limit": "1", "concurrency": 4})
    assert outcome["failed"] is True
    entries = by_name(outcome)
    assert entries[("broken", "garbled")]["action"] == "failed"
    assert "not valid YAML" in entries[("broken", "garbled")]["reason"]
    assert "not a YAML mapping" in entries[("broken", "listed")]["reason"]
    assert "below" in entries[("broken", "heavy")]["reason"]
    assert entries[("broken", "fine")]["action"] == "updated"
    assert "3 of 4 objects" in outcome["msg"] and "Deployment broken/fine" in outcome["msg"]
    assert writes(cluster.stats()) == 1
    assert annotations(cluster, "Deployment", "broken", "garbled") == {PROXY_CONFIG: "concurrency: [2"}
    assert annotations(cluster, "Deployment", "broken", "fine") == {
        CPU_LIMIT: "1", PROXY_CONFIG: "concurrency: 4\n"}


def make_cluster(server) -> None:
    apply(server, namespace("shop"), namespace("payments"),
          workload("Deployment", "shop", "web"), workload("Deployment", "shop", "cart"),
          workload("StatefulSet", "shop", "db"), workload("DaemonSet", "payments", "agent"))


def test_api_faults_are_retried_until_all_converge(kubeapi_factory, tmp_path):
    server = kubeapi_factory()
    make_cluster(server)
    server.set_faults(0.3, faults=("409", "500", "reset"), seed=7)
    args = {"kubeconfig": str(server.kubeconfig), "namespaces": ["shop", "payments"],
            "cpu_request": "150m", "concurrency": 3}
    result = run_module(tmp_path, MODULE, args)
    injected = server.stats()["faults"]["injected"]
    server.set_faults(0)
    assert result.get("failed") is not True, result
    assert result["summary"]["updated"] == 4
    assert sum(injected.values()) > 0
    for kind, namespace_name, name in (("Deployment", "shop", "web"), ("StatefulSet", "shop", "db"),
                                       ("DaemonSet", "payments", "agent")):
        assert annotations(server, kind, namespace_name, name) == {
            CPU: "150m", PROXY_CONFIG: "concurrency: 3\n"}
    assert run_module(tmp_path, MODULE, args)["changed"] is False


def test_wait_follows_the_rollouts(kubeapi_factory, tmp_path):
    server = kubeapi_factory("--rollout-delay", "1")
    make_cluster(server)
    result = run_module(tmp_path, MODULE, {"kubeconfig": str(server.kubeconfig),
                                           "namespaces": ["shop", "payments"], "cpu_request": "150m",
                                           "wait": True, "wait_timeout": 30})
    assert result.get("failed") is not True, result
    assert result["summary"]["updated"] == 4
    assert {e["rollout"] for e in result["results"]} == {"complete"}
    live = json.loads(server.kubectl("get", "deployment", "web", "-n", "shop", "-o", "json").stdout)
    assert live["status"]["observedGeneration"] == live["metadata"]["generation"]


def test_wait_times_out_naming_the_workloads(kubeapi_factory, tmp_path):
    server = kubeapi_factory("--rollout-delay", "-1")
    make_cluster(server)
    result = run_module(tmp_path, MODULE, {"kubeconfig": str(server.kubeconfig),
                                           "namespaces": ["shop", "payments"], "cpu_request": "150m",
                                           "wait": True, "wait_timeout": 3})
    assert result["failed"] is True
    message = result["msg"]
    for label in ("Deployment shop/web", "Deployment shop/cart", "StatefulSet shop/db",
                  "DaemonSet payments/agent"):
        assert label in message
        assert label in result["pending_rollouts"]
    assert "already written" in message
    assert result["summary"]["updated"] == 4
    assert {e["rollout"] for e in result["results"]} == {"pending"}
    assert annotations(server, "Deployment", "shop", "web")[CPU] == "150m"


@pytest.mark.parametrize(("override", "option"), [
    ({"namespaces": []}, "namespaces"),
    ({"namespaces": ["Shop"]}, "namespaces[0]"),
    ({"namespaces": ["shop", "shop"]}, "namespaces"),
    ({"names": ["Web_1"]}, "names[0]"),
    ({"names": ["web", "web"]}, "names"),
    ({"kinds": ["Pod"]}, "kinds"),
    ({"cpu_request": "lots"}, "cpu_request"),
    ({"memory_limit": "12XB"}, "memory_limit"),
    ({"cpu_request": "2", "cpu_limit": "1"}, "cpu_limit"),
    ({"memory_request": "1Gi", "memory_limit": "512Mi"}, "memory_limit"),
    ({"concurrency": 65}, "concurrency"),
    ({"concurrency": -1}, "concurrency"),
    ({"cpu_request": None}, "cpu_request, cpu_limit, memory_request, memory_limit, concurrency"),
    ({"parallelism": 0}, "parallelism"),
    ({"wait_timeout": 0}, "wait_timeout"),
    ({"label_selector": "tier in frontend"}, "label_selector"),
])
def test_bad_input_fails_naming_the_option_with_zero_requests(cluster, tmp_path, override, option):
    args = {"kubeconfig": str(cluster.kubeconfig), "namespaces": ["shop"], "cpu_request": "100m",
            **override}
    args = {key: value for key, value in args.items() if value is not None}
    cluster.reset_stats()
    outcome = run_module(tmp_path, MODULE, args)
    assert outcome["failed"] is True
    assert option in outcome["msg"]
    assert "Traceback" not in outcome.get("module_stderr", "")
    assert cluster.stats()["requests"]["total"] == 0


def test_a_server_gone_before_the_reads_is_named(kubeapi_factory, tmp_path):
    # The client's discovery cache was written by an earlier task, so the first request that
    # finds the server gone is the list of the workloads.
    server = kubeapi_factory()
    assert run_module(tmp_path, "meshtune.mesh.cluster_check",
                      {"kubeconfig": str(server.kubeconfig)}).get("failed") is not True
    server.stop()
    outcome = run_module(tmp_path, MODULE, {"kubeconfig": str(server.kubeconfig),
                                            "namespaces": ["shop"], "cpu_request": "100m"})
    assert outcome["failed"] is True
    assert outcome["msg"].startswith(
        f"Cannot reach the Kubernetes API server {server.url}: Connection refused."), outcome["msg"]
    assert outcome["msg"].endswith("Nothing was changed.")
