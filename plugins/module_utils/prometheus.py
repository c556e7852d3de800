# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Instant and range PromQL queries through Prometheus's HTTP API, with typed results.

Prometheus sends sample values as strings ("0.25", "NaN", "+Inf"); callers get floats. Times given
as RFC3339, unix seconds or relative to now (`-10m`, `now`) are resolved once per call, so several
queries of one task are evaluated at the same instant and their figures fit together.

Every option is checked before the first request (see plan_queries); a failure of the server or
the query is one line naming the URL and the reason (PrometheusError).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import json
import math
import os
import re
import socket
from collections import OrderedDict, namedtuple
from datetime import datetime
from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.urls import ConnectionError as UrlConnectionError
from ansible.module_utils.urls import Request, SSLValidationError, make_context

from ansible_collections.meshtune.mesh.plugins.module_utils.redact import (
    is_secret_header,
    redact_text,
    redact_url,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption, Problems

INSTANT_PATH = "/api/v1/query"
RANGE_PATH = "/api/v1/query_range"
# Prometheus refuses range queries with more points per series than this.
MAX_POINTS = 11000
USER_AGENT = "meshtune.mesh.prometheus_query"
# The longest wait for one answer: far above any query Prometheus would still evaluate, and small
# enough for the socket layer (which refuses timeouts beyond a few hundred years).
MAX_TIMEOUT = 86400

_DURATION_UNITS = OrderedDict([("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600),
                               ("ms", 0.001), ("m", 60), ("s", 1)])
_DURATION_PART = r"(\d+(?:\.\d+)?)(ms|y|w|d|h|m|s)"
DURATION_RE = re.compile(rf"^(?:{_DURATION_PART})+\Z")
RFC3339_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
                        r"([Zz]|[+-]\d{2}:\d{2})\Z")
RELATIVE_RE = re.compile(r"^(?:now)?\s*([+-])\s*(\S+)\Z")
# RFC 9110 token: what a header name may contain.
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z")
DURATION_FORM = "a duration such as 30s, 1m, 1h30m or a number of seconds"
TIME_FORM = "an RFC3339 time (2024-05-01T12:00:00Z), unix seconds, now, or a relative time such as -10m"


class PrometheusError(Exception):
    """A query that Prometheus refused or could not answer: one line for fail_json."""


def parse_duration(path, value):
    """Seconds from a Prometheus duration (30s, 1m30s, 500ms, 1d) or a number of seconds."""
    if isinstance(value, bool) or value is None:
        raise InvalidOption(path, DURATION_FORM, value)
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip()
        if NUMBER_RE.match(text):
            seconds = float(text)
        elif DURATION_RE.match(text):
            seconds = sum(float(number) * _DURATION_UNITS[unit]
                          for number, unit in re.findall(_DURATION_PART, text))
        else:
            raise InvalidOption(path, DURATION_FORM, value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidOption(path, "a positive " + DURATION_FORM[2:], value)
    return seconds


def parse_rfc3339(text):
    """Unix seconds of an RFC3339 time; None when the text is not one (or not a real date)."""
    match = RFC3339_RE.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    try:
        moment = datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    seconds = calendar.timegm(moment.timetuple()) + float(match.group(7) or 0)
    zone = match.group(8)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds


def parse_time(path, value, now):
    """Unix seconds from RFC3339, unix seconds, `now`, or now plus/minus a duration (`-10m`)."""
    if isinstance(value, bool) or value is None:
        raise InvalidOption(path, TIME_FORM, value)
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip()
        relative = RELATIVE_RE.match(text)
        if text == "now":
            seconds = now
        elif NUMBER_RE.match(text):
            seconds = float(text)
        elif relative:
            try:
                offset = parse_duration(path, relative.group(2))
            except InvalidOption as err:
                raise InvalidOption(path, TIME_FORM, value) from err
            seconds = now + offset if relative.group(1) == "+" else now - offset
        else:
            seconds = parse_rfc3339(text)
            if seconds is None:
                raise InvalidOption(path, TIME_FORM, value)
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidOption(path, TIME_FORM + " after 1970", value)
    return seconds


def check_url(path, value):
    """The base URL without a trailing slash: http(s), a host, no query string.

    A bad URL is quoted with its credentials masked: it may still hold a real password.
    """
    try:
        parts = urlsplit(value or "")
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = None, False
    if parts is None or not port_ok or parts.scheme not in ("http", "https") or not parts.hostname \
            or parts.query or parts.fragment:
        raise InvalidOption(path, "an http(s) URL of the Prometheus server, such as "
                                  "http://prometheus.istio-system:9090", redact_url(value))
    return value.rstrip("/")


def check_query(path, value):
    if not isinstance(value, str) or not value.strip():
        raise InvalidOption(path, "a PromQL expression", value)
    return value


def check_file(path, value):
    if value is not None and not os.path.isfile(value):
        raise InvalidOption(path, "the path of an existing file", value)
    return value


# kind: "instant" or "range"; queries: OrderedDict name -> PromQL (one entry named "query" for
# the single-query form); time/start/end/step in seconds.
Plan = namedtuple("Plan", "kind queries time start end step")


def connection_argument_spec(url_option="url", prefix=""):
    """The options that reach a Prometheus server (doc fragment meshtune.mesh.prometheus, or
    meshtune.mesh.prometheus.PREFIXED for prefix "prometheus_"), to merge into a module's argument
    spec. The URL option is named by the module and documented there. A module that also takes
    kubernetes.core's auth options (ca_cert, validate_certs, username...) uses the prefix."""
    spec = {
        "timeout": {"type": "float", "default": 30},
        "bearer_token": {"type": "str", "no_log": True},
        "username": {"type": "str"},
        "password": {"type": "str", "no_log": True},
        "ca_cert": {"type": "path"},
        "client_cert": {"type": "path"},
        "client_key": {"type": "path", "no_log": False},
        "validate_certs": {"type": "bool", "default": True},
        "headers": {"type": "dict"},
    }
    return {url_option: {"type": "str", "required": True},
            **{prefix + name: option for name, option in spec.items()}}


def connection_module_options(prefix=""):
    """AnsibleModule keyword arguments that go with connection_argument_spec."""
    return {"mutually_exclusive": [(prefix + "bearer_token", prefix + "username")],
            "required_together": [(prefix + "username", prefix + "password")]}


# Module options that go with connection_argument_spec.
CONNECTION_MODULE_OPTIONS = connection_module_options()


def add_connection_problems(problems, params, url_option="url", prefix=""):
    """Add to validate.Problems every problem with the connection options (url_option None: the
    URL is checked by the caller)."""
    if url_option is not None:
        problems.check(check_url, url_option, params.get(url_option))
    timeout = params.get(prefix + "timeout")
    if timeout is not None and (not math.isfinite(timeout) or timeout <= 0 or timeout > MAX_TIMEOUT):
        problems.add(prefix + "timeout", f"a positive number of seconds, at most {MAX_TIMEOUT} (a day)",
                     timeout)
    if params.get(prefix + "bearer_token") is not None and params.get(prefix + "username") is not None:
        problems.add(prefix + "bearer_token", f"either {prefix}bearer_token or {prefix}username/"
                                              f"{prefix}password, not both", "(hidden)")
    if params.get(prefix + "client_key") is not None and params.get(prefix + "client_cert") is None:
        problems.add(prefix + "client_cert", f"a client certificate to go with {prefix}client_key", None)
    for option in ("ca_cert", "client_cert", "client_key"):
        problems.check(check_file, prefix + option, params.get(prefix + option))
    for name, header in (params.get(prefix + "headers") or {}).items():
        shown = "(hidden)" if is_secret_header(name) else header
        where = f"{prefix}headers.{name}"
        if not isinstance(name, str) or not HEADER_NAME_RE.match(name):
            problems.add(where, "a header name of letters, digits and -", name)
        elif isinstance(header, (dict, list, bool)) or header is None:
            problems.add(where, "a string header value", shown)
        elif any(char in str(header) for char in "\r\n\0"):
            problems.add(where, "a header value on one line", shown)


def client_from_params(params, url_option="url", prefix=""):
    """A PrometheusClient for options checked by add_connection_problems."""
    return PrometheusClient(
        params[url_option], timeout=params[prefix + "timeout"], headers=params[prefix + "headers"],
        bearer_token=params[prefix + "bearer_token"], username=params[prefix + "username"],
        password=params[prefix + "password"], validate_certs=params[prefix + "validate_certs"],
        ca_cert=params[prefix + "ca_cert"], client_cert=params[prefix + "client_cert"],
        client_key=params[prefix + "client_key"])


def plan_queries(params, now):
    """(message, plan): every problem with the options as one message, or what to ask."""
    problems = Problems()
    problems.check(check_url, "url", params.get("url"))
    queries = OrderedDict()
    if params.get("query") is not None:
        if problems.check(check_query, "query", params["query"]) is not None:
            queries["query"] = params["query"]
    elif params.get("queries") is not None:
        if not params["queries"]:
            problems.add("queries", "at least one name: PromQL pair", {})
        for name, expression in params["queries"].items():
            if problems.check(check_query, f"queries.{name}", expression) is not None:
                queries[name] = expression
    else:
        problems.add("query", "a PromQL expression (query, or queries for several)", None)

    is_range = params.get("start") is not None
    time = start = end = step = None
    if params.get("step") is not None:
        step = problems.check(parse_duration, "step", params["step"])
    if params.get("end") is not None:
        end = problems.check(parse_time, "end", params["end"], now)
    if is_range:
        if params.get("time") is not None:
            problems.add("time", "no time with start (time is the instant of an instant query; "
                                 "start, end and step make a range query)", params["time"])
        start = problems.check(parse_time, "start", params["start"], now)
        if params.get("end") is None:
            end = now
        if params.get("step") is None:
            problems.add("step", "a step for the range query, such as 30s", None)
        if start is not None and end is not None and end < start:
            problems.add("end", f"a time not before start ({params['start']})", params.get("end"))
        elif None not in (start, end, step) and (end - start) / step > MAX_POINTS:
            smallest = math.ceil((end - start) / MAX_POINTS)
            problems.add("step", f"at least {smallest}s, as Prometheus returns at most {MAX_POINTS} "
                                 "points per series", params["step"])
    else:
        range_options = [key for key in ("end", "step") if params.get(key) is not None]
        if range_options:
            verb = "makes" if len(range_options) == 1 else "make"
            problems.add("start", f"a start time, as {' and '.join(range_options)} {verb} a range query",
                         None)
        time = problems.check(parse_time, "time", params.get("time") or "now", now)

    add_connection_problems(problems, params, url_option=None)
    message = problems.message()
    if message:
        return message, None
    return None, Plan("range" if is_range else "instant", queries, time, start, end, step)


# Reading answers. Prometheus's HTTP API answers {status, data, warnings, infos, errorType, error};
# every part a server sends is checked here, once, so a server (or a proxy in front of it) that
# sends something else fails the query with the JSON path of what is wrong, never a traceback.


def _describe(value):
    """A short stand-in for a value in messages: never a whole answer."""
    if isinstance(value, dict):
        return f"an object with {len(value)} keys" if value else {}
    if isinstance(value, list):
        return f"a list of {len(value)}" if value else []
    if isinstance(value, str) and len(value) > 80:
        return value[:77] + "..."
    return value


def _shape(path, expected, value):
    return InvalidOption(path, expected, _describe(value))


def sample_value(text, path="value"):
    """A float from Prometheus's string value ("1.5", "NaN", "+Inf", "-Inf")."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise _shape(path, "a sample value (a number as a string)", text)
    try:
        return float(text)
    except ValueError as err:
        raise _shape(path, "a sample value (a number as a string)", text) from err


def _timestamp(path, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _shape(path, "a unix time in seconds", value)
    return value


def _pair(path, value, expected="a [timestamp, value] pair"):
    if not isinstance(value, list) or len(value) != 2:
        raise _shape(path, expected, value)
    return _timestamp(path + "[0]", value[0]), value[1]


def _metric(path, value):
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        raise _shape(path, "a map of label name to value", value)
    return value


def _mapping(path, value, expected):
    if not isinstance(value, dict):
        raise _shape(path, expected, value)
    return value


def _list(path, value, expected):
    if value is None:
        return []
    if not isinstance(value, list):
        raise _shape(path, expected, value)
    return value


def _histogram(data, path="histogram"):
    """A native histogram sample with its numbers as floats."""
    _mapping(path, data, "a native histogram {count, sum, buckets}")
    buckets = []
    for index, bucket in enumerate(_list(path + ".buckets", data.get("buckets"),
                                         "a list of [rule, lower, upper, count] buckets")):
        where = f"{path}.buckets[{index}]"
        if not isinstance(bucket, list) or len(bucket) != 4:
            raise _shape(where, "a [rule, lower, upper, count] bucket", bucket)
        rule = bucket[0]
        if isinstance(rule, bool) or not isinstance(rule, int) or not 0 <= rule <= 3:
            raise _shape(where + "[0]", "a boundary rule 0 to 3", rule)
        buckets.append([rule] + [sample_value(bucket[position], f"{where}[{position}]")
                                 for position in (1, 2, 3)])
    return {
        "count": sample_value(data.get("count", "0"), path + ".count"),
        "sum": sample_value(data.get("sum", "0"), path + ".sum"),
        "buckets": buckets,
    }


def _vector_sample(path, sample):
    _mapping(path, sample, "a sample {metric, value} or {metric, histogram}")
    metric = _metric(path + ".metric", sample.get("metric"))
    if "histogram" in sample:
        timestamp, histogram = _pair(path + ".histogram", sample["histogram"],
                                     "a [timestamp, histogram] pair")
        return {"metric": metric, "histogram": _histogram(histogram, path + ".histogram[1]"),
                "timestamp": timestamp}
    if "value" not in sample:
        raise _shape(path, "a sample {metric, value} or {metric, histogram}", sample)
    timestamp, text = _pair(path + ".value", sample["value"])
    return {"metric": metric, "value": sample_value(text, path + ".value[1]"), "timestamp": timestamp}


def _matrix_series(path, series):
    _mapping(path, series, "a series {metric, values}")
    entry = {"metric": _metric(path + ".metric", series.get("metric")), "values": []}
    for index, point in enumerate(_list(path + ".values", series.get("values"),
                                        "a list of [timestamp, value] pairs")):
        where = f"{path}.values[{index}]"
        timestamp, text = _pair(where, point)
        entry["values"].append([timestamp, sample_value(text, where + "[1]")])
    histograms = _list(path + ".histograms", series.get("histograms"),
                       "a list of [timestamp, histogram] pairs")
    if histograms:
        entry["histograms"] = []
        for index, point in enumerate(histograms):
            where = f"{path}.histograms[{index}]"
            timestamp, histogram = _pair(where, point, "a [timestamp, histogram] pair")
            entry["histograms"].append([timestamp, _histogram(histogram, where + "[1]")])
    return entry


RESULT_TYPES = ("vector", "matrix", "scalar", "string")


def convert(data, path="data"):
    """{result_type, result, value}: typed samples of a query's `data` object.

    value is the single number of a scalar or of a one-sample vector, else None, so a figure
    can be read as `.value` without indexing. InvalidOption names the part of `data` that is not
    what Prometheus's HTTP API sends.
    """
    _mapping(path, data, "an object with resultType and result")
    result_type = data.get("resultType")
    raw = data.get("result")
    where = path + ".result"
    value = None
    if result_type == "vector":
        result = [_vector_sample(f"{where}[{index}]", sample)
                  for index, sample in enumerate(_list(where, raw, "a list of samples"))]
        if len(result) == 1 and "value" in result[0]:
            value = result[0]["value"]
    elif result_type == "matrix":
        result = [_matrix_series(f"{where}[{index}]", series)
                  for index, series in enumerate(_list(where, raw, "a list of series"))]
    elif result_type == "scalar":
        timestamp, text = _pair(where, raw)
        result = {"timestamp": timestamp, "value": sample_value(text, where + "[1]")}
        value = result["value"]
    elif result_type == "string":
        timestamp, text = _pair(where, raw)
        if not isinstance(text, str):
            raise _shape(where + "[1]", "a string", text)
        result = {"timestamp": timestamp, "value": text}
    else:
        raise _shape(path + ".resultType", "one of " + ", ".join(RESULT_TYPES), result_type)
    return {"result_type": result_type, "result": result, "value": value}


def read_answer(answer):
    """(converted data, warnings) of a successful answer; InvalidOption naming what is wrong."""
    _mapping("answer", answer, "a JSON object with status and data")
    if answer.get("status") != "success":
        raise _shape("status", "success or error", answer.get("status"))
    notes = []
    for key in ("warnings", "infos"):
        listed = _list(key, answer.get(key), "a list of strings")
        for index, note in enumerate(listed):
            if not isinstance(note, str):
                raise _shape(f"{key}[{index}]", "a string", note)
        if key == "warnings":
            notes = listed
    if "data" not in answer:
        raise _shape("data", "the query result", None)
    return convert(answer["data"]), notes


def one_line(text):
    return " ".join(to_text(text).split())


def format_seconds(seconds):
    """Seconds as Prometheus reads them: a plain decimal, millisecond precision."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def split_credentials(url):
    """(URL without user:password@, user or None, password or None), the two percent-decoded.

    Credentials given in the URL are sent as basic authentication right away, as curl does, not
    only after a 401 challenge (which a server may not send), unless an Authorization header is
    given.
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, colon, password = userinfo.partition(":")
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, unquote(user), unquote(password) if colon else None


class PrometheusClient:
    """Posts PromQL to one Prometheus server; errors become one-line PrometheusError messages.

    Messages name the server by `shown_url`: the URL with any credentials in it masked.
    """

    def __init__(self, url, timeout=30.0, headers=None, bearer_token=None, username=None,
                 password=None, validate_certs=True, ca_cert=None, client_cert=None, client_key=None):
        self.shown_url = redact_url(url.rstrip("/"))
        self.url, url_username, url_password = split_credentials(url.rstrip("/"))
        self.timeout = timeout
        self.headers = {str(k): str(v) for k, v in (headers or {}).items()}
        if bearer_token is not None:
            self.headers["Authorization"] = "Bearer " + bearer_token
        explicit = any(name.lower() == "authorization" for name in self.headers)
        if username is None and url_username is not None and not explicit:
            username, password = url_username, url_password or ""
        self.username = username
        self.password = password
        self.validate_certs = validate_certs
        self.ca_cert = ca_cert
        self.client_cert = client_cert
        self.client_key = client_key
        self._context = None

    def instant(self, name, query, time):
        return self._query(name, query, INSTANT_PATH, {"query": query, "time": format_seconds(time)})

    def range(self, name, query, start, end, step):
        return self._query(name, query, RANGE_PATH, {
            "query": query, "start": format_seconds(start), "end": format_seconds(end),
            "step": format_seconds(step)})

    def _query(self, name, query, path, form):
        """(converted result, warnings) of one query."""
        form["timeout"] = format_seconds(self.timeout)
        body = self._post(name, query, path, form)
        answer = self._json(path, body)
        if isinstance(answer, dict) and answer.get("status") == "error":
            raise PrometheusError(self._refusal(name, query, answer))
        try:
            return read_answer(answer)
        except InvalidOption as err:
            label = "" if name == "query" else f" {name!r}"
            raise PrometheusError(f"The answer of {self.shown_url}{path} to query{label} is not what "
                                  f"Prometheus's HTTP API sends: {one_line(err)}") from err

    def _json(self, path, body):
        try:
            return json.loads(to_text(body, errors="surrogate_or_replace"))
        except RecursionError as err:
            raise PrometheusError(f"{self.shown_url}{path} answered with JSON nested too deeply to "
                                  "be a Prometheus answer") from err
        except ValueError as err:
            raise PrometheusError(f"{self.shown_url}{path} did not answer with JSON ({one_line(err)}): "
                                  "is it a Prometheus server?") from err

    def _post(self, name, query, path, form):
        headers = dict(self.headers)
        headers.setdefault("Accept", "application/json")
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        url = self.url + path
        try:
            response = Request().open(
                "POST", url, data=urlencode(form), headers=headers, timeout=self.timeout,
                validate_certs=self.validate_certs, url_username=self.username,
                url_password=self.password, force_basic_auth=self.username is not None,
                http_agent=USER_AGENT, use_netrc=False, context=self._tls_context())
            return response.read()
        except HTTPError as err:
            return self._http_error(name, query, path, err)
        except socket.timeout as err:
            raise PrometheusError(self._timed_out(name)) from err
        except URLError as err:
            if isinstance(err.reason, socket.timeout):
                raise PrometheusError(self._timed_out(name)) from err
            raise PrometheusError(self._unreachable(err.reason)) from err
        except (UrlConnectionError, SSLValidationError, HTTPException, OSError) as err:
            raise PrometheusError(self._unreachable(err)) from err

    def _tls_context(self):
        """The TLS settings, built once per client: loading the CA bundle costs a tenth of a
        second, which open_url would pay again for every query."""
        if self._context is None:
            self._context = make_context(cafile=self.ca_cert, validate_certs=self.validate_certs,
                                         client_cert=self.client_cert, client_key=self.client_key)
        return self._context

    def _http_error(self, name, query, path, err):
        """Prometheus explains refused queries in a JSON body; anything else names the status."""
        try:
            body = err.read()
        except (OSError, AttributeError):
            body = b""
        try:
            answer = json.loads(to_text(body or b"", errors="surrogate_or_replace"))
        except (ValueError, RecursionError):
            answer = None
        if isinstance(answer, dict) and answer.get("status") == "error":
            raise PrometheusError(self._refusal(name, query, answer))
        excerpt = one_line(to_text(body or b"", errors="replace"))[:200]
        detail = ": " + excerpt if excerpt else ""
        raise PrometheusError(f"Prometheus at {self.shown_url} answered HTTP {err.code} "
                              f"{one_line(err.msg or '')} for {path}{detail}")

    def _refusal(self, name, query, answer):
        kind = answer.get("errorType")
        kind = kind if isinstance(kind, str) and kind else "error"
        error = answer.get("error")
        error = one_line(error) if isinstance(error, str) and error.strip() else "no error text"
        label = "" if name == "query" else f" {name!r}"
        promql = one_line(query)
        if kind == "timeout":
            return (f"Prometheus at {self.shown_url} timed out evaluating query{label}: {error} "
                    f"(query: {promql})")
        return f"Prometheus at {self.shown_url} rejected query{label} ({kind}): {error} (query: {promql})"

    def _timed_out(self, name):
        label = "" if name == "query" else f" {name!r}"
        return (f"Prometheus at {self.shown_url} did not answer query{label} within "
                f"{format_seconds(self.timeout)} s (option timeout)")

    def _unreachable(self, reason):
        return f"Cannot reach Prometheus at {self.shown_url}: {redact_text(one_line(to_native(reason)))}"


def run_queries(client, plan):
    """(results by name, warnings): every query of the plan, at the plan's time or range."""
    results = OrderedDict()
    warnings = []
    for name, query in plan.queries.items():
        if plan.kind == "range":
            converted, notes = client.range(name, query, plan.start, plan.end, plan.step)
        else:
            converted, notes = client.instant(name, query, plan.time)
        converted["query"] = query
        results[name] = converted
        warnings.extend(f"Query {name!r}: {one_line(note)}" for note in notes)
    return results, warnings
