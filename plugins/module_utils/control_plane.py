# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The new revision's istiod against the old one, over the same window, from Prometheus.

A canary upgrade runs both control planes side by side, so their figures for the same minutes
compare like with like: configuration churn, cluster and time of day are the same. The new one
may serve fewer proxies (only the canary namespaces), so the push rate is taken per connected
proxy. Each figure of the new revision must stay within a factor of the old one's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
from collections import namedtuple

from ansible_collections.meshtune.mesh.plugins.module_utils.tables import format_number, text_table

# name -> (PromQL with {sel} for the label selector and {w} for the window, unit). push_rate:
# config pushes per second and connected proxy; convergence_p99: from a config change to the
# proxies having it; queue_time_p99: a proxy's wait in the push queue; memory: resident memory of
# one istiod instance.
FIGURES = {
    "push_rate": ("sum by (revision) (rate(pilot_xds_pushes{{{sel}}}[{w}])) / "
                  "sum by (revision) (avg_over_time(pilot_xds{{{sel}}}[{w}]))", "pushes/s per proxy"),
    "convergence_p99": ("histogram_quantile(0.99, sum by (revision, le) "
                        "(rate(pilot_proxy_convergence_time_bucket{{{sel}}}[{w}])))", "s"),
    "queue_time_p99": ("histogram_quantile(0.99, sum by (revision, le) "
                       "(rate(pilot_proxy_queue_time_bucket{{{sel}}}[{w}])))", "s"),
    "memory": ("avg by (revision) (avg_over_time(process_resident_memory_bytes{{{sel}}}[{w}]))", "bytes"),
}
# How much worse than the old revision each figure may be, as a factor.
DEFAULT_LIMITS = {"push_rate": 2.0, "convergence_p99": 2.0, "queue_time_p99": 2.0, "memory": 1.5}

Comparison = namedtuple("Comparison", "figure unit old new ratio limit ok")


def queries(job, revision, previous_revision, window):
    """name -> PromQL, each answering one sample per revision."""
    selector = f'job="{job}",revision=~"{revision}|{previous_revision}"'
    return {name: promql.format(sel=selector, w=window) for name, (promql, _unit) in FIGURES.items()}


def by_revision(converted):
    """{revision: value} of an instant vector result."""
    return {sample["metric"].get("revision"): sample["value"]
            for sample in converted["result"] if "value" in sample}


def compare(name, values, revision, previous_revision, limit):
    """One Comparison; ok is None when either revision has no figure (no series, or NaN)."""
    old, new = values.get(previous_revision), values.get(revision)
    unit = FIGURES[name][1]
    if old is None or new is None or math.isnan(old) or math.isnan(new):
        return Comparison(name, unit, old, new, None, limit, None)
    ratio = (1.0 if new == 0 else math.inf) if old == 0 else new / old
    return Comparison(name, unit, old, new, ratio, limit, ratio <= limit)


def _number(value):
    return "no data" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else format_number(value)


def table(comparisons, revision, previous_revision):
    """figure | old | new | new/old | limit | ok."""
    return text_table(
        ("figure", f"{previous_revision} (old)", f"{revision} (new)", "new/old", "limit", "ok"),
        [(f"{c.figure} ({c.unit})", _number(c.old), _number(c.new), _number(c.ratio),
          f"<= {format_number(c.limit)}x", {True: "ok", False: "MISSED", None: "no data"}[c.ok])
         for c in comparisons])
