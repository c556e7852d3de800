# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Judge a load-test result against service-level targets, and say why in a table.

A target is a name from TARGETS and a limit. Latency, CPU, memory and growth targets are upper
bounds; success_rate and min_qps_ratio are lower bounds. Each check reports its margin, signed so
that a positive margin is headroom and a negative one is how far the target was missed.

Everything a call needs is checked first (target names and limits, the result, the baseline and
the proxy figures that the chosen targets read), so a typo fails with one message that lists all
problems instead of a half-judged run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
from collections import OrderedDict, namedtuple

from ansible_collections.meshtune.mesh.plugins.module_utils.run_result import (
    read_result_file,
    validate_result,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.tables import format_number
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption, Problems

UPPER = "max"
LOWER = "min"
# Measured values and margins are rounded to this many decimals: seconds become milliseconds by
# multiplying, and 0.0123 * 1000 must not miss a 12.3 ms target by 2e-15.
DECIMALS = 9

# source: where the figure comes from: result, baseline (result minus baseline) or proxy.
# key: the percentile for latency targets, the proxy figure's name for proxy targets.
Target = namedtuple("Target", "bound unit source key description")

TARGETS = OrderedDict([
    ("p50_ms", Target(UPPER, "ms", "result", 50.0, "median latency")),
    ("p90_ms", Target(UPPER, "ms", "result", 90.0, "90th percentile latency")),
    ("p99_ms", Target(UPPER, "ms", "result", 99.0, "99th percentile latency")),
    ("p999_ms", Target(UPPER, "ms", "result", 99.9, "99.9th percentile latency")),
    ("success_rate", Target(LOWER, "ratio", "result", "success_rate",
                            "share of 2xx responses among all calls, errors included")),
    ("min_qps_ratio", Target(LOWER, "ratio", "result", "qps_ratio",
                             "achieved rate over requested rate")),
    ("added_p50_ms", Target(UPPER, "ms", "baseline", 50.0, "median latency added by the mesh")),
    ("added_p90_ms", Target(UPPER, "ms", "baseline", 90.0, "p90 latency added by the mesh")),
    ("added_p99_ms", Target(UPPER, "ms", "baseline", 99.0, "p99 latency added by the mesh")),
    ("proxy_cpu_per_1k_rps", Target(UPPER, "vCPU", "proxy", "cpu_per_1k_rps",
                                    "sidecar CPU per 1000 requests/s")),
    ("proxy_memory_mib", Target(UPPER, "MiB", "proxy", "memory_mib", "sidecar memory")),
    ("proxy_memory_growth_mib_per_min", Target(UPPER, "MiB/min", "proxy", "memory_growth_mib_per_min",
                                               "sidecar memory growth during the run (leak signal)")),
    ("push_latency_p99_ms", Target(UPPER, "ms", "proxy", "push_latency_p99_ms",
                                   "istiod configuration push latency, p99")),
    ("min_capacity_ratio", Target(LOWER, "ratio", "capacity", "ratio",
                                  "capacity through the mesh over capacity without it")),
])
PROXY_FIGURES = OrderedDict(
    (target.key, name) for name, target in TARGETS.items() if target.source == "proxy")

Check = namedtuple("Check", "target measured limit margin ok unit bound")


def as_number(path, value, allow_nan=False):
    """A float from a number or numeric string (templated values arrive as strings)."""
    if isinstance(value, bool) or value is None:
        raise InvalidOption(path, "a number", value)
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise InvalidOption(path, "a number", value) from err
    if math.isnan(number) and not allow_nan:
        raise InvalidOption(path, "a number", value)
    return number


def check_limit(name, value):
    """A target's limit: a finite number, success_rate within 0..1, the others not negative."""
    path = f"targets.{name}"
    limit = as_number(path, value)
    if math.isinf(limit) or limit < 0:
        raise InvalidOption(path, "a finite number of at least 0", value)
    if name == "success_rate" and limit > 1:
        raise InvalidOption(path, "a share between 0 and 1 (0.999 for 99.9 %)", value)
    return limit


def load_result(problems, where, data, path):
    """A FortioResult from the inline dict or the file option, checked as a whole (an impossible
    result is refused, not judged); None (and a problem) when unusable."""
    if data is None and path is None:
        return None
    if path is not None:
        data = problems.check(read_result_file, where + "_file", path)
        if data is None:
            return None
        where = f"{where}_file ({path})"
    return problems.check(validate_result, where, data)


def capacity_ratio(capacity):
    """Mesh capacity over baseline capacity from the `capacity` option; NaN when either search
    found no capacity (its start rate already missed) or the baseline's is 0."""
    mesh, baseline = capacity.get("mesh_qps"), capacity.get("baseline_qps")
    for key, value in (("mesh_qps", mesh), ("baseline_qps", baseline)):
        if value is not None:
            number = as_number(f"capacity.{key}", value)
            if number < 0 or math.isinf(number):
                raise InvalidOption(f"capacity.{key}", "a rate of at least 0, or null", value)
    if mesh is None or baseline is None or not float(baseline):
        return math.nan
    return float(mesh) / float(baseline)


def measure(name, result, baseline, proxy, capacity=None):
    """The measured figure of one target (InvalidOption when the inputs lack it)."""
    target = TARGETS[name]
    if target.source == "proxy":
        return proxy[target.key]
    if target.source == "capacity":
        return capacity_ratio(capacity)
    if target.key == "success_rate":
        return result.success_rate()
    if target.key == "qps_ratio":
        return result.qps_ratio()
    value = result.percentile_ms(target.key)
    if target.source == "baseline":
        value -= baseline.percentile_ms(target.key)
    return value


def judge(name, measured, limit):
    target = TARGETS[name]
    measured = round(measured, DECIMALS) if math.isfinite(measured) else measured
    margin = limit - measured if target.bound == UPPER else measured - limit
    if math.isfinite(margin):
        margin = round(margin, DECIMALS)
    ok = not math.isnan(margin) and margin >= 0
    return Check(name, measured, limit, margin, ok, target.unit, target.bound)


def _limits(problems, targets):
    """Known target names with valid limits, in TARGETS order; a problem for every other one."""
    if not targets:
        problems.add("targets", "at least one target, such as {p99_ms: 10}", targets)
    limits = OrderedDict()
    for name, value in targets.items():
        if name not in TARGETS:
            problems.add(f"targets.{name}",
                         "a known target name, one of: " + ", ".join(TARGETS), name)
            continue
        limit = problems.check(check_limit, name, value)
        if limit is not None:
            limits[name] = limit
    return OrderedDict((name, limits[name]) for name in TARGETS if name in limits)


def _proxy_figures(problems, proxy):
    """The given proxy figures as floats (NaN allowed: a query without data); problems for the rest."""
    figures = {}
    for key, value in proxy.items():
        if key not in PROXY_FIGURES:
            problems.add(f"proxy.{key}",
                         "a known proxy figure, one of: " + ", ".join(PROXY_FIGURES), key)
        elif value is not None:
            number = problems.check(as_number, f"proxy.{key}", value, allow_nan=True)
            if number is not None:
                figures[key] = number
    return figures


def plan_checks(params):
    """(message, checks): every problem with the inputs as one message, or the judged checks.

    params holds the module options: targets, result/result_file, baseline/baseline_file, proxy.
    """
    problems = Problems()
    limits = _limits(problems, params.get("targets") or {})
    result = load_result(problems, "result", params.get("result"), params.get("result_file"))
    if params.get("result") is None and params.get("result_file") is None:
        problems.add("result", "a fortio result (result or result_file)", None)
    baseline_given = params.get("baseline") is not None or params.get("baseline_file") is not None
    baseline = load_result(problems, "baseline", params.get("baseline"), params.get("baseline_file"))
    proxy_given = params.get("proxy") or {}
    proxy = _proxy_figures(problems, proxy_given)

    needing_baseline = [name for name in limits if TARGETS[name].source == "baseline"]
    if needing_baseline and not baseline_given:
        problems.add("baseline", "a fortio result of the same load without sidecars (baseline or "
                     "baseline_file) for targets " + ", ".join(needing_baseline), None)
    for name in limits:
        target = TARGETS[name]
        if target.source == "proxy" and proxy_given.get(target.key) is None:
            problems.add(f"proxy.{target.key}",
                         f"the measured {target.description} in {target.unit} for target {name}", None)

    capacity = params.get("capacity")
    if "min_capacity_ratio" in limits and not capacity:
        problems.add("capacity", "the capacities found with and without the mesh ({mesh_qps: ..., "
                     "baseline_qps: ...}, load_test search) for target min_capacity_ratio", None)
    if capacity and set(capacity) - {"mesh_qps", "baseline_qps"}:
        problems.add("capacity", "a dict with mesh_qps and baseline_qps", sorted(capacity))

    measured = OrderedDict()
    for name in limits:
        source = TARGETS[name].source
        if result is None or (source == "baseline" and baseline is None) or \
                (source == "proxy" and TARGETS[name].key not in proxy) or \
                (source == "capacity" and not capacity):
            continue  # the missing input is already reported
        value = problems.check(measure, name, result, baseline, proxy, capacity)
        if value is not None:
            measured[name] = value
    message = problems.message()
    if message:
        return message, []
    return None, [judge(name, measured[name], limit) for name, limit in limits.items()]


def _with_unit(value, unit):
    text = format_number(value)
    return text if unit == "ratio" else f"{text} {unit}"


def table(checks):
    """A plain-text table: target | measured | limit | margin | ok."""
    header = ("target", "measured", "limit", "margin", "ok")
    rows = [(c.target, _with_unit(c.measured, c.unit),
             "{} {}".format("<=" if c.bound == UPPER else ">=", _with_unit(c.limit, c.unit)),
             ("+" if c.margin > 0 else "") + _with_unit(c.margin, c.unit),
             "ok" if c.ok else "MISSED") for c in checks]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells)).rstrip()

    rule = "-+-".join("-" * width for width in widths)
    return "\n".join([line(header), rule] + [line(row) for row in rows])


def _miss(check):
    if math.isnan(check.measured):
        return f"{check.target} (no measurement)"
    side = "above" if check.bound == UPPER else "below"
    measured, limit = _with_unit(check.measured, check.unit), _with_unit(check.limit, check.unit)
    return f"{check.target} ({measured} {side} {limit})"


def headline(checks):
    """One line: all met, or which targets were missed and by how much."""
    missed = [c for c in checks if not c.ok]
    if not missed:
        return f"SLO check passed: all {len(checks)} targets met"
    details = ", ".join(_miss(c) for c in missed)
    return f"SLO check failed: {len(missed)} of {len(checks)} targets missed: {details}"


def checks_result(checks):
    """slo_check's result fields for a list of checks."""
    text = table(checks)
    return {
        "checks": [dict(c._asdict()) for c in checks],
        "passed": all(c.ok for c in checks),
        "table": text,
        "msg": headline(checks) + "\n" + text,
    }
