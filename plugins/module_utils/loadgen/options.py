# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The load_test module's options turned into a LoadSpec, with every problem found up front.

No request may leave before all options are known to be good: a typo in a header or a duration
must not cost a half-run load test against someone's service. So everything is checked here,
problems are collected (validate.Problems) and reported in one message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import os
import re

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.engine import LoadSpec, parse_url
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import (
    DURATION_RE,
    InvalidOption,
    Problems,
    check_range,
)

ENGINES = ("local",)
MAX_CONNECTIONS = 10000
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                 "m": 60.0, "h": 3600.0}
# RFC 9110 token: what a method or a header name may contain.
_TOKEN_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def duration_seconds(path, value, minimum=0.0, allow_zero=False):
    """Seconds of a duration string such as 30s, 1m30s or 250ms; InvalidOption otherwise."""
    if not isinstance(value, str) or not DURATION_RE.match(value):
        raise InvalidOption(path, "a duration such as 30s, 250ms, 1m or 1h30m", value)
    seconds = sum(float(number) * _UNIT_SECONDS[unit]
                  for number, unit in _DURATION_PART_RE.findall(value))
    if seconds < minimum or (seconds == 0 and not allow_zero):
        expected = "a duration of at least 0s" if allow_zero else "a duration longer than 0s"
        raise InvalidOption(path, expected, value)
    return seconds


def _check_url(value):
    try:
        parse_url(value)
    except ValueError as err:
        raise InvalidOption("url", str(err), value) from err
    return value


def _check_headers(headers):
    """Header values as strings; names must be tokens, values single lines."""
    checked = {}
    seen = set()
    for name, value in (headers or {}).items():
        path = f"headers.{name}"
        if not isinstance(name, str) or not _TOKEN_RE.match(name):
            raise InvalidOption(path, "a header name of letters, digits and -", name)
        if name.lower() in seen:
            raise InvalidOption(path, "each header name once (names are case-insensitive)", name)
        seen.add(name.lower())
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InvalidOption(path, "a string header value", value)
        text = str(value)
        if "\r" in text or "\n" in text:
            raise InvalidOption(path, "a header value on one line", value)
        checked[name] = text
    return checked


def _check_file(path, value):
    """A file the module may create or replace: its directory must exist and be writable."""
    if value is None:
        return None
    directory = os.path.dirname(os.path.abspath(value)) or "."
    if os.path.isdir(value):
        raise InvalidOption(path, "a file path, not a directory", value)
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise InvalidOption(path, "a path in an existing, writable directory", value)
    return value


def spec_from_params(params, progress=None):
    """(LoadSpec, None) when every option is good, else (None, one message with all problems)."""
    problems = Problems()
    url = problems.check(_check_url, params["url"])
    method = params["method"]
    if not isinstance(method, str) or not _TOKEN_RE.match(method):
        problems.add("method", "an HTTP method such as GET, POST or HEAD", method)
    headers = problems.check(_check_headers, params.get("headers"))
    qps = params["qps"]
    if isinstance(qps, bool) or not isinstance(qps, (int, float)) or not math.isfinite(qps) or qps < 0:
        problems.add("qps", "a number of requests per second, at least 0 (0 = as fast as possible)",
                     qps)
        qps = None
    connections = problems.check(check_range, "connections", params["connections"], 1,
                                 MAX_CONNECTIONS)
    duration = requests = None
    if (params.get("duration") is None) == (params.get("requests") is None):
        problems.add("duration", "exactly one of duration (such as 30s) and requests (a count)",
                     {"duration": params.get("duration"), "requests": params.get("requests")})
    elif params.get("duration") is not None:
        duration = problems.check(duration_seconds, "duration", params["duration"])
        if duration is not None and qps and duration * qps < 1:
            problems.add("duration", f"long enough for one request at qps {qps:g}",
                         params["duration"])
    else:
        requests = problems.check(check_range, "requests", params["requests"], 1)
    warmup = problems.check(duration_seconds, "warmup", params["warmup"], allow_zero=True)
    timeout = problems.check(duration_seconds, "timeout", params["timeout"])
    interval = problems.check(duration_seconds, "progress_interval", params["progress_interval"])
    if params.get("engine", "local") not in ENGINES:
        problems.add("engine", "local (the in-cluster fortio engine is planned)", params["engine"])
    problems.check(_check_file, "result_file", params.get("result_file"))
    problems.check(_check_file, "progress_file", params.get("progress_file"))
    message = problems.message()
    if message:
        return None, message
    spec = LoadSpec(url, method=method.upper(), headers=headers, body=params.get("body") or "",
                    qps=qps, connections=connections, duration=duration, requests=requests,
                    warmup=warmup, timeout=timeout,
                    validate_certs=params.get("validate_certs", True),
                    progress_interval=interval, progress=progress)
    return spec, None
