"""The cross-field rules of virtual_service and telemetry_policy: subsets against DestinationRules,
retry conditions, RE2, retry warnings, CEL filters."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils import telemetry, virtual_service
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption


def rule(namespace, host, *subsets):
    return {"metadata": {"namespace": namespace, "name": host.split(".")[0].strip("*")},
            "spec": {"host": host, "subsets": [{"name": name} for name in subsets]}}


def test_the_most_specific_destination_rule_decides_which_subsets_exist():
    rules = [rule("shop", "*.shop.svc.cluster.local", "all"), rule("shop", "reviews", "v1"),
             rule("catalog", "search", "blue")]
    references = [
        ("a", "reviews.shop.svc.cluster.local", "v1"),  # the exact rule (a short host in shop)
        ("b", "reviews.shop.svc.cluster.local", "all"),  # only in the wildcard rule: refused
        ("c", "cart.shop.svc.cluster.local", "all"),  # no exact rule: the wildcard decides
        ("d", "search.catalog.svc.cluster.local", "blue"),  # short host in the rule's own namespace
        ("e", "search.shop.svc.cluster.local", "blue"),  # another service: the wildcard decides
        ("f", "api.example.com", "v1"),  # no rule at all
    ]
    problems = virtual_service.subset_problems(references, rules)
    assert [problem.split(":")[0] for problem in problems] == ["b", "e", "f"]
    assert "(host reviews.shop.svc.cluster.local; its subsets: v1), got 'all'" in problems[0]
    assert "(host *.shop.svc.cluster.local; its subsets: all), got 'blue'" in problems[1]
    assert "for api.example.com (there is none" in problems[2]


def test_destination_rules_are_read_where_the_destinations_live():
    references = [("a", "reviews.shop.svc.cluster.local", "v1"),
                  ("b", "search.catalog.svc.cluster.local", "v1"), ("c", "api.example.com", "v1")]
    assert virtual_service.destination_rule_namespaces("shop", references) == ["catalog", "shop"]


@pytest.mark.parametrize("condition", [*virtual_service.RETRY_ON,
                                       *(str(status.value) for status in HTTPStatus)])
def test_envoy_retry_conditions_and_http_status_codes_are_accepted(condition):
    assert virtual_service.check_retry_on("retry_on", [condition]) == [condition]


@pytest.mark.parametrize("condition", ["5XX", "600", "99", "retriable_4xx", " 5xx", "5xx,reset", "٥٠٣"])
def test_other_retry_conditions_are_refused(condition):
    with pytest.raises(InvalidOption, match=r"retry_on\[0\]: expected one of Envoy's retry conditions"):
        virtual_service.check_retry_on("retry_on", [condition])


@pytest.mark.parametrize(("pattern", "valid"), [
    ("^/api/v[0-9]+$", True), ("(?i)/Reviews", True), (r"\p{L}+", True),
    ("(?=x)", False), (r"(a)\1", False), ("a{1001}", False), ("[", False)])
def test_regexes_are_checked_as_re2(pattern, valid):
    if valid:
        assert virtual_service.check_re2("uri.regex", pattern) == pattern
    else:
        with pytest.raises(InvalidOption, match="expected an RE2 regular expression"):
            virtual_service.check_re2("uri.regex", pattern)


@pytest.mark.parametrize(("attempts", "per_try_ms", "timeout_ms"),
                         [(3, 500, 1000), (2, 500, 1000), (1, 999, 1000), (4, 251, 1000)])
def test_retries_beyond_the_route_timeout_are_warned_about(attempts, per_try_ms, timeout_ms):
    service = {"http": [{"timeout": f"{timeout_ms}ms", "route": [{"host": "r"}],
                         "retries": {"attempts": attempts, "per_try_timeout": f"{per_try_ms}ms"}}]}
    warnings = virtual_service.route_warnings("services[0]", service)
    assert bool(warnings) == (attempts * per_try_ms > timeout_ms)


@pytest.mark.parametrize("expression", [
    "response.code >= 400", "response.code >= 500 || response.duration > duration('1s')",
    "request.headers['x-debug'] == 'true'", "!(connection.mtls)"])
def test_cel_filters_istio_documents_parse(expression):
    assert telemetry.check_cel("filter", expression) == expression


@pytest.mark.parametrize("expression", ["response.code >=", "response.code = 400", "", "a b", "(a"])
def test_filters_that_are_not_cel_are_refused(expression):
    with pytest.raises(InvalidOption, match="filter: expected a CEL expression"):
        telemetry.check_cel("filter", expression)
