"""meshtune.mesh.sidecar_scope against the test API server."""

from __future__ import annotations

import json

import pytest

from tests.support.ansible_runner import run_module

MODULE = "meshtune.mesh.sidecar_scope"
NAMESPACES = ["shop", "payments", "catalog"]


@pytest.fixture(scope="module")
def cluster(kubeapi):
    for namespace in NAMESPACES:
        kubeapi.kubectl("create", "namespace", namespace, "--dry-run=client", "-o", "json")
        kubeapi.kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
    return kubeapi


def writes(stats: dict) -> int:
    verbs = stats["requests"]["by_verb"]
    return sum(verbs.get(v, 0) for v in ("create", "update", "patch", "delete"))


def sidecar(cluster, namespace: str) -> dict:
    return json.loads(cluster.kubectl("get", "sidecars.networking.istio.io", "default", "-n",
                                      namespace, "-o", "json").stdout)


def test_create_is_idempotent_and_reads_back(cluster, tmp_path):
    args = {"kubeconfig": str(cluster.kubeconfig), "namespaces": NAMESPACES,
            "outbound_traffic_policy": "REGISTRY_ONLY"}
    first = run_module(tmp_path, MODULE, args)
    assert first["changed"] is True, first
    assert first["summary"]["created"] == 3
    assert first["api_version"] == "networking.istio.io/v1"
    for namespace in NAMESPACES:
        live = sidecar(cluster, namespace)
        assert live["spec"] == {"egress": [{"hosts": ["./*", "istio-system/*"]}],
                                "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}
        assert live["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "meshtune"

    cluster.reset_stats()
    second = run_module(tmp_path, MODULE, args)
    assert second["changed"] is False
    assert second["summary"]["unchanged"] == 3
    assert writes(cluster.stats()) == 0


def test_check_mode_and_diff_write_nothing(cluster, tmp_path):
    args = {"kubeconfig": str(cluster.kubeconfig), "namespaces": NAMESPACES,
            "egress_hosts": ["./*", "istio-system/*", "observability/*"]}
    cluster.reset_stats()
    planned = run_module(tmp_path, MODULE, args, "--check", "--diff")
    assert planned["changed"] is True
    assert planned["summary"]["updated"] == 3
    assert writes(cluster.stats()) == 0
    diff = planned["diff"][0]
    assert diff["after"]["spec"]["egress"][0]["hosts"][-1] == "observability/*"
    assert "outboundTrafficPolicy" in diff["before"]["spec"]
    assert "outboundTrafficPolicy" not in diff["after"]["spec"], "dropped options are removed"
    assert sidecar(cluster, "shop")["spec"]["egress"][0]["hosts"] == ["./*", "istio-system/*"]

    applied = run_module(tmp_path, MODULE, args)
    assert applied["summary"]["updated"] == 3
    assert sidecar(cluster, "shop")["spec"] == {
        "egress": [{"hosts": ["./*", "istio-system/*", "observability/*"]}]}


def test_absent_deletes(cluster, tmp_path):
    args = {"kubeconfig": str(cluster.kubeconfig), "namespaces": ["catalog"], "state": "absent"}
    removed = run_module(tmp_path, MODULE, args)
    assert removed["summary"]["deleted"] == 1
    assert cluster.kubectl("get", "sidecars.networking.istio.io", "-n", "catalog",
                           "-o", "name").stdout == ""
    again = run_module(tmp_path, MODULE, args)
    assert again["changed"] is False


@pytest.mark.parametrize(("override", "option"), [
    ({"namespaces": ["Shop"]}, "namespaces[0]"),
    ({"namespaces": ["shop", "shop"]}, "namespaces"),
    ({"egress_hosts": ["no-slash"]}, "egress_hosts[0]"),
    ({"egress_hosts": []}, "egress_hosts"),
    ({"outbound_traffic_policy": "DENY_ALL"}, "outbound_traffic_policy"),
    ({"name": "Bad_Name"}, "name"),
    ({"parallelism": 0}, "parallelism"),
])
def test_bad_input_fails_naming_the_option_and_writes_nothing(cluster, tmp_path, override, option):
    args = {"kubeconfig": str(cluster.kubeconfig), "namespaces": ["shop"], **override}
    cluster.reset_stats()
    outcome = run_module(tmp_path, MODULE, args)
    assert outcome["failed"] is True
    assert option in outcome["msg"]
    assert "Traceback" not in outcome.get("module_stderr", "")
    assert cluster.stats()["requests"]["total"] == 0


def test_missing_namespace_fails_before_any_write(cluster, tmp_path):
    cluster.reset_stats()
    outcome = run_module(tmp_path, MODULE, {"kubeconfig": str(cluster.kubeconfig),
                                            "namespaces": ["shop", "nowhere"]})
    assert outcome["failed"] is True
    assert "Namespaces not found (nothing was changed): nowhere" in outcome["msg"]
    assert writes(cluster.stats()) == 0


def test_falls_back_to_the_newest_served_version(kubeapi_factory, tmp_path):
    server = kubeapi_factory("--disable", "networking.istio.io/v1")
    outcome = run_module(tmp_path, MODULE, {"kubeconfig": str(server.kubeconfig),
                                            "namespaces": ["default"]})
    assert outcome["changed"] is True
    assert outcome["api_version"] == "networking.istio.io/v1beta1"
    assert outcome["results"][0]["api_version"] == "networking.istio.io/v1beta1"


def test_a_server_gone_mid_run_is_named_not_taken_for_a_cluster_without_istio(kubeapi_factory, tmp_path):
    # The client's discovery cache was written before Istio's API was there (by cluster_check),
    # so looking up networking.istio.io asks the server again, which has stopped by then.
    server = kubeapi_factory("--disable", "networking.istio.io/v1,networking.istio.io/v1beta1,"
                                          "networking.istio.io/v1alpha3")
    assert run_module(tmp_path, "meshtune.mesh.cluster_check",
                      {"kubeconfig": str(server.kubeconfig)}).get("failed") is not True
    server.stop()
    outcome = run_module(tmp_path, MODULE, {"kubeconfig": str(server.kubeconfig),
                                            "namespaces": ["default"]})
    assert outcome["failed"] is True
    assert outcome["msg"].startswith(
        f"Cannot reach the Kubernetes API server {server.url}: Connection refused. Point meshtune at"), \
        outcome["msg"]
    assert "is Istio installed" not in outcome["msg"]


def test_a_sidecar_changed_by_hand_is_put_back_and_one_made_by_hand_left_alone(cluster, tmp_path):
    cluster.kubectl("create", "namespace", "drift")
    args = {"kubeconfig": str(cluster.kubeconfig), "namespaces": ["drift"],
            "outbound_traffic_policy": "REGISTRY_ONLY"}
    assert run_module(tmp_path, MODULE, args)["summary"]["created"] == 1
    cluster.kubectl("patch", "sidecars.networking.istio.io", "default", "-n", "drift", "--type", "merge",
                    "-p", json.dumps({"spec": {"outboundTrafficPolicy": {"mode": "ALLOW_ANY"},
                                               "workloadSelector": {"labels": {"app": "x"}}}}))
    fixed = run_module(tmp_path, MODULE, args)
    [entry] = fixed["results"]
    assert (entry["action"], entry["reason"]) == (
        "updated", "drift: spec.outboundTrafficPolicy.mode, spec.workloadSelector")
    assert sidecar(cluster, "drift")["spec"] == {"egress": [{"hosts": ["./*", "istio-system/*"]}],
                                                 "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}

    cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
        "metadata": {"name": "team", "namespace": "drift"},
        "spec": {"egress": [{"hosts": ["./*"]}]}}))
    cluster.reset_stats()
    for state in ("present", "absent"):
        left = run_module(tmp_path, MODULE, {**args, "name": "team", "state": state})
        assert left["results"][0]["action"] == "skipped", left
        assert "not managed by meshtune" in left["results"][0]["reason"]
    assert writes(cluster.stats()) == 0
    forced = run_module(tmp_path, MODULE, {**args, "name": "team", "state": "absent", "force": True})
    assert forced["results"][0]["action"] == "deleted"
