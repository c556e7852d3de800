# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Read fortio's JSON result: latency percentiles, request outcomes and the achieved rate.

Both load engines (fortio in the mesh, the local engine) write this shape, so everything that
judges or reports a run reads it through here. Durations in the file are seconds; the figures
returned here are milliseconds, because latency targets are written in milliseconds.

Malformed input raises InvalidOption naming the JSON path (``result.DurationHistogram.Data[2]``),
so a module can report every problem of a call at once. validate_result checks a whole result
once, before anything reads a figure from it: everything that judges or reports a run calls it, so
an impossible result (a negative latency, more return codes than calls) is refused the same way
everywhere instead of being judged.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import math
from collections import OrderedDict
from decimal import Decimal

from ansible_collections.meshtune.mesh.plugins.module_utils.files import write_atomically
from ansible_collections.meshtune.mesh.plugins.module_utils.histogram import (
    DEFAULT_PERCENTILES,
    LOG_LINEAR,
    FortioBuckets,
    HistogramRecorder,
    percentile_from_buckets,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption

# gRPC health runs report these instead of HTTP codes.
GRPC_OK_CODES = ("SERVING", "OK")
# fortio prints percentiles with this many decimals of the percentile itself (99.9, 99.99).
PERCENTILE_TOLERANCE = 1e-9
# fortio's counts are Go int64s; anything larger is not a count fortio wrote (and would overflow
# the float arithmetic of the percentiles).
MAX_COUNT = 2 ** 63 - 1
# Cumulative percentages and percentile values are computed in floating point: rounding may put
# one a hair below the previous one.
ORDER_TOLERANCE = 1e-9


def read_result_file(where, path):
    """The parsed JSON of a fortio result file; InvalidOption naming `where` when unreadable."""
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidOption(where, "a readable fortio JSON result file ({})".format(
            getattr(err, "strerror", None) or err), path) from err
    except RecursionError as err:
        raise InvalidOption(where, "a fortio JSON result file, but its JSON is nested too deeply to "
                            "be one", path) from err
    except ValueError as err:
        raise InvalidOption(where, f"a fortio JSON result file, but it is not JSON ({err})",
                            path) from err
    return data


def _number(where, value, allow_string=False):
    """A finite or infinite float from a JSON number (or, when allowed, a numeric string)."""
    if isinstance(value, bool) or value is None:
        raise InvalidOption(where, "a number", value)
    if isinstance(value, (int, float)):
        return float(value)
    if allow_string and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise InvalidOption(where, "a number", value)


def _describe(value):
    """A short stand-in for a value in messages: never a whole result document."""
    if isinstance(value, dict) and value:
        return f"an object with {len(value)} keys"
    if isinstance(value, list) and value:
        return f"a list of {len(value)}"
    return value


class HistogramReader:
    """One of fortio's histograms as a result document holds it (`DurationHistogram`,
    `ErrorsDurationHistogram`); histogram.HistogramRecorder is the one a run records into."""

    def __init__(self, where, data):
        if not isinstance(data, dict):
            raise InvalidOption(where, "a fortio histogram (an object with Count and Data)",
                                _describe(data))
        self.where = where
        self.data = data

    @property
    def count(self):
        value = self.data.get("Count", 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidOption(self.where + ".Count", "a non-negative integer", _describe(value))
        return value

    def percentile(self, percentile):
        """The percentile in seconds: fortio's own figure when it has it, else from the buckets."""
        listed = self.data.get("Percentiles")
        if listed is not None and not isinstance(listed, list):
            raise InvalidOption(self.where + ".Percentiles", "a list of {Percentile, Value}",
                                _describe(listed))
        for index, entry in enumerate(listed or []):
            path = f"{self.where}.Percentiles[{index}]"
            if not isinstance(entry, dict):
                raise InvalidOption(path, "an object with Percentile and Value", _describe(entry))
            number = _number(path + ".Percentile", entry.get("Percentile"))
            if abs(number - percentile) <= PERCENTILE_TOLERANCE:
                return _number(path + ".Value", entry.get("Value"))
        return self.percentile_from_buckets(percentile)

    def buckets(self):
        """(start, end, cumulative percent) of each bucket, from the counts when present."""
        data = self.data.get("Data")
        path = self.where + ".Data"
        if not isinstance(data, list) or not data:
            raise InvalidOption(path, "histogram buckets (a non-empty list of {Start, End, Count})",
                                _describe(data))
        total = sum(self._bucket_count(path, index, bucket) for index, bucket in enumerate(data))
        buckets = []
        seen = 0
        for index, bucket in enumerate(data):
            where = f"{path}[{index}]"
            start = _number(where + ".Start", bucket.get("Start"))
            end = _number(where + ".End", bucket.get("End"))
            if "Count" in bucket:
                seen += self._bucket_count(path, index, bucket)
                cumulative = 100.0 * seen / total if total else 0.0
            else:
                cumulative = _number(where + ".Percent", bucket.get("Percent"))
            buckets.append((start, end, cumulative))
        return buckets

    @staticmethod
    def _bucket_count(path, index, bucket):
        where = f"{path}[{index}]"
        if not isinstance(bucket, dict):
            raise InvalidOption(where, "a bucket {Start, End, Count}", _describe(bucket))
        if "Count" not in bucket and "Percent" not in bucket:
            raise InvalidOption(where + ".Count", "a bucket count", None)
        value = bucket.get("Count", 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidOption(where + ".Count", "a non-negative integer", _describe(value))
        return value

    def percentile_from_buckets(self, percentile):
        buckets = self.buckets()
        count = self.count or sum(self._bucket_count(self.where + ".Data", i, b)
                                  for i, b in enumerate(self.data["Data"]))
        if count <= 0:
            raise InvalidOption(self.where + ".Count", "at least one recorded call", count)
        minimum = self.data.get("Min", buckets[0][0])
        maximum = self.data.get("Max", buckets[-1][1])
        return percentile_from_buckets(buckets, count, _number(self.where + ".Min", minimum),
                                       _number(self.where + ".Max", maximum), percentile)


class FortioResult:
    """A fortio run result (the `-json` output), read lazily: only what a caller asks for."""

    def __init__(self, where, data):
        if not isinstance(data, dict):
            raise InvalidOption(where, "a fortio result (a JSON object with DurationHistogram)",
                                _describe(data))
        self.where = where
        self.data = data

    def histogram(self, key="DurationHistogram"):
        if key not in self.data:
            raise InvalidOption(f"{self.where}.{key}", "a fortio histogram", None)
        return HistogramReader(f"{self.where}.{key}", self.data[key])

    def percentile_ms(self, percentile):
        """Latency at `percentile` (50, 99.9) in milliseconds, over all calls (errors included)."""
        return self.histogram().percentile(percentile) * 1000.0

    def ret_codes(self):
        codes = self.data.get("RetCodes")
        path = self.where + ".RetCodes"
        if not isinstance(codes, dict) or not codes:
            raise InvalidOption(path, "a map of status code to count, such as {\"200\": 1000}",
                                _describe(codes))
        for code, count in codes.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise InvalidOption(f"{path}.{code}", "a non-negative integer",
                                    _describe(count))
        return codes

    def outcomes(self):
        """(successful calls, all calls): 2xx (or gRPC SERVING) against everything sent.

        Socket errors appear as code -1 in RetCodes; a result that records errors only in
        ErrorsDurationHistogram still counts them, without counting any call twice.
        """
        codes = self.ret_codes()
        ok = sum(count for code, count in codes.items() if is_success_code(code))
        sent = sum(codes.values())
        errors = 0
        if self.data.get("ErrorsDurationHistogram") is not None:
            errors = self.histogram("ErrorsDurationHistogram").count
        failed = max(sent - ok, errors)
        return ok, ok + failed

    def success_rate(self):
        ok, total = self.outcomes()
        if total == 0:
            raise InvalidOption(self.where + ".RetCodes", "a run with at least one call", {})
        return ok / total

    def requested_qps(self):
        """The fixed rate asked for; InvalidOption for max-speed runs (-qps 0 or "max")."""
        path = self.where + ".RequestedQPS"
        value = self.data.get("RequestedQPS")
        try:
            rate = _number(path, value, allow_string=True)
        except InvalidOption as err:
            raise InvalidOption(path, "a fixed request rate (the run was not made with -qps N)",
                                _describe(value)) from err
        if not math.isfinite(rate) or rate <= 0:
            raise InvalidOption(path, "a fixed request rate (the run was not made with -qps N)", value)
        return rate

    def actual_qps(self):
        return _number(self.where + ".ActualQPS", self.data.get("ActualQPS"))

    def qps_ratio(self):
        """Achieved rate over requested rate: below 1 when the load could not be sustained."""
        return self.actual_qps() / self.requested_qps()


def is_success_code(code):
    text = str(code).strip()
    if text in GRPC_OK_CODES:
        return True
    try:
        number = int(text)
    except ValueError:
        return False
    return 200 <= number <= 299


# ---- checking a whole result -----------------------------------------------------------------

def _finite(where, value, minimum=None, maximum=None, allow_string=False):
    """A finite float within [minimum, maximum]; InvalidOption naming the bound otherwise."""
    number = _number(where, value, allow_string=allow_string)
    if not math.isfinite(number):
        raise InvalidOption(where, "a finite number", _describe(value))
    if minimum is not None and number < minimum:
        raise InvalidOption(where, f"a number of at least {minimum:g}", _describe(value))
    if maximum is not None and number > maximum:
        raise InvalidOption(where, f"a number of at most {maximum:g}", _describe(value))
    return number


def _count(where, value):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise InvalidOption(where, "a count (an integer of at least 0)", _describe(value))
    return value


def _string(where, value):
    if value is not None and not isinstance(value, str):
        raise InvalidOption(where, "a string", _describe(value))


def _validate_buckets(where, histogram, count):
    """The number of calls the buckets hold (None when they give shares only)."""
    data = histogram.get("Data")
    if data is None:
        data = []
    if not isinstance(data, list):
        raise InvalidOption(where + ".Data", "a list of buckets {Start, End, Count}", _describe(data))
    if count and not data and histogram.get("Percentiles") is None:
        raise InvalidOption(where + ".Data", f"the buckets of the {count} recorded calls", None)
    total = 0
    previous = None
    for index, bucket in enumerate(data):
        path = f"{where}.Data[{index}]"
        if not isinstance(bucket, dict):
            raise InvalidOption(path, "a bucket {Start, End, Count}", _describe(bucket))
        start = _finite(path + ".Start", bucket.get("Start"), minimum=0)
        end = _finite(path + ".End", bucket.get("End"), minimum=0)
        if start > end:
            raise InvalidOption(path + ".End", f"a number not below Start ({start:g})", bucket.get("End"))
        if "Count" not in bucket and "Percent" not in bucket:
            raise InvalidOption(path + ".Count", "a bucket count", None)
        if "Count" in bucket:
            total += _count(path + ".Count", bucket["Count"])
        percent = None
        if "Percent" in bucket:
            percent = _finite(path + ".Percent", bucket["Percent"], minimum=0, maximum=100)
        if previous is not None:
            previous_start, previous_end, previous_percent = previous
            if start < previous_start or end < previous_end:
                raise InvalidOption(path, "buckets in increasing order (this one starts or ends below "
                                          "the previous one)", {"Start": start, "End": end})
            if percent is not None and previous_percent is not None and \
                    percent < previous_percent - ORDER_TOLERANCE:
                raise InvalidOption(path + ".Percent", f"a cumulative share not below the previous "
                                                       f"bucket's ({previous_percent:g})", percent)
        previous = (start, end, percent)
    if not data or not all("Count" in bucket for bucket in data):
        return None
    if "Count" in histogram and total != count:
        raise InvalidOption(where + ".Count", f"the sum of the bucket counts ({total})", count)
    return total


def _validate_percentiles(where, histogram):
    listed = histogram.get("Percentiles")
    if listed is None:
        return
    if not isinstance(listed, list):
        raise InvalidOption(where + ".Percentiles", "a list of {Percentile, Value}", _describe(listed))
    values = []
    for index, entry in enumerate(listed):
        path = f"{where}.Percentiles[{index}]"
        if not isinstance(entry, dict):
            raise InvalidOption(path, "an object with Percentile and Value", _describe(entry))
        percentile = _finite(path + ".Percentile", entry.get("Percentile"), minimum=0, maximum=100)
        value = _finite(path + ".Value", entry.get("Value"), minimum=0)
        values.append((percentile, value, path))
    ordered = sorted(values)
    for (_low, low_value, _low_path), (_high, high_value, high_path) in zip(ordered, ordered[1:]):
        if high_value < low_value - ORDER_TOLERANCE * max(1.0, low_value):
            raise InvalidOption(high_path + ".Value", f"a latency not below that of a lower percentile "
                                                      f"({low_value:g})", high_value)


def validate_histogram(where, histogram):
    """One of fortio's histograms, checked as a whole: its Count; latencies (Min, Max, Sum, Avg,
    StdDev, bucket bounds, percentile values) finite and not negative; buckets in order, each
    starting no later than it ends, their counts adding up to Count; percentiles within 0..100.

    Returns the number of calls (Count, else the sum of the bucket counts; None if neither)."""
    if not isinstance(histogram, dict):
        raise InvalidOption(where, "a fortio histogram (an object with Count and Data)",
                            _describe(histogram))
    count = _count(where + ".Count", histogram.get("Count", 0))
    given = "Count" in histogram
    figures = {}
    for key in ("Min", "Max", "Sum", "Avg", "StdDev"):
        if histogram.get(key) is not None:
            figures[key] = _finite(f"{where}.{key}", histogram[key], minimum=0)
    if count and "Min" in figures and "Max" in figures and figures["Min"] > figures["Max"]:
        raise InvalidOption(where + ".Max", f"a latency not below Min ({figures['Min']:g})",
                            histogram["Max"])
    in_buckets = _validate_buckets(where, histogram, count)
    _validate_percentiles(where, histogram)
    return count if given else in_buckets


def validate_result(where, data):
    """A FortioResult of a whole result checked once: InvalidOption naming the first field that no
    run can have produced (a negative latency or count, a percentile outside 0..100, a bucket
    ending before it starts, more return codes or errors than calls), or of the wrong type.

    Fields meshtune does not read are not looked at.
    """
    view = FortioResult(where, data)
    calls = validate_histogram(where + ".DurationHistogram", view.histogram().data)
    if data.get("ErrorsDurationHistogram") is not None:
        errors = validate_histogram(where + ".ErrorsDurationHistogram", data["ErrorsDurationHistogram"])
        if None not in (errors, calls) and errors > calls:
            raise InvalidOption(where + ".ErrorsDurationHistogram.Count",
                                f"at most DurationHistogram.Count ({calls}): every call is counted "
                                "there, failed or not", errors)
    codes = data.get("RetCodes")
    if codes is not None:
        if not isinstance(codes, dict):
            raise InvalidOption(where + ".RetCodes", "a map of status code to count, such as "
                                "{\"200\": 1000}", _describe(codes))
        sent = sum(_count(f"{where}.RetCodes.{code}", count) for code, count in codes.items())
        if calls is not None and sent > calls:
            raise InvalidOption(where + ".RetCodes", f"at most DurationHistogram.Count ({calls}) calls "
                                f"in all, but they add up to {sent}", _describe(codes))
    kinds = data.get("ErrorTypes")
    if kinds is not None:
        if not isinstance(kinds, dict):
            raise InvalidOption(where + ".ErrorTypes", "a map of error kind to count", _describe(kinds))
        for kind, count in kinds.items():
            _count(f"{where}.ErrorTypes.{kind}", count)
    requested = data.get("RequestedQPS")
    if requested is not None and requested != "max":
        try:
            _finite(where + ".RequestedQPS", requested, minimum=0, allow_string=True)
        except InvalidOption as err:
            raise InvalidOption(where + ".RequestedQPS", "a request rate (a number of at least 0, or "
                                "max)", _describe(requested)) from err
    for key in ("ActualQPS", "ActualDuration"):
        if data.get(key) is not None:
            _finite(f"{where}.{key}", data[key], minimum=0)
    if data.get("NumThreads") is not None:
        _count(where + ".NumThreads", data["NumThreads"])
    for key in ("Labels", "StartTime", "URL", "RunType", "Version"):
        _string(f"{where}.{key}", data.get(key))
    return view


# Writing, exact round trips and exact merging: the local engine's side of the format. fortio
# writes its results with Go's json.MarshalIndent(result, "", "  ") plus a newline; dumps() writes
# the same bytes, so a result read with loads() and written back is unchanged, and the local
# engine's files look like fortio's.

# fortio's HTTP result fields in the order fortio writes them (periodic.RunnerResults, then
# fhttp.HTTPRunnerResults); result_from_run writes the ones the local engine has.
FORTIO_HTTP_FIELDS = (
    "RunType", "Labels", "StartTime", "RequestedQPS", "RequestedDuration", "ActualQPS",
    "ActualDuration", "NumThreads", "Version", "DurationHistogram", "ErrorsDurationHistogram",
    "Exactly", "Jitter", "Uniform", "NoCatchUp", "RunID", "AccessLoggerInfo", "ID", "RetCodes",
    "IPCountMap", "URL", "NumConnections", "HTTPReqTimeOut", "Sizes", "HeaderSizes", "Sockets",
    "SocketCount", "ConnectionStats", "AbortOn",
)
LOCAL_ENGINE_VERSION = "meshtune.mesh local engine"
# Go's encoding/json escapes these for safe embedding in HTML.
_GO_STRING_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                      ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def loads(text):
    """A result document from JSON text: objects keep their key order, integers stay integers."""
    return json.loads(text)


def _go_float(value):
    """A float64 as Go's encoding/json writes it: shortest digits, exponent only when tiny/huge."""
    if not math.isfinite(value):
        raise ValueError(f"JSON has no {value!r}")
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        return repr(value).replace("e-0", "e-")
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _go_string(value):
    text = json.dumps(value, ensure_ascii=False)
    for char, escape in _GO_STRING_ESCAPES:
        text = text.replace(char, escape)
    return text


def _go_json(value, indent):
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return _go_string(value)
    inner = indent + "  "
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = (f"{inner}{_go_string(str(key))}: {_go_json(item, inner)}" for key, item in value.items())
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(inner + _go_json(item, inner) for item in value) + "\n" + indent + "]"
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def dumps(result):
    """The JSON text fortio would write for this result (two-space indent, final newline)."""
    return _go_json(result, "") + "\n"


def write_result_file(path, result):
    """Write a result atomically (readers never see half a file), with the mode Ansible would
    give it: an existing file's, else 0666 minus the umask."""
    write_atomically(path, dumps(result).encode("utf-8"), prefix=".fortio-", suffix=".json")


def go_duration(seconds):
    """Go's time.Duration String(): 30s, 1m30s, 1.5s, 100ms, 2h0m0s."""
    nanoseconds = round(seconds * 1e9)
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    nanoseconds = abs(nanoseconds)
    if nanoseconds < 1000000000:
        for unit, size in (("ms", 1000000), ("µs", 1000), ("ns", 1)):
            if nanoseconds >= size:
                return sign + _trim_decimal(Decimal(nanoseconds) / size) + unit
    whole_seconds, fraction = divmod(nanoseconds, 1000000000)
    hours, rest = divmod(whole_seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = _trim_decimal(Decimal(secs) + Decimal(fraction) / 1000000000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _trim_decimal(number):
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def rfc3339_nano(moment):
    """Go's time.RFC3339Nano of an aware datetime (fraction without trailing zeros, Z for UTC)."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += ("." + f"{moment.microsecond:06d}").rstrip("0")
    offset = moment.utcoffset()
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def result_from_run(run, labels="", percentiles=None):
    """fortio's HTTP result for a local engine run (engine.RunResult), in fortio's field order.

    ActualDuration is the window the measured requests were sent over and ActualQPS the
    requests sent per second of it, so ActualQPS = DurationHistogram.Count / ActualDuration as
    in fortio's own results. Besides fortio's fields it has ErrorTypes: failed calls by kind
    (timeout, connection_refused, connection_reset, protocol, other); fortio's readers ignore it.
    """
    spec = run.spec
    percentiles = tuple(percentiles or DEFAULT_PERCENTILES)
    if spec.requests is not None:
        requested_duration = f"exactly {spec.requests} calls"
    else:
        requested_duration = go_duration(spec.duration)
    result = OrderedDict()
    result["RunType"] = "HTTP"
    result["Labels"] = labels
    result["StartTime"] = rfc3339_nano(run.start_time)
    result["RequestedQPS"] = f"{spec.qps:.9g}" if spec.qps > 0 else "max"
    result["RequestedDuration"] = requested_duration
    result["ActualQPS"] = float(run.achieved_qps)
    result["ActualDuration"] = round(run.window * 1e9)
    result["NumThreads"] = spec.connections
    result["Version"] = LOCAL_ENGINE_VERSION
    result["DurationHistogram"] = run.histogram.export(percentiles)
    result["ErrorsDurationHistogram"] = run.errors_histogram.export(percentiles)
    result["Exactly"] = spec.requests or 0
    result["Jitter"] = False
    result["Uniform"] = False
    result["NoCatchUp"] = False
    result["RunID"] = 0
    result["RetCodes"] = _go_map(run.codes)
    result["URL"] = spec.url
    result["NumConnections"] = spec.connections
    result["HTTPReqTimeOut"] = round(spec.timeout * 1e9)
    result["SocketCount"] = run.sockets
    result["ErrorTypes"] = _go_map(run.error_kinds)
    return result


def _go_map(counts):
    """A count map as Go writes map[int]int64 / map[string]int: string keys in sorted order."""
    return OrderedDict(sorted((str(key), value) for key, value in counts.items()))


def result_layout(result, resolution=0.001, offset=0.0):
    """The bucket layout of a result's histograms: by who wrote it (its Version).

    The local engine writes log-linear buckets; fortio its fixed table scaled by the run's
    resolution (fortio -r, 0.001 s unless changed) and offset, which its results do not record.
    """
    if result.get("Version") == LOCAL_ENGINE_VERSION:
        return LOG_LINEAR
    return FortioBuckets(resolution, offset)


def _rebuild(data, layout, where):
    try:
        return HistogramRecorder.from_data(data or {}, layout)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{where}: its buckets do not fit the {layout.name} layout, so it cannot be "
                         f"merged exactly (for fortio results, pass the run's -r resolution): {err}"
                         ) from err


def histogram_from_result(result, key="DurationHistogram", resolution=0.001, offset=0.0):
    """A mergeable histogram.HistogramRecorder rebuilt from a result's Data buckets (ValueError if not)."""
    return _rebuild(result.get(key), result_layout(result, resolution, offset), key)


def _percentile_list(histograms):
    listed = []
    for data in histograms:
        for entry in data.get("Percentiles") or []:
            if entry["Percentile"] not in listed:
                listed.append(entry["Percentile"])
    return tuple(float(p) for p in listed) or DEFAULT_PERCENTILES


def _common(results, key, joiner=" , "):
    values = []
    for result in results:
        value = result.get(key)
        if value is not None and value not in values:
            values.append(value)
    if not values:
        return None
    return values[0] if len(values) == 1 else joiner.join(str(value) for value in values)


def merge_results(results, resolution=0.001, offset=0.0):
    """One result for several load generators that ran side by side against the same target.

    Histograms merge exactly (the merged percentiles are those of one histogram of all calls;
    StdDev up to rounding); return codes and counts add up; ActualQPS is the sum of the rates
    and ActualDuration the longest window. All histograms must share one bucket layout: the
    local engine's, or fortio's at `resolution`/`offset` (ValueError otherwise).
    """
    histogram_class = HistogramRecorder
    results = list(results)
    if not results:
        raise ValueError("no results to merge")
    keys = ("DurationHistogram", "ErrorsDurationHistogram")
    layouts = [result_layout(result, resolution, offset) for result in results]
    layout = layouts[0]
    if any(other != layout for other in layouts):
        raise ValueError("results of the local engine and of fortio cannot be merged exactly: "
                         "their histogram buckets differ")
    merged = OrderedDict()
    merged["RunType"] = _common(results, "RunType")
    merged["Labels"] = _common(results, "Labels")
    starts = [result["StartTime"] for result in results if result.get("StartTime")]
    merged["StartTime"] = min(starts, key=_instant) if starts else None
    requested = [str(result.get("RequestedQPS", "max")) for result in results]
    if any(value == "max" for value in requested):
        merged["RequestedQPS"] = "max"
    else:
        merged["RequestedQPS"] = f"{sum(float(value) for value in requested):.9g}"
    merged["RequestedDuration"] = _common(results, "RequestedDuration")
    merged["ActualQPS"] = float(sum(result.get("ActualQPS", 0) for result in results))
    merged["ActualDuration"] = max(result.get("ActualDuration", 0) for result in results)
    merged["NumThreads"] = sum(result.get("NumThreads", 0) for result in results)
    merged["Version"] = _common(results, "Version")
    for key in keys:
        parts = [result.get(key) or {} for result in results]
        histogram = histogram_class(layout)
        for position, data in enumerate(parts):
            histogram.merge(_rebuild(data, layout, f"results[{position}].{key}"))
        merged[key] = histogram.export(_percentile_list(parts))
    codes = {}
    kinds = {}
    for result in results:
        for code, count in (result.get("RetCodes") or {}).items():
            codes[code] = codes.get(code, 0) + count
        for kind, count in (result.get("ErrorTypes") or {}).items():
            kinds[kind] = kinds.get(kind, 0) + count
    merged["RetCodes"] = _go_map(codes)
    merged["URL"] = _common(results, "URL")
    merged["NumConnections"] = sum(result.get("NumConnections", 0) for result in results)
    merged["SocketCount"] = sum(result.get("SocketCount", 0) for result in results)
    if kinds:
        merged["ErrorTypes"] = _go_map(kinds)
    return OrderedDict((key, value) for key, value in merged.items() if value is not None)


def _instant(text):
    """Seconds since the epoch of an RFC 3339 time with up to nanosecond fractions."""
    stamp = text.strip()
    zone = "+00:00"
    if stamp.endswith(("Z", "z")):
        stamp = stamp[:-1]
    elif len(stamp) > 6 and stamp[-6] in "+-" and stamp[-3] == ":":
        stamp, zone = stamp[:-6], stamp[-6:]
    fraction = Decimal(0)
    if "." in stamp:
        stamp, digits = stamp.split(".", 1)
        fraction = Decimal("0." + digits)
    moment = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S")
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    shift = (hours * 60 + minutes) * 60 * (1 if zone[0] == "+" else -1)
    epoch = moment.replace(tzinfo=datetime.timezone.utc).timestamp() - shift
    return Decimal(int(epoch)) + fraction


def summarize(result):
    """The few figures people read first: latency percentiles (ms), rates, success rate."""
    view = FortioResult("result", result)
    histogram = result.get("DurationHistogram") or {}
    count = histogram.get("Count", 0)
    summary = OrderedDict()
    for name, percentile in (("p50_ms", 50.0), ("p90_ms", 90.0), ("p99_ms", 99.0),
                             ("p999_ms", 99.9)):
        summary[name] = round(view.percentile_ms(percentile), 3) if count else None
    summary["max_ms"] = round(histogram.get("Max", 0.0) * 1000.0, 3) if count else None
    requested = str(result.get("RequestedQPS", "max"))
    summary["requested_qps"] = 0.0 if requested == "max" else float(requested)
    summary["achieved_qps"] = round(float(result.get("ActualQPS", 0.0)), 3)
    summary["requests"] = count
    ok, total = view.outcomes() if result.get("RetCodes") else (0, 0)
    summary["success_rate"] = round(ok / total, 6) if total else None
    summary["errors"] = total - ok
    return summary
