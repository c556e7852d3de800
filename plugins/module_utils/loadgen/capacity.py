# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""load_test's `search`: its options checked, each step run and judged, the outcome reported.

search.py holds the algorithm; this module gives it an evaluator: one open-loop run at the
step's rate (with the task's warm-up) judged against the targets the way slo_check judges a
result (slo.measure, slo.judge), so a capacity found here and a verification at that rate
agree. Only targets that one run measures can be searched on: latency percentiles, success rate
and achieved rate. Added latency needs a baseline run per step and proxy cost needs Prometheus,
so those are judged by a verification at the rate found.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import math
import time
from collections import OrderedDict

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.engine import assess, run_load
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.options import (
    duration_seconds,
    spec_from_params,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.search import (
    Verdict,
    search_capacity,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.task import local_output
from ansible_collections.meshtune.mesh.plugins.module_utils.run_result import FortioResult
from ansible_collections.meshtune.mesh.plugins.module_utils.slo import (
    TARGETS,
    check_limit,
    judge,
    measure,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption, Problems

# The targets one run measures by itself.
SEARCH_TARGETS = tuple(name for name, target in TARGETS.items() if target.source == "result")
# The search options as the module's argument spec gives them (suboptions of `search`).
SEARCH_OPTIONS = {
    "targets": {"type": "dict", "required": True},
    "start_qps": {"type": "float", "default": 10},
    "max_qps": {"type": "float", "required": True},
    "resolution": {"type": "float", "default": 0.05},
    "step_duration": {"type": "str", "default": "10s"},
    "cooldown": {"type": "str", "default": "0s"},
    "confirm": {"type": "int", "default": 2},
    "growth": {"type": "float", "default": 2.0},
}
MAX_CONFIRM = 10


class SearchSettings:
    """The checked `search` options; times in seconds."""

    def __init__(self, targets, start_qps, max_qps, resolution, step_duration, cooldown, confirm,
                 growth):
        self.targets = targets
        self.start_qps = start_qps
        self.max_qps = max_qps
        self.resolution = resolution
        self.step_duration = step_duration
        self.cooldown = cooldown
        self.confirm = confirm
        self.growth = growth


class SearchError(ValueError):
    """A step that measured nothing about the target (every request failed before reaching it)."""


def _number(path, value, low, high, expected):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise InvalidOption(path, expected, value)
    return float(value)


def _targets(problems, targets):
    limits = OrderedDict()
    if not isinstance(targets, dict) or not targets:
        problems.add("search.targets", "at least one target, such as {p99_ms: 20}", targets)
        return limits
    for name, value in targets.items():
        if name not in SEARCH_TARGETS:
            reason = "" if name not in TARGETS else (
                f" ({name} needs a baseline or Prometheus, which one step does not have: judge it "
                "with a verification at the rate found)")
            problems.add(f"search.targets.{name}",
                         "a target one run measures, one of: " + ", ".join(SEARCH_TARGETS) + reason,
                         name)
            continue
        limit = problems.check(check_limit, name, value)
        if limit is not None:
            limits[name] = limit
    return limits


def check_search(search, problems=None):
    """SearchSettings from the `search` option; problems (validate.Problems) for each bad value."""
    problems = problems if problems is not None else Problems()
    targets = _targets(problems, search.get("targets"))
    start = problems.check(_number, "search.start_qps", search.get("start_qps"), 1e-3, 1e9,
                           "a rate above 0 requests per second")
    top = problems.check(_number, "search.max_qps", search.get("max_qps"), 1e-3, 1e9,
                         "a rate above 0 requests per second")
    if start is not None and top is not None and start > top:
        problems.add("search.max_qps", f"at least start_qps ({start:g})", top)
    resolution = problems.check(_number, "search.resolution", search.get("resolution"), 0.001, 1,
                                "a share from 0.001 to 1, such as 0.05 for 5 %")
    growth = problems.check(_number, "search.growth", search.get("growth"), 1.1, 10,
                            "a factor from 1.1 to 10, such as 2")
    step = problems.check(duration_seconds, "search.step_duration", search.get("step_duration"))
    cooldown = problems.check(duration_seconds, "search.cooldown", search.get("cooldown"),
                              allow_zero=True)
    confirm = search.get("confirm")
    if isinstance(confirm, bool) or not isinstance(confirm, int) or not 0 <= confirm <= MAX_CONFIRM:
        problems.add("search.confirm", f"a count of extra runs from 0 to {MAX_CONFIRM}", confirm)
    if problems.messages:
        return None
    return SearchSettings(targets, start, top, resolution, step, cooldown, confirm, growth)


# Options a search sets itself for each step, or returns otherwise.
_SET_BY_SEARCH = {"duration": "each step runs search.step_duration",
                  "requests": "each step runs search.step_duration",
                  "result_file": "every step's result is returned in steps"}


def spec_from_search(params, progress=None):
    """(LoadSpec, SearchSettings, None), or (None, None, one message with every problem).

    The load options are checked as for one run at max_qps for step_duration, so the local
    engine's bounds (and the fortio engine's split over its pods) apply to the fastest step.
    """
    problems = Problems()
    settings = check_search(params["search"], problems)
    for name, reason in _SET_BY_SEARCH.items():
        if params.get(name) is not None:
            problems.add(name, f"no {name} with search ({reason})", params[name])
    step = dict(params, duration="1s", requests=None, result_file=None)
    if settings is not None:
        step.update(qps=settings.max_qps, duration=params["search"]["step_duration"])
    spec, message = spec_from_params(step, progress=progress)
    if message:
        problems.messages.append(message.split(": ", 1)[1])
    message = problems.message()
    if message:
        return None, None, message
    return spec, settings, None


def judge_result(result, targets):
    """slo_check's checks of one result against targets that need nothing else."""
    view = FortioResult("result", result)
    return [judge(name, measure(name, view, None, None), limit) for name, limit in targets.items()]


def _evaluator(spec, settings, measure, progress, sleep):
    """evaluate(qps, phase) for search_capacity: `measure(step spec)` -> output with a result,
    judged against the targets; a cooldown before every step but the first."""
    say = progress or (lambda text: None)
    done = []

    def evaluate(qps, phase):
        if done and settings.cooldown:
            sleep(settings.cooldown)
        step = copy.copy(spec)
        step.qps = qps
        step.duration = settings.step_duration
        step.requests = None
        try:
            output = measure(step)
        except SearchError as error:
            raise SearchError(f"step {len(done) + 1} at {qps:g} qps: {error}") from error
        checks = judge_result(output["result"], settings.targets)
        verdict = Verdict(all(check.ok for check in checks), checks, output)
        done.append(qps)
        say(step_line(len(done), qps, phase, verdict))
        return verdict

    return evaluate


def local_evaluator(spec, settings, labels="", progress=None, sleep=time.sleep):
    """One local-engine run per step.

    A step whose schedule slipped is a result, not a failure: the requests it could not send
    count as errors and with their lateness, so its targets miss. A step in which every request
    failed before reaching the server, or this host ran out of sockets, raises SearchError.
    """

    def measure(step):
        run = run_load(step)
        failure, _warnings = assess(run, max_not_sent=1.0)
        if failure:
            raise SearchError(failure)
        return local_output(run, labels, 1.0)

    return _evaluator(spec, settings, measure, progress, sleep)


def fortio_evaluator(runner, spec, settings, progress=None, sleep=time.sleep):
    """One fortio Job per step on the objects runner.setup() created (the server and its pods
    stay up between steps)."""
    return _evaluator(spec, settings, runner.step, progress, sleep)


def fortio_search(spec, settings, progress=None):
    """fortio_engine.execute's `work` for a search: set up once, then a Job per step."""

    def work(runner):
        runner.setup()
        outcome = run_search(fortio_evaluator(runner, spec, settings, progress), settings)
        found, steps = outcome_output(outcome, settings, spec.warmup)
        return {"capacity": found, "steps": steps, "msg": headline(found)}

    return work


def step_line(number, qps, phase, verdict):
    """A progress line for one step: `step 3 bisect 565.7 qps: missed p99_ms=91.2 (<= 50)`."""
    missed = [c for c in verdict.checks if not c.ok]
    detail = "held" if verdict.holds else "missed " + ", ".join(
        f"{c.target}={c.measured:g} ({'<=' if c.bound == 'max' else '>='} {c.limit:g})"
        for c in missed)
    return f"step {number} {phase} {qps:g} qps: {detail}"


def run_search(evaluate, settings):
    """search_capacity with the settings' bounds."""
    return search_capacity(evaluate, settings.start_qps, settings.max_qps, settings.resolution,
                           confirm=settings.confirm, growth=settings.growth)


def outcome_output(outcome, settings, warmup):
    """The module's `capacity` and `steps` return values."""
    steps = []
    for number, step in enumerate(outcome.steps, 1):
        payload = step.verdict.payload or {}
        steps.append(OrderedDict((
            ("step", number), ("qps", step.qps), ("phase", step.phase), ("holds", step.holds),
            ("missed", [c.target for c in step.verdict.checks if not c.ok]),
            ("checks", [dict(c._asdict()) for c in step.verdict.checks]),
            ("summary", payload.get("summary")), ("result", payload.get("result")))))
    broken = None
    if outcome.broken is not None:
        broken = OrderedDict((("target", outcome.broken.target), ("qps", outcome.missed_qps),
                              ("measured", outcome.broken.measured), ("limit", outcome.broken.limit),
                              ("unit", outcome.broken.unit)))
    capacity = OrderedDict((
        ("capacity_qps", outcome.capacity_qps), ("missed_qps", outcome.missed_qps),
        ("capped", outcome.capped), ("below_start", outcome.below_start),
        ("broken", broken), ("resolution", settings.resolution),
        ("steps", len(steps)),
        ("load_seconds", round(len(steps) * (settings.step_duration + warmup), 3))))
    return capacity, steps


def headline(capacity):
    """The outcome in one sentence."""
    broken = capacity["broken"]
    why = "" if broken is None else (
        f"; {broken['target']} broke first: {broken['measured']:g} {broken['unit']} at "
        f"{broken['qps']:g} qps (limit {broken['limit']:g})")
    if capacity["below_start"]:
        return f"capacity below start_qps: the targets were missed at {capacity['missed_qps']:g} qps" + why
    if capacity["capped"]:
        return f"capacity at least max_qps ({capacity['capacity_qps']:g} qps): every target held"
    return (f"capacity {capacity['capacity_qps']:g} qps (held; {capacity['missed_qps']:g} qps missed)"
            + why)
