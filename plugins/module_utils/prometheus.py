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
from urllib.parse import urlencode, urlsplit

from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.urls import ConnectionError as UrlConnectionError
from ansible.module_utils.urls import SSLValidationError, open_url

from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption, Problems

INSTANT_PATH = "/api/v1/query"
RANGE_PATH = "/api/v1/query_range"
# Prometheus refuses range queries with more points per series than this.
MAX_POINTS = 11000
USER_AGENT = "meshtune.mesh.prometheus_query"

_DURATION_UNITS = OrderedDict([("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600),
                               ("ms", 0.001), ("m", 60), ("s", 1)])
_DURATION_PART = r"(\d+(?:\.\d+)?)(ms|y|w|d|h|m|s)"
DURATION_RE = re.compile(rf"^(?:{_DURATION_PART})+$")
RFC3339_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
                        r"([Zz]|[+-]\d{2}:\d{2})$")
RELATIVE_RE = re.compile(r"^(?:now)?\s*([+-])\s*(\S+)$")
NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
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
    """The base URL without a trailing slash: http(s), a host, no query string."""
    parts = urlsplit(value or "")
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise InvalidOption(path, "an http(s) URL of the Prometheus server, such as "
                                  "http://prometheus.istio-system:9090", value)
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

    timeout = params.get("timeout")
    if timeout is not None and (not math.isfinite(timeout) or timeout <= 0):
        problems.add("timeout", "a positive number of seconds", timeout)
    if params.get("bearer_token") is not None and params.get("username") is not None:
        problems.add("bearer_token", "either bearer_token or username/password, not both", "(hidden)")
    if params.get("client_key") is not None and params.get("client_cert") is None:
        problems.add("client_cert", "a client certificate to go with client_key", None)
    for option in ("ca_cert", "client_cert", "client_key"):
        problems.check(check_file, option, params.get(option))
    for name, header in (params.get("headers") or {}).items():
        if isinstance(header, (dict, list)) or header is None:
            problems.add(f"headers.{name}", "a string header value", header)
    message = problems.message()
    if message:
        return message, None
    return None, Plan("range" if is_range else "instant", queries, time, start, end, step)


def sample_value(text):
    """A float from Prometheus's string value ("1.5", "NaN", "+Inf", "-Inf")."""
    return float(text)


def _histogram(data):
    """A native histogram sample with its numbers as floats."""
    return {
        "count": float(data.get("count", "0")),
        "sum": float(data.get("sum", "0")),
        "buckets": [[rule, float(lower), float(upper), float(count)]
                    for rule, lower, upper, count in data.get("buckets") or []],
    }


def convert(data):
    """{result_type, result, value}: typed samples of a query's `data` object.

    value is the single number of a scalar or of a one-sample vector, else None, so a figure
    can be read as `.value` without indexing.
    """
    result_type = data.get("resultType")
    raw = data.get("result")
    value = None
    if result_type == "vector":
        result = []
        for sample in raw:
            if "histogram" in sample:
                timestamp, histogram = sample["histogram"]
                result.append({"metric": sample.get("metric", {}), "histogram": _histogram(histogram),
                               "timestamp": timestamp})
            else:
                timestamp, text = sample["value"]
                result.append({"metric": sample.get("metric", {}), "value": sample_value(text),
                               "timestamp": timestamp})
        if len(result) == 1 and "value" in result[0]:
            value = result[0]["value"]
    elif result_type == "matrix":
        result = []
        for series in raw:
            entry = {"metric": series.get("metric", {}),
                     "values": [[timestamp, sample_value(text)]
                                for timestamp, text in series.get("values") or []]}
            if series.get("histograms"):
                entry["histograms"] = [[timestamp, _histogram(histogram)]
                                       for timestamp, histogram in series["histograms"]]
            result.append(entry)
    elif result_type == "scalar":
        result = {"timestamp": raw[0], "value": sample_value(raw[1])}
        value = result["value"]
    elif result_type == "string":
        result = {"timestamp": raw[0], "value": raw[1]}
    else:
        raise ValueError(f"unknown result type {result_type!r}")
    return {"result_type": result_type, "result": result, "value": value}


def one_line(text):
    return " ".join(to_text(text).split())


def format_seconds(seconds):
    """Seconds as Prometheus reads them: a plain decimal, millisecond precision."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


class PrometheusClient:
    """Posts PromQL to one Prometheus server; errors become one-line PrometheusError messages."""

    def __init__(self, url, timeout=30.0, headers=None, bearer_token=None, username=None,
                 password=None, validate_certs=True, ca_cert=None, client_cert=None, client_key=None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.headers = {str(k): str(v) for k, v in (headers or {}).items()}
        if bearer_token is not None:
            self.headers["Authorization"] = "Bearer " + bearer_token
        self.username = username
        self.password = password
        self.validate_certs = validate_certs
        self.ca_cert = ca_cert
        self.client_cert = client_cert
        self.client_key = client_key

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
        try:
            answer = json.loads(to_text(body))
        except ValueError as err:
            raise PrometheusError(f"{self.url}{path} did not answer with JSON ({one_line(err)}): "
                                  "is it a Prometheus server?") from err
        if not isinstance(answer, dict) or answer.get("status") != "success":
            raise PrometheusError(self._refusal(name, query, answer))
        try:
            converted = convert(answer.get("data") or {})
        except (KeyError, TypeError, ValueError) as err:
            raise PrometheusError(f"{self.url}{path} sent a result this module cannot read "
                                  f"({one_line(err)}) for query {name!r}") from err
        return converted, answer.get("warnings") or []

    def _post(self, name, query, path, form):
        headers = dict(self.headers)
        headers.setdefault("Accept", "application/json")
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        url = self.url + path
        try:
            response = open_url(
                url, data=urlencode(form), headers=headers, method="POST", timeout=self.timeout,
                validate_certs=self.validate_certs, url_username=self.username,
                url_password=self.password, force_basic_auth=self.username is not None,
                http_agent=USER_AGENT, ca_path=self.ca_cert, client_cert=self.client_cert,
                client_key=self.client_key, use_netrc=False)
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

    def _http_error(self, name, query, path, err):
        """Prometheus explains refused queries in a JSON body; anything else names the status."""
        try:
            body = err.read()
        except (OSError, AttributeError):
            body = b""
        try:
            answer = json.loads(to_text(body or b""))
        except ValueError:
            answer = None
        if isinstance(answer, dict) and answer.get("status") == "error":
            raise PrometheusError(self._refusal(name, query, answer))
        excerpt = one_line(to_text(body or b"", errors="replace"))[:200]
        detail = ": " + excerpt if excerpt else ""
        raise PrometheusError(f"Prometheus at {self.url} answered HTTP {err.code} "
                              f"{one_line(err.msg or '')} for {path}{detail}")

    def _refusal(self, name, query, answer):
        answer = answer if isinstance(answer, dict) else {}
        kind = answer.get("errorType") or "error"
        error = one_line(answer.get("error") or "no error text")
        label = "" if name == "query" else f" {name!r}"
        promql = one_line(query)
        if kind == "timeout":
            return f"Prometheus at {self.url} timed out evaluating query{label}: {error} (query: {promql})"
        return f"Prometheus at {self.url} rejected query{label} ({kind}): {error} (query: {promql})"

    def _timed_out(self, name):
        label = "" if name == "query" else f" {name!r}"
        return (f"Prometheus at {self.url} did not answer query{label} within "
                f"{format_seconds(self.timeout)} s (option timeout)")

    def _unreachable(self, reason):
        return f"Cannot reach Prometheus at {self.url}: {one_line(to_native(reason))}"


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
