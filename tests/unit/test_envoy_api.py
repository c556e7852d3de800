"""The Envoy API check of rate_limit's generated config: every field, misspelt or mistyped, is named."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils import envoy_api, rate_limit
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption

LIMIT = rate_limit.effective({
    "name": "web", "requests_per_unit": 100, "unit": "second", "burst": 150, "status_code": 503,
    "enforce_percent": 40,
    "routes": [{"path_prefix": "/api", "requests_per_unit": 10, "unit": "minute"},
               {"path_prefix": "/static", "max_tokens": 5, "tokens_per_fill": 2, "fill_interval": "1500ms"}],
}, rate_limit.SHARED_OPTIONS)
CONFIG = rate_limit.http_filter(LIMIT)


def leaves(node, path=""):
    """(path, container, key) of every field of a proto3 JSON document, keys and list items alike."""
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else key
            yield where, node, key
            yield from leaves(value, where)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, f"{path}[{index}]")


def check(value):
    envoy_api.check_http_filter("f", value)


def test_the_generated_config_fits_the_envoy_api():
    check(CONFIG)
    assert envoy_api.full_name(envoy_api.LocalRateLimit) == \
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"


FIELDS = [path for path, _container, key in leaves(CONFIG) if key != "@type"]


@pytest.mark.parametrize("path", FIELDS)
def test_every_misspelt_field_is_named(path):
    config = copy.deepcopy(CONFIG)
    container, key = next((c, k) for p, c, k in leaves(config) if p == path)
    container[key + "x"] = container.pop(key)
    with pytest.raises(InvalidOption) as caught:
        check(config)
    assert caught.value.path == f"f.{path}x"
    assert caught.value.expected.startswith("a field of ")


def _wrong_type(value):
    """A value of another JSON type than `value`."""
    if isinstance(value, bool):
        return "true"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return 7
    if isinstance(value, list):
        return {"items": value}
    return [value]


@pytest.mark.parametrize("path", FIELDS)
def test_every_mistyped_field_is_named(path):
    config = copy.deepcopy(CONFIG)
    container, key = next((c, k) for p, c, k in leaves(config) if p == path)
    container[key] = _wrong_type(container[key])
    with pytest.raises(InvalidOption) as caught:
        check(config)
    assert caught.value.path.startswith(f"f.{path}")


def test_proto_json_durations_only():
    """Envoy reads durations in seconds (`60s`, `0.5s`): a Go duration such as 1m is refused."""
    config = copy.deepcopy(CONFIG)
    config["typed_config"]["token_bucket"]["fill_interval"] = "1m"
    with pytest.raises(InvalidOption, match=r"token_bucket\.fill_interval: expected a duration in seconds"):
        check(config)
    nanoseconds = (60 * 10 ** 9, 5 * 10 ** 8, 1_500_000_000, 50 * 10 ** 6)
    assert [rate_limit.proto_duration(ns) for ns in nanoseconds] == ["60s", "0.5s", "1.5s", "0.05s"]


def test_two_fields_of_a_oneof_and_an_unknown_type_are_refused():
    config = copy.deepcopy(CONFIG)
    config["typed_config"]["rate_limits"][0]["actions"][0]["generic_key"] = {"descriptor_value": "x"}
    with pytest.raises(InvalidOption, match=r"one field of the oneof envoy\.config\.route\.v3\.RateLimit\."):
        check(config)
    config = copy.deepcopy(CONFIG)
    config["typed_config"]["@type"] = envoy_api.TYPE_URL_PREFIX + "envoy.extensions.filters.http.x.v3.X"
    with pytest.raises(InvalidOption, match=r"typed_config\.@type: expected the type URL"):
        check(config)


def test_lower_camel_case_names_are_proto3_json_too():
    config = copy.deepcopy(CONFIG)
    config["typed_config"]["statPrefix"] = config["typed_config"].pop("stat_prefix")
    check(config)


def test_out_of_range_numbers_are_refused_by_the_type():
    config = copy.deepcopy(CONFIG)
    config["typed_config"]["token_bucket"]["max_tokens"] = 2 ** 32
    with pytest.raises(InvalidOption, match=r"max_tokens: expected an integer 0 to 4294967295 \(uint32\)"):
        check(config)


def test_status_codes_come_from_the_envoy_api():
    codes = envoy_api.status_codes()
    assert codes[429] == "TooManyRequests" and codes[503] == "ServiceUnavailable"
    assert 0 not in codes and 430 not in codes
