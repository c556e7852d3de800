# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""perf_report's sweep report: what each step of traffic costs, per sidecar mode, as curves.

A sweep runs the same load at several rates (and connection counts) in the modes of Istio's
benchmark: `baseline` (no sidecar), `server` (the server's sidecar only) and `both`. It is saved
as a sweep file, so that two sweeps (before and after a tuning change, two Istio revisions) are
drawn in one report:

    {"label": "istio 1.24", "points": [
       {"mode": "both", "qps": 500, "connections": 16, "result_file": "both-500-16.json",
        "proxy": {"cpu_per_1k_rps": 0.21, "memory_mib": 48.2}}, ...]}

`result_file` is relative to the sweep file (or absolute), or `result` holds the result itself
(the steps of a capacity search are saved that way); `proxy` holds the Prometheus figures
over the point's window, as the verify role measures them (optional). The report has three plots
against the rate, one line per sweep and mode: latency percentiles (p50/p90/p99), the latency
added over the same sweep's baseline at the same rate and connections, and proxy CPU per 1000
requests/s and memory; and a Markdown table per sweep and mode. Rendering follows report.py
(same Markdown, HTML and file handling), so the bytes depend only on the inputs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import os
from collections import OrderedDict, namedtuple

from ansible_collections.meshtune.mesh.plugins.module_utils import plots
from ansible_collections.meshtune.mesh.plugins.module_utils.report import (
    Image,
    Section,
    Table,
    check_output_dir,
    check_result,
    check_title,
    json_safe,
    read_run,
    render_html,
    render_markdown,
    run_summary,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.run_result import read_result_file
from ansible_collections.meshtune.mesh.plugins.module_utils.slo import as_number
from ansible_collections.meshtune.mesh.plugins.module_utils.tables import format_number
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption, Problems

MODES = ("baseline", "server", "both")
CURVE_PERCENTILES = (("p50_ms", "p50", "-"), ("p90_ms", "p90", "--"), ("p99_ms", "p99", ":"))
PROXY_FIGURES = (("cpu_per_1k_rps", "proxy vCPU per 1000 requests/s"),
                 ("memory_mib", "proxy memory (MiB)"))
PLOTS = OrderedDict((("sweep-latency.png", "Latency percentiles by rate"),
                     ("sweep-added-latency.png", "Latency added over the baseline by rate"),
                     ("sweep-proxy-cost.png", "Proxy CPU per 1000 requests/s and memory by rate")))

# One load point: the sweep's label, mode, requested rate, connections, the run's figures
# (report.run_summary) and its proxy figures ({} when not measured).
Point = namedtuple("Point", "sweep mode qps connections summary proxy")
SweepReport = namedtuple("SweepReport", "title output_dir labels points")


def _point(where, base, entry):
    if not isinstance(entry, dict):
        raise InvalidOption(where, "a point {mode, qps, connections, result_file, proxy}", entry)
    mode = entry.get("mode")
    if mode not in MODES:
        raise InvalidOption(where + ".mode", "one of " + ", ".join(MODES), mode)
    qps = as_number(where + ".qps", entry.get("qps"))
    connections = entry.get("connections")
    if isinstance(connections, bool) or not isinstance(connections, int) or connections < 1:
        raise InvalidOption(where + ".connections", "a count of at least 1", connections)
    path = entry.get("result_file")
    if isinstance(entry.get("result"), dict) and path is None:
        data = entry["result"]
        path = f"{mode}-{qps:g}-{connections}"
        view = check_result(where + ".result", data)
    elif not isinstance(path, str) or not path:
        raise InvalidOption(where + ".result_file", "a fortio result file (or the result inline)", path)
    else:
        path = path if os.path.isabs(path) else os.path.join(base, path)
        data, view = read_run(where + ".result_file", path)
    proxy = entry.get("proxy") or {}
    if not isinstance(proxy, dict):
        raise InvalidOption(where + ".proxy", "a map of proxy figure to number", proxy)
    figures = {key: as_number(f"{where}.proxy.{key}", proxy[key], allow_nan=True)
               for key, _label in PROXY_FIGURES if proxy.get(key) is not None}
    return mode, qps, connections, run_summary(os.path.basename(path), path, data, view), figures


def read_sweep(where, path):
    """(label, [Point]) of one sweep file; InvalidOption naming the bad field."""
    data = read_result_file(where, path)
    if not isinstance(data, dict) or not isinstance(data.get("points"), list) or not data["points"]:
        raise InvalidOption(where, "a sweep file: {label, points: [...]} with at least one point", path)
    label = data.get("label") or os.path.splitext(os.path.basename(path))[0]
    base = os.path.dirname(os.path.abspath(path))
    points = []
    seen = set()
    for index, entry in enumerate(data["points"]):
        mode, qps, connections, summary, proxy = _point(f"{where}.points[{index}]", base, entry)
        if (mode, qps, connections) in seen:
            raise InvalidOption(f"{where}.points[{index}]", "one point per mode, qps and connections",
                                f"{mode} {qps:g} qps {connections} connections")
        seen.add((mode, qps, connections))
        points.append(Point(str(label), mode, qps, connections, summary, proxy))
    return str(label), points


def plan_sweep_report(params):
    """(message, SweepReport): every problem with the options as one message, or the report."""
    problems = Problems()
    title = problems.check(check_title, params.get("title"))
    output_dir = problems.check(check_output_dir, params.get("output_dir"))
    labels, points = [], []
    for index, path in enumerate(params.get("sweeps") or []):
        found = problems.check(read_sweep, f"sweeps[{index}]", path)
        if found is None:
            continue
        label, sweep_points = found
        if label in labels:
            problems.add(f"sweeps[{index}]", "sweeps with different labels", label)
        labels.append(label)
        points += sweep_points
    message = problems.message()
    if message:
        return message, None
    return None, SweepReport(title, output_dir, labels, points)


def _groups(report):
    """OrderedDict (sweep, mode, connections) -> points by rate, in sweep, mode, connections order."""
    keys = sorted({(p.sweep, p.mode, p.connections) for p in report.points},
                  key=lambda key: (report.labels.index(key[0]), MODES.index(key[1]), key[2]))
    return OrderedDict((key, sorted((p for p in report.points if (p.sweep, p.mode, p.connections) == key),
                                    key=lambda p: p.qps)) for key in keys)


def _line_name(report, key):
    sweep, mode, connections = key
    several = len({p.connections for p in report.points}) > 1
    return " ".join(([sweep] if len(report.labels) > 1 else []) + [mode] +
                    ([f"c{connections}"] if several else []))


def added(report, point):
    """Per percentile key, the point's latency minus its sweep's baseline at the same load (ms);
    None without such a baseline point."""
    reference = next((p for p in report.points if p.sweep == point.sweep and p.mode == "baseline"
                      and p.qps == point.qps and p.connections == point.connections), None)
    return OrderedDict((key, None if reference is None else
                        round(point.summary[key] - reference.summary[key], 3))
                       for key, _name, _dash in CURVE_PERCENTILES)


def render_plot(report, name):
    groups = _groups(report)
    if name == "sweep-latency.png":
        lines = [plots.RateLine(f"{_line_name(report, key)} {label}", color, dash,
                                [(p.qps, p.summary[field]) for p in points])
                 for color, (key, points) in enumerate(groups.items())
                 for field, label, dash in CURVE_PERCENTILES]
        return plots.rate_panels(report.title + ": latency by rate", [("latency (ms)", lines)])
    if name == "sweep-added-latency.png":
        lines = [plots.RateLine(f"{_line_name(report, key)} {label}", color, dash,
                                [(p.qps, added(report, p)[field]) for p in points])
                 for color, (key, points) in enumerate(groups.items()) if key[1] != "baseline"
                 for field, label, dash in CURVE_PERCENTILES]
        return plots.rate_panels(report.title + ": latency added over the baseline",
                                 [("added latency (ms)", lines)])
    panels = []
    for field, label in PROXY_FIGURES:
        lines = [plots.RateLine(_line_name(report, key), color, "-",
                                [(p.qps, p.proxy.get(field)) for p in points])
                 for color, (key, points) in enumerate(groups.items()) if key[1] != "baseline"]
        panels.append((label, lines))
    return plots.rate_panels(report.title + ": proxy cost by rate", panels)


def _cell(value):
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else format_number(value)


def mode_table(report, points):
    header = ["rate (qps)", "connections", "achieved qps", "p50 (ms)", "p90 (ms)", "p99 (ms)",
              "added p50 (ms)", "added p90 (ms)", "added p99 (ms)", "success rate",
              "proxy vCPU / 1000 rps", "proxy memory (MiB)"]
    rows = []
    for point in points:
        extra = added(report, point)
        rows.append([_cell(point.qps), str(point.connections), _cell(point.summary["achieved_qps"])]
                    + [_cell(point.summary[key]) for key, _n, _d in CURVE_PERCENTILES]
                    + [_cell(extra[key]) for key, _n, _d in CURVE_PERCENTILES]
                    + [_cell(point.summary["success_rate"])]
                    + [_cell(point.proxy.get(key)) for key, _label in PROXY_FIGURES])
    return Table(header, rows, [True] * len(header))


def document(report):
    intro = (f"{len(report.points)} load points of {len(report.labels)} sweep"
             f"{'' if len(report.labels) == 1 else 's'} ({', '.join(report.labels)}). Modes: baseline "
             "(no sidecar), server (the server's sidecar only), both (client and server sidecars); "
             "server minus baseline is the inbound proxy's cost, both minus server the outbound "
             "proxy's. Added latency is each mode minus the same sweep's baseline at the same rate "
             "and connections; proxy figures come from Prometheus over each point's window.")
    sections = [Section(None, [intro])]
    for (sweep, mode, connections), points in _groups(report).items():
        heading = " ".join(([sweep] if len(report.labels) > 1 else []) + [f"mode {mode}"])
        heading += f", {connections} connections"
        sections.append(Section(heading, [mode_table(report, points)]))
    sections.append(Section("Curves", [Image(name, caption) for name, caption in PLOTS.items()]))
    return sections


def sweep_data(report):
    """What report.json holds for a sweep report."""
    points = []
    for point in report.points:
        entry = OrderedDict((("sweep", point.sweep), ("mode", point.mode), ("qps", point.qps),
                             ("connections", point.connections)))
        entry["summary"] = point.summary
        entry["added_latency"] = added(report, point)
        entry["proxy"] = point.proxy
        points.append(entry)
    return json_safe(OrderedDict((("title", report.title), ("sweeps", report.labels),
                                  ("points", points), ("plots", list(PLOTS)))))


def render_sweep_files(report):
    """OrderedDict file name -> bytes of the sweep report."""
    sections = document(report)
    files = OrderedDict()
    files["report.json"] = (json.dumps(sweep_data(report), indent=2, ensure_ascii=False,
                                       allow_nan=False) + "\n").encode("utf-8")
    files["report.md"] = render_markdown(report.title, sections).encode("utf-8")
    files["report.html"] = render_html(report.title, sections).encode("utf-8")
    for name in PLOTS:
        files[name] = render_plot(report, name)
    return files
