"""meshtune.mesh.destination_rule against the test API server."""

from __future__ import annotations

import json

import pytest

from tests.support.ansible_runner import run_module

MODULE = "meshtune.mesh.destination_rule"
NAMESPACE = "shop"
RESOURCE = "destinationrules.networking.istio.io"

REVIEWS = {
    "name": "reviews",
    "host": "reviews.shop.svc.cluster.local",
    "connection_pool": {
        "tcp": {"max_connections": 100, "connect_timeout": "250ms",
                "tcp_keepalive": {"time": "300s", "interval": "75s", "probes": 3}},
        "http": {"http1_max_pending_requests": 50, "http2_max_requests": 1000,
                 "max_requests_per_connection": 100, "max_retries": 3, "idle_timeout": "60s"},
    },
    "outlier_detection": {"consecutive_5xx_errors": 5, "interval": "10s", "base_ejection_time": "30s",
                          "max_ejection_percent": 50, "min_health_percent": 20},
    "load_balancer": {"simple": "LEAST_REQUEST"},
    "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"},
                 "connection_pool": {"http": {"http2_max_requests": 100}}}],
}
RATINGS = {
    "name": "ratings",
    "host": "ratings",
    "load_balancer": {"consistent_hash": {"http_cookie": {"name": "user", "path": "/", "ttl": "1h"}}},
    "tls": {"mode": "ISTIO_MUTUAL"},
    "export_to": ["."],
}
PAYMENTS = {
    "name": "payments-api",
    "host": "api.payments.example.com",
    "tls": {"mode": "SIMPLE", "sni": "api.payments.example.com", "subject_alt_names": ["api.payments"]},
    "outlier_detection": {"consecutive_gateway_errors": 3, "interval": "5s", "base_ejection_time": "1m"},
}
EXPECTED_SPECS = {
    "reviews": {
        "host": "reviews.shop.svc.cluster.local",
        "trafficPolicy": {
            "connectionPool": {
                "tcp": {"maxConnections": 100, "connectTimeout": "250ms",
                        "tcpKeepalive": {"time": "300s", "interval": "75s", "probes": 3}},
                "http": {"http1MaxPendingRequests": 50, "http2MaxRequests": 1000,
                         "maxRequestsPerConnection": 100, "maxRetries": 3, "idleTimeout": "60s"},
            },
            "outlierDetection": {"consecutive5xxErrors": 5, "interval": "10s", "baseEjectionTime": "30s",
                                 "maxEjectionPercent": 50, "minHealthPercent": 20},
            "loadBalancer": {"simple": "LEAST_REQUEST"},
        },
        "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                    {"name": "v2", "labels": {"version": "v2"},
                     "trafficPolicy": {"connectionPool": {"http": {"http2MaxRequests": 100}}}}],
    },
    "ratings": {
        "host": "ratings",
        "trafficPolicy": {
            "loadBalancer": {"consistentHash": {"httpCookie": {"name": "user", "path": "/", "ttl": "1h"}}},
            "tls": {"mode": "ISTIO_MUTUAL"},
        },
        "exportTo": ["."],
    },
    "payments-api": {
        "host": "api.payments.example.com",
        "trafficPolicy": {
            "tls": {"mode": "SIMPLE", "sni": "api.payments.example.com", "subjectAltNames": ["api.payments"]},
            "outlierDetection": {"consecutiveGatewayErrors": 3, "interval": "5s", "baseEjectionTime": "1m"},
        },
    },
}


@pytest.fixture(scope="module")
def cluster(kubeapi):
    for namespace in (NAMESPACE, "catalog"):
        kubeapi.kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
    return kubeapi


def writes(stats: dict) -> int:
    verbs = stats["requests"]["by_verb"]
    return sum(verbs.get(v, 0) for v in ("create", "update", "patch", "delete"))


def read_rule(cluster, name: str, namespace: str = NAMESPACE) -> dict:
    return json.loads(cluster.kubectl("get", RESOURCE, name, "-n", namespace, "-o", "json").stdout)


def rule_names(cluster, namespace: str) -> list[str]:
    listed = json.loads(cluster.kubectl("get", RESOURCE, "-n", namespace, "-o", "json").stdout)
    return sorted(item["metadata"]["name"] for item in listed["items"])


def test_several_rules_created_read_back_and_idempotent(cluster, tmp_path):
    args = {"kubeconfig": str(cluster.kubeconfig), "namespace": NAMESPACE,
            "rules": [REVIEWS, RATINGS, PAYMENTS]}
    first = run_module(tmp_path, MODULE, args)
    assert first["changed"] is True, first
    assert first["summary"]["created"] == 3
    assert first["api_version"] == "networking.istio.io/v1"
    assert [(r["name"], r["action"], r["api_version"]) for r in first["results"]] == [
        (name, "created", "networking.istio.io/v1") for name in ("reviews", "ratings", "payments-api")]
    for name, spec in EXPECTED_SPECS.items():
        live = read_rule(cluster, name)
        assert live["apiVersion"] == "networking.istio.io/v1"
        assert live["spec"] == spec, name
        assert live["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "meshtune"

    cluster.reset_stats()
    second = run_module(tmp_path, MODULE, args)
    assert second["changed"] is False, second
    assert second["summary"]["unchanged"] == 3
    assert writes(cluster.stats()) == 0


def test_check_mode_writes_nothing_and_diff_shows_before_and_after(cluster, tmp_path):
    tighter = {**REVIEWS, "connection_pool": {"http": {"http2_max_requests": 500}}}
    args = {"kubeconfig": str(cluster.kubeconfig), "namespace": NAMESPACE,
            "rules": [tighter, RATINGS, PAYMENTS]}
    cluster.reset_stats()
    planned = run_module(tmp_path, MODULE, args, "--check", "--diff")
    assert planned["changed"] is True, planned
    assert planned["summary"]["updated"] == 1
    assert planned["summary"]["unchanged"] == 2
    assert writes(cluster.stats()) == 0
    [diff] = planned["diff"]
    assert diff["before_header"] == "DestinationRule shop/reviews"
    assert diff["before"]["spec"]["trafficPolicy"]["connectionPool"] == \
        EXPECTED_SPECS["reviews"]["trafficPolicy"]["connectionPool"]
    assert diff["after"]["spec"]["trafficPolicy"]["connectionPool"] == {"http": {"http2MaxRequests": 500}}
    assert read_rule(cluster, "reviews")["spec"] == EXPECTED_SPECS["reviews"], "check mode changed it"

    applied = run_module(tmp_path, MODULE, args, "--diff")
    assert applied["summary"]["updated"] == 1
    assert len(applied["diff"]) == 1
    assert read_rule(cluster, "reviews")["spec"]["trafficPolicy"]["connectionPool"] == {
        "http": {"http2MaxRequests": 500}}, "options dropped from the request are removed"


def test_single_rule_at_top_level_then_absent_deletes(cluster, tmp_path):
    args = {"kubeconfig": str(cluster.kubeconfig), "namespace": "catalog", "name": "search",
            "destination_host": "search", "connection_pool": {"http": {"http2_max_requests": 200}},
            "outlier_detection": {"consecutive_5xx_errors": 3}}
    created = run_module(tmp_path, MODULE, args)
    assert created["summary"]["created"] == 1, created
    assert read_rule(cluster, "search", "catalog")["spec"] == {
        "host": "search",
        "trafficPolicy": {"connectionPool": {"http": {"http2MaxRequests": 200}},
                          "outlierDetection": {"consecutive5xxErrors": 3}}}
    assert run_module(tmp_path, MODULE, args)["changed"] is False

    removed = run_module(tmp_path, MODULE, {"kubeconfig": str(cluster.kubeconfig), "namespace": "catalog",
                                            "name": "search", "state": "absent"})
    assert removed["summary"]["deleted"] == 1, removed
    assert rule_names(cluster, "catalog") == []
    cluster.reset_stats()
    again = run_module(tmp_path, MODULE, {"kubeconfig": str(cluster.kubeconfig), "namespace": "catalog",
                                          "name": "search", "state": "absent"})
    assert again["changed"] is False
    assert writes(cluster.stats()) == 0


def test_absent_deletes_several_rules(cluster, tmp_path):
    args = {"kubeconfig": str(cluster.kubeconfig), "namespace": NAMESPACE, "state": "absent",
            "rules": [{"name": "ratings"}, {"name": "payments-api"}, {"name": "never-created"}]}
    removed = run_module(tmp_path, MODULE, args)
    assert removed["changed"] is True
    assert [(r["name"], r["action"]) for r in removed["results"]] == [
        ("ratings", "deleted"), ("payments-api", "deleted"), ("never-created", "unchanged")]
    assert rule_names(cluster, NAMESPACE) == ["reviews"]


def test_deprecated_consecutive_errors_is_translated_with_a_warning(cluster, tmp_path):
    args = {"kubeconfig": str(cluster.kubeconfig), "namespace": "catalog", "name": "legacy",
            "destination_host": "legacy", "outlier_detection": {"consecutive_errors": 4, "interval": "5s"}}
    outcome = run_module(tmp_path, MODULE, args)
    assert outcome["changed"] is True, outcome
    assert any("outlier_detection.consecutive_errors is deprecated" in warning
               for warning in outcome["warnings"]), outcome.get("warnings")
    stored = read_rule(cluster, "legacy", "catalog")["spec"]["trafficPolicy"]["outlierDetection"]
    assert stored == {"consecutive5xxErrors": 4, "interval": "5s"}


def test_missing_namespace_fails_before_any_write(cluster, tmp_path):
    cluster.reset_stats()
    outcome = run_module(tmp_path, MODULE, {"kubeconfig": str(cluster.kubeconfig), "namespace": "nowhere",
                                            "rules": [{"name": "r", "host": "r"}]})
    assert outcome["failed"] is True
    assert "Namespaces not found (nothing was changed): nowhere" in outcome["msg"]
    assert writes(cluster.stats()) == 0


def test_falls_back_to_the_newest_served_version(kubeapi_factory, tmp_path):
    server = kubeapi_factory("--disable", "networking.istio.io/v1")
    args = {"kubeconfig": str(server.kubeconfig), "namespace": "default", "name": "reviews",
            "destination_host": "reviews", "outlier_detection": {"consecutive_5xx_errors": 5}}
    outcome = run_module(tmp_path, MODULE, args)
    assert outcome["changed"] is True, outcome
    assert outcome["api_version"] == "networking.istio.io/v1beta1"
    assert outcome["results"][0]["api_version"] == "networking.istio.io/v1beta1"
    live = json.loads(server.kubectl("get", "destinationrules.v1beta1.networking.istio.io", "reviews",
                                     "-n", "default", "-o", "json").stdout)
    assert live["apiVersion"] == "networking.istio.io/v1beta1"
    assert live["spec"] == {"host": "reviews",
                            "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": 5}}}
    assert run_module(tmp_path, MODULE, args)["changed"] is False


def one_rule(**changes) -> dict:
    return {"rules": [{"name": "r", "host": "r", **changes}]}


@pytest.mark.parametrize(("args", "option"), [
    (one_rule(host=""), "rules[0].host"),
    (one_rule(name="Bad_Name"), "rules[0].name"),
    ({"rules": [{"name": "r", "host": "a"}, {"name": "r", "host": "b"}]}, "rules[1].name"),
    (one_rule(outlier_detection={"interval": "10 seconds"}), "rules[0].outlier_detection.interval"),
    (one_rule(outlier_detection={"max_ejection_percent": 150}),
     "rules[0].outlier_detection.max_ejection_percent"),
    (one_rule(connection_pool={"http": {"http2_max_requests": 0}}),
     "rules[0].connection_pool.http.http2_max_requests"),
    (one_rule(connection_pool={"tcp": {"tcp_keepalive": {"time": "100ms"}}}),
     "rules[0].connection_pool.tcp.tcp_keepalive.time"),
    (one_rule(load_balancer={"simple": "ROUND_ROBIN", "consistent_hash": {"use_source_ip": True}}),
     "rules[0].load_balancer"),
    (one_rule(load_balancer={"consistent_hash": {"http_header_name": "x", "http_query_parameter_name": "q"}}),
     "rules[0].load_balancer.consistent_hash"),
    (one_rule(subsets=[{"name": "v1", "labels": {"version": 2}}]), "rules[0].subsets[0].labels.version"),
    (one_rule(outlier_detection={"consecutive_errors": 1, "consecutive_5xx_errors": 1}),
     "rules[0].outlier_detection.consecutive_errors"),
    (one_rule(tls={"mode": "MUTUAL"}), "rules[0].tls.credential_name"),
    (one_rule(load_balancer={"simple": "FASTEST"}), "simple"),
    (one_rule(connection_pool={"tcp": {"maxConnections": 10}}), "maxConnections"),
    ({"name": "r", "destination_host": "r", "rules": [{"name": "x", "host": "x"}]}, "rules|name"),
    ({"name": "r", "destination_host": "no spaces"}, "destination_host"),
])
def test_bad_input_fails_naming_the_option_with_no_request(cluster, tmp_path, args, option):
    cluster.reset_stats()
    outcome = run_module(tmp_path, MODULE, {"kubeconfig": str(cluster.kubeconfig), "namespace": NAMESPACE,
                                            **args})
    assert outcome["failed"] is True, outcome
    assert option in outcome["msg"], outcome["msg"]
    assert "Traceback" not in outcome.get("module_stderr", "")
    assert cluster.stats()["requests"]["total"] == 0


def test_a_cluster_without_istio_fails_with_one_clear_line(kubeapi_factory, tmp_path):
    server = kubeapi_factory("--disable", "networking.istio.io/v1,networking.istio.io/v1beta1,"
                                          "networking.istio.io/v1alpha3")
    args = {"kubeconfig": str(server.kubeconfig), "namespace": "default", "name": "reviews",
            "destination_host": "reviews", "outlier_detection": {"consecutive_5xx_errors": 5}}
    outcome = run_module(tmp_path, MODULE, args)
    assert outcome["failed"] is True
    assert outcome["msg"] == ("The cluster serves no networking.istio.io DestinationRule API "
                              "(v1, v1beta1, v1alpha3): is Istio installed?")


def unreachable_message(server) -> str:
    return f"Cannot reach the Kubernetes API server {server.url}: Connection refused. Point meshtune at"


def test_a_server_gone_mid_run_is_named_not_taken_for_a_cluster_without_istio(kubeapi_factory, tmp_path):
    # As in site.yml: the client's discovery cache was written before Istio was installed (here by
    # cluster_check against a server without Istio's API), so the lookup of networking.istio.io
    # asks the server again, which has stopped by then.
    server = kubeapi_factory("--disable", "networking.istio.io/v1,networking.istio.io/v1beta1,"
                                          "networking.istio.io/v1alpha3")
    assert run_module(tmp_path, "meshtune.mesh.cluster_check",
                      {"kubeconfig": str(server.kubeconfig)}).get("failed") is not True
    server.stop()
    outcome = run_module(tmp_path, MODULE, {
        "kubeconfig": str(server.kubeconfig), "namespace": "default", "name": "reviews",
        "destination_host": "reviews", "outlier_detection": {"consecutive_5xx_errors": 5}})
    assert outcome["failed"] is True
    assert outcome["msg"].startswith(unreachable_message(server)), outcome["msg"]
    assert "is Istio installed" not in outcome["msg"]


DRIFTED = {"name": "drifted", "host": "drifted",
           "connection_pool": {"http": {"http2_max_requests": 200}},
           "outlier_detection": {"consecutive_5xx_errors": 3, "interval": "10s"}}
DRIFTED_SPEC = {"host": "drifted",
                "trafficPolicy": {"connectionPool": {"http": {"http2MaxRequests": 200}},
                                  "outlierDetection": {"consecutive5xxErrors": 3, "interval": "10s"}}}


def test_a_change_by_hand_is_drift_reported_and_put_back(cluster, tmp_path):
    args = {"kubeconfig": str(cluster.kubeconfig), "namespace": "catalog", "rules": [DRIFTED]}
    assert run_module(tmp_path, MODULE, args)["summary"]["created"] == 1
    cluster.kubectl("patch", RESOURCE, "drifted", "-n", "catalog", "--type", "merge", "-p", json.dumps(
        {"spec": {"trafficPolicy": {"tls": {"mode": "DISABLE"},
                                    "outlierDetection": {"consecutive5xxErrors": 50}}}}))

    cluster.reset_stats()
    planned = run_module(tmp_path, MODULE, args, "--check", "--diff")
    [entry] = planned["results"]
    assert (entry["action"], entry["reason"]) == (
        "updated", "drift: spec.trafficPolicy.outlierDetection.consecutive5xxErrors, spec.trafficPolicy.tls")
    assert planned["diff"][0]["before"]["spec"]["trafficPolicy"]["tls"] == {"mode": "DISABLE"}
    assert planned["diff"][0]["after"]["spec"] == DRIFTED_SPEC
    assert writes(cluster.stats()) == 0

    applied = run_module(tmp_path, MODULE, args)
    assert applied["changed"] is True
    assert applied["results"][0]["reason"] == entry["reason"]
    assert read_rule(cluster, "drifted", "catalog")["spec"] == DRIFTED_SPEC
    cluster.reset_stats()
    again = run_module(tmp_path, MODULE, args)
    assert again["changed"] is False
    assert writes(cluster.stats()) == 0


HAND_MADE = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
             "metadata": {"name": "handmade", "namespace": "catalog", "labels": {"team": "search"}},
             "spec": {"host": "handmade", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
                      "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}}


def test_a_rule_meshtune_does_not_manage_is_left_alone_unless_forced(cluster, tmp_path):
    cluster.kubectl("apply", "-f", "-", input=json.dumps(HAND_MADE))
    before = read_rule(cluster, "handmade", "catalog")
    present = {"kubeconfig": str(cluster.kubeconfig), "namespace": "catalog", "name": "handmade",
               "destination_host": "handmade", "outlier_detection": {"consecutive_5xx_errors": 5}}
    absent = {"kubeconfig": str(cluster.kubeconfig), "namespace": "catalog", "name": "handmade",
              "state": "absent"}

    cluster.reset_stats()
    for args, verb in ((present, "changed"), (absent, "deleted")):
        outcome = run_module(tmp_path, MODULE, args)
        assert outcome.get("failed") is not True, outcome
        assert outcome["changed"] is False
        [entry] = outcome["results"]
        assert entry["action"] == "skipped"
        assert entry["reason"] == ("exists and is not managed by meshtune (no label "
                                   f"app.kubernetes.io/managed-by=meshtune): not {verb}; "
                                   "force=true takes it over")
        assert any("DestinationRule catalog/handmade" in w for w in outcome["warnings"]), outcome
    assert writes(cluster.stats()) == 0
    assert read_rule(cluster, "handmade", "catalog")["metadata"]["resourceVersion"] == \
        before["metadata"]["resourceVersion"]

    taken = run_module(tmp_path, MODULE, {**present, "force": True})
    [entry] = taken["results"]
    assert entry["action"] == "updated"
    assert entry["reason"].startswith("taken over with force=true")
    assert any("Taking over 1 object(s)" in w for w in taken["warnings"])
    live = read_rule(cluster, "handmade", "catalog")
    assert live["spec"] == {"host": "handmade",
                            "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": 5}}}
    assert live["metadata"]["labels"] == {"team": "search", "app.kubernetes.io/managed-by": "meshtune"}
    assert run_module(tmp_path, MODULE, present)["changed"] is False, "meshtune's own from now on"

    cluster.kubectl("apply", "-f", "-", input=json.dumps({**HAND_MADE, "metadata": {
        **HAND_MADE["metadata"], "name": "handmade-2"}}))
    removed = run_module(tmp_path, MODULE, {**absent, "name": "handmade-2", "force": True})
    assert removed["results"][0]["action"] == "deleted"
    assert "handmade-2" not in rule_names(cluster, "catalog")
