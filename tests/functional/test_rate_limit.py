"""meshtune.mesh.rate_limit against the test API server."""

from __future__ import annotations

import copy
import json
from unittest import mock

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils import rate_limit as rate_limit_utils
from ansible_collections.meshtune.mesh.plugins.modules import rate_limit
from tests.support.ansible_runner import run_module
from tests.support.module_harness import call_module

MODULE = "meshtune.mesh.rate_limit"
NAMESPACE = "shop"
RESOURCE = "envoyfilters.networking.istio.io"
UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600}

REVIEWS = {"name": "reviews-rate-limit", "workload_selector": {"app": "reviews"},
           "requests_per_unit": 100, "unit": "second", "burst": 250,
           "routes": [{"path_prefix": "/api/search", "requests_per_unit": 10, "unit": "minute"},
                      {"path_prefix": "/static", "max_tokens": 40, "tokens_per_fill": 20,
                       "fill_interval": "2s"}]}
RATINGS = {"name": "ratings-rate-limit", "workload_selector": {"app": "ratings"},
           "max_tokens": 50, "tokens_per_fill": 25, "fill_interval": "500ms", "enforce_percent": 0,
           "status_code": 503, "response_header": {"name": "x-shadow-limited", "value": "would be"}}


@pytest.fixture(scope="module")
def cluster(kubeapi):
    for namespace in (NAMESPACE, "drift", "istio-system"):
        kubeapi.kubectl("create", "namespace", namespace)
    return kubeapi


def writes(stats: dict) -> int:
    verbs = stats["requests"]["by_verb"]
    return sum(verbs.get(v, 0) for v in ("create", "update", "patch", "delete"))


def envoy_filter(cluster, name: str, namespace: str = NAMESPACE) -> dict:
    return json.loads(cluster.kubectl("get", RESOURCE, name, "-n", namespace, "-o", "json").stdout)


def expected_bucket(options: dict) -> dict:
    """Envoy's TokenBucket for the options, worked out here from Envoy's documented meaning."""
    if "requests_per_unit" in options:
        rate = options["requests_per_unit"]
        return {"max_tokens": options.get("burst", rate), "tokens_per_fill": rate,
                "fill_interval": f"{UNIT_SECONDS[options.get('unit', 'second')]}s"}
    seconds = {"500ms": "0.5s", "2s": "2s", "1s": "1s"}[options["fill_interval"]]
    bucket = {"max_tokens": options["max_tokens"], "fill_interval": seconds}
    if "tokens_per_fill" in options:
        bucket["tokens_per_fill"] = options["tokens_per_fill"]
    return bucket


def filter_config(live: dict) -> dict:
    [patch] = live["spec"]["configPatches"]
    return patch["patch"]["value"]["typed_config"]


def test_create_writes_what_istio_documents_and_is_idempotent(cluster, tmp_path):
    args = {"kubeconfig": str(cluster.kubeconfig), "namespace": NAMESPACE, "limits": [REVIEWS, RATINGS]}
    first = run_module(tmp_path, MODULE, args)
    assert first.get("failed") is not True, first
    assert first["changed"] is True and first["summary"]["created"] == 2
    assert first["api_version"] == "networking.istio.io/v1alpha3"

    reviews = envoy_filter(cluster, REVIEWS["name"])
    assert reviews["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "meshtune"
    assert reviews["spec"]["workloadSelector"] == {"labels": REVIEWS["workload_selector"]}
    [patch] = reviews["spec"]["configPatches"]
    assert patch["applyTo"] == "HTTP_FILTER"
    assert patch["match"] == {"context": "SIDECAR_INBOUND", "listener": {"filterChain": {
        "filter": {"name": "envoy.filters.network.http_connection_manager"}}}}
    assert patch["patch"]["operation"] == "INSERT_BEFORE"
    assert patch["patch"]["value"]["name"] == "envoy.filters.http.local_ratelimit"
    config = filter_config(reviews)
    assert config["@type"] == ("type.googleapis.com/"
                               "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit")
    assert config["stat_prefix"] == "http_local_rate_limiter"
    assert config["token_bucket"] == expected_bucket(REVIEWS)
    assert config["filter_enforced"]["default_value"] == {"numerator": 100, "denominator": "HUNDRED"}
    assert "status" not in config, "429 is Envoy's own default"
    assert config["response_headers_to_add"][0]["header"] == {"key": "x-local-rate-limit", "value": "true"}
    assert [d["entries"] for d in config["descriptors"]] == [
        [{"key": "path_prefix", "value": route["path_prefix"]}] for route in REVIEWS["routes"]]
    assert [d["token_bucket"] for d in config["descriptors"]] == [
        expected_bucket(route) for route in REVIEWS["routes"]]
    matches = [limit["actions"][0]["header_value_match"] for limit in config["rate_limits"]]
    assert [(m["descriptor_value"], m["headers"][0]["string_match"]["prefix"]) for m in matches] == [
        (route["path_prefix"], route["path_prefix"]) for route in REVIEWS["routes"]]
    assert config["always_consume_default_token_bucket"] is False

    ratings = filter_config(envoy_filter(cluster, RATINGS["name"]))
    assert ratings["token_bucket"] == expected_bucket(RATINGS)
    assert ratings["filter_enforced"]["default_value"]["numerator"] == 0, "shadow mode"
    assert ratings["filter_enabled"]["default_value"]["numerator"] == 100, "still counted"
    assert ratings["status"] == {"code": "ServiceUnavailable"}
    header = {"key": RATINGS["response_header"]["name"], "value": RATINGS["response_header"]["value"]}
    assert ratings["request_headers_to_add_when_not_enforced"][0]["header"] == header
    assert "descriptors" not in ratings

    cluster.reset_stats()
    second = run_module(tmp_path, MODULE, args)
    assert second["changed"] is False
    assert second["summary"]["unchanged"] == 2
    assert writes(cluster.stats()) == 0


def test_check_mode_and_diff_write_nothing_then_apply(cluster):
    changed = {**REVIEWS, "requests_per_unit": 200, "burst": 400, "routes": REVIEWS["routes"][:1]}
    args = {"kubeconfig": str(cluster.kubeconfig), "namespace": NAMESPACE, "limits": [changed]}
    before = envoy_filter(cluster, REVIEWS["name"])
    cluster.reset_stats()
    planned = call_module(rate_limit.main, args, check_mode=True, diff=True)
    assert planned["changed"] is True and planned["summary"]["updated"] == 1
    assert writes(cluster.stats()) == 0
    [diff] = planned["diff"]
    after_config = diff["after"]["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]
    assert after_config["token_bucket"] == expected_bucket(changed)
    assert len(after_config["descriptors"]) == 1
    assert diff["before"]["spec"] == before["spec"]
    assert envoy_filter(cluster, REVIEWS["name"])["spec"] == before["spec"]

    applied = call_module(rate_limit.main, args)
    assert applied["summary"]["updated"] == 1
    assert filter_config(envoy_filter(cluster, REVIEWS["name"]))["token_bucket"] == expected_bucket(changed)


def test_single_limit_at_top_level_on_a_gateway(cluster):
    args = {"kubeconfig": str(cluster.kubeconfig), "namespace": "istio-system",
            "name": "ingress-rate-limit", "proxy_context": "gateway",
            "workload_selector": {"istio": "ingressgateway"}, "requests_per_unit": 1000}
    outcome = call_module(rate_limit.main, args)
    assert outcome.get("failed") is not True, outcome
    live = envoy_filter(cluster, "ingress-rate-limit", "istio-system")
    assert live["spec"]["configPatches"][0]["match"]["context"] == "GATEWAY"
    assert filter_config(live)["token_bucket"] == expected_bucket({"requests_per_unit": 1000})
    assert call_module(rate_limit.main, args)["changed"] is False


def test_absent_deletes(cluster):
    args = {"kubeconfig": str(cluster.kubeconfig), "namespace": NAMESPACE, "state": "absent",
            "limits": [{"name": RATINGS["name"]}]}
    removed = call_module(rate_limit.main, args)
    assert removed["summary"]["deleted"] == 1
    names = cluster.kubectl("get", RESOURCE, "-n", NAMESPACE, "-o", "name").stdout.split()
    assert names == [f"envoyfilter.networking.istio.io/{REVIEWS['name']}"]
    again = call_module(rate_limit.main, args)
    assert again["changed"] is False and again["results"][0]["reason"] == "already absent"


def test_a_filter_changed_by_hand_is_put_back_and_one_made_by_hand_left_alone(cluster):
    args = {"kubeconfig": str(cluster.kubeconfig), "namespace": "drift", "name": "web-limit",
            "workload_selector": {"app": "web"}, "requests_per_unit": 5}
    assert call_module(rate_limit.main, args)["summary"]["created"] == 1
    cluster.kubectl("patch", RESOURCE, "web-limit", "-n", "drift", "--type", "merge",
                    "-p", json.dumps({"spec": {"workloadSelector": {"labels": {"app": "other"}}}}))
    [entry] = call_module(rate_limit.main, args)["results"]
    assert (entry["action"], entry["reason"]) == ("updated", "drift: spec.workloadSelector.labels.app")
    assert envoy_filter(cluster, "web-limit", "drift")["spec"]["workloadSelector"] == {
        "labels": {"app": "web"}}

    cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
        "metadata": {"name": "by-hand", "namespace": "drift"}, "spec": {"configPatches": []}}))
    cluster.reset_stats()
    left = call_module(rate_limit.main, {**args, "name": "by-hand"})
    assert left["results"][0]["action"] == "skipped"
    assert "not managed by meshtune" in left["results"][0]["reason"]
    assert writes(cluster.stats()) == 0


def test_the_test_server_judges_envoy_filters_by_istios_schema(cluster):
    """The writes above passed the server's EnvoyFilter schema; the same object with a field
    Istio does not know is refused, so the schema was applied."""
    written = call_module(rate_limit.main, {"kubeconfig": str(cluster.kubeconfig), "namespace": "drift",
                                            "limits": [{**REVIEWS, "name": "schema-written"}]})
    assert written["summary"]["total"] == 1 and written["summary"]["failed"] == 0, written
    live = envoy_filter(cluster, "schema-written", "drift")
    bad = {"apiVersion": live["apiVersion"], "kind": "EnvoyFilter",
           "metadata": {"name": "schema-check", "namespace": NAMESPACE},
           "spec": copy.deepcopy(live["spec"])}
    bad["spec"]["configPatches"][0]["match"]["listner"] = bad["spec"]["configPatches"][0]["match"].pop(
        "listener")
    refused = cluster.kubectl("create", "-f", "-", input=json.dumps(bad), check=False)
    assert refused.returncode != 0 and "listner" in refused.stderr


# --- the generated Envoy config is checked against the Envoy API before any request ------------


def _misspelt(limit):
    config = ORIGINAL_LOCAL_RATE_LIMIT(limit)
    config["token_bucket"]["fill_intervall"] = config["token_bucket"].pop("fill_interval")
    return config


def _mistyped(limit):
    config = ORIGINAL_LOCAL_RATE_LIMIT(limit)
    config["token_bucket"]["max_tokens"] = str(config["token_bucket"]["max_tokens"])
    return config


def _bad_enum(limit):
    config = ORIGINAL_LOCAL_RATE_LIMIT(limit)
    config["filter_enforced"]["default_value"]["denominator"] = "PERCENT"
    return config


def _nested_misspelt(limit):
    config = ORIGINAL_LOCAL_RATE_LIMIT(limit)
    config["rate_limits"][0]["actions"][0]["header_value_match"]["header"] = \
        config["rate_limits"][0]["actions"][0]["header_value_match"].pop("headers")
    return config


ORIGINAL_LOCAL_RATE_LIMIT = rate_limit_utils.local_rate_limit


@pytest.mark.parametrize(("builder", "field", "expected"), [
    (_misspelt, "typed_config.token_bucket.fill_intervall", "a field of envoy.type.v3.TokenBucket"),
    (_mistyped, "typed_config.token_bucket.max_tokens", "an integer 0 to 4294967295 (uint32)"),
    (_bad_enum, "typed_config.filter_enforced.default_value.denominator", "one of HUNDRED"),
    (_nested_misspelt, "typed_config.rate_limits[0].actions[0].header_value_match.header",
     "a field of envoy.config.route.v3.RateLimit.Action.HeaderValueMatch"),
])
def test_an_envoy_field_that_does_not_fit_the_envoy_api_fails_naming_it_with_no_request(
        cluster, builder, field, expected):
    args = {"kubeconfig": str(cluster.kubeconfig), "namespace": NAMESPACE, "limits": [REVIEWS]}
    cluster.reset_stats()
    with mock.patch.object(rate_limit_utils, "local_rate_limit", builder):
        outcome = call_module(rate_limit.main, args)
    assert outcome["failed"] is True
    assert f"EnvoyFilter {REVIEWS['name']} HttpFilter.{field}: expected {expected}" in outcome["msg"], \
        outcome["msg"]
    assert "Traceback" not in outcome["msg"]
    assert cluster.stats()["requests"]["total"] == 0


def test_without_the_envoy_api_package_the_task_says_what_to_install(cluster):
    cluster.reset_stats()
    with mock.patch.object(rate_limit, "ENVOY_API_IMPORT_ERROR", ImportError("No module named envoy")):
        outcome = call_module(rate_limit.main, {"kubeconfig": str(cluster.kubeconfig),
                                                "namespace": NAMESPACE, "limits": [REVIEWS]})
    assert outcome["failed"] is True and "envoy-data-plane" in outcome["msg"]
    assert cluster.stats()["requests"]["total"] == 0


@pytest.mark.parametrize(("override", "option"), [
    ({"requests_per_unit": 0}, "limits[0].requests_per_unit"),
    ({"burst": 50}, "limits[0].burst"),
    ({"max_tokens": 10}, "limits[0].max_tokens"),
    ({"requests_per_unit": None, "unit": None, "burst": None, "routes": None}, "limits[0].requests_per_unit"),
    ({"status_code": 200}, "limits[0].status_code"),
    ({"status_code": 430}, "limits[0].status_code"),
    ({"enforce_percent": 101}, "limits[0].enforce_percent"),
    ({"response_header": {"name": "x limited", "value": "1"}}, "limits[0].response_header.name"),
    ({"response_header": {"name": "x-limited", "value": "a\nb"}}, "limits[0].response_header.value"),
    ({"workload_selector": {"app": "a b"}}, "limits[0].workload_selector.app"),
    ({"routes": [{"path_prefix": "api", "requests_per_unit": 1}]}, "limits[0].routes[0].path_prefix"),
    ({"routes": [{"path_prefix": "/a", "requests_per_unit": 1},
                 {"path_prefix": "/a", "requests_per_unit": 2}]}, "limits[0].routes[1].path_prefix"),
    ({"unit": "minute", "routes": [{"path_prefix": "/a", "requests_per_unit": 1}]},
     "limits[0].routes[0].fill_interval"),
    ({"routes": [{"path_prefix": "/a", "max_tokens": 1, "fill_interval": "10ms"}]},
     "limits[0].routes[0].fill_interval"),
    ({"routes": [{"path_prefix": "/a", "max_tokens": 1}]}, "limits[0].routes[0].fill_interval"),
])
def test_bad_options_fail_naming_the_option_with_no_request(cluster, override, option):
    limit = {key: value for key, value in {**REVIEWS, **override}.items() if value is not None}
    cluster.reset_stats()
    outcome = call_module(rate_limit.main, {"kubeconfig": str(cluster.kubeconfig), "namespace": NAMESPACE,
                                            "limits": [limit]})
    assert outcome["failed"] is True, outcome
    assert f"{option}: expected" in outcome["msg"], outcome["msg"]
    assert cluster.stats()["requests"]["total"] == 0


def test_a_missing_namespace_fails_before_any_write(cluster):
    cluster.reset_stats()
    outcome = call_module(rate_limit.main, {"kubeconfig": str(cluster.kubeconfig), "namespace": "nowhere",
                                            "limits": [REVIEWS]})
    assert outcome["failed"] is True
    assert "Namespaces not found (nothing was changed): nowhere" in outcome["msg"]
    assert writes(cluster.stats()) == 0


def test_a_cluster_without_the_envoy_filter_api_is_told_apart(kubeapi_factory):
    server = kubeapi_factory("--disable", "networking.istio.io/v1alpha3")
    outcome = call_module(rate_limit.main, {"kubeconfig": str(server.kubeconfig), "namespace": "default",
                                            "limits": [REVIEWS]})
    assert outcome["failed"] is True
    assert outcome["msg"].startswith("The cluster serves no networking.istio.io EnvoyFilter API"), \
        outcome["msg"]
