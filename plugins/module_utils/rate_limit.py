# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Local (per-proxy) rate limits: options in, EnvoyFilters out, as Istio documents them.

Each limit is one EnvoyFilter that inserts Envoy's `envoy.filters.http.local_ratelimit` HTTP filter
into the inbound listeners of the selected sidecars (or into a gateway's listeners). Its token
bucket is given as a rate (`requests_per_unit` per `unit`, up to `burst` at once) or in Envoy's
terms (`max_tokens`, `tokens_per_fill`, `fill_interval`). Routes get their own bucket by path
prefix: a descriptor per prefix, produced by a `:path` prefix match. The generated filter is
checked against the Envoy API (envoy_api) before anything is written.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.meshtune.mesh.plugins.module_utils import envoy_api
from ansible_collections.meshtune.mesh.plugins.module_utils.istio import NETWORKING_GROUP
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import (
    UINT32_MAX,
    InvalidOption,
    check_http_token,
    check_label,
    check_name,
    check_range,
    check_unique,
    duration_nanoseconds,
)

KIND = "EnvoyFilter"
FILTER_NAME = "envoy.filters.http.local_ratelimit"
HTTP_CONNECTION_MANAGER = "envoy.filters.network.http_connection_manager"
# Envoy names the filter's stats <stat_prefix>.http_local_rate_limit.<enabled|enforced|
# rate_limited|ok>; the profiles' proxyStatsMatcher and the dashboard read them by this prefix.
STAT_PREFIX = "http_local_rate_limiter"
CONTEXTS = {"sidecar_inbound": "SIDECAR_INBOUND", "gateway": "GATEWAY"}
UNITS = {"second": 1, "minute": 60, "hour": 3600}
PATH_DESCRIPTOR_KEY = "path_prefix"
DEFAULT_STATUS_CODE = 429
DEFAULT_RESPONSE_HEADER = {"name": "x-local-rate-limit", "value": "true"}
RATE_OPTIONS = ("requests_per_unit", "unit", "burst")
ENVOY_BUCKET_OPTIONS = ("max_tokens", "tokens_per_fill", "fill_interval")
# Options given at top level that apply to every entry of `limits` that does not set them.
SHARED_OPTIONS = {"proxy_context": "sidecar_inbound", "status_code": DEFAULT_STATUS_CODE,
                  "response_header": DEFAULT_RESPONSE_HEADER, "enforce_percent": 100}
# Envoy refills buckets at most every 50ms.
MIN_FILL_INTERVAL_NS = 50 * 10 ** 6
SECOND_NS = 10 ** 9
# A header value sent as is: visible ASCII, spaces only inside.
HEADER_VALUE_RE = re.compile(r"\A[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?\Z")
PATH_PREFIX_RE = re.compile(r"\A/[\x21-\x7e]*\Z")
BUCKET_EXPECTED = ("a token bucket: requests_per_unit (with unit and burst) or max_tokens (with "
                   "tokens_per_fill and fill_interval)")


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def _given(options, names):
    return [name for name in names if options.get(name) is not None]


def fill_interval_ns(bucket):
    """The refill period of a valid bucket's options, in nanoseconds."""
    if bucket.get("requests_per_unit") is not None:
        return UNITS[bucket.get("unit") or "second"] * SECOND_NS
    return int(duration_nanoseconds("fill_interval", bucket["fill_interval"]))


def proto_duration(nanoseconds):
    """A duration as proto3 JSON writes it: seconds with an `s` ("60s", "0.05s")."""
    seconds, rest = divmod(nanoseconds, SECOND_NS)
    return f"{seconds}s" if not rest else f"{seconds}.{rest:09d}".rstrip("0") + "s"


def token_bucket(bucket):
    """Envoy's TokenBucket (proto3 JSON) from a valid bucket's options."""
    if bucket.get("requests_per_unit") is not None:
        rate = bucket["requests_per_unit"]
        return {"max_tokens": bucket.get("burst") or rate, "tokens_per_fill": rate,
                "fill_interval": proto_duration(fill_interval_ns(bucket))}
    result = {"max_tokens": bucket["max_tokens"]}
    if bucket.get("tokens_per_fill") is not None:
        result["tokens_per_fill"] = bucket["tokens_per_fill"]
    result["fill_interval"] = proto_duration(fill_interval_ns(bucket))
    return result


def check_fill_interval(path, value):
    nanoseconds = duration_nanoseconds(path, value)
    if nanoseconds < MIN_FILL_INTERVAL_NS or nanoseconds % 1:
        raise InvalidOption(path, "a duration of at least 50ms (Envoy's shortest refill), in whole "
                            "nanoseconds, such as 1s, 500ms or 1m", value)
    return value


def check_bucket(problems, path, bucket):
    """Record what is wrong with one token bucket's options (a limit's or a route's).

    Returns True when the bucket is well formed."""
    before = len(problems.messages)
    counts = {name: problems.check(check_range, _join(path, name), bucket.get(name), 1, UINT32_MAX)
              for name in ("requests_per_unit", "burst", "max_tokens", "tokens_per_fill")}
    if bucket.get("fill_interval") is not None:
        problems.check(check_fill_interval, _join(path, "fill_interval"), bucket["fill_interval"])
    rate, envoy = _given(bucket, RATE_OPTIONS), _given(bucket, ENVOY_BUCKET_OPTIONS)
    if rate and envoy:
        problems.add(_join(path, envoy[0]), f"either {', '.join(RATE_OPTIONS)} or "
                     f"{', '.join(ENVOY_BUCKET_OPTIONS)}, not both (given: {', '.join(rate + envoy)})",
                     bucket[envoy[0]])
    elif rate and bucket.get("requests_per_unit") is None:
        problems.add(_join(path, "requests_per_unit"), "the requests allowed per unit, as unit or burst "
                     "is set", None)
    elif rate and None not in (counts["requests_per_unit"], counts["burst"]) and \
            counts["burst"] < counts["requests_per_unit"]:
        problems.add(_join(path, "burst"), f"at least requests_per_unit ({counts['requests_per_unit']}): "
                     "the bucket holds one unit's requests", counts["burst"])
    elif envoy:
        if bucket.get("max_tokens") is None:
            problems.add(_join(path, "max_tokens"), "the bucket size, as tokens_per_fill or fill_interval "
                         "is set", None)
        if bucket.get("fill_interval") is None:
            problems.add(_join(path, "fill_interval"), "how often the bucket is refilled, such as 1s", None)
    elif not rate:
        problems.add(_join(path, "requests_per_unit"), BUCKET_EXPECTED, None)
    return len(problems.messages) == before


def check_status_code(path, code):
    """An HTTP status of 400 or more that Envoy's HttpStatus knows (it sends 429 for less)."""
    known = envoy_api.status_codes()
    if isinstance(code, bool) or not isinstance(code, int) or code < 400 or code not in known:
        raise InvalidOption(path, "an HTTP error status Envoy knows (envoy.type.v3.StatusCode), such as "
                            "429 or 503", code)
    return code


def check_header_value(path, value):
    if not isinstance(value, str) or len(value) > 16384 or not HEADER_VALUE_RE.match(value):
        raise InvalidOption(path, "a header value of visible ASCII characters (spaces only inside)",
                            value)
    return value


def check_path_prefix(path, value):
    if not isinstance(value, str) or len(value) > 1024 or not PATH_PREFIX_RE.match(value):
        raise InvalidOption(path, "a URL path prefix starting with / (visible ASCII, no spaces), "
                            "such as /api", value)
    return value


def effective(limit, shared):
    """A limit's options with the top-level shared options filled in where it sets none."""
    return {**limit, **{key: shared.get(key) if limit.get(key) is None else limit[key]
                        for key in SHARED_OPTIONS}}


def check_limit(problems, prefix, limit, state):
    """Record every problem of one limit (already `effective`); then, when its options are valid,
    build its EnvoyFilter and check the Envoy config against the Envoy API."""
    before = len(problems.messages)
    problems.check(check_name, _join(prefix, "name"), limit.get("name"))
    if state == "absent":
        return
    for key, value in (limit.get("workload_selector") or {}).items():
        problems.check(check_label, f"{_join(prefix, 'workload_selector')}.{key}", key, value)
    check_bucket(problems, prefix, limit)
    problems.check(check_status_code, _join(prefix, "status_code"), limit["status_code"])
    header = limit["response_header"]
    problems.check(check_http_token, _join(prefix, "response_header.name"), header.get("name"),
                   "an HTTP header name such as x-local-rate-limit")
    problems.check(check_header_value, _join(prefix, "response_header.value"), header.get("value"))
    problems.check(check_range, _join(prefix, "enforce_percent"), limit["enforce_percent"], 0, 100)
    routes = limit.get("routes") or []
    problems.check(check_unique, _join(prefix, "routes"), routes, "path_prefix")
    for index, route in enumerate(routes):
        where = f"{_join(prefix, 'routes')}[{index}]"
        problems.check(check_path_prefix, f"{where}.path_prefix", route.get("path_prefix"))
        if check_bucket(problems, where, route) and len(problems.messages) == before:
            default, own = fill_interval_ns(limit), fill_interval_ns(route)
            if own % default:
                problems.add(f"{where}.fill_interval", "a refill period that is a whole multiple of the "
                             f"limit's own ({proto_duration(default)}), as Envoy requires",
                             route.get("fill_interval") or route.get("unit") or "second")
    if len(problems.messages) == before:
        problems.check(envoy_api.check_http_filter, f"EnvoyFilter {limit['name']} HttpFilter",
                       http_filter(limit))


def _header(header):
    return {"append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            "header": {"key": header["name"], "value": header["value"]}}


def _percent(runtime_key, numerator):
    return {"runtime_key": runtime_key, "default_value": {"numerator": numerator, "denominator": "HUNDRED"}}


def local_rate_limit(limit):
    """Envoy's LocalRateLimit (proto3 JSON) of a valid, `effective` limit.

    Every request is counted (filter_enabled 100%); enforce_percent of them are refused when the
    bucket is empty, so 0 is shadow mode: stats and the marking request header, no refusal.
    With routes, a request on a route's prefix takes tokens from that route's bucket (from each
    matching route's) instead of the limit's own.
    """
    config = {
        "stat_prefix": STAT_PREFIX,
        "token_bucket": token_bucket(limit),
        "filter_enabled": _percent("local_rate_limit_enabled", 100),
        "filter_enforced": _percent("local_rate_limit_enforced", limit["enforce_percent"]),
        "response_headers_to_add": [_header(limit["response_header"])],
        "request_headers_to_add_when_not_enforced": [_header(limit["response_header"])],
    }
    if limit["status_code"] != DEFAULT_STATUS_CODE:
        config["status"] = {"code": envoy_api.status_codes()[limit["status_code"]]}
    routes = limit.get("routes") or []
    if routes:
        config["descriptors"] = [
            {"entries": [{"key": PATH_DESCRIPTOR_KEY, "value": route["path_prefix"]}],
             "token_bucket": token_bucket(route)} for route in routes]
        config["rate_limits"] = [
            {"actions": [{"header_value_match": {
                "descriptor_key": PATH_DESCRIPTOR_KEY, "descriptor_value": route["path_prefix"],
                "headers": [{"name": ":path", "string_match": {"prefix": route["path_prefix"]}}]}}]}
            for route in routes]
        config["always_consume_default_token_bucket"] = False
    return config


def http_filter(limit):
    """The HTTP filter the EnvoyFilter inserts: the local rate limiter with its typed config."""
    type_url = envoy_api.TYPE_URL_PREFIX + envoy_api.full_name(envoy_api.LocalRateLimit)
    return {"name": FILTER_NAME, "typed_config": {"@type": type_url, **local_rate_limit(limit)}}


def envoy_filter_object(api_version, namespace, limit, state="present"):
    """One EnvoyFilter for a valid, `effective` limit (only its name matters with state absent)."""
    metadata = {"name": limit["name"], "namespace": namespace}
    obj = {"apiVersion": f"{NETWORKING_GROUP}/{api_version}", "kind": KIND, "metadata": metadata}
    if state == "absent":
        return {**obj, "spec": {}}
    spec = {}
    if limit.get("workload_selector"):
        spec["workloadSelector"] = {"labels": dict(limit["workload_selector"])}
    spec["configPatches"] = [{
        "applyTo": "HTTP_FILTER",
        "match": {"context": CONTEXTS[limit["proxy_context"]],
                  "listener": {"filterChain": {"filter": {"name": HTTP_CONNECTION_MANAGER}}}},
        "patch": {"operation": "INSERT_BEFORE", "value": http_filter(limit)},
    }]
    return {**obj, "spec": spec}
