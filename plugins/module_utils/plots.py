# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""PNG plots for performance reports, drawn with matplotlib's Agg renderer (no display needed).

Each function takes plain figures (prepared by report.py) and returns PNG bytes. The bytes depend
only on the arguments: matplotlib's own defaults are used whatever the user's matplotlibrc says,
and the PNG carries no software version or date, so the same report renders to the same files and
a re-run reports no change.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import io
import math
import traceback
from collections import namedtuple

try:
    import matplotlib
    from matplotlib import dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator
except ImportError:  # reported by the module through missing_required_lib
    HAS_MATPLOTLIB = False
    MATPLOTLIB_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_MATPLOTLIB = True
    MATPLOTLIB_IMPORT_ERROR = None

# name: legend entry; points: (percentile, ms) along the distribution; marks: (percentile, ms) of
# the reported percentiles; baseline: drawn dashed in black, as the reference.
Curve = namedtuple("Curve", "name points marks baseline")

SIZE = (9.0, 5.0)  # inches; at DPI 100 a 900 x 500 pixel image
DPI = 100
STYLE = {
    "svg.hashsalt": "meshtune",
    "axes.grid": True,
    "grid.alpha": 0.35,
    "axes.titlesize": "medium",
    "legend.fontsize": "small",
}
# The percentile axis: x = 1/(1-p), so 90 % is 10, 99 % is 100, 99.99 % is 10000.
PERCENTILE_TICKS = ((0.0, "0"), (50.0, "50"), (90.0, "90"), (99.0, "99"), (99.9, "99.9"),
                    (99.99, "99.99"))
MARKED_PERCENTILES = ((50.0, ":"), (90.0, "-."), (99.0, "--"), (99.9, (0, (1, 4))))
MAX_LEGEND_ENTRIES = 12
MAX_LABEL = 60


def inverse_tail(percentile):
    """1/(1-p): the classic latency-percentile axis, where each further 9 takes equal room."""
    return 1.0 / max(1.0 - percentile / 100.0, 1e-6)


def _percentile_label(percentile):
    return f"p{percentile:g}"


def _render(draw, right=0.97):
    """PNG bytes of a figure drawn by draw(figure) under matplotlib's default style.

    Fixed margins instead of tight_layout, which draws every figure one more time: the labels
    are short, and `right` leaves room for a second y axis.
    """
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(STYLE)
        figure = Figure(figsize=SIZE, dpi=DPI)
        FigureCanvasAgg(figure)
        figure.subplots_adjust(left=0.1, right=right, bottom=0.11, top=0.93)
        draw(figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def percentile_curve(title, curves):
    """Latency (ms) by percentile for every run, the baseline dashed; x on the 1/(1-p) log scale."""

    def draw(figure):
        axes = figure.add_subplot(1, 1, 1)
        for curve in curves:
            style = {"color": "black", "linestyle": "--"} if curve.baseline else {}
            line = axes.plot([inverse_tail(p) for p, _ms in curve.points],
                             [ms for _p, ms in curve.points], label=curve.name, linewidth=1.8,
                             **style)[0]
            axes.plot([inverse_tail(p) for p, _ms in curve.marks], [ms for _p, ms in curve.marks],
                      linestyle="none", marker="o", markersize=4, color=line.get_color())
        axes.set_xscale("log")
        axes.set_xlim(1.0, inverse_tail(PERCENTILE_TICKS[-1][0]))
        axes.xaxis.set_major_locator(FixedLocator([inverse_tail(p) for p, _text in PERCENTILE_TICKS]))
        axes.xaxis.set_minor_locator(NullLocator())
        axes.set_xticklabels([text for _p, text in PERCENTILE_TICKS])
        axes.set_ylim(bottom=0)
        axes.set_xlabel("percentile (%), log scale of 1/(1-p)")
        axes.set_ylabel("latency (ms)")
        axes.set_title(title)
        axes.legend(loc="upper left")

    return _render(draw)


def _plain(value, _position):
    return f"{value:g}"


def _bar(start, end):
    """(left, width) of a bucket on a log axis: no zero, negative or empty widths."""
    if end <= 0:
        end = 1e-6
    if start <= 0 or start >= end:
        start = min(start, end / 1.02) if start > 0 else end / 2.0
    return start, end - start


def latency_histogram(title, buckets, marks):
    """Share of calls per bucket (bars, ms on a log axis), the cumulative share and percentile lines.

    buckets: (start ms, end ms, share %, cumulative %); marks: (percentile, ms).
    """

    def draw(figure):
        axes = figure.add_subplot(1, 1, 1)
        bars = [_bar(start, end) for start, end, _share, _cumulative in buckets]
        axes.bar([left for left, _width in bars], [share for _s, _e, share, _c in buckets],
                 width=[width for _left, width in bars], align="edge", color="#4c72b0",
                 edgecolor="#2a4a80", linewidth=0.5, label="calls in bucket")
        axes.set_xscale("log")
        # 0.1, 0.2, 0.5, 1, 2, 5, 10 ... written out: easier to read than powers of ten.
        axes.xaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
        axes.xaxis.set_major_formatter(FuncFormatter(_plain))
        axes.xaxis.set_minor_locator(NullLocator())
        axes.set_xlabel("latency (ms), log scale")
        axes.set_ylabel("calls in bucket (%)")
        axes.set_ylim(bottom=0)
        cumulative = axes.twinx()
        cumulative.plot([left + width for left, width in bars], [c for _s, _e, _sh, c in buckets],
                        color="#dd8452", marker=".", linewidth=1.2, label="cumulative")
        cumulative.set_ylim(0, 101)
        cumulative.set_ylabel("cumulative (%)")
        cumulative.grid(False)
        values = dict(marks)
        for percentile, style in MARKED_PERCENTILES:
            if percentile in values and values[percentile] > 0:
                axes.axvline(values[percentile], color="#555555", linestyle=style, linewidth=1.0,
                             label=f"{_percentile_label(percentile)} = {values[percentile]:.4g} ms")
        handles, labels = axes.get_legend_handles_labels()
        more_handles, more_labels = cumulative.get_legend_handles_labels()
        axes.legend(handles + more_handles, labels + more_labels, loc="center right")
        axes.set_title(title)

    return _render(draw, right=0.92)


def _when(stamp):
    return datetime.datetime.fromtimestamp(stamp, tz=datetime.timezone.utc)


def time_series(name, lines):
    """One Prometheus range-query result: a line per series, UTC time on x.

    lines: (label, [(unix seconds, value)]); NaN and infinite values leave gaps.
    """

    def draw(figure):
        axes = figure.add_subplot(1, 1, 1)
        starts = []
        for position, (label, points) in enumerate(lines):
            if not points:
                continue
            starts.append(min(stamp for stamp, _value in points))
            shown = label if len(label) <= MAX_LABEL else label[:MAX_LABEL - 1] + "…"
            axes.plot([_when(stamp) for stamp, _value in points],
                      [value if math.isfinite(value) else float("nan") for _stamp, value in points],
                      linewidth=1.4, label=shown if position < MAX_LEGEND_ENTRIES else None)
        if starts:
            utc = datetime.timezone.utc
            axes.xaxis.set_major_locator(mdates.AutoDateLocator(tz=utc))
            axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=utc))
            axes.set_xlabel("time (UTC) from {}".format(_when(min(starts)).strftime("%Y-%m-%d %H:%M:%S")))
            axes.legend(loc="upper left", fontsize="small" if len(lines) <= 6 else "x-small")
        else:
            axes.text(0.5, 0.5, "no samples", transform=axes.transAxes, ha="center", va="center")
            axes.set_xlabel("time (UTC)")
        axes.set_ylabel(name)
        title = name
        if len(lines) > MAX_LEGEND_ENTRIES:
            title = f"{name} ({len(lines)} series, legend shows {MAX_LEGEND_ENTRIES})"
        axes.set_title(title)

    return _render(draw)


# label: legend entry; color: lines of one sweep and mode share it; dash: the line style (one per
# percentile); points: (requests/s, value).
RateLine = namedtuple("RateLine", "label color dash points")


def rate_panels(title, panels):
    """One or more panels side by side, each (y label, [RateLine]), against the request rate.

    The cost curves of a sweep: a value per load point, one line per mode (and percentile). Lines
    are drawn in the order given, so colours are fixed by the caller, not by matplotlib's cycle.
    """

    def draw(figure):
        for position, (ylabel, lines) in enumerate(panels, 1):
            axes = figure.add_subplot(1, len(panels), position)
            for line in lines:
                points = [(x, y) for x, y in line.points if y is not None and math.isfinite(y)]
                axes.plot([x for x, _y in points], [y for _x, y in points], label=line.label,
                          color=f"C{line.color % 10}", linestyle=line.dash, marker="o",
                          markersize=3, linewidth=1.6)
            axes.set_xlabel("requests per second")
            axes.set_ylabel(ylabel)
            if lines and len(lines) <= MAX_LEGEND_ENTRIES:
                axes.legend(loc="upper left")
        figure.suptitle(title[:MAX_LABEL * 2], fontsize="medium")

    return _render(draw)
