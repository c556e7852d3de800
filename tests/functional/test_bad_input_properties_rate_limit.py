"""Property: any bad option of meshtune.mesh.rate_limit fails the task, names the option, and sends
nothing to the cluster; the same two properties as tests/functional/test_bad_input_properties.py
(a table of bad values per option, and bad values derived from classes of input for every option
of the argument spec), with the same strategies."""

from __future__ import annotations

import copy

from hypothesis import strategies as st

from ansible_collections.meshtune.mesh.plugins.module_utils.envoy_api import status_codes
from ansible_collections.meshtune.mesh.plugins.module_utils.kube import auth_argument_spec
from ansible_collections.meshtune.mesh.plugins.modules import rate_limit
from tests.functional.test_bad_input_properties import (
    BAD_BY_KIND,
    EXAMPLES,
    LOCAL_INTS,
    SPACES,
    assert_each_bad_input_fails_before_any_request,
    at,
    bad_labels,
    bad_subdomains,
    beyond_int32,
    beyond_uint32,
    display,
    durations_in_words,
    example_cases,
    names_option,
    not_in,
    not_positive,
    option_leaves,
    put_at,
    wrapped,
)

LIMIT = {"name": "web", "workload_selector": {"app": "web"}, "requests_per_unit": 10, "unit": "second",
         "burst": 20, "routes": [{"path_prefix": "/api", "requests_per_unit": 5}],
         "response_header": {"name": "x-limited", "value": "yes"}}
VALID = {"namespace": "shop", "limits": [LIMIT]}


def in_envoy_terms(key):
    """A setter that gives limits[0] its bucket in Envoy's terms, then puts the value at `key`."""
    def put(args: dict, value) -> dict:
        limit = args["limits"][0]
        for option in ("requests_per_unit", "unit", "burst", "routes"):
            limit.pop(option)
        limit.update(max_tokens=10, fill_interval="1s")
        limit[key] = value
        return args

    return put


def with_routes(*routes):
    def put(args: dict, value) -> dict:
        args["limits"][0]["routes"] = [dict(route, **value) if index == 0 else route
                                       for index, route in enumerate(routes)]
        return args

    return put


known_codes = set(status_codes())
bad_paths = st.one_of(wrapped(st.sampled_from(["/api", "/", "/static/"])),
                      st.from_regex(r"\A[a-z0-9]{1,10}\Z"),
                      st.sampled_from(SPACES).map(lambda c: f"/a{c}b"),
                      st.sampled_from(["", "/a\x00", "/\u00e9", "/" + "a" * 1024]))
bad_header_values = st.one_of(wrapped(st.sampled_from(["true", "limited", "1"])),
                              st.sampled_from(["", "a\nb", "a\rb", "a\x00b", "\u00e9", "a" * 16385]))
CASES = {
    "namespace": (bad_labels, at("namespace")),
    "limits[0].name": (bad_subdomains.filter(bool), at("limits.0.name")),
    "limits[1].name": (st.just(None), lambda args, _value: {**args, "limits": [LIMIT, dict(LIMIT)]}),
    "limits[0].requests_per_unit": (not_positive, at("limits.0.requests_per_unit")),
    "limits[0].burst": (st.integers(min_value=1, max_value=LIMIT["requests_per_unit"] - 1),
                        at("limits.0.burst")),
    "limits[0].max_tokens": (not_positive, in_envoy_terms("max_tokens")),
    "limits[0].tokens_per_fill": (not_positive, in_envoy_terms("tokens_per_fill")),
    "limits[0].fill_interval": (st.one_of(durations_in_words,
                                          st.integers(min_value=1, max_value=49).map(lambda n: f"{n}ms")),
                                in_envoy_terms("fill_interval")),
    "unit": (not_in(("second", "minute", "hour")), at("limits.0.unit")),
    "proxy_context": (not_in(("sidecar_inbound", "gateway")), at("limits.0.proxy_context")),
    "limits[0].status_code": (st.one_of(st.integers(max_value=399), st.integers(min_value=600),
                                        st.integers(min_value=400, max_value=599).filter(
                                            lambda code: code not in known_codes)),
                              at("limits.0.status_code")),
    "limits[0].enforce_percent": (st.one_of(st.integers(max_value=-1), st.integers(min_value=101)),
                                  at("limits.0.enforce_percent")),
    "limits[0].response_header.name": (BAD_BY_KIND["token"], at("limits.0.response_header.name")),
    "limits[0].response_header.value": (bad_header_values, at("limits.0.response_header.value")),
    "limits[0].routes[0].path_prefix": (bad_paths, at("limits.0.routes.0.path_prefix")),
    "limits[0].routes[1].path_prefix": (st.sampled_from(["/api", "/"]).map(
        lambda prefix: [{"path_prefix": prefix, "requests_per_unit": 1}] * 2), at("limits.0.routes")),
    # A route's refill period must be a whole multiple of the limit's (Envoy's rule).
    "limits[0].routes[0].fill_interval": (
        st.sampled_from(["50ms", "500ms", "1500ms", "2500ms"]).map(
            lambda interval: {"max_tokens": 1, "fill_interval": interval}),
        with_routes({"path_prefix": "/api"})),
    "parallelism": (not_positive, at("parallelism")),
}


def test_bad_inputs_fail_naming_the_option_with_no_request(kubeapi):
    assert_each_bad_input_fails_before_any_request(kubeapi, rate_limit.main, example_cases(VALID, CASES),
                                                   EXAMPLES, at_least=EXAMPLES)


# ------------------------------------------------------------------------ classes of bad input

# Envoy's uint32 fields: token counts.
UINT32_OPTIONS = {"requests_per_unit", "burst", "max_tokens", "tokens_per_fill"}
BAD_BY_KIND_HERE = {**BAD_BY_KIND, "path": bad_paths, "header_value": bad_header_values}
# Every free-form string option, by kind (generic paths: `[]` is a list element).
STRING_KINDS = {"namespace": "label", "name": "subdomain", "limits[].name": "subdomain",
                "workload_selector": "labels", "fill_interval": "duration", "routes[].path_prefix": "path",
                "response_header.name": "token", "response_header.value": "header_value"}
HEADER = {"name": "x-limited", "value": "yes"}
ROUTE_RATE = {"path_prefix": "/api", "requests_per_unit": 5, "unit": "second", "burst": 5}
ROUTE_ENVOY = {"path_prefix": "/api", "max_tokens": 2, "tokens_per_fill": 1, "fill_interval": "2s"}
# Valid arguments that reach every option at least once.
FULL_ARGS = [
    {"namespace": "shop", "limits": [{
        "name": "web", "workload_selector": {"app": "web"}, "requests_per_unit": 10, "unit": "second",
        "burst": 20, "routes": [ROUTE_RATE], "proxy_context": "sidecar_inbound", "status_code": 503,
        "response_header": HEADER, "enforce_percent": 50}]},
    {"namespace": "shop", "name": "web", "workload_selector": {"app": "web"}, "max_tokens": 10,
     "tokens_per_fill": 5, "fill_interval": "1s", "routes": [ROUTE_ENVOY], "status_code": 503,
     "response_header": HEADER, "enforce_percent": 0},
]


def kind_of(generic):
    matches = [key for key in STRING_KINDS if generic == key or generic.endswith("." + key)]
    return STRING_KINDS[max(matches, key=len)] if matches else None


def derived_cases():
    """{option path: (strategy, args, path)} for every option of the argument spec that FULL_ARGS
    reaches (choices are the argument spec's own check)."""
    auth = set(auth_argument_spec())
    spec = {name: option for name, option in rate_limit.argument_spec().items() if name not in auth}
    cases, unclassified = {}, []
    for full in FULL_ARGS:
        for path, generic, option in option_leaves(spec, full):
            if path[-1] in LOCAL_INTS or option.get("choices"):
                continue
            if option.get("type") == "int":
                strategy = beyond_uint32 if path[-1] in UINT32_OPTIONS else beyond_int32
            elif option.get("type") in ("str", "dict"):
                kind = kind_of(generic)
                if kind is None:
                    unclassified.append(generic)
                    continue
                strategy = BAD_BY_KIND_HERE[kind]
            else:
                unclassified.append(generic)
                continue
            cases[display(path)] = (strategy, full, path)
    return cases, unclassified


def test_every_free_form_option_is_classified_and_the_full_arguments_are_valid():
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    cases, unclassified = derived_cases()
    assert not unclassified, f"classify these options in STRING_KINDS: {unclassified}"
    assert {"limits[0].routes[0].path_prefix", "routes[0].fill_interval", "response_header.value"} \
        <= set(cases)
    validator = ArgumentSpecValidator(rate_limit.argument_spec(),
                                      mutually_exclusive=rate_limit.MUTUALLY_EXCLUSIVE,
                                      required_one_of=rate_limit.REQUIRED_ONE_OF)
    for args in FULL_ARGS:
        result = validator.validate(copy.deepcopy(args))
        assert not result.error_messages, result.error_messages
        assert rate_limit.validate(result.validated_parameters) is None


CLASS_EXAMPLES = 800


def test_classes_of_bad_input_fail_naming_the_option_with_no_request(kubeapi):
    cases = {option: (strategy, lambda value, args=args, path=path: put_at(copy.deepcopy(args), path, value))
             for option, (strategy, args, path) in derived_cases()[0].items()}
    assert_each_bad_input_fails_before_any_request(kubeapi, rate_limit.main, cases, CLASS_EXAMPLES,
                                                   names_it=names_option)
