"""meshtune.mesh.virtual_service against the test API server (Istio's VirtualService schema)."""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.meshtune.mesh.plugins.modules import destination_rule, virtual_service
from tests.support.ansible_runner import run_module
from tests.support.module_harness import call_module

MODULE = "meshtune.mesh.virtual_service"
NAMESPACE = "bookinfo"
RESOURCE = "virtualservices.networking.istio.io"

# The seed's cases: ratings routed by the calling workload's labels; reviews with a timeout and
# retries sized from a measured p99; a weighted canary with a mirror.
RATINGS = {
    "name": "ratings", "hosts": ["ratings"],
    "http": [
        {"name": "from-reviews-v2", "match": [{"source_labels": {"app": "reviews", "version": "v2"}}],
         "route": [{"host": "ratings", "subset": "v2"}]},
        {"name": "default", "route": [{"host": "ratings", "subset": "v1"}]},
    ],
}
REVIEWS = {
    "name": "reviews", "hosts": ["reviews.bookinfo.svc.cluster.local"], "export_to": ["."],
    "http": [{"name": "default", "timeout": "1s",
              "retries": {"attempts": 2, "per_try_timeout": "250ms",
                          "retry_on": ["connect-failure", "refused-stream", "503"]},
              "route": [{"host": "reviews", "subset": "v1", "port": 9080}]}],
}
CHECKOUT = {
    "name": "checkout", "hosts": ["checkout"], "gateways": ["mesh", "istio-system/ingress"],
    "http": [{"name": "canary",
              "match": [{"uri": {"prefix": "/api"}, "headers": {"x-canary": {"exact": "yes"}}},
                        {"uri": {"regex": "^/v[0-9]+/cart$"}, "port": 8080}],
              "route": [{"host": "checkout", "subset": "stable", "weight": 90},
                        {"host": "checkout", "subset": "canary", "weight": 10}],
              "mirror": {"host": "checkout-shadow", "percentage": 5.0}}],
}
RULES = [
    {"name": "ratings", "host": "ratings",
     "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]},
    {"name": "reviews", "host": "reviews.bookinfo.svc.cluster.local",
     "subsets": [{"name": "v1", "labels": {"version": "v1"}}]},
    {"name": "checkout", "host": "checkout",
     "subsets": [{"name": "stable", "labels": {"track": "stable"}},
                 {"name": "canary", "labels": {"track": "canary"}}]},
]


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def destination(options: dict) -> dict:
    out = {key: options[key] for key in ("host", "subset") if key in options}
    if "port" in options:
        out["port"] = {"number": options["port"]}
    return out


def expected_spec(service: dict) -> dict:
    """The VirtualService spec Istio expects for the module's options, built from the inputs."""
    spec = {key: service[key] for key in ("hosts", "gateways") if key in service}
    if "export_to" in service:
        spec["exportTo"] = service["export_to"]
    spec["http"] = []
    for route in service["http"]:
        entry = {**({"name": route["name"]} if "name" in route else {}), "route": [
            {"destination": destination(d), **({"weight": d["weight"]} if "weight" in d else {})}
            for d in route["route"]]}
        if "match" in route:
            entry["match"] = [{camel(key): value for key, value in match.items()} for match in route["match"]]
        if "timeout" in route:
            entry["timeout"] = route["timeout"]
        if "retries" in route:
            retries = route["retries"]
            entry["retries"] = {"attempts": retries["attempts"], "perTryTimeout": retries["per_try_timeout"],
                                "retryOn": ",".join(retries["retry_on"])}
        if "mirror" in route:
            entry["mirror"] = destination(route["mirror"])
            entry["mirrorPercentage"] = {"value": route["mirror"]["percentage"]}
        spec["http"].append(entry)
    return spec


@pytest.fixture(scope="module")
def cluster(kubeapi):
    for namespace in (NAMESPACE, "shop"):
        kubeapi.kubectl("create", "namespace", namespace)
    outcome = call_module(destination_rule.main, {"kubeconfig": str(kubeapi.kubeconfig),
                                                  "namespace": NAMESPACE, "rules": RULES})
    assert outcome["summary"]["created"] == len(RULES), outcome
    return kubeapi


def writes(stats: dict) -> int:
    verbs = stats["requests"]["by_verb"]
    return sum(verbs.get(v, 0) for v in ("create", "update", "patch", "delete"))


def live(cluster, name: str, namespace: str = NAMESPACE) -> dict:
    return json.loads(cluster.kubectl("get", RESOURCE, name, "-n", namespace, "-o", "json").stdout)


def names(cluster, namespace: str) -> list[str]:
    listed = json.loads(cluster.kubectl("get", RESOURCE, "-n", namespace, "-o", "json").stdout)
    return sorted(item["metadata"]["name"] for item in listed["items"])


def args_for(cluster, *services, **extra) -> dict:
    return {"kubeconfig": str(cluster.kubeconfig), "namespace": NAMESPACE,
            "services": copy.deepcopy(list(services)), **extra}


def test_services_are_written_as_valid_virtual_services_then_left_alone(cluster, tmp_path):
    args = args_for(cluster, RATINGS, REVIEWS, CHECKOUT)
    first = run_module(tmp_path, MODULE, args)
    assert first.get("failed") is not True, first.get("msg")
    assert [(r["name"], r["action"]) for r in first["results"]] == [
        (service["name"], "created") for service in (RATINGS, REVIEWS, CHECKOUT)]
    assert first["api_version"] == "networking.istio.io/v1"
    for service in (RATINGS, REVIEWS, CHECKOUT):
        stored = live(cluster, service["name"])
        assert stored["spec"] == expected_spec(service), service["name"]
        assert stored["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "meshtune"

    cluster.reset_stats()
    second = run_module(tmp_path, MODULE, args)
    assert second["changed"] is False, second
    assert second["summary"]["unchanged"] == 3
    assert writes(cluster.stats()) == 0


def test_check_mode_writes_nothing_and_diff_shows_the_change(cluster, tmp_path):
    slower = copy.deepcopy(REVIEWS)
    slower["http"][0]["timeout"] = "2s"
    args = args_for(cluster, RATINGS, slower, CHECKOUT)
    cluster.reset_stats()
    planned = run_module(tmp_path, MODULE, args, "--check", "--diff")
    assert planned["changed"] is True, planned
    assert planned["summary"] == {"created": 0, "updated": 1, "unchanged": 2, "deleted": 0, "skipped": 0,
                                  "failed": 0, "total": 3}
    assert writes(cluster.stats()) == 0
    [diff] = planned["diff"]
    assert diff["before_header"] == f"VirtualService {NAMESPACE}/reviews"
    assert diff["before"]["spec"]["http"][0]["timeout"] == REVIEWS["http"][0]["timeout"]
    assert diff["after"]["spec"]["http"][0]["timeout"] == "2s"
    assert live(cluster, "reviews")["spec"] == expected_spec(REVIEWS), "check mode changed it"

    applied = run_module(tmp_path, MODULE, args, "--diff")
    assert applied["summary"]["updated"] == 1
    assert live(cluster, "reviews")["spec"] == expected_spec(slower)


def test_a_change_by_hand_is_drift_and_put_back(cluster):
    cluster.kubectl("patch", RESOURCE, "ratings", "-n", NAMESPACE, "--type", "json", "-p", json.dumps(
        [{"op": "replace", "path": "/spec/http/1/route/0/destination/subset", "value": "v2"}]))
    outcome = call_module(virtual_service.main, args_for(cluster, RATINGS))
    [result] = outcome["results"]
    assert result["action"] == "updated"
    assert result["reason"] == "drift: spec.http[1].route[0].destination.subset"
    assert live(cluster, "ratings")["spec"] == expected_spec(RATINGS)


def test_a_subset_no_destination_rule_defines_fails_naming_the_route_before_any_write(cluster):
    missing_subset = copy.deepcopy(RATINGS)
    missing_subset["http"][0]["route"][0]["subset"] = "v3"
    no_rule = {"name": "details", "hosts": ["details"],
               "http": [{"route": [{"host": "details", "subset": "v1"}]}]}
    cluster.reset_stats()
    outcome = call_module(virtual_service.main, args_for(cluster, missing_subset, no_rule))
    assert outcome["failed"] is True
    message = outcome["msg"]
    assert "services[0].http[0].route[0].subset: expected a subset of the DestinationRule for " \
           f"ratings.{NAMESPACE}.svc.cluster.local" in message, message
    assert "its subsets: v1, v2), got 'v3'" in message
    assert "services[1].http[0].route[0].subset: expected a subset defined by a DestinationRule for " \
           f"details.{NAMESPACE}.svc.cluster.local (there is none" in message
    stats = cluster.stats()
    assert writes(stats) == 0
    assert stats["requests"]["by_resource"]["destinationrules"] == {"list": 1}, "one list of the rules"


def test_subsets_of_a_rule_in_the_destination_namespace_are_found(cluster):
    rule = {"name": "cart", "host": "cart", "subsets": [{"name": "v2", "labels": {"version": "v2"}}]}
    call_module(destination_rule.main, {"kubeconfig": str(cluster.kubeconfig), "namespace": "shop",
                                        "rules": [rule]})
    cart = {"name": "cart", "hosts": ["cart.shop.svc.cluster.local"],
            "http": [{"route": [{"host": "cart.shop.svc.cluster.local", "subset": "v2"}]}]}
    outcome = call_module(virtual_service.main, args_for(cluster, cart))
    assert outcome.get("failed") is not True, outcome.get("msg")
    assert outcome["summary"]["created"] == 1


def test_retry_settings_against_the_timeout_are_warned_about(cluster):
    too_long = {"name": "slow", "hosts": ["slow"], "http": [
        {"timeout": "1s", "retries": {"attempts": 3, "per_try_timeout": "500ms"},
         "route": [{"host": "slow"}]},
        {"retries": {"attempts": 2, "retry_on": ["5xx"]}, "route": [{"host": "slow"}]}]}
    outcome = call_module(virtual_service.main, args_for(cluster, too_long), check_mode=True)
    warnings = [w if isinstance(w, str) else json.dumps(w) for w in outcome["warnings"]]
    assert any("services[0].http[0].retries: attempts x per_try_timeout (3 x 500ms) exceeds the route "
               "timeout (1s)" in w for w in warnings), warnings
    assert any("services[0].http[1] retries without a timeout" in w for w in warnings), warnings
    within = copy.deepcopy(too_long)
    within["http"][0]["retries"]["per_try_timeout"] = "333ms"
    within["http"][1]["timeout"] = "3s"
    assert not call_module(virtual_service.main, args_for(cluster, within), check_mode=True).get("warnings")


def test_absent_deletes_and_a_second_run_writes_nothing(cluster):
    args = args_for(cluster, {"name": "checkout"}, {"name": "never-created"}, state="absent")
    removed = call_module(virtual_service.main, args)
    assert [(r["name"], r["action"]) for r in removed["results"]] == [
        ("checkout", "deleted"), ("never-created", "unchanged")]
    assert "checkout" not in names(cluster, NAMESPACE)
    cluster.reset_stats()
    again = call_module(virtual_service.main, args)
    assert again["changed"] is False
    assert writes(cluster.stats()) == 0


def test_a_virtual_service_not_made_by_meshtune_is_left_alone(cluster):
    cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "legacy", "namespace": NAMESPACE},
        "spec": {"hosts": ["legacy"], "http": [{"route": [{"destination": {"host": "legacy"}}]}]}}))
    legacy = {"name": "legacy", "hosts": ["legacy"],
              "http": [{"timeout": "5s", "route": [{"host": "legacy"}]}]}
    outcome = call_module(virtual_service.main, args_for(cluster, legacy))
    assert outcome["results"][0]["action"] == "skipped"
    assert "timeout" not in live(cluster, "legacy")["spec"]["http"][0]
    taken = call_module(virtual_service.main, args_for(cluster, legacy, force=True))
    assert taken["results"][0]["action"] == "updated"
    assert live(cluster, "legacy")["spec"] == expected_spec(legacy)
