"""Property: any bad option fails the task, names the option, and sends nothing to the cluster.

For each module, hypothesis draws one option from a table of options with strategies of bad
values, puts a bad value into otherwise valid arguments, and runs the module in-process against
the test API server. At least 500 bad inputs per module.
"""

from __future__ import annotations

import copy
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.module_harness import call_module

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


@pytest.mark.parametrize("module_name", sorted(MODULES))
def test_bad_inputs_fail_naming_the_option_with_no_request(kubeapi, module_name):
    main, valid, cases = MODULES[module_name]()
    options = sorted(cases)
    kubeapi.reset_stats()
    drawn = []

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(data=st.data())
    def check(data):
        option = data.draw(st.sampled_from(options), label="option")
        strategy, put = cases[option]
        value = data.draw(strategy, label=option)
        drawn.append(option)
        args = put(copy.deepcopy(valid), value)
        result = call_module(main, {**args, "kubeconfig": str(kubeapi.kubeconfig)})
        assert result.get("failed") is True, (option, value, result)
        assert option in result["msg"], (option, value, result["msg"])
        assert "Traceback" not in result["msg"]

    check()
    assert len(drawn) >= EXAMPLES
    assert set(drawn) == set(options), "every option was exercised"
    assert kubeapi.stats()["requests"]["total"] == 0, "bad input must not reach the cluster"
