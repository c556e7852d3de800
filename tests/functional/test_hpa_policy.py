"""meshtune.mesh.hpa_policy against the test API server."""

from __future__ import annotations

import copy
import json

import pytest

from tests.support.ansible_runner import run_module

MODULE = "meshtune.mesh.hpa_policy"
NAMESPACE = "shop"

WEB = {
    "target": {"name": "web"},
    "min_replicas": 3,
    "max_replicas": 30,
    "cpu_utilization": 70,
    "scale_up": {"stabilization_window_seconds": 0, "select_policy": "Max", "policies": [
        {"type": "Percent", "value": 100, "period_seconds": 15},
        {"type": "Pods", "value": 4, "period_seconds": 15}]},
    "scale_down": {"stabilization_window_seconds": 600, "select_policy": "Min", "policies": [
        {"type": "Percent", "value": 10, "period_seconds": 60}]},
}
CHECKOUT = {
    "name": "checkout-api",
    "target": {"kind": "StatefulSet", "name": "checkout"},
    "min_replicas": 2,
    "max_replicas": 12,
    "target_cpu_utilization_percentage": 75,
    "memory_utilization": 80,
    "metrics": [{"type": "Pods", "pods": {"metric": {"name": "istio_requests_per_second"},
                                          "target": {"type": "AverageValue", "averageValue": "100"}}}],
}
WORKER = {
    "target": {"name": "worker"},
    "max_replicas": 6,
    "metrics": [{"type": "External", "external": {
        "metric": {"name": "queue_messages_ready", "selector": {"matchLabels": {"queue": "jobs"}}},
        "target": {"type": "AverageValue", "averageValue": 30}}}],
}
POLICIES = [WEB, CHECKOUT, WORKER]


@pytest.fixture(scope="module")
def cluster(kubeapi):
    kubeapi.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
    return kubeapi


def writes(stats: dict) -> int:
    verbs = stats["requests"]["by_verb"]
    return sum(verbs.get(v, 0) for v in ("create", "update", "patch", "delete"))


def hpa(cluster, name: str) -> dict:
    return json.loads(cluster.kubectl("get", "hpa", name, "-n", NAMESPACE, "-o", "json").stdout)


def hpa_names(cluster) -> list[str]:
    listed = cluster.kubectl("get", "hpa", "-n", NAMESPACE, "-o", "name").stdout.split()
    return sorted(name.split("/", 1)[1] for name in listed)


def module_args(cluster, policies, **extra) -> dict:
    return {"kubeconfig": str(cluster.kubeconfig), "namespace": NAMESPACE, "policies": policies,
            **extra}


def test_creates_several_and_reads_back_what_was_asked(cluster, tmp_path):
    first = run_module(tmp_path, MODULE, module_args(cluster, POLICIES))
    assert first["changed"] is True, first
    assert first["summary"]["created"] == 3
    assert first["api_version"] == "autoscaling/v2"
    assert [(r["name"], r["action"], r["api_version"]) for r in first["results"]] == [
        ("web", "created", "autoscaling/v2"), ("checkout-api", "created", "autoscaling/v2"),
        ("worker", "created", "autoscaling/v2")]
    assert hpa_names(cluster) == ["checkout-api", "web", "worker"]

    web = hpa(cluster, "web")
    assert web["apiVersion"] == "autoscaling/v2"
    assert web["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "meshtune"
    assert web["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 3,
        "maxReplicas": 30,
        "metrics": [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
        "behavior": {
            "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": 15},
                {"type": "Pods", "value": 4, "periodSeconds": 15}]},
            "scaleDown": {"stabilizationWindowSeconds": 600, "selectPolicy": "Min", "policies": [
                {"type": "Percent", "value": 10, "periodSeconds": 60}]},
        },
    }
    assert hpa(cluster, "checkout-api")["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "checkout"},
        "minReplicas": 2,
        "maxReplicas": 12,
        "metrics": [
            {"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 75}}},
            {"type": "Resource", "resource": {
                "name": "memory", "target": {"type": "Utilization", "averageUtilization": 80}}},
            CHECKOUT["metrics"][0],
        ],
    }
    worker = hpa(cluster, "worker")["spec"]
    assert worker["minReplicas"] == 1
    assert worker["metrics"][0]["external"]["target"] == {"type": "AverageValue", "averageValue": "30"}
    assert "behavior" not in worker


def test_rerun_is_unchanged_and_writes_nothing(cluster, tmp_path):
    cluster.reset_stats()
    second = run_module(tmp_path, MODULE, module_args(cluster, POLICIES))
    assert second["changed"] is False, second
    assert second["summary"]["unchanged"] == 3
    assert writes(cluster.stats()) == 0


def test_check_mode_and_diff_then_only_the_changed_policy_is_updated(cluster, tmp_path):
    slower = copy.deepcopy(WEB)
    slower["scale_down"] = {"stabilization_window_seconds": 900, "policies": [
        {"type": "Pods", "value": 1, "period_seconds": 120}]}
    policies = [slower, CHECKOUT, WORKER]
    versions = {name: hpa(cluster, name)["metadata"]["resourceVersion"]
                for name in ("web", "checkout-api", "worker")}

    cluster.reset_stats()
    planned = run_module(tmp_path, MODULE, module_args(cluster, policies), "--check", "--diff")
    assert planned["changed"] is True
    assert planned["summary"] == {"created": 0, "updated": 1, "unchanged": 2, "deleted": 0,
                                  "skipped": 0, "failed": 0, "total": 3}
    assert writes(cluster.stats()) == 0
    [diff] = planned["diff"]
    assert diff["before_header"] == "HorizontalPodAutoscaler shop/web"
    assert diff["before"]["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600
    assert diff["after"]["spec"]["behavior"]["scaleDown"] == {
        "stabilizationWindowSeconds": 900,
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]}
    assert hpa(cluster, "web")["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600

    cluster.reset_stats()
    applied = run_module(tmp_path, MODULE, module_args(cluster, policies))
    assert applied["changed"] is True
    assert [(r["name"], r["action"]) for r in applied["results"]] == [
        ("web", "updated"), ("checkout-api", "unchanged"), ("worker", "unchanged")]
    assert writes(cluster.stats()) == 1
    assert hpa(cluster, "web")["spec"]["behavior"]["scaleDown"] == {
        "stabilizationWindowSeconds": 900,
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]}
    for name in ("checkout-api", "worker"):
        assert hpa(cluster, name)["metadata"]["resourceVersion"] == versions[name]
    assert hpa(cluster, "web")["metadata"]["resourceVersion"] != versions["web"]

    cluster.reset_stats()
    assert run_module(tmp_path, MODULE, module_args(cluster, policies))["changed"] is False
    assert writes(cluster.stats()) == 0


def test_dropping_behavior_removes_it(cluster, tmp_path):
    plain = {key: value for key, value in WEB.items() if key not in ("scale_up", "scale_down")}
    outcome = run_module(tmp_path, MODULE, module_args(cluster, [plain]))
    assert outcome["summary"]["updated"] == 1
    assert "behavior" not in hpa(cluster, "web")["spec"]


def test_absent_deletes(cluster, tmp_path):
    args = module_args(cluster, [{"name": "checkout-api"}, {"target": {"name": "worker"}}],
                       state="absent")
    removed = run_module(tmp_path, MODULE, args)
    assert removed["summary"]["deleted"] == 2
    assert hpa_names(cluster) == ["web"]
    cluster.reset_stats()
    again = run_module(tmp_path, MODULE, args)
    assert again["changed"] is False
    assert again["summary"]["unchanged"] == 2
    assert writes(cluster.stats()) == 0


def test_missing_namespace_fails_before_any_write(cluster, tmp_path):
    cluster.reset_stats()
    outcome = run_module(tmp_path, MODULE, {**module_args(cluster, [WEB]), "namespace": "nowhere"})
    assert outcome["failed"] is True
    assert "Namespaces not found (nothing was changed): nowhere" in outcome["msg"]
    assert writes(cluster.stats()) == 0


@pytest.mark.parametrize(("policy", "expected"), [
    (WEB, ["policies[0].scale_up", "policies[0].scale_down", "autoscaling/v2",
           "serves only autoscaling/v1", "no behavior field", "Kubernetes 1.23"]),
    ({"target": {"name": "web"}, "max_replicas": 4, "cpu_utilization": 50},
     ["needs autoscaling/v2", "serves only autoscaling/v1", "Kubernetes 1.23 or newer"]),
])
def test_v1_only_cluster_fails_clearly_and_writes_nothing(kubeapi_factory, tmp_path, policy, expected):
    server = kubeapi_factory("--disable", "autoscaling/v2")
    outcome = run_module(tmp_path, MODULE, {"kubeconfig": str(server.kubeconfig),
                                            "namespace": "default", "policies": [policy]})
    assert outcome["failed"] is True
    for text in expected:
        assert text in outcome["msg"], outcome["msg"]
    stats = server.stats()
    assert writes(stats) == 0
    assert server.kubectl("get", "hpa", "-A", "-o", "name").stdout == ""


BAD_INPUTS = [
    # (changes to a valid policy, text the failure message must contain)
    ({"min_replicas": 0}, "policies[0].min_replicas"),
    ({"min_replicas": 8, "max_replicas": 4}, "policies[0].max_replicas"),
    ({"cpu_utilization": 0}, "policies[0].cpu_utilization"),
    ({"memory_utilization": -1}, "policies[0].memory_utilization"),
    ({"cpu_utilization": None}, "policies[0].metrics"),
    ({"target": {"kind": "Deployment"}}, "policies[0].target.name"),
    ({"name": "Web_App"}, "policies[0].name"),
    ({"scale_down": {"policies": [{"type": "Pods", "value": 1, "period_seconds": 3600}]}},
     "policies[0].scale_down.policies[0].period_seconds"),
    ({"scale_up": {"policies": [{"type": "Percent", "value": 0, "period_seconds": 15}]}},
     "policies[0].scale_up.policies[0].value"),
    ({"scale_down": {"stabilization_window_seconds": 7200}},
     "policies[0].scale_down.stabilization_window_seconds"),
    ({"metrics": [{"type": "Custom", "custom": {}}]}, "policies[0].metrics[0].type"),
    ({"metrics": [{"type": "Pods", "pods": {"metric": {"name": "rps"}}}]},
     "policies[0].metrics[0].pods.target"),
    # Shapes and choices Ansible's argument spec rejects itself.
    ({"minReplicas": 2}, "minReplicas"),
    ({"scale_up": {"select_policy": "Fastest"}}, "select_policy"),
    ({"scale_down": {"policies": [{"type": "Replicas", "value": 1, "period_seconds": 60}]}}, "Replicas"),
]


@pytest.mark.parametrize(("changes", "expected"), BAD_INPUTS, ids=[e for _c, e in BAD_INPUTS])
def test_bad_input_fails_naming_the_option_with_no_request(cluster, tmp_path, changes, expected):
    policy = {"target": {"name": "web"}, "max_replicas": 4, "cpu_utilization": 50, **changes}
    policy = {key: value for key, value in policy.items() if value is not None}
    cluster.reset_stats()
    outcome = run_module(tmp_path, MODULE, module_args(cluster, [policy]))
    assert outcome["failed"] is True
    assert expected in outcome["msg"], outcome["msg"]
    assert "Traceback" not in outcome.get("module_stderr", "")
    assert cluster.stats()["requests"]["total"] == 0


def test_duplicate_names_and_a_bad_namespace_are_reported_together(cluster, tmp_path):
    policies = [WEB, {"name": "web", "target": {"name": "web-canary"}, "max_replicas": 2,
                      "cpu_utilization": 60}]
    cluster.reset_stats()
    outcome = run_module(tmp_path, MODULE, {**module_args(cluster, policies), "namespace": "Shop"})
    assert outcome["failed"] is True
    assert "namespace: expected a DNS-1123 label" in outcome["msg"]
    assert "policies[1].name: expected an HPA name not used twice" in outcome["msg"]
    assert cluster.stats()["requests"]["total"] == 0


def test_a_server_gone_mid_run_is_named_not_taken_for_an_old_kubernetes(kubeapi_factory, tmp_path):
    # Looking up autoscaling/v2 misses the client's discovery cache (written by cluster_check
    # against a server without it) and asks the server again, which has stopped by then.
    server = kubeapi_factory("--disable", "autoscaling/v2")
    assert run_module(tmp_path, "meshtune.mesh.cluster_check",
                      {"kubeconfig": str(server.kubeconfig)}).get("failed") is not True
    server.stop()
    outcome = run_module(tmp_path, MODULE, {"kubeconfig": str(server.kubeconfig), "namespace": "default",
                                            "policies": [WEB]})
    assert outcome["failed"] is True
    assert outcome["msg"].startswith(
        f"Cannot reach the Kubernetes API server {server.url}: Connection refused. Point meshtune at"), \
        outcome["msg"]
    assert "autoscaling/v2" not in outcome["msg"]


def test_an_hpa_changed_by_hand_is_put_back_and_one_made_by_hand_left_alone(cluster, tmp_path):
    policy = {"name": "drifty", "target": {"name": "drifty"}, "max_replicas": 5, "cpu_utilization": 60}
    args = module_args(cluster, [policy])
    assert run_module(tmp_path, MODULE, args)["summary"]["created"] == 1
    cluster.kubectl("patch", "hpa.v2.autoscaling", "drifty", "-n", NAMESPACE, "--type", "merge", "-p",
                    json.dumps({"spec": {"maxReplicas": 50, "behavior": {"scaleDown": {
                        "stabilizationWindowSeconds": 0}}}}))
    fixed = run_module(tmp_path, MODULE, args)
    [entry] = fixed["results"]
    assert (entry["action"], entry["reason"]) == ("updated", "drift: spec.behavior, spec.maxReplicas")
    live = hpa(cluster, "drifty")["spec"]
    assert live["maxReplicas"] == 5 and "behavior" not in live
    assert run_module(tmp_path, MODULE, args)["changed"] is False

    cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "theirs", "namespace": NAMESPACE},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "theirs"},
                 "minReplicas": 2, "maxReplicas": 9}}))
    theirs = {"target": {"name": "theirs"}, "max_replicas": 4, "cpu_utilization": 50}
    cluster.reset_stats()
    for state in ("present", "absent"):
        left = run_module(tmp_path, MODULE, module_args(cluster, [theirs], state=state))
        assert left["results"][0]["action"] == "skipped", left
        assert "not managed by meshtune" in left["results"][0]["reason"]
    assert writes(cluster.stats()) == 0
    assert hpa(cluster, "theirs")["spec"]["maxReplicas"] == 9
    taken = run_module(tmp_path, MODULE, module_args(cluster, [theirs], force=True))
    assert taken["results"][0]["action"] == "updated"
    assert hpa(cluster, "theirs")["spec"]["maxReplicas"] == 4
