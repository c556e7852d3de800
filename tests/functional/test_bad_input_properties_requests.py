"""Property: any bad option of the request-level and telemetry modules (virtual_service,
telemetry_policy) fails the task, names the option, and sends nothing to the cluster.

The same property as tests/functional/test_bad_input_properties.py, with its value strategies:
hypothesis draws an option from a table of options with strategies of bad values, puts a bad
value into otherwise valid arguments, and runs the module in-process against the test API server.
At least 500 bad inputs per module.
"""

from __future__ import annotations

import copy
import string

import pytest
from hypothesis import strategies as st

from tests.functional.test_bad_input_properties import (
    BAD_BY_KIND,
    EXAMPLES,
    assert_each_bad_input_fails_before_any_request,
    at,
    bad_labels,
    bad_subdomains,
    durations_in_words,
    example_cases,
    label_keys_bad,
    not_in,
    not_positive,
    wrapped,
)
from tests.support.module_harness import call_module

# Durations Istio refuses for timeouts: below 1ms or finer than a millisecond.
sub_millisecond = st.one_of(st.integers(min_value=0, max_value=999).map(lambda n: f"{n}us"),
                            st.integers(min_value=1, max_value=999).map(lambda n: f"1.{n:03d}5ms"),
                            st.just("0s"))
bad_timeouts = st.one_of(durations_in_words, sub_millisecond, BAD_BY_KIND["duration"])
outside_percent = st.one_of(st.integers(max_value=-1), st.integers(min_value=101))
bad_ports = st.one_of(st.integers(max_value=0), st.integers(min_value=65536, max_value=2 ** 40))
bad_percentages = st.one_of(st.floats(max_value=-0.001, allow_nan=False, allow_infinity=False),
                            st.floats(min_value=100.001, allow_nan=False, allow_infinity=False),
                            st.floats(min_value=1e-9, max_value=0.00009))
bad_hosts = st.one_of(BAD_BY_KIND["host"], st.just(""), st.just("*"))
bad_regexes = st.sampled_from(["(", "[a-", "(?=x)", "(?!x)y", "(?<=a)b", "(a)\\1", "a{1001}", "*", "a**",
                               "(?P<n>a)(?P=n)", ""])


def two_way_splits():
    """Two weighted destinations whose weights (each 0 to 100) do not add up to 100."""
    weights = st.integers(min_value=0, max_value=100)
    return st.tuples(weights, weights).filter(lambda pair: sum(pair) != 100).map(
        lambda pair: [{"host": "ratings", "weight": weight} for weight in pair])


def virtual_service_cases():
    from ansible_collections.meshtune.mesh.plugins.module_utils.virtual_service import RETRY_ON
    from ansible_collections.meshtune.mesh.plugins.modules import virtual_service

    valid = {"namespace": "shop", "services": [{
        "name": "ratings", "hosts": ["ratings"],
        "http": [{"route": [{"host": "ratings"}], "match": [{"uri": {"prefix": "/"}}],
                  "timeout": "1s", "retries": {"attempts": 2, "per_try_timeout": "300ms"},
                  "mirror": {"host": "ratings-shadow", "percentage": 10.0}}]}]}
    route = "services[0].http[0]"
    codes = st.integers(min_value=600, max_value=999).map(str)
    cases = {
        "namespace": (bad_labels, at("namespace")),
        "services[0].name": (bad_subdomains.filter(bool), at("services.0.name")),
        "services[0].hosts": (st.one_of(bad_hosts.map(lambda h: [h]), st.just([]),
                                        st.just(["ratings", "ratings"])), at("services.0.hosts")),
        "services[0].gateways": (st.one_of(
            st.sampled_from(["Mesh", "a/b/c", "ns/", "/gw", "gw_1", ""]), wrapped(st.just("mesh")),
            label_keys_bad.filter(lambda k: "/" not in k)).map(lambda g: [g]), at("services.0.gateways")),
        "services[0].export_to": (st.one_of(bad_labels.map(lambda v: [v]), st.just(["*", "."]),
                                            st.just([".", "."])), at("services.0.export_to")),
        "services[0].http": (st.just([]), at("services.0.http")),
        f"{route}.route": (st.one_of(two_way_splits(), st.just([])), at("services.0.http.0.route")),
        f"{route}.route[0].weight": (outside_percent, at("services.0.http.0.route.0.weight")),
        f"{route}.route[0].host": (bad_hosts, at("services.0.http.0.route.0.host")),
        f"{route}.route[0].subset": (bad_labels, at("services.0.http.0.route.0.subset")),
        f"{route}.route[0].port": (bad_ports, at("services.0.http.0.route.0.port")),
        f"{route}.timeout": (bad_timeouts, at("services.0.http.0.timeout")),
        f"{route}.retries.per_try_timeout": (bad_timeouts, at("services.0.http.0.retries.per_try_timeout")),
        f"{route}.retries.retry_on": (st.one_of(
            not_in(RETRY_ON).filter(lambda v: not v.isdigit()), codes, wrapped(st.sampled_from(RETRY_ON)),
        ).map(lambda v: [v]), at("services.0.http.0.retries.retry_on")),
        f"{route}.retries.attempts": (st.integers(max_value=-1), at("services.0.http.0.retries.attempts")),
        f"{route}.match[0].uri": (st.one_of(
            bad_regexes.map(lambda r: {"regex": r}), st.just({}),
            st.just({"exact": "/a", "prefix": "/a"}), wrapped(st.just("/api")).map(lambda p: {"prefix": p}),
        ), at("services.0.http.0.match.0.uri")),
        f"{route}.match[0].headers": (st.one_of(
            st.sampled_from(["a b", "x:y", "", "é"]).map(lambda name: {name: {"exact": "v"}}),
            st.sampled_from([{}, {"exact": "a", "regex": "b"}, {"equals": "a"}, "jason"]).map(
                lambda match: {"x-user": match}),
            bad_regexes.map(lambda r: {"x-user": {"regex": r}}),
        ), at("services.0.http.0.match.0.headers")),
        f"{route}.match[0].source_labels": (BAD_BY_KIND["labels"],
                                            at("services.0.http.0.match.0.source_labels")),
        f"{route}.match[0].port": (bad_ports, at("services.0.http.0.match.0.port")),
        f"{route}.mirror.percentage": (bad_percentages, at("services.0.http.0.mirror.percentage")),
        f"{route}.mirror.host": (bad_hosts, at("services.0.http.0.mirror.host")),
        "parallelism": (not_positive, at("parallelism")),
    }
    return virtual_service.main, valid, cases


bad_cel = st.one_of(
    st.sampled_from(["response.code >=", "a b", "&&", "(response.code", "response.code >= 400)", "", "  ",
                     "response.code = 400", "'unterminated", "response..code"]),
    st.sampled_from(["response.code >= 400", "connection.mtls", "response.flags != '-'"]).map(
        lambda valid: f"{valid} &&"),
)


def telemetry_policy_cases():
    from ansible_collections.meshtune.mesh.plugins.module_utils.telemetry import METRICS
    from ansible_collections.meshtune.mesh.plugins.modules import telemetry_policy

    valid = {"namespace": "istio-system", "policies": [{
        "name": "mesh-default", "access_logging": {"providers": ["envoy"], "filter": "response.code >= 400"},
        "tracing": {"sampling": 1.0},
        "metrics": {"reporting_interval": "15s", "overrides": [{"remove_tags": ["request_protocol"]}]}}]}
    policy = "policies[0]"
    cases = {
        "namespace": (bad_labels, at("namespace")),
        f"{policy}.name": (bad_subdomains.filter(bool), at("policies.0.name")),
        f"{policy}.workload_selector": (st.one_of(BAD_BY_KIND["labels"], st.just({})),
                                        at("policies.0.workload_selector")),
        f"{policy}.access_logging.filter": (bad_cel, at("policies.0.access_logging.filter")),
        f"{policy}.access_logging.providers": (st.one_of(
            wrapped(st.just("envoy")), st.sampled_from(["", "en voy", "envoy\x00"]),
        ).map(lambda p: [p]), at("policies.0.access_logging.providers")),
        f"{policy}.tracing.sampling": (bad_percentages.filter(lambda v: not 0 <= v <= 100),
                                       at("policies.0.tracing.sampling")),
        f"{policy}.tracing.providers": (st.just(["zipkin", "zipkin"]), at("policies.0.tracing.providers")),
        "mode": (not_in(("CLIENT_AND_SERVER", "CLIENT", "SERVER")), at("policies.0.tracing.mode")),
        f"{policy}.metrics.reporting_interval": (bad_timeouts, at("policies.0.metrics.reporting_interval")),
        f"{policy}.metrics.overrides[0].remove_tags": (st.one_of(
            st.text(alphabet=string.digits, min_size=1, max_size=3).map(lambda d: f"{d}tag"),
            st.sampled_from(["request-protocol", "a b", "", "tag.name"]),
            wrapped(st.just("request_protocol")),
        ).map(lambda tag: [tag]), at("policies.0.metrics.overrides.0.remove_tags")),
        f"{policy}.metrics.overrides[0]": (st.sampled_from(["REQUEST_COUNT", "TCP_SENT_BYTES"]).map(
            lambda metric: [{"metric": metric}]), at("policies.0.metrics.overrides")),
        "metric": (not_in(METRICS),
                   at("policies.0.metrics.overrides.0.metric")),
        "parallelism": (not_positive, at("parallelism")),
    }
    return telemetry_policy.main, valid, cases


MODULES = {"virtual_service": virtual_service_cases, "telemetry_policy": telemetry_policy_cases}


@pytest.mark.parametrize("module_name", sorted(MODULES))
def test_the_valid_arguments_pass(kubeapi, module_name):
    main, valid, _cases = MODULES[module_name]()
    kubeapi.kubectl("create", "namespace", valid["namespace"], check=False)
    result = call_module(main, {**copy.deepcopy(valid), "kubeconfig": str(kubeapi.kubeconfig)},
                         check_mode=True)
    assert result.get("failed") is not True, result.get("msg")


@pytest.mark.parametrize("module_name", sorted(MODULES))
def test_bad_inputs_fail_naming_the_option_with_no_request(kubeapi, module_name):
    main, valid, cases = MODULES[module_name]()
    assert_each_bad_input_fails_before_any_request(kubeapi, main, example_cases(valid, cases),
                                                   EXAMPLES, at_least=EXAMPLES)
