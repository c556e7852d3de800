"""Property: any bad option fails the task, names the option, and sends nothing to the cluster.

For each module, hypothesis draws one option from a table of options with strategies of bad
values, puts a bad value into otherwise valid arguments, and runs the module in-process against
the test API server. At least 500 bad inputs per module.
"""

from __future__ import annotations

import copy
import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.module_harness import call_module

EXAMPLES = 500

# Strings that are not DNS-1123 labels: upper case, underscores, leading/trailing dash, too long.
bad_labels = st.one_of(
    st.text(alphabet=string.ascii_uppercase + "_ .", min_size=1, max_size=20),
    st.from_regex(r"\A-[a-z0-9]{1,10}\Z"),
    st.from_regex(r"\A[a-z0-9]{1,10}-\Z"),
    st.text(alphabet=string.ascii_lowercase, min_size=64, max_size=80),
)
bad_subdomains = st.one_of(
    st.text(alphabet=string.ascii_uppercase + "_ ", min_size=1, max_size=20),
    st.from_regex(r"\A[a-z]{1,5}\.\.[a-z]{1,5}\Z"),
    st.just(""),
)
not_positive = st.integers(max_value=0)


durations_in_words = st.one_of(
    st.integers(min_value=1, max_value=999).map(lambda n: f"{n} seconds"),
    st.integers(min_value=1, max_value=999).map(lambda n: f"{n}sec"),
    st.text(alphabet=string.ascii_letters, min_size=1, max_size=8),
)


def not_in(allowed):
    """Any short text that is not one of the allowed enum values."""
    return st.text(min_size=1, max_size=16).filter(lambda v: v not in allowed)


def at(path: str):
    """A setter that puts a value at a dotted path like `rules.0.outlier_detection.interval`."""
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]

    def put(args: dict, value) -> dict:
        node = args
        for key in keys[:-1]:
            node = node[key] if isinstance(key, int) else node.setdefault(key, {})
        node[keys[-1]] = value
        return args

    return put


def sidecar_scope_cases():
    from ansible_collections.meshtune.mesh.plugins.modules import sidecar_scope

    valid = {"namespaces": ["shop"], "egress_hosts": ["./*"]}
    cases = {
        "namespaces": (st.one_of(bad_labels.map(lambda v: [v]),
                                 st.from_regex(r"\A[a-z]{1,8}\Z").map(lambda v: [v, v]),
                                 st.just([])), at("namespaces")),
        "egress_hosts": (st.one_of(
            st.text(alphabet=string.ascii_lowercase + ".*", min_size=1, max_size=20).map(
                lambda v: [v]),
            bad_labels.map(lambda v: [f"{v}/*"]), st.just([])), at("egress_hosts")),
        "outbound_traffic_policy": (not_in(("ALLOW_ANY", "REGISTRY_ONLY")),
                                    at("outbound_traffic_policy")),
        "name": (bad_subdomains, at("name")),
        "parallelism": (not_positive, at("parallelism")),
        "workload_selector": (st.integers().map(lambda v: {"app": v}), at("workload_selector")),
    }
    return sidecar_scope.main, valid, cases


def destination_rule_cases():
    from ansible_collections.meshtune.mesh.plugins.modules import destination_rule

    valid = {"namespace": "shop", "rules": [{"name": "reviews", "host": "reviews"}]}
    rule = "rules[0]"
    cases = {
        "namespace": (bad_labels, at("namespace")),
        f"{rule}.name": (bad_subdomains.filter(bool), at("rules.0.name")),
        f"{rule}.host": (st.just(""), at("rules.0.host")),
        f"{rule}.outlier_detection.interval": (durations_in_words,
                                               at("rules.0.outlier_detection.interval")),
        f"{rule}.outlier_detection.base_ejection_time": (
            durations_in_words, at("rules.0.outlier_detection.base_ejection_time")),
        f"{rule}.outlier_detection.max_ejection_percent": (
            st.one_of(st.integers(max_value=-1), st.integers(min_value=101)),
            at("rules.0.outlier_detection.max_ejection_percent")),
        f"{rule}.outlier_detection.min_health_percent": (
            st.one_of(st.integers(max_value=-1), st.integers(min_value=101)),
            at("rules.0.outlier_detection.min_health_percent")),
        f"{rule}.connection_pool.tcp.connect_timeout": (
            durations_in_words, at("rules.0.connection_pool.tcp.connect_timeout")),
        f"{rule}.connection_pool.tcp.max_connections": (
            not_positive, at("rules.0.connection_pool.tcp.max_connections")),
        "h2_upgrade_policy": (not_in(("DEFAULT", "DO_NOT_UPGRADE", "UPGRADE")),
                              at("rules.0.connection_pool.http.h2_upgrade_policy")),
        "simple": (not_in(("UNSPECIFIED", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN",
                           "LEAST_REQUEST", "LEAST_CONN")), at("rules.0.load_balancer.simple")),
        f"{rule}.load_balancer": (st.sampled_from(["x-user", "x-session"]).map(
            lambda header: {"simple": "RANDOM", "consistent_hash": {"http_header_name": header}}),
            at("rules.0.load_balancer")),
        "mode": (not_in(("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL")), at("rules.0.tls.mode")),
        "rules": (st.from_regex(r"\A[a-z]{1,8}\Z").map(
            lambda name: [{"name": name, "host": "a"}, {"name": name, "host": "b"}]), at("rules")),
    }
    return destination_rule.main, valid, cases


def hpa_policy_cases():
    from ansible_collections.meshtune.mesh.plugins.modules import hpa_policy

    valid = {"namespace": "shop", "policies": [
        {"target": {"name": "web"}, "min_replicas": 2, "max_replicas": 5, "cpu_utilization": 70,
         "scale_down": {"policies": [{"type": "Percent", "value": 50, "period_seconds": 60}]}}]}
    policy = "policies[0]"
    scale_down = f"{policy}.scale_down"
    cases = {
        "namespace": (bad_labels, at("namespace")),
        f"{policy}.min_replicas": (not_positive, at("policies.0.min_replicas")),
        f"{policy}.max_replicas": (st.integers(min_value=-5, max_value=1),
                                   at("policies.0.max_replicas")),
        f"{policy}.cpu_utilization": (not_positive, at("policies.0.cpu_utilization")),
        f"{policy}.memory_utilization": (not_positive, at("policies.0.memory_utilization")),
        f"{scale_down}.stabilization_window_seconds": (
            st.one_of(st.integers(max_value=-1), st.integers(min_value=3601)),
            at("policies.0.scale_down.stabilization_window_seconds")),
        f"{scale_down}.policies[0].period_seconds": (
            st.one_of(st.integers(max_value=0), st.integers(min_value=1801)),
            at("policies.0.scale_down.policies.0.period_seconds")),
        f"{scale_down}.policies[0].value": (not_positive, at("policies.0.scale_down.policies.0.value")),
        "select_policy": (not_in(("Max", "Min", "Disabled")),
                          at("policies.0.scale_down.select_policy")),
        "type": (not_in(("Pods", "Percent")), at("policies.0.scale_down.policies.0.type")),
        f"{policy}.target.name": (bad_subdomains.filter(bool), at("policies.0.target.name")),
    }
    return hpa_policy.main, valid, cases


def sidecar_resources_cases():
    from ansible_collections.meshtune.mesh.plugins.modules import sidecar_resources

    valid = {"namespaces": ["shop"], "cpu_request": "100m", "cpu_limit": "1", "concurrency": 2}
    malformed = st.one_of(st.text(alphabet=string.ascii_letters + " ", min_size=1, max_size=8),
                          st.from_regex(r"\A[0-9]{1,3}[xyzq]{1,2}\Z"))
    cases = {
        "namespaces": (st.one_of(bad_labels.map(lambda v: [v]), st.just([])), at("namespaces")),
        "cpu_request": (malformed, at("cpu_request")),
        "memory_request": (malformed, at("memory_request")),
        "memory_limit": (malformed, at("memory_limit")),
        "cpu_limit": (st.sampled_from(["1m", "10m", "50m", "99m", "0.05"]), at("cpu_limit")),
        "concurrency": (st.one_of(st.integers(max_value=-1), st.integers(min_value=65)),
                        at("concurrency")),
        "kinds": (not_in(("Deployment", "StatefulSet", "DaemonSet")).map(lambda v: [v]),
                  at("kinds")),
        "names": (bad_subdomains.filter(bool).map(lambda v: [v]), at("names")),
        "parallelism": (not_positive, at("parallelism")),
        "wait_timeout": (not_positive, at("wait_timeout")),
    }
    return sidecar_resources.main, valid, cases


MODULES = {"sidecar_resources": sidecar_resources_cases, "sidecar_scope": sidecar_scope_cases,
           "destination_rule": destination_rule_cases, "hpa_policy": hpa_policy_cases}


def assert_each_bad_input_fails_before_any_request(kubeapi, main, cases, examples,
                                                   names_it=lambda message, option: option in message,
                                                   at_least=0):
    """Draw `examples` (option, bad value) pairs from `cases` (option -> (strategy, the module
    arguments for a value)); each call must fail naming the option, without a traceback, and no
    request may reach the API server. Every option must be drawn."""
    options = sorted(cases)
    kubeapi.reset_stats()
    drawn = []

    @settings(max_examples=examples, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(data=st.data())
    def check(data):
        option = data.draw(st.sampled_from(options), label="option")
        strategy, arguments = cases[option]
        value = data.draw(strategy, label=option)
        drawn.append(option)
        result = call_module(main, {**arguments(value), "kubeconfig": str(kubeapi.kubeconfig)})
        assert result.get("failed") is True, (option, value, result)
        assert names_it(result["msg"], option), (option, value, result["msg"])
        assert "Traceback" not in result["msg"]

    check()
    assert len(drawn) >= at_least
    assert set(drawn) == set(options), "every option was exercised"
    assert kubeapi.stats()["requests"]["total"] == 0, "bad input must not reach the cluster"


def example_cases(valid, cases):
    """`cases` of (strategy, put(args, value)) as assert_each_bad_input_fails_before_any_request
    takes them: each value put into a fresh copy of the valid arguments."""
    return {option: (strategy, lambda value, put=put: put(copy.deepcopy(valid), value))
            for option, (strategy, put) in cases.items()}


@pytest.mark.parametrize("module_name", sorted(MODULES))
def test_bad_inputs_fail_naming_the_option_with_no_request(kubeapi, module_name):
    main, valid, cases = MODULES[module_name]()
    assert_each_bad_input_fails_before_any_request(kubeapi, main, example_cases(valid, cases),
                                                   EXAMPLES, at_least=EXAMPLES)


# ------------------------------------------------------------------------ classes of bad input
#
# The cases above are examples. The ones below are derived from classes of bad input and from the
# modules' argument specs, so that an option added later is covered without being listed:
#   - every integer option sent to the API (all but the local LOCAL_INTS) gets integers beyond
#     int32, the type of every integer field meshtune writes (uint32 for UINT32_INTS);
#   - every free-form string option (no `choices`), list element and label dict is classified in
#     STRING_KINDS (the test fails for one that is not), and gets the bad values of its kind: a
#     valid value with whitespace or a line break around it (never trimmed, so refused), and the
#     kind's own out-of-range forms (DNS labels of 64 characters, names of 254, durations beyond
#     Go's, quantities beyond the API server's cap, malformed selectors and host forms).

INT32_MIN, INT32_MAX = -2 ** 31, 2 ** 31 - 1
# Integer options that never reach the API: the thread count and a local timeout.
LOCAL_INTS = {"parallelism", "wait_timeout"}
SPACES = [" ", "\t", "\n", "\r\n", "\r", "\v", "\f", "\u00a0", "\u2003", "\u3000"]
beyond_int32 = st.one_of(st.sampled_from([INT32_MAX + 1, INT32_MIN - 1, 2 ** 63, -(2 ** 63)]),
                         st.integers(min_value=INT32_MAX + 1), st.integers(max_value=INT32_MIN - 1))
# Istio's uint32 fields (TCP keepalive probes, the 5xx and gateway error counts).
UINT32_INTS = {"probes", "consecutive_5xx_errors", "consecutive_gateway_errors"}
beyond_uint32 = st.one_of(st.sampled_from([2 ** 32, -1, 2 ** 63]), st.integers(min_value=2 ** 32),
                          st.integers(max_value=-1))


def wrapped(valid):
    """A valid value with white space or a line break before it, after it, or both."""
    space = st.sampled_from(SPACES)
    return st.one_of(st.builds(lambda s, v: s + v, space, valid),
                     st.builds(lambda v, s: v + s, valid, space),
                     st.builds(lambda s, v, t: s + v + t, space, valid, space))


def dotted(length):
    """A DNS name of exactly `length` characters: labels of 63 joined by dots."""
    labels, left = [], length
    while left > 0:
        size = min(63, left)
        labels.append("a" * size)
        left -= size + 1
    name = ".".join(labels)
    return name[:length - 1] + "b" if len(name) >= length else name + "c" * (length - len(name))


dns_labels = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z")
long_labels = st.integers(min_value=64, max_value=90).map(lambda n: "k" * n)  # 64 is one too many
long_names = st.integers(min_value=254, max_value=300).map(dotted)  # 254 is one too many
subdomains = st.lists(dns_labels, min_size=1, max_size=3).map(".".join)
max_duration_ns = 2 ** 63 - 1
BAD_BY_KIND = {
    "label": st.one_of(wrapped(dns_labels), long_labels),
    "subdomain": st.one_of(wrapped(subdomains), long_names),
    "quantity": st.one_of(
        wrapped(st.sampled_from(["100m", "128Mi", "1", "0.5", "2Gi"])),
        st.integers(min_value=2 ** 63, max_value=2 ** 80).map(str),
        st.sampled_from(["8Ei", "10E", "1e19", "9223372036854775808", "1\u0661", "\uff11"])),
    "duration": st.one_of(
        wrapped(st.sampled_from(["10s", "1h30m", "250ms", "5m"])),
        st.integers(min_value=max_duration_ns + 1, max_value=10 ** 30).map(lambda n: f"{n}ns"),
        st.integers(min_value=2562048, max_value=10 ** 12).map(lambda n: f"{n}h"),
        st.just("99999999999h")),
    "host": st.one_of(
        wrapped(st.sampled_from(["reviews", "reviews.shop.svc.cluster.local", "*.example.com"])),
        long_labels.map(lambda label: f"{label}.example.com"),
        st.integers(min_value=254, max_value=300).map(dotted),
        st.sampled_from(["10.0.0.1", "reviews.123", "*reviews.shop", "reviews.*", "a..b", "-a.b"])),
    "egress": st.one_of(
        wrapped(st.sampled_from(["./*", "istio-system/*", "*/api.example.com", "~/*"])),
        st.builds(lambda ns, host: f"{ns}/{host}", st.sampled_from([".", "*", "~", "shop"]),
                  st.one_of(long_labels.map(lambda label: f"{label}.example.com"),
                            st.integers(min_value=254, max_value=300).map(dotted),
                            dns_labels,  # a short name, not an FQDN
                            st.sampled_from(["*foo.example.com", "foo.*", "10.0.0.1", ""]))),
        st.one_of(long_labels, st.sampled_from(["Shop", "sh op", "", "~~"])).map(lambda ns: f"{ns}/*"),
        st.sampled_from(["no-slash", "*"])),
    "token": st.one_of(wrapped(st.sampled_from(["x-user", "session"])),
                       st.text(alphabet='()<>@,;:\\"/[]?={} \t\u00e9', min_size=1, max_size=3).map(
                           lambda inner: f"x{inner}y")),
    "text": st.one_of(wrapped(st.sampled_from(["api.example.com", "spiffe://a/b", "/"])),
                      st.sampled_from([" ", "\x00", "\u00a0", "\t"]).map(lambda c: f"api{c}example")),
    "kind": wrapped(st.sampled_from(["Deployment", "StatefulSet"])),
    "api_version": wrapped(st.sampled_from(["apps/v1", "argoproj.io/v1alpha1"])),
}
label_keys_bad = st.one_of(
    wrapped(st.sampled_from(["app", "example.com/tier"])), long_labels,
    st.integers(min_value=254, max_value=300).map(lambda n: dotted(n) + "/app"),
    st.sampled_from(["a b", "Example.com/app", "-app", "app-", "/app", "example.com/", "a/b/c"]))
label_values_bad = st.one_of(wrapped(st.sampled_from(["web", "v1"])), long_labels,
                             st.sampled_from(["-web", "web-", "a b", "a/b"]), st.integers())
BAD_BY_KIND["labels"] = st.one_of(label_keys_bad.map(lambda key: {key: "web"}),
                                  label_values_bad.map(lambda value: {"app": value}))
_requirement_ok = st.sampled_from(["app=web", "tier in (a,b)", "!legacy", "env!=prod", "count>3", "app"])
_requirement_bad = st.one_of(
    label_keys_bad.filter(lambda key: key.strip(" \t\r\n") == key).map(lambda key: f"{key}=web"),
    label_values_bad.filter(lambda v: isinstance(v, str) and v.strip(" \t\r\n") == v).map(
        lambda value: f"app={value}"),
    st.sampled_from(["app=web\u00a0", "app\u2003in (a)", "", "app in (a", "app in a,b)",
                     "app~=web", "count>x", "count>-1", "count>99999999999999999999", "=web",
                     "app in (a,b c)"]))
BAD_BY_KIND["selector"] = st.builds(
    lambda before, bad, after: ",".join([*before, bad, *after]),
    st.lists(_requirement_ok, max_size=2), _requirement_bad, st.lists(_requirement_ok, max_size=2),
).filter(bool)  # an empty selector selects everything

# Every free-form string option of the modules, by kind (generic paths: `[]` is a list element).
STRING_KINDS = {
    "sidecar_resources": {
        "namespaces[]": "label", "names[]": "subdomain", "label_selector": "selector",
        "cpu_request": "quantity", "cpu_limit": "quantity", "memory_request": "quantity",
        "memory_limit": "quantity"},
    "sidecar_scope": {"namespaces[]": "label", "name": "subdomain", "egress_hosts[]": "egress",
                      "workload_selector": "labels"},
    "hpa_policy": {"namespace": "label", "policies[].name": "subdomain",
                   "policies[].target.name": "subdomain", "policies[].target.kind": "kind",
                   "policies[].target.api_version": "api_version"},
    "destination_rule": {"namespace": "label", "name": "subdomain", "destination_host": "host",
                         "rules[].name": "subdomain", "rules[].host": "host",
                         "subsets[].name": "label", "subsets[].labels": "labels", "export_to[]": "label",
                         "connect_timeout": "duration", "time": "duration", "interval": "duration",
                         "idle_timeout": "duration", "base_ejection_time": "duration", "ttl": "duration",
                         "http_header_name": "token", "http_cookie.name": "token",
                         "http_cookie.path": "text", "http_query_parameter_name": "text", "sni": "text",
                         "credential_name": "text", "subject_alt_names[]": "text"},
}


def traffic_policy() -> dict:
    """Every traffic policy option set (a new dict each call: a rule and its subset share none)."""
    return copy.deepcopy(TRAFFIC_POLICY)


TRAFFIC_POLICY = {
    "connection_pool": {
        "tcp": {"max_connections": 100, "connect_timeout": "250ms",
                "tcp_keepalive": {"probes": 3, "time": "300s", "interval": "75s"}},
        "http": {"http1_max_pending_requests": 50, "http2_max_requests": 1000,
                 "max_requests_per_connection": 10, "max_retries": 3, "idle_timeout": "60s"}},
    "outlier_detection": {"consecutive_gateway_errors": 3, "interval": "10s", "base_ejection_time": "30s",
                          "max_ejection_percent": 50, "min_health_percent": 10},
    "load_balancer": {"consistent_hash": {"http_cookie": {"name": "session", "path": "/", "ttl": "1h"}}},
    "tls": {"mode": "SIMPLE", "sni": "api.example.com", "credential_name": "client",
            "subject_alt_names": ["api.example.com"]},
}
# Valid arguments that reach every option of each module at least once.
FULL_ARGS = {
    "sidecar_resources": [{"namespaces": ["shop"], "names": ["web"], "label_selector": "app=web",
                           "cpu_request": "100m", "cpu_limit": "1", "memory_request": "128Mi",
                           "memory_limit": "256Mi", "concurrency": 2}],
    "sidecar_scope": [{"namespaces": ["shop"], "name": "default", "egress_hosts": ["./*"],
                       "workload_selector": {"app": "web"}}],
    "hpa_policy": [{"namespace": "shop", "policies": [{
        "name": "web", "target": {"name": "web", "kind": "Deployment", "api_version": "apps/v1"},
        "min_replicas": 2, "max_replicas": 5, "cpu_utilization": 70, "memory_utilization": 80,
        "metrics": [{"type": "Pods", "pods": {"metric": {"name": "rps"},
                                              "target": {"type": "AverageValue", "averageValue": "100"}}}],
        **{direction: {"stabilization_window_seconds": 60, "select_policy": "Max",
                       "policies": [{"type": "Pods", "value": 2, "period_seconds": 60}]}
           for direction in ("scale_up", "scale_down")}}]}],
    "destination_rule": [
        {"namespace": "shop", "rules": [{
            "name": "reviews", "host": "reviews", "export_to": ["."], **traffic_policy(),
            "subsets": [{"name": "v1", "labels": {"version": "v1"}, **traffic_policy()}]}]},
        {"namespace": "shop", "name": "reviews", "destination_host": "reviews", "export_to": ["."],
         **traffic_policy(), "subsets": [{"name": "v1", "labels": {"version": "v1"}}]},
    ],
}


def _module(name):
    import importlib

    return importlib.import_module(f"ansible_collections.meshtune.mesh.plugins.modules.{name}")


def option_leaves(spec, args, path=(), generic=""):
    """(path, generic path, option spec) of every option under `args` that takes a plain value.

    Only the top-level options given in `args` are followed (the others are alternatives to
    them); inside a given dict or list element every suboption is.
    """
    for name, option in spec.items():
        if not path and name not in args:
            continue
        here, where = (*path, name), f"{generic}.{name}" if generic else name
        value = args.get(name) if isinstance(args, dict) else None
        suboptions = option.get("options")
        if option.get("type") == "dict" and suboptions:
            if isinstance(value, dict):
                yield from option_leaves(suboptions, value, here, where)
        elif option.get("type") == "list" and option.get("elements") == "dict" and suboptions:
            if value:
                yield from option_leaves(suboptions, value[0], (*here, 0), f"{where}[]")
        else:
            yield here, where, option


def display(path) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else (f".{part}" if i else part)
                   for i, part in enumerate(path))


def put_at(args, path, value):
    node = args
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return args


def kind_of(module_name, generic):
    """The kind of a string option: the longest STRING_KINDS key its generic path ends with."""
    kinds = STRING_KINDS[module_name]
    matches = [key for key in kinds if generic == key or generic.endswith("." + key)]
    return kinds[max(matches, key=len)] if matches else None


def derived_cases(module_name):
    """{option path: (strategy, args, path)} for every classified option of the module."""
    module = _module(module_name)
    auth = set(__import__("ansible_collections.meshtune.mesh.plugins.module_utils.kube",
                          fromlist=["auth_argument_spec"]).auth_argument_spec())
    spec = {name: option for name, option in module.argument_spec().items() if name not in auth}
    cases, unclassified = {}, []
    for full in FULL_ARGS[module_name]:
        for path, generic, option in option_leaves(spec, full):
            if path[-1] in LOCAL_INTS or option.get("choices"):
                continue
            args, option_type = full, option.get("type")
            if option_type == "int":
                strategy = beyond_uint32 if path[-1] in UINT32_INTS else beyond_int32
            elif option_type == "list" and option.get("elements") == "str":
                kind = kind_of(module_name, f"{generic}[]")
                if kind is None:
                    unclassified.append(f"{generic}[]")
                    continue
                args = put_at(copy.deepcopy(full), path, [VALID_BY_KIND[kind]])
                path, strategy = (*path, 0), BAD_BY_KIND[kind]
            elif option_type in ("str", "dict"):
                kind = kind_of(module_name, generic)
                if kind is None:
                    unclassified.append(generic)
                    continue
                strategy = BAD_BY_KIND[kind]
            else:  # raw lists of dicts (hpa_policy metrics): their own cases
                continue
            cases[display(path)] = (strategy, args, path)
    return cases, unclassified


VALID_BY_KIND = {"label": "shop", "subdomain": "web", "egress": "./*", "text": "api.example.com"}


bad_metric_selectors = st.one_of(
    label_keys_bad.map(lambda key: {"matchLabels": {key: "jobs"}}),
    label_values_bad.map(lambda value: {"matchLabels": {"queue": value}}),
    st.sampled_from([
        {"matchExpressions": [{"key": "queue", "operator": "In"}]},
        {"matchExpressions": [{"key": "queue", "operator": "Exists", "values": ["a"]}]},
        {"matchExpressions": [{"key": "queue", "operator": "Equals", "values": ["a"]}]},
        {"matchExpressions": [{"key": "a b", "operator": "Exists"}]},
        {"matchLabel": {"queue": "jobs"}}, "queue=jobs"]))


def _metric(selector=None, name="queue", target=None, **extra):
    metric = {"name": name}
    if selector is not None:
        metric["selector"] = selector
    source = {"metric": metric, "target": target or {"type": "AverageValue", "averageValue": "30"},
              **extra}
    return {"type": "External", "external": source}


bad_metrics = st.one_of(
    bad_metric_selectors.map(_metric),
    st.sampled_from(["extra", "describedObject", "labels"]).map(lambda field: _metric(**{field: {}})),
    wrapped(st.just("30")).map(lambda q: _metric(target={"type": "AverageValue", "averageValue": q})),
    st.sampled_from(["8Ei", "1e19", "0", "-1"]).map(
        lambda q: _metric(target={"type": "Value", "value": q})),
    st.one_of(wrapped(st.just("queue")), st.sampled_from(["a/b", "..", "a%b", ""])).map(
        lambda name: _metric(name=name)),
    beyond_int32.map(lambda n: {"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "Utilization", "averageUtilization": n}}}),
    st.just({"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "Utilization", "averageUtilization": 50, "averageValue": "1Gi"}}}),
)


@pytest.mark.parametrize("module_name", sorted(STRING_KINDS))
def test_every_free_form_option_is_classified_and_the_full_arguments_are_valid(module_name):
    cases, unclassified = derived_cases(module_name)
    assert not unclassified, f"classify these options in STRING_KINDS: {unclassified}"
    assert cases
    module = _module(module_name)
    validator_options = {key: getattr(module, name) for key, name in
                         (("mutually_exclusive", "MUTUALLY_EXCLUSIVE"),
                          ("required_one_of", "REQUIRED_ONE_OF")) if hasattr(module, name)}
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    for args in FULL_ARGS[module_name]:
        result = ArgumentSpecValidator(module.argument_spec(), **validator_options).validate(
            copy.deepcopy(args))
        assert not result.error_messages, result.error_messages
        assert module.validate(result.validated_parameters) is None


CLASS_EXAMPLES = 800


def names_option(message: str, option: str) -> bool:
    """Whether one of the message's problems is about `option` (or, for a dict, one of its keys)."""
    return re.search(rf"(?:: |; ){re.escape(option)}(?:\.[^;]*?)?: expected ", message) is not None


@pytest.mark.parametrize("module_name", sorted(STRING_KINDS))
def test_classes_of_bad_input_fail_naming_the_option_with_no_request(kubeapi, module_name):
    cases = {option: (strategy, lambda value, args=args, path=path: put_at(copy.deepcopy(args), path, value))
             for option, (strategy, args, path) in derived_cases(module_name)[0].items()}
    if module_name == "hpa_policy":
        metrics_args = FULL_ARGS["hpa_policy"][0]

        def with_metric(value):
            args = copy.deepcopy(metrics_args)
            args["policies"][0]["metrics"].append(value)
            return args

        cases["policies[0].metrics[1]"] = (bad_metrics, with_metric)
    assert_each_bad_input_fails_before_any_request(kubeapi, _module(module_name).main, cases,
                                                   CLASS_EXAMPLES, names_it=names_option)


# --------------------------------------------------------------------- the reported examples

HPA = {"target": {"name": "web"}, "max_replicas": 5, "cpu_utilization": 70}
RULE = {"name": "reviews", "host": "reviews"}
REPORTED = [
    # Values that validated but were written raw.
    ("sidecar_resources", {"namespaces": ["shop"], "memory_request": "128Mi\n"}, "memory_request"),
    ("sidecar_resources", {"namespaces": ["shop"], "cpu_request": " 100m"}, "cpu_request"),
    # Invalid objects that reached the API server.
    ("hpa_policy", {"namespace": "shop", "policies": [{**HPA, "max_replicas": 2 ** 31}]},
     "policies[0].max_replicas"),
    ("hpa_policy", {"namespace": "shop", "policies": [{**HPA, "scale_up": {"policies": [
        {"type": "Pods", "value": 2 ** 31, "period_seconds": 60}]}}]},
     "policies[0].scale_up.policies[0].value"),
    ("hpa_policy", {"namespace": "shop", "policies": [{**HPA, "cpu_utilization": 2 ** 40}]},
     "policies[0].cpu_utilization"),
    ("destination_rule", {"namespace": "shop", "rules": [
        {**RULE, "connection_pool": {"tcp": {"max_connections": 2 ** 31}}}]},
     "rules[0].connection_pool.tcp.max_connections"),
    ("destination_rule", {"namespace": "shop", "rules": [
        {**RULE, "connection_pool": {"http": {"idle_timeout": "99999999999h"}}}]},
     "rules[0].connection_pool.http.idle_timeout"),
    ("destination_rule", {"namespace": "shop", "rules": [{**RULE, "name": "reviews\n"}]}, "rules[0].name"),
    ("hpa_policy", {"namespace": "shop", "policies": [{**HPA, "target": {"name": "web\n"}}]},
     "policies[0].target.name"),
    ("sidecar_scope", {"namespaces": ["shop\n"]}, "namespaces[0]"),
    ("sidecar_scope", {"namespaces": ["shop"], "name": "default\n"}, "name"),
    ("destination_rule", {"namespace": "shop", "rules": [
        {**RULE, "subsets": [{"name": "v1", "labels": {"version\n": "v1"}}]}]},
     "rules[0].subsets[0].labels.version\n"),
    ("sidecar_scope", {"namespaces": ["shop"], "workload_selector": {"app name": "web"}},
     "workload_selector.app name"),
    ("sidecar_scope", {"namespaces": ["shop"], "egress_hosts": ["./foo bar"]}, "egress_hosts[0]"),
    ("sidecar_scope", {"namespaces": ["shop"], "egress_hosts": ["./reviews"]}, "egress_hosts[0]"),
    ("sidecar_scope", {"namespaces": ["shop"], "egress_hosts": ["istio-system/*.example.com.*"]},
     "egress_hosts[0]"),
    ("destination_rule", {"namespace": "shop", "rules": [{**RULE, "host": "a" * 64 + ".example.com"}]},
     "rules[0].host"),
    ("sidecar_scope", {"namespaces": ["shop"], "egress_hosts": ["./" + "a" * 64 + ".example.com"]},
     "egress_hosts[0]"),
    ("hpa_policy", {"namespace": "shop", "policies": [{**HPA, "metrics": [{"type": "Pods", "pods": {
        "metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "1"},
        "window": "30s"}}]}]}, "policies[0].metrics[0].pods.window"),
    ("hpa_policy", {"namespace": "shop", "policies": [{**HPA, "metrics": [{"type": "External", "external": {
        "metric": {"name": "queue", "selector": {"matchLabels": {"queue name": "jobs"}}},
        "target": {"type": "Value", "value": "30"}}}]}]},
     "policies[0].metrics[0].external.metric.selector.matchLabels.queue name"),
    ("hpa_policy", {"namespace": "shop", "policies": [{**HPA, "metrics": [{"type": "External", "external": {
        "metric": {"name": "queue", "selector": {"matchExpressions": [{"key": "queue", "operator": "In"}]}},
        "target": {"type": "Value", "value": "30"}}}]}]},
     "policies[0].metrics[0].external.metric.selector.matchExpressions[0].values"),
]


@pytest.mark.parametrize(("module_name", "args", "option"), REPORTED,
                         ids=[f"{name}:{option}" for name, _args, option in REPORTED])
def test_reported_bad_inputs_fail_before_any_request(kubeapi, module_name, args, option):
    kubeapi.reset_stats()
    result = call_module(_module(module_name).main, {**args, "kubeconfig": str(kubeapi.kubeconfig)})
    assert result.get("failed") is True, result
    assert names_option(result["msg"], option), result["msg"]
    assert "Traceback" not in result["msg"]
    assert kubeapi.stats()["requests"]["total"] == 0, "bad input must not reach the cluster"
