"""DestinationRule builders and validators: module options in, exact Istio objects or messages out.

Options go through the module's real argument spec (Ansible's ArgumentSpecValidator) first, so the
validators see what they see in a task: every unset suboption filled in as None.
"""

from __future__ import annotations

import copy

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.meshtune.mesh.plugins.module_utils import istio
from ansible_collections.meshtune.mesh.plugins.modules import destination_rule as module

SPEC_VALIDATOR = ArgumentSpecValidator(module.argument_spec(),
                                       mutually_exclusive=module.MUTUALLY_EXCLUSIVE,
                                       required_one_of=module.REQUIRED_ONE_OF)


def params_of(args: dict) -> dict:
    """The module's params for `args`, as Ansible fills them in; fails on an argument spec error."""
    result = SPEC_VALIDATOR.validate(copy.deepcopy(args))
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def spec_errors(args: dict) -> list[str]:
    return SPEC_VALIDATOR.validate(copy.deepcopy(args)).error_messages


def objects_of(args: dict, version: str = "v1") -> list[dict]:
    params = params_of(args)
    assert module.validate(params) is None
    return [istio.destination_rule_object(version, params["namespace"], rule)
            for _path, rule, _host in module.rules_of(params)]


REVIEWS = {
    "name": "reviews",
    "host": "reviews.shop.svc.cluster.local",
    "connection_pool": {
        "tcp": {"max_connections": 100, "connect_timeout": "250ms",
                "tcp_keepalive": {"probes": 3, "time": "300s", "interval": "75s"}},
        "http": {"http1_max_pending_requests": 50, "http2_max_requests": 1000,
                 "max_requests_per_connection": 0, "max_retries": 3, "idle_timeout": "60s",
                 "h2_upgrade_policy": "UPGRADE"},
    },
    "outlier_detection": {"consecutive_5xx_errors": 5, "consecutive_gateway_errors": 0,
                          "interval": "10s", "base_ejection_time": "30s",
                          "max_ejection_percent": 50, "min_health_percent": 0},
    "load_balancer": {"simple": "LEAST_REQUEST"},
    "tls": {"mode": "ISTIO_MUTUAL", "sni": "reviews.shop", "subject_alt_names": ["spiffe://a/b"]},
    "subsets": [
        {"name": "v1", "labels": {"version": "v1", "app.kubernetes.io/name": "reviews"}},
        {"name": "v2", "labels": {"version": "v2"},
         "connection_pool": {"http": {"http2_max_requests": 10}},
         "load_balancer": {"consistent_hash": {"http_cookie": {"name": "user", "ttl": "0s"}}}},
    ],
    "export_to": [".", "frontend"],
}

REVIEWS_SPEC = {
    "host": "reviews.shop.svc.cluster.local",
    "trafficPolicy": {
        "connectionPool": {
            "tcp": {"maxConnections": 100, "connectTimeout": "250ms",
                    "tcpKeepalive": {"probes": 3, "time": "300s", "interval": "75s"}},
            "http": {"http1MaxPendingRequests": 50, "http2MaxRequests": 1000,
                     "maxRequestsPerConnection": 0, "maxRetries": 3, "idleTimeout": "60s",
                     "h2UpgradePolicy": "UPGRADE"},
        },
        "loadBalancer": {"simple": "LEAST_REQUEST"},
        "outlierDetection": {"consecutive5xxErrors": 5, "consecutiveGatewayErrors": 0,
                             "interval": "10s", "baseEjectionTime": "30s",
                             "maxEjectionPercent": 50, "minHealthPercent": 0},
        "tls": {"mode": "ISTIO_MUTUAL", "sni": "reviews.shop", "subjectAltNames": ["spiffe://a/b"]},
    },
    "subsets": [
        {"name": "v1", "labels": {"version": "v1", "app.kubernetes.io/name": "reviews"}},
        {"name": "v2", "labels": {"version": "v2"},
         "trafficPolicy": {"connectionPool": {"http": {"http2MaxRequests": 10}},
                           "loadBalancer": {"consistentHash": {
                               "httpCookie": {"name": "user", "ttl": "0s"}}}}},
    ],
    "exportTo": [".", "frontend"],
}


def test_full_rule_maps_every_option_to_istio_fields():
    [obj] = objects_of({"namespace": "shop", "rules": [REVIEWS]})
    assert obj == {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                   "metadata": {"name": "reviews", "namespace": "shop"}, "spec": REVIEWS_SPEC}


def test_unset_options_are_left_out_and_no_null_is_sent():
    [obj] = objects_of({"namespace": "shop", "rules": [
        {"name": "ratings", "host": "ratings", "outlier_detection": {},
         "connection_pool": {"http": {"max_retries": 2}}}]}, version="v1beta1")
    assert obj["apiVersion"] == "networking.istio.io/v1beta1"
    assert obj["spec"] == {"host": "ratings", "trafficPolicy": {
        "connectionPool": {"http": {"maxRetries": 2}}, "outlierDetection": {}}}

    def no_nulls(value):
        if isinstance(value, dict):
            return all(v is not None and no_nulls(v) for v in value.values())
        if isinstance(value, list):
            return all(no_nulls(v) for v in value)
        return True

    assert no_nulls(objects_of({"namespace": "shop", "rules": [REVIEWS]}))


def test_single_rule_at_top_level_is_the_same_as_one_entry_in_rules():
    top_level = {key: value for key, value in REVIEWS.items() if key != "host"}
    top_level["destination_host"] = REVIEWS["host"]
    assert objects_of({"namespace": "shop", **top_level}) == \
        objects_of({"namespace": "shop", "rules": [REVIEWS]})


def test_several_rules_keep_their_order():
    objects = objects_of({"namespace": "shop", "rules": [
        {"name": "b", "host": "b"}, {"name": "a", "host": "a", "export_to": ["*"]}]})
    assert [(o["metadata"]["name"], o["spec"]) for o in objects] == [
        ("b", {"host": "b"}), ("a", {"host": "a", "exportTo": ["*"]})]


def test_consistent_hash_keys_and_use_source_ip():
    [header, source, query] = objects_of({"namespace": "shop", "rules": [
        {"name": "h", "host": "h", "load_balancer": {"consistent_hash": {"http_header_name": "x-user"}}},
        {"name": "s", "host": "s", "load_balancer": {"consistent_hash": {"use_source_ip": True}}},
        {"name": "q", "host": "q",
         "load_balancer": {"consistent_hash": {"http_query_parameter_name": "user",
                                               "use_source_ip": False}}},
    ]})
    assert header["spec"]["trafficPolicy"]["loadBalancer"] == {
        "consistentHash": {"httpHeaderName": "x-user"}}
    assert source["spec"]["trafficPolicy"]["loadBalancer"] == {"consistentHash": {"useSourceIp": True}}
    assert query["spec"]["trafficPolicy"]["loadBalancer"] == {
        "consistentHash": {"httpQueryParameterName": "user"}}, "use_source_ip false is no key"


def test_deprecated_consecutive_errors_is_sent_as_consecutive_5xx_errors_with_a_warning():
    rule = {"name": "r", "host": "r", "outlier_detection": {"consecutive_errors": 7, "interval": "5s"},
            "subsets": [{"name": "v1", "outlier_detection": {"consecutive_errors": 2}}]}
    [obj] = objects_of({"namespace": "shop", "rules": [rule]})
    assert obj["spec"]["trafficPolicy"]["outlierDetection"] == {"consecutive5xxErrors": 7,
                                                                "interval": "5s"}
    assert obj["spec"]["subsets"][0]["trafficPolicy"]["outlierDetection"] == {"consecutive5xxErrors": 2}
    assert "consecutiveErrors" not in str(obj)
    params = params_of({"namespace": "shop", "rules": [rule]})
    [(path, parsed, _host)] = module.rules_of(params)
    warnings = istio.destination_rule_warnings(path, parsed)
    assert len(warnings) == 2
    assert warnings[0].startswith("rules[0].outlier_detection.consecutive_errors is deprecated")
    assert "consecutive5xxErrors" in warnings[0]
    assert warnings[1].startswith("rules[0].subsets[0].outlier_detection.consecutive_errors")


def test_deprecated_least_conn_is_sent_as_least_request_with_a_warning():
    params = params_of({"namespace": "shop", "name": "r", "destination_host": "r",
                        "load_balancer": {"simple": "LEAST_CONN"}})
    [(path, rule, _host)] = module.rules_of(params)
    assert istio.traffic_policy(rule) == {"loadBalancer": {"simple": "LEAST_REQUEST"}}
    assert istio.destination_rule_warnings(path, rule) == [
        "load_balancer.simple LEAST_CONN is deprecated in Istio and is sent as LEAST_REQUEST; "
        "set LEAST_REQUEST instead."]


def test_no_warning_without_deprecated_settings():
    params = params_of({"namespace": "shop", "rules": [REVIEWS]})
    assert [w for path, rule, _h in module.rules_of(params)
            for w in istio.destination_rule_warnings(path, rule)] == []


def test_absent_needs_only_names():
    params = params_of({"namespace": "shop", "state": "absent", "rules": [{"name": "a"}, {"name": "b"}]})
    assert module.validate(params) is None
    assert [istio.destination_rule_object("v1", "shop", rule)["spec"]
            for _p, rule, _h in module.rules_of(params)] == [{}, {}]


def test_durations_and_camel_case():
    assert istio._camel("consecutive_5xx_errors") == "consecutive5xxErrors"
    assert istio._camel("http1_max_pending_requests") == "http1MaxPendingRequests"
    assert istio.duration_nanoseconds("d", "1h30m") == 5400 * 10 ** 9
    assert istio.duration_nanoseconds("d", "1.5s") == 1500 * 10 ** 6
    assert istio.check_proxy_duration("d", "100ms") == "100ms"
    assert istio.check_keepalive_duration("d", "2m") == "2m"


def with_rule(**changes) -> dict:
    """Valid arguments with one rule in `rules` whose options are updated by `changes`."""
    return {"namespace": "shop", "rules": [{"name": "ok", "host": "ok"},
                                           {"name": "r", "host": "r", **changes}]}


BAD_INPUTS = [
    (with_rule(host=""), "rules[1].host"),
    (with_rule(host="bad host"), "rules[1].host"),
    ({"namespace": "shop", "name": "r"}, "destination_host"),
    ({"namespace": "shop", "name": "r", "destination_host": "r..x"}, "destination_host"),
    (with_rule(name="Bad_Name"), "rules[1].name"),
    ({"namespace": "shop", "rules": [{"name": "r", "host": "a"}, {"name": "r", "host": "b"}]},
     "rules[1].name"),
    ({"namespace": "Shop", "rules": [{"name": "r", "host": "r"}]}, "namespace"),
    ({"namespace": "shop", "rules": []}, "rules"),
    (with_rule(outlier_detection={"interval": "10 seconds"}), "rules[1].outlier_detection.interval"),
    (with_rule(outlier_detection={"interval": "\u0661\u0660s"}), "rules[1].outlier_detection.interval"),
    (with_rule(outlier_detection={"base_ejection_time": "500us"}),
     "rules[1].outlier_detection.base_ejection_time"),
    (with_rule(outlier_detection={"max_ejection_percent": 101}),
     "rules[1].outlier_detection.max_ejection_percent"),
    (with_rule(outlier_detection={"min_health_percent": -1}),
     "rules[1].outlier_detection.min_health_percent"),
    (with_rule(outlier_detection={"consecutive_5xx_errors": -1}),
     "rules[1].outlier_detection.consecutive_5xx_errors"),
    (with_rule(outlier_detection={"consecutive_gateway_errors": 2 ** 32}),
     "rules[1].outlier_detection.consecutive_gateway_errors"),
    (with_rule(outlier_detection={"consecutive_errors": 3, "consecutive_5xx_errors": 3}),
     "rules[1].outlier_detection.consecutive_errors"),
    (with_rule(connection_pool={}), "rules[1].connection_pool"),
    (with_rule(connection_pool={"tcp": {"max_connections": 0}}),
     "rules[1].connection_pool.tcp.max_connections"),
    (with_rule(connection_pool={"tcp": {"max_connections": 2 ** 31}}),
     "rules[1].connection_pool.tcp.max_connections"),
    (with_rule(connection_pool={"tcp": {"connect_timeout": "1.5ms"}}),
     "rules[1].connection_pool.tcp.connect_timeout"),
    (with_rule(connection_pool={"tcp": {"tcp_keepalive": {"time": "500ms"}}}),
     "rules[1].connection_pool.tcp.tcp_keepalive.time"),
    (with_rule(connection_pool={"tcp": {"tcp_keepalive": {"interval": "abc"}}}),
     "rules[1].connection_pool.tcp.tcp_keepalive.interval"),
    (with_rule(connection_pool={"tcp": {"tcp_keepalive": {"probes": 0}}}),
     "rules[1].connection_pool.tcp.tcp_keepalive.probes"),
    (with_rule(connection_pool={"http": {"http2_max_requests": 0}}),
     "rules[1].connection_pool.http.http2_max_requests"),
    (with_rule(connection_pool={"http": {"http1_max_pending_requests": -5}}),
     "rules[1].connection_pool.http.http1_max_pending_requests"),
    (with_rule(connection_pool={"http": {"max_retries": 0}}), "rules[1].connection_pool.http.max_retries"),
    (with_rule(connection_pool={"http": {"max_requests_per_connection": -1}}),
     "rules[1].connection_pool.http.max_requests_per_connection"),
    (with_rule(connection_pool={"http": {"idle_timeout": "0s"}}),
     "rules[1].connection_pool.http.idle_timeout"),
    (with_rule(load_balancer={"simple": "RANDOM", "consistent_hash": {"use_source_ip": True}}),
     "rules[1].load_balancer"),
    (with_rule(load_balancer={}), "rules[1].load_balancer"),
    (with_rule(load_balancer={"consistent_hash": {"http_header_name": "x", "use_source_ip": True}}),
     "rules[1].load_balancer.consistent_hash"),
    (with_rule(load_balancer={"consistent_hash": {"use_source_ip": False}}),
     "rules[1].load_balancer.consistent_hash"),
    (with_rule(load_balancer={"consistent_hash": {"http_header_name": " "}}),
     "rules[1].load_balancer.consistent_hash.http_header_name"),
    (with_rule(load_balancer={"consistent_hash": {"http_cookie": {"name": "c", "ttl": "1 hour"}}}),
     "rules[1].load_balancer.consistent_hash.http_cookie.ttl"),
    (with_rule(load_balancer={"consistent_hash": {"http_cookie": {"name": "c", "ttl": "\u0663s"}}}),
     "rules[1].load_balancer.consistent_hash.http_cookie.ttl"),
    (with_rule(tls={"mode": "MUTUAL"}), "rules[1].tls.credential_name"),
    (with_rule(tls={"mode": "ISTIO_MUTUAL", "credential_name": "s"}), "rules[1].tls.credential_name"),
    (with_rule(subsets=[{"name": "V1"}]), "rules[1].subsets[0].name"),
    (with_rule(subsets=[{"name": "v1"}, {"name": "v1"}]), "rules[1].subsets[1].name"),
    (with_rule(subsets=[{"name": "v1", "labels": {"version": 1}}]), "rules[1].subsets[0].labels.version"),
    (with_rule(subsets=[{"name": "v1", "labels": {"bad key!": "x"}}]),
     "rules[1].subsets[0].labels.bad key!"),
    (with_rule(subsets=[{"name": "v1", "outlier_detection": {"interval": "soon"}}]),
     "rules[1].subsets[0].outlier_detection.interval"),
    (with_rule(subsets=[{"name": "v1", "connection_pool": {"http": {"http2_max_requests": 0}}}]),
     "rules[1].subsets[0].connection_pool.http.http2_max_requests"),
    (with_rule(export_to=["Bad_NS"]), "rules[1].export_to[0]"),
    (with_rule(export_to=["*", "."]), "rules[1].export_to"),
    (with_rule(export_to=[".", "."]), "rules[1].export_to"),
    ({"namespace": "shop", "name": "r", "destination_host": "r", "outlier_detection": {"interval": "1"}},
     "outlier_detection.interval"),
    ({"namespace": "shop", "rules": [{"name": "r", "host": "r"}], "parallelism": 0}, "parallelism"),
    # Values that must be exactly in their form: nothing around them is trimmed.
    (with_rule(name="r\n"), "rules[1].name"),
    (with_rule(host="reviews\n"), "rules[1].host"),
    (with_rule(host=" reviews"), "rules[1].host"),
    ({"namespace": "shop\n", "rules": [{"name": "r", "host": "r"}]}, "namespace"),
    (with_rule(outlier_detection={"interval": "10s\n"}), "rules[1].outlier_detection.interval"),
    (with_rule(connection_pool={"tcp": {"connect_timeout": " 250ms"}}),
     "rules[1].connection_pool.tcp.connect_timeout"),
    (with_rule(subsets=[{"name": "v1\n"}]), "rules[1].subsets[0].name"),
    (with_rule(subsets=[{"name": "v1", "labels": {"version\n": "v1"}}]),
     "rules[1].subsets[0].labels.version\n"),
    (with_rule(subsets=[{"name": "v1", "labels": {"version": "v1\n"}}]),
     "rules[1].subsets[0].labels.version"),
    (with_rule(load_balancer={"consistent_hash": {"http_header_name": "x-user\n"}}),
     "rules[1].load_balancer.consistent_hash.http_header_name"),
    (with_rule(load_balancer={"consistent_hash": {"http_header_name": "x user"}}),
     "rules[1].load_balancer.consistent_hash.http_header_name"),
    (with_rule(load_balancer={"consistent_hash": {"http_query_parameter_name": "user "}}),
     "rules[1].load_balancer.consistent_hash.http_query_parameter_name"),
    (with_rule(load_balancer={"consistent_hash": {"http_cookie": {"name": "c\n", "ttl": "1h"}}}),
     "rules[1].load_balancer.consistent_hash.http_cookie.name"),
    (with_rule(load_balancer={"consistent_hash": {"http_cookie": {"name": "c", "ttl": "1h",
                                                                  "path": "/ x"}}}),
     "rules[1].load_balancer.consistent_hash.http_cookie.path"),
    (with_rule(tls={"mode": "SIMPLE", "sni": "api.example.com\n"}), "rules[1].tls.sni"),
    (with_rule(tls={"mode": "MUTUAL", "credential_name": "client-cert\n"}),
     "rules[1].tls.credential_name"),
    (with_rule(tls={"mode": "SIMPLE", "subject_alt_names": ["api.example.com", " "]}),
     "rules[1].tls.subject_alt_names[1]"),
    # Beyond what the API and Istio hold.
    (with_rule(connection_pool={"http": {"idle_timeout": "99999999999h"}}),
     "rules[1].connection_pool.http.idle_timeout"),
    (with_rule(connection_pool={"http": {"idle_timeout": "2562048h"}}),
     "rules[1].connection_pool.http.idle_timeout"),
    (with_rule(outlier_detection={"base_ejection_time": "315576000001s"}),
     "rules[1].outlier_detection.base_ejection_time"),
    (with_rule(load_balancer={"consistent_hash": {"http_cookie": {"name": "c", "ttl": "9999999999h"}}}),
     "rules[1].load_balancer.consistent_hash.http_cookie.ttl"),
    (with_rule(connection_pool={"http": {"http2_max_requests": 2 ** 31}}),
     "rules[1].connection_pool.http.http2_max_requests"),
    (with_rule(connection_pool={"http": {"max_requests_per_connection": 2 ** 31}}),
     "rules[1].connection_pool.http.max_requests_per_connection"),
    (with_rule(outlier_detection={"consecutive_errors": 2 ** 31}),
     "rules[1].outlier_detection.consecutive_errors"),
    (with_rule(connection_pool={"tcp": {"tcp_keepalive": {"probes": 2 ** 32}}}),
     "rules[1].connection_pool.tcp.tcp_keepalive.probes"),
    (with_rule(subsets=[{"name": "v1", "connection_pool": {"tcp": {"max_connections": 2 ** 31}}}]),
     "rules[1].subsets[0].connection_pool.tcp.max_connections"),
    (with_rule(host="a" * 64 + ".example.com"), "rules[1].host"),
    (with_rule(host="*." + "a" * 64), "rules[1].host"),
    (with_rule(host=".".join(["a" * 63] * 4)), "rules[1].host"),  # 255 characters
    (with_rule(host="a" * 62 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 63), "rules[1].host"),  # 254
    (with_rule(host="10.0.0.1"), "rules[1].host"),
    (with_rule(host="reviews.123"), "rules[1].host"),
    (with_rule(host="*reviews.shop"), "rules[1].host"),
    (with_rule(host="reviews.*"), "rules[1].host"),
    (with_rule(host="-reviews"), "rules[1].host"),
    (with_rule(subsets=[{"name": "v1", "labels": {"a" * 64: "x"}}]),
     "rules[1].subsets[0].labels." + "a" * 64),
    (with_rule(subsets=[{"name": "v1", "labels": {"version": "v" * 64}}]),
     "rules[1].subsets[0].labels.version"),
]


@pytest.mark.parametrize(("args", "option"), BAD_INPUTS, ids=[option for _args, option in BAD_INPUTS])
def test_bad_input_names_the_option(args, option):
    message = module.validate(params_of(args))
    assert message is not None, args
    assert message.startswith("Invalid options (nothing was changed): ")
    assert f"{option}: expected " in message, message


def test_every_problem_is_reported_at_once():
    message = module.validate(params_of(with_rule(
        host="", outlier_detection={"interval": "x", "max_ejection_percent": 200})))
    assert "rules[1].host" in message
    assert "rules[1].outlier_detection.interval" in message
    assert "rules[1].outlier_detection.max_ejection_percent" in message


@pytest.mark.parametrize(("args", "words"), [
    ({"namespace": "shop", "rules": [{"name": "r", "host": "r"}], "name": "x"}, ["mutually exclusive"]),
    ({"namespace": "shop", "rules": [{"name": "r", "host": "r"}], "connection_pool": {}},
     ["mutually exclusive", "connection_pool"]),
    ({"namespace": "shop"}, ["rules", "name"]),
    (with_rule(load_balancer={"simple": "FASTEST"}), ["simple", "FASTEST"]),
    (with_rule(tls={"mode": "STRICT"}), ["mode"]),
    (with_rule(tls={"sni": "x"}), ["mode"]),
    (with_rule(connection_pool={"tcp": {"max_conections": 1}}), ["max_conections"]),
    (with_rule(outlier_detection={"consecutiveErrors": 1}), ["consecutiveErrors"]),
    (with_rule(load_balancer={"consistent_hash": {"http_cookie": {"name": "c"}}}), ["ttl"]),
    (with_rule(connection_pool={"http": {"h2_upgrade_policy": "ALWAYS"}}), ["h2_upgrade_policy"]),
    (with_rule(connection_pool={"http": {"max_retries": "three"}}), ["max_retries"]),
])
def test_argument_spec_rejects_shapes_and_names_the_option(args, words):
    errors = " ".join(spec_errors(args))
    assert errors, args
    for word in words:
        assert word in errors, errors


def test_documentation_matches_the_argument_spec():
    """Every documented option is in the spec with the same type, and the other way round."""
    import yaml

    documented = yaml.safe_load(module.DOCUMENTATION)["options"]

    def compare(docs, spec, path):
        for name, value in spec.items():
            assert name in docs, f"{path}{name} is not documented"
            doc = docs[name]
            assert doc.get("type", "str") == value.get("type", "str"), f"{path}{name}"
            assert doc.get("required", False) == value.get("required", False), f"{path}{name}"
            assert doc.get("choices") == value.get("choices"), f"{path}{name}"
            assert doc.get("elements") == value.get("elements"), f"{path}{name}"
            if "options" in value:
                compare(doc["suboptions"], value["options"], f"{path}{name}.")
        assert set(docs) == set(spec), f"{path}: documented but not in the spec"

    from ansible_collections.meshtune.mesh.plugins.doc_fragments.reconcile import ModuleDocFragment

    # Options the shared doc fragments document (meshtune.mesh.reconcile and .owned).
    shared = {name for fragment in (ModuleDocFragment.DOCUMENTATION, ModuleDocFragment.OWNED)
              for name in yaml.safe_load(fragment)["options"]}
    auth = set(module.auth_argument_spec()) | shared
    spec = {k: v for k, v in module.argument_spec().items() if k not in auth}
    compare(documented, spec, "")


@pytest.mark.parametrize("host", [
    "reviews", "reviews.shop.svc.cluster.local", "*.example.com", "*", "Reviews.Shop", "123",
    "a" * 63 + ".example.com", ".".join(["a" * 63] * 3) + "." + "b" * 61,  # 253 characters
])
def test_hosts_istiod_accepts_pass(host):
    assert istio.check_destination_host("host", host) == host


@pytest.mark.parametrize("value", [
    "10s", "100ms", "1h30m", "2562047h47m16.854s",
])
def test_durations_up_to_the_limit_pass(value):
    assert istio.check_proxy_duration("d", value) == value
