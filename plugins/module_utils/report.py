# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""A performance report from load-test result files: JSON for tools, Markdown and HTML for people.

Everything comes from files in fortio's JSON shape (read through run_result), so a report of a
past run is made the same way as one of a run that just finished. The report is built in three
steps that can be tested apart:

- plan_report checks every option first and reads the runs into a Report (the figures);
- render_files turns a Report into the bytes of every file (report.json, report.md, report.html and
  the PNG plots). The bytes depend only on the inputs: no clock, no host name, no random names,
  so a re-run over the same files produces the same bytes;
- files_to_write / write_files compare those bytes with what output_dir holds and write only the
  files that differ, which makes a re-run report no change and lets check mode say what would.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import html
import json
import math
import os
import re
from collections import OrderedDict, namedtuple

from ansible_collections.meshtune.mesh.plugins.module_utils import plots
from ansible_collections.meshtune.mesh.plugins.module_utils.files import write_atomically
from ansible_collections.meshtune.mesh.plugins.module_utils.redact import redact_url
from ansible_collections.meshtune.mesh.plugins.module_utils.run_result import (
    is_success_code,
    percentile_from_buckets,
    read_result_file,
    summarize,
    validate_result,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.tables import format_number
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption, Problems

DEFAULT_TITLE = "Performance report"
# Summary key -> percentile: fortio's default -p list. p999 is the 99.9th, as in slo_check targets.
PERCENTILES = OrderedDict([("p50_ms", 50.0), ("p75_ms", 75.0), ("p90_ms", 90.0), ("p99_ms", 99.0),
                           ("p999_ms", 99.9)])
LATENCY_KEYS = (*tuple(PERCENTILES), "max_ms")
LATENCY_LABELS = {"p50_ms": "p50", "p75_ms": "p75", "p90_ms": "p90", "p99_ms": "p99",
                  "p999_ms": "p99.9", "max_ms": "max"}
# Latencies are kept to the microsecond (as summarize rounds them), percentages to 0.01 %.
MS_DECIMALS = 3
PERCENT_DECIMALS = 2
# Points of the percentile curve: 1/(1-p) evenly spaced on a log scale from p = 0 to p = 99.99.
CURVE_STEPS = 100
CURVE_MAX_EXPONENT = 4

# A run read from a file: name (for tables and legends), where (the option, e.g. results[1]),
# path, summary (the figures), curve/marks/buckets (what its plots draw).
Run = namedtuple("Run", "name where path summary curve marks buckets")
Series = namedtuple("Series", "name lines")
Report = namedtuple("Report", "title output_dir runs baseline deltas checks series")

# The document that both the Markdown and the HTML are rendered from, so they say the same.
Section = namedtuple("Section", "heading blocks")
Table = namedtuple("Table", "header rows numeric")
Image = namedtuple("Image", "file caption")


# ---------------------------------------------------------------------------------------------
# Reading and checking the options


def check_title(value):
    if value is None:
        return DEFAULT_TITLE
    if not isinstance(value, str) or not value.strip():
        raise InvalidOption("title", "a non-empty string", value)
    return " ".join(value.split())


def check_output_dir(path):
    """A directory that exists and is writable, or can be made under the nearest existing parent."""
    if not isinstance(path, str) or not path:
        raise InvalidOption("output_dir", "a directory path", path)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise InvalidOption("output_dir", "a directory, but it is an existing file", path)
        if not os.access(path, os.W_OK | os.X_OK):
            raise InvalidOption("output_dir", "a writable directory", path)
        return path
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidOption("output_dir", f"a directory that can be created (its parent {parent} is not a "
                            "writable directory)", path)
    return path


def _strict_number(where, value):
    """A JSON number (not a string, not a boolean) as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidOption(where, "a number", _short(value))
    return float(value)


def _count_map(where, value):
    if value is None:
        return OrderedDict()
    if not isinstance(value, dict):
        raise InvalidOption(where, "a map of name to count", value)
    for key, count in value.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidOption(f"{where}.{key}", "a non-negative integer", count)
    return OrderedDict(sorted((str(key), count) for key, count in value.items()))


def check_result(where, data):
    """A FortioResult whose figures a report reads; InvalidOption naming the first bad field.

    The whole result is checked first (validate_result, as slo_check does), then what a report
    needs beyond that: at least one call, the percentiles, the return codes and the rates.
    """
    view = validate_result(where, data)
    histogram = view.histogram()
    if histogram.count <= 0:
        raise InvalidOption(histogram.where + ".Count", "a run with at least one recorded call",
                            histogram.count)
    histogram.buckets()
    for percentile in PERCENTILES.values():
        histogram.percentile(percentile)
    for key in ("Min", "Max"):
        if key in histogram.data:
            _strict_number(f"{histogram.where}.{key}", histogram.data[key])
    view.ret_codes()
    _strict_number(where + ".ActualQPS", data.get("ActualQPS"))
    requested = data.get("RequestedQPS", "max")
    if str(requested) != "max":
        try:
            rate = float(requested)
        except (TypeError, ValueError):
            rate = -1.0
        if isinstance(requested, bool) or not math.isfinite(rate) or rate < 0:
            raise InvalidOption(where + ".RequestedQPS", "a request rate (a number, or max)", requested)
    if data.get("ActualDuration") is not None:
        _strict_number(where + ".ActualDuration", data["ActualDuration"])
    _count_map(where + ".ErrorTypes", data.get("ErrorTypes"))
    if data.get("ErrorsDurationHistogram") is not None:
        _errors = view.histogram("ErrorsDurationHistogram").count
    return view


def read_run(where, path):
    """(data, FortioResult) of one result file, checked; InvalidOption naming the option."""
    data = read_result_file(where, path)
    return data, check_result(f"{where} ({path})", data)


def _run_names(entries):
    """Names for (where, path, data) entries: fortio's Labels when every run has distinct ones,
    else the file names without .json, made unique with (2), (3)."""
    labels = [str(data.get("Labels") or "").strip() for _where, _path, data in entries]
    if all(labels) and len(set(labels)) == len(labels):
        return labels
    names = []
    for _where, path, _data in entries:
        base = os.path.basename(path)
        stem = base[:-5] if base.lower().endswith(".json") and len(base) > 5 else base
        name, suffix = stem, 2
        while name in names:
            name, suffix = f"{stem} ({suffix})", suffix + 1
        names.append(name)
    return names


def _rounded(value, decimals=MS_DECIMALS):
    return round(value, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0


def run_summary(name, path, data, view):
    """The figures of one run: rates, latency percentiles (ms), outcomes and errors."""
    figures = summarize(data)
    summary = OrderedDict()
    summary["name"] = name
    summary["file"] = path
    summary["labels"] = str(data.get("Labels") or "")
    summary["start_time"] = data.get("StartTime")
    summary["url"] = redact_url(data.get("URL"))  # a password or token in it stays out of reports
    summary["connections"] = data.get("NumThreads")
    duration = data.get("ActualDuration")
    summary["duration_s"] = _rounded(duration / 1e9) if duration is not None else None
    summary["requested_qps"] = figures["requested_qps"]
    summary["achieved_qps"] = figures["achieved_qps"]
    summary["requests"] = figures["requests"]
    for key, percentile in PERCENTILES.items():
        value = figures.get(key)
        summary[key] = value if value is not None else _rounded(view.percentile_ms(percentile))
    summary["max_ms"] = figures["max_ms"]
    summary["bucket_width_ms"] = bucket_widths_ms(view)
    summary["success_rate"] = figures["success_rate"]
    summary["errors"] = figures["errors"]
    summary["error_codes"] = OrderedDict(
        (code, count) for code, count in _count_map(view.where + ".RetCodes", view.ret_codes()).items()
        if not is_success_code(code) and count)
    summary["error_types"] = _count_map(view.where + ".ErrorTypes", data.get("ErrorTypes"))
    return summary


def bucket_widths_ms(view):
    """Per percentile key, the width (ms) of the histogram bucket the percentile falls in.

    fortio interpolates inside that bucket, so the true value may lie anywhere in it: the width
    is the percentile's accuracy. With fortio's default 1 ms resolution a p50 of 0.3 ms has a
    1 ms bucket; at -r 0.0001 a 0.1 ms one.
    """
    buckets = view.histogram().buckets()
    widths = OrderedDict()
    for key, percentile in PERCENTILES.items():
        start, end = next(((start, end) for start, end, cumulative in buckets
                           if cumulative >= percentile), buckets[-1][:2])
        widths[key] = _rounded((end - start) * 1000.0, 6)
    return widths


def curve_points(view):
    """(percentile, ms) along the whole distribution, from the Data buckets the way fortio
    interpolates: p = 1 - 10**(-k/25) for k = 0..100, so evenly spaced on the 1/(1-p) axis."""
    histogram = view.histogram()
    buckets = histogram.buckets()
    count = histogram.count
    minimum = float(histogram.data.get("Min", buckets[0][0]))
    maximum = float(histogram.data.get("Max", buckets[-1][1]))
    points = []
    for step in range(CURVE_STEPS + 1):
        percentile = 100.0 * (1.0 - 10.0 ** (-CURVE_MAX_EXPONENT * step / CURVE_STEPS))
        value = percentile_from_buckets(buckets, count, minimum, maximum, percentile)
        points.append((percentile, value * 1000.0))
    return points


def histogram_buckets(view):
    """(start ms, end ms, share of calls %, cumulative %) per bucket of DurationHistogram.Data."""
    rows = []
    previous = 0.0
    for start, end, cumulative in view.histogram().buckets():
        rows.append((start * 1000.0, end * 1000.0, max(cumulative - previous, 0.0), cumulative))
        previous = cumulative
    return rows


def make_run(name, where, path, data, view):
    summary = run_summary(name, path, data, view)
    marks = [(percentile, summary[key]) for key, percentile in PERCENTILES.items()]
    return Run(name, where, path, summary, curve_points(view), marks, histogram_buckets(view))


def check_checks(value):
    """slo_check's checks list: target, ok and the numbers of each entry."""
    if not isinstance(value, list):
        raise InvalidOption("checks", "the checks list returned by meshtune.mesh.slo_check", _short(value))
    checks = []
    for index, entry in enumerate(value):
        where = f"checks[{index}]"
        if not isinstance(entry, dict):
            raise InvalidOption(where, "a check with target, measured, limit, margin and ok", _short(entry))
        if not isinstance(entry.get("target"), str) or not entry["target"]:
            raise InvalidOption(where + ".target", "a target name", _short(entry.get("target")))
        if not isinstance(entry.get("ok"), bool):
            raise InvalidOption(where + ".ok", "true or false", _short(entry.get("ok")))
        check = OrderedDict([("target", entry["target"])])
        for key in ("measured", "limit", "margin"):
            number = entry.get(key)
            if number is not None:
                number = _strict_number(f"{where}.{key}", number)
            check[key] = number
        check["ok"] = entry["ok"]
        for key in ("unit", "bound"):
            text = entry.get(key)
            if text is not None and not isinstance(text, str):
                raise InvalidOption(f"{where}.{key}", "a string", _short(text))
            check[key] = text or ""
        checks.append(check)
    return checks


def _short(value):
    """A stand-in for a nested value in messages: never the whole structure."""
    if isinstance(value, dict) and value:
        return f"an object with {len(value)} keys"
    if isinstance(value, list) and value:
        return f"a list of {len(value)}"
    return value


def _sample_number(where, value):
    """A sample value: a number or the string Prometheus' HTTP API sends (NaN and Inf allowed)."""
    if isinstance(value, bool) or value is None:
        raise InvalidOption(where, "a number", value)
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise InvalidOption(where, "a number", _short(value)) from err


def check_series(name, value):
    """One range-query result: a list of {metric, values}, or a prometheus_query result holding one."""
    where = f"series.{name}"
    if isinstance(value, dict) and "result" in value:
        kind = value.get("result_type")
        if kind not in (None, "matrix"):
            raise InvalidOption(where + ".result_type", "matrix (a range query)", _short(kind))
        value = value["result"]
    if not isinstance(value, list):
        raise InvalidOption(where, "a range-query result: a list of {metric, values}", _short(value))
    lines = []
    for index, entry in enumerate(value):
        path = f"{where}[{index}]"
        if not isinstance(entry, dict) or "values" not in entry:
            raise InvalidOption(path, "a series with metric and values", _short(entry))
        metric = entry.get("metric") or {}
        if not isinstance(metric, dict) or not all(isinstance(label, str) for label in metric.values()):
            raise InvalidOption(path + ".metric", "a map of label to value", _short(metric))
        samples = entry["values"]
        if not isinstance(samples, list):
            raise InvalidOption(path + ".values", "a list of [timestamp, value] pairs", _short(samples))
        points = []
        for position, sample in enumerate(samples):
            spot = f"{path}.values[{position}]"
            if not isinstance(sample, (list, tuple)) or len(sample) != 2:
                raise InvalidOption(spot, "a [timestamp, value] pair", _short(sample))
            stamp = _strict_number(spot + "[0]", sample[0])
            if not math.isfinite(stamp):
                raise InvalidOption(spot + "[0]", "a unix time in seconds", _short(sample[0]))
            points.append((stamp, _sample_number(spot + "[1]", sample[1])))
        lines.append((series_label(name, metric), points))
    return Series(name, lines)


def series_label(name, metric):
    """A legend entry for one series: its labels (without __name__), or the series name."""
    parts = [f"{key}={metric[key]}" for key in sorted(metric) if key != "__name__"]
    return ", ".join(parts) or name


def plan_report(params):
    """(message, report): every problem with the options as one message, or the Report.

    params holds the module options: results, baseline, output_dir, title, checks, series.
    """
    problems = Problems()
    title = problems.check(check_title, params.get("title"))
    output_dir = problems.check(check_output_dir, params.get("output_dir"))
    paths = params.get("results")
    if not isinstance(paths, list) or not paths:
        problems.add("results", "a list of at least one result file", paths)
        paths = []
    entries = []
    for index, path in enumerate(paths):
        where = f"results[{index}]"
        read = problems.check(read_run, where, path)
        if read is not None:
            entries.append((where, path, read))
    baseline_entry = None
    if params.get("baseline") is not None:
        read = problems.check(read_run, "baseline", params["baseline"])
        if read is not None:
            baseline_entry = ("baseline", params["baseline"], read)
    checks = None
    if params.get("checks") is not None:
        checks = problems.check(check_checks, params["checks"])
    series = []
    given_series = params.get("series") or {}
    if not isinstance(given_series, dict):
        problems.add("series", "a map of name to range-query result", given_series)
        given_series = {}
    for name, value in given_series.items():
        found = problems.check(check_series, str(name), value)
        if found is not None:
            series.append(found)
    message = problems.message()
    if message:
        return message, None

    everything = entries + ([baseline_entry] if baseline_entry else [])
    names = _run_names([(where, path, read[0]) for where, path, read in everything])
    built = [make_run(name, where, path, read[0], read[1])
             for name, (where, path, read) in zip(names, everything)]
    runs = built[:len(entries)]
    baseline = built[-1] if baseline_entry else None
    for run in runs:
        run.summary["added_latency"] = added_latency(run.summary, baseline.summary) if baseline else None
    return None, Report(title, output_dir, runs, baseline, deltas(runs), checks, series)


# ---------------------------------------------------------------------------------------------
# Figures derived from the runs


def difference(value, reference):
    """{ms, percent}: value minus reference, and that as a share of the reference."""
    change = OrderedDict()
    change["ms"] = _rounded(value - reference)
    change["percent"] = _rounded(100.0 * (value - reference) / reference, PERCENT_DECIMALS) \
        if reference else None
    return change


def added_latency(summary, baseline):
    """Latency the mesh adds: the run's percentile minus the baseline's, per percentile."""
    return OrderedDict((key, difference(summary[key], baseline[key])) for key in LATENCY_KEYS)


def deltas(runs):
    """Each run after the first against the first, per percentile (ms and %)."""
    if len(runs) < 2:
        return []
    first = runs[0].summary
    listed = []
    for run in runs[1:]:
        entry = OrderedDict([("run", run.name), ("versus", first["name"])])
        for key in LATENCY_KEYS:
            entry[key] = difference(run.summary[key], first[key])
        listed.append(entry)
    return listed


def checks_passed(checks):
    return None if checks is None else all(check["ok"] for check in checks)


# ---------------------------------------------------------------------------------------------
# Plots


def _slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "run"


def plot_files(report):
    """OrderedDict file name -> (kind, arguments) of every plot, in the order the report shows them."""
    listed = OrderedDict()
    listed["latency-percentiles.png"] = ("curve", None)
    ordered = ([("baseline", report.baseline)] if report.baseline else []) + \
        [(str(position), run) for position, run in enumerate(report.runs, 1)]
    for prefix, run in ordered:
        listed[f"histogram-{prefix}-{_slug(run.name)}.png"] = ("histogram", run)
    for position, series in enumerate(report.series, 1):
        listed[f"series-{position}-{_slug(series.name)}.png"] = ("series", series)
    return listed


def render_plot(report, kind, subject):
    if kind == "curve":
        curves = [plots.Curve(run.name, run.curve, run.marks, False) for run in report.runs]
        if report.baseline:
            baseline = report.baseline
            curves.insert(0, plots.Curve(baseline.name + " (baseline)", baseline.curve, baseline.marks,
                                         True))
        return plots.percentile_curve(report.title + ": latency by percentile", curves)
    if kind == "histogram":
        role = " (baseline)" if subject is report.baseline else ""
        title = f"Latency histogram: {subject.name}{role}, {subject.summary['requests']} calls"
        return plots.latency_histogram(title, subject.buckets, subject.marks)
    return plots.time_series(subject.name, subject.lines)


# ---------------------------------------------------------------------------------------------
# The document: what the Markdown and the HTML both say


def _ms(value):
    return "n/a" if value is None else format_number(value)


def _signed(value, unit):
    if value is None:
        return "n/a"
    text = format_number(value)
    return ("+" + text if value > 0 else text) + unit


def _change(change):
    percent = "n/a" if change["percent"] is None else _signed(change["percent"], " %")
    return "{} ms ({})".format(_signed(change["ms"], ""), percent)


def _rate(value):
    return "max" if not value else format_number(value)


def _counts(counts):
    return ", ".join(f"{key}: {count}" for key, count in counts.items()) or "none"


def _success(value):
    return "n/a" if value is None else format_number(round(value * 100.0, 4)) + " %"


def runs_table(report):
    """Runs side by side: one column per run (the baseline first), one row per figure."""
    columns = ([report.baseline] if report.baseline else []) + list(report.runs)
    header = ["figure"] + [run.name + (" (baseline)" if run is report.baseline else "")
                           for run in columns]
    figures = [
        ("file", lambda s: s["file"]),
        ("labels", lambda s: s["labels"] or "none"),
        ("start time", lambda s: s["start_time"] or "n/a"),
        ("URL", lambda s: s["url"] or "n/a"),
        ("connections", lambda s: "n/a" if s["connections"] is None else str(s["connections"])),
        ("duration (s)", lambda s: _ms(s["duration_s"])),
        ("requested qps", lambda s: _rate(s["requested_qps"])),
        ("achieved qps", lambda s: format_number(s["achieved_qps"])),
        ("calls", lambda s: str(s["requests"])),
    ]
    figures += [(f"{LATENCY_LABELS[key]} (ms)", lambda s, key=key: _ms(s[key]))
                for key in LATENCY_KEYS]
    figures += [(f"{LATENCY_LABELS[key]} bucket width (ms)",
                 lambda s, key=key: _ms(s["bucket_width_ms"][key])) for key in PERCENTILES]
    figures += [
        ("success rate", lambda s: _success(s["success_rate"])),
        ("errors", lambda s: str(s["errors"])),
        ("error codes", lambda s: _counts(s["error_codes"])),
    ]
    if any(run.summary["error_types"] for run in columns):
        figures.append(("error types", lambda s: _counts(s["error_types"])))
    rows = [[label] + [read(run.summary) for run in columns] for label, read in figures]
    return Table(header, rows, [False] + [True] * len(columns))


def deltas_table(report):
    header = ["percentile"] + ["{} vs {}".format(entry["run"], entry["versus"])
                               for entry in report.deltas]
    rows = [[LATENCY_LABELS[key]] + [_change(entry[key]) for entry in report.deltas]
            for key in LATENCY_KEYS]
    return Table(header, rows, [False] + [True] * len(report.deltas))


def added_table(report):
    header = ["percentile", report.baseline.name + " (baseline, ms)"] + \
        [run.name for run in report.runs]
    rows = [[LATENCY_LABELS[key], _ms(report.baseline.summary[key])] +
            [_change(run.summary["added_latency"][key]) for run in report.runs]
            for key in LATENCY_KEYS]
    return Table(header, rows, [False] + [True] * (len(report.runs) + 1))


def _with_unit(value, unit):
    if value is None:
        return "n/a"
    text = format_number(value)
    return text if unit in ("", "ratio") else f"{text} {unit}"


def checks_table(checks):
    rows = []
    for check in checks:
        bound = {"max": "≤ ", "min": "≥ "}.get(check["bound"], "")
        margin = _with_unit(check["margin"], check["unit"])
        if check["margin"] is not None and check["margin"] > 0:
            margin = "+" + margin
        rows.append([check["target"], _with_unit(check["measured"], check["unit"]),
                     bound + _with_unit(check["limit"], check["unit"]), margin,
                     "✓" if check["ok"] else "✗"])
    return Table(["target", "measured", "limit", "margin", "ok"], rows,
                 [False, True, True, True, False])


def document(report, plot_names):
    """The report's sections, shared by the Markdown and the HTML."""
    runs = len(report.runs)
    intro = "{} run{}".format(runs, "" if runs == 1 else "s")
    if report.baseline:
        intro += f' and the baseline "{report.baseline.name}" (the same load without sidecars)'
    intro += (". Latencies in milliseconds over all calls, errors included; percentiles as fortio "
              "computes them from its histogram, each exact to the width of the bucket it falls in "
              "(the bucket width rows).")
    sections = [Section(None, [intro]), Section("Runs", [runs_table(report)])]
    if report.deltas:
        sections.append(Section("Differences between runs", [
            f'Each run against the first, "{report.runs[0].name}": difference in ms and in % of the '
            'first.', deltas_table(report)]))
    if report.baseline:
        sections.append(Section("Latency added by the mesh", [
            f'Each run minus the baseline "{report.baseline.name}" at the same percentile.',
            added_table(report)]))
    if report.checks is not None:
        missed = sum(1 for check in report.checks if not check["ok"])
        if not report.checks:
            verdict = "No targets were checked."
        elif missed:
            verdict = f"{missed} of {len(report.checks)} targets missed."
        else:
            verdict = f"All {len(report.checks)} targets met."
        blocks = [verdict] + ([checks_table(report.checks)] if report.checks else [])
        sections.append(Section("Targets", blocks))
    listed = plot_files(report)
    images = []
    for name in plot_names:
        kind, subject = listed[name]
        if kind == "curve":
            caption = ("Latency by percentile" + (", mesh vs. baseline" if report.baseline else "") +
                       " (percentile axis on a 1/(1-p) log scale)")
        elif kind == "histogram":
            caption = "Latency histogram of " + subject.name
        else:
            continue
        images.append(Image(name, caption))
    sections.append(Section("Latency plots", images))
    series = [Image(name, "Prometheus series " + listed[name][1].name) for name in plot_names
              if listed[name][0] == "series"]
    if series:
        sections.append(Section("Prometheus series", series))
    return sections


# ---------------------------------------------------------------------------------------------
# Markdown and HTML

# Backslash-escaped: characters that start formatting, links, HTML or table cells. An underscore
# inside a word (p99_ms) formats nothing in CommonMark, so it stays as it is there.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]|<]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")


def markdown_text(text):
    """Text that Markdown shows as is, on one line, also inside a table cell."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def markdown_table(table):
    lines = ["| " + " | ".join(markdown_text(cell) for cell in table.header) + " |",
             "| " + " | ".join("---:" if numeric else "---" for numeric in table.numeric) + " |"]
    lines += ["| " + " | ".join(markdown_text(cell) for cell in row) + " |" for row in table.rows]
    return "\n".join(lines)


def render_markdown(title, sections):
    parts = ["# " + markdown_text(title)]
    for section in sections:
        if section.heading:
            parts.append("## " + markdown_text(section.heading))
        for block in section.blocks:
            if isinstance(block, Table):
                parts.append(markdown_table(block))
            elif isinstance(block, Image):
                parts.append(f"![{markdown_text(block.caption)}]({block.file})")
            else:
                parts.append(markdown_text(block))
    return "\n\n".join(parts) + "\n"


HTML_STYLE = """\
body { font-family: sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; }
th { background: #f2f2f2; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
td.ok { color: #1a7f37; text-align: center; }
td.missed { color: #cf222e; text-align: center; font-weight: bold; }
figure { margin: 1em 0; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }"""


# Cells of numeric columns that hold a figure (1.75, +0.2 ms, -3 %, n/a, ≤ 25 ms) align right.
_NUMBER_START = re.compile(r"^([+\-≤≥]|n/a$|max$|none$|\d)")


def _esc(text):
    return html.escape(str(text), quote=True)


def _html_cell(cell, numeric):
    css = ""
    if cell == "✓":
        css = ' class="ok"'
    elif cell == "✗":
        css = ' class="missed"'
    elif numeric and _NUMBER_START.match(cell):
        css = ' class="number"'
    return f"<td{css}>{_esc(cell)}</td>"


def html_table(table):
    header = "".join(f"<th>{_esc(cell)}</th>" for cell in table.header)
    lines = ["<table>", f"<thead><tr>{header}</tr></thead>", "<tbody>"]
    for row in table.rows:
        lines.append("<tr>" + "".join(_html_cell(cell, numeric)
                                      for cell, numeric in zip(row, table.numeric)) + "</tr>")
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)


def render_html(title, sections):
    """One self-contained page: inline style, no scripts, the plots as relative image links."""
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{_esc(title)}</title>", "<style>", HTML_STYLE, "</style>", "</head>",
             "<body>", f"<h1>{_esc(title)}</h1>"]
    for section in sections:
        if section.heading:
            parts.append(f"<h2>{_esc(section.heading)}</h2>")
        for block in section.blocks:
            if isinstance(block, Table):
                parts.append(html_table(block))
            elif isinstance(block, Image):
                parts.append('<figure><img src="{0}" alt="{1}"><figcaption>{1}</figcaption></figure>'
                             .format(_esc(block.file), _esc(block.caption)))
            else:
                parts.append(f"<p>{_esc(block)}</p>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------
# JSON and the files


def json_safe(value):
    """A copy fit for strict JSON: NaN and infinities (a query without data) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return OrderedDict((key, json_safe(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def report_data(report, plot_names):
    """What report.json holds (and the module returns parts of)."""
    data = OrderedDict()
    data["title"] = report.title
    data["percentiles"] = list(PERCENTILES.values())
    data["runs"] = [run.summary for run in report.runs]
    data["baseline"] = report.baseline.summary if report.baseline else None
    data["deltas"] = report.deltas
    data["checks"] = report.checks
    data["checks_passed"] = checks_passed(report.checks)
    data["series"] = [series.name for series in report.series]
    data["plots"] = list(plot_names)
    return json_safe(data)


def render_files(report):
    """OrderedDict file name -> bytes of everything the report consists of."""
    listed = plot_files(report)
    files = OrderedDict()
    sections = document(report, list(listed))
    files["report.json"] = (json.dumps(report_data(report, list(listed)), indent=2, ensure_ascii=False,
                                       allow_nan=False) + "\n").encode("utf-8")
    files["report.md"] = render_markdown(report.title, sections).encode("utf-8")
    files["report.html"] = render_html(report.title, sections).encode("utf-8")
    for name, (kind, subject) in listed.items():
        files[name] = render_plot(report, kind, subject)
    return files


def _current(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def files_to_write(output_dir, files):
    """Names of the files whose bytes differ from those in output_dir (or that are missing)."""
    return [name for name, content in files.items()
            if _current(os.path.join(output_dir, name)) != content]


def write_files(output_dir, files, names):
    """Write the named files atomically (a reader never sees half a report), with the mode Ansible
    would give them: a replaced file keeps its mode, a new one gets 0666 minus the umask."""
    os.makedirs(output_dir, exist_ok=True)
    for name in names:
        write_atomically(os.path.join(output_dir, name), files[name], prefix=".report-")
