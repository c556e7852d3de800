# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Capacity search: the highest request rate at which every target still holds.

The search only asks an evaluator whether a rate holds; it does not know how the load is sent,
so it is tested against fake evaluators and drives either engine. It assumes that a rate above
one that misses misses as well (capacity is a threshold), and handles noise explicitly:

1. grow: from start_qps, multiply the rate by `growth` until a target is missed or max_qps
   held;
2. bisect: between the highest rate that held and the lowest that missed, geometrically (the
   resolution is relative), until high / low - 1 <= resolution;
3. confirm: run the found rate `confirm` more times. It counts as holding only when every one of
   them holds; a lucky run (a quiet moment, a warm cache) does not set the capacity. When one
   misses, that rate becomes the lowest miss and the search bisects again below it.

A miss is never repeated: a false miss lowers the capacity found by one step at most, a false
hold would raise it above what the service can take, and the reported capacity is what a
pipeline will rely on. When start_qps itself misses, the outcome says so (capacity None)
instead of reporting start_qps.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

GROW, BISECT, CONFIRM = "grow", "bisect", "confirm"
# Rates are rounded to this many significant digits: readable, and far finer than any resolution
# a load test can tell apart.
RATE_DIGITS = 4
# No search needs more: 2 ** 64 from start to max, then bisection to 0.1 %, then confirmations.
MAX_STEPS = 200


class Verdict:
    """What the evaluator says of one rate: `holds`, the `checks` (slo.Check) and its payload."""

    def __init__(self, holds, checks=(), payload=None):
        self.holds = bool(holds)
        self.checks = list(checks)
        self.payload = payload


class Step:
    """One evaluated rate: qps, phase (grow, bisect, confirm) and the evaluator's verdict."""

    def __init__(self, qps, phase, verdict):
        self.qps = qps
        self.phase = phase
        self.verdict = verdict

    @property
    def holds(self):
        return self.verdict.holds


def worst_miss(checks):
    """The missed check that is furthest past its limit, relative to the limit; None if none.

    That is the target that "broke first": as the rate rose, it went furthest past its limit.
    A target without a measurement (NaN) counts as the worst.
    """
    missed = [check for check in checks if not check.ok]
    if not missed:
        return None

    def shortfall(check):
        if math.isnan(check.margin):
            return math.inf
        return -check.margin / check.limit if check.limit else math.inf

    return max(missed, key=shortfall)


class Outcome:
    """The search's result.

    capacity_qps: the highest rate that held in every run of it (None: start_qps missed).
    missed_qps: the lowest rate that missed above it (None: max_qps held; `capped`).
    broken: the check that broke first at missed_qps (worst_miss), None when nothing missed.
    steps: every Step in the order run.
    """

    def __init__(self, capacity_qps, missed_qps, broken, steps):
        self.capacity_qps = capacity_qps
        self.missed_qps = missed_qps
        self.broken = broken
        self.steps = steps

    @property
    def capped(self):
        return self.capacity_qps is not None and self.missed_qps is None

    @property
    def below_start(self):
        return self.capacity_qps is None


def _rounded(rate):
    return float(f"{rate:.{RATE_DIGITS}g}")


def _between(low, high):
    """The geometric middle of (low, high), rounded; None when rounding leaves no room."""
    middle = _rounded(math.sqrt(low * high))
    return middle if low < middle < high else None


def search_capacity(evaluate, start_qps, max_qps, resolution, confirm=1, growth=2.0):
    """Search with `evaluate(qps, phase) -> Verdict`; an Outcome.

    start_qps <= max_qps, resolution > 0 (0.05 for 5 %), confirm >= 0 extra runs of the found
    rate, growth > 1. Every rate run lies within [start_qps, max_qps].
    """
    if not 0 < start_qps <= max_qps or resolution <= 0 or confirm < 0 or growth <= 1:
        raise ValueError("need 0 < start_qps <= max_qps, resolution > 0, confirm >= 0, growth > 1")
    steps = []
    held = set()  # the rates that held (a confirmation miss takes a rate out again)
    high = None
    high_verdict = None

    def run(rate, phase):
        if len(steps) >= MAX_STEPS:
            raise RuntimeError(f"capacity search did not settle within {MAX_STEPS} steps")
        verdict = evaluate(rate, phase)
        steps.append(Step(rate, phase, verdict))
        return verdict

    rate = _rounded(start_qps)
    while True:
        verdict = run(rate, GROW)
        if not verdict.holds:
            high, high_verdict = rate, verdict
            break
        held.add(rate)
        if rate >= max_qps:
            break
        rate = min(_rounded(rate * growth), max_qps)

    while held:
        low = max(held)
        while high is not None and high / low - 1 > resolution:
            middle = _between(low, high)
            if middle is None:
                break
            verdict = run(middle, BISECT)
            if verdict.holds:
                held.add(middle)
                low = middle
            else:
                high, high_verdict = middle, verdict
        for _repeat in range(confirm):
            verdict = run(low, CONFIRM)
            if not verdict.holds:
                held.discard(low)
                high, high_verdict = low, verdict
                break
        else:
            break
    capacity = max(held) if held else None
    broken = worst_miss(high_verdict.checks) if high_verdict is not None else None
    return Outcome(capacity, high, broken, steps)
