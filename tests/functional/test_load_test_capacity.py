"""load_test's capacity search against a server whose capacity a token bucket enforces.

The server admits 400 requests/s and answers each 2 ms after admission, so where a target
breaks follows from arithmetic, not from how fast this machine is. Steps are half a second.
"""

from __future__ import annotations

import pytest

from ansible_collections.meshtune.mesh.plugins.modules.load_test import main
from tests.support.capacity_server import running
from tests.support.module_harness import call_module

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

RATE = 400.0
SERVICE = 0.002
WARMUP = 0.25
STEP = 0.5
RESOLUTION = 0.05
P99_MS = 50.0
SUCCESS = 0.99


def search(url, **changes):
    options = {"targets": {"p99_ms": P99_MS, "success_rate": SUCCESS}, "start_qps": 100,
               "max_qps": 1600, "resolution": RESOLUTION, "step_duration": f"{STEP}s",
               "confirm": 1}
    options.update(changes)
    return call_module(main, {"url": url, "connections": 64, "warmup": f"{WARMUP}s",
                              "timeout": "2s", "search": options})


def queue_knee():
    """The rate above which the queue alone pushes p99 past its target: beyond RATE the queue
    grows by (1 - RATE / qps) seconds per second, and p99 is reached 99 % into the step."""
    growth_allowed = (P99_MS / 1000 - SERVICE) / (WARMUP + 0.99 * STEP)
    return RATE / (1 - growth_allowed)


def shed_knee():
    """The rate above which more than 1 - SUCCESS of the calls are shed (503)."""
    return RATE / SUCCESS


def assert_found(outcome, knee):
    capacity = outcome["capacity"]
    assert not capacity["capped"] and not capacity["below_start"], capacity
    # Within the resolution: the rate found held, the next one missed, and they are that close.
    assert capacity["missed_qps"] / capacity["capacity_qps"] - 1 <= RESOLUTION
    # Above the knee the target cannot hold; below the bucket's rate it holds, give or take one
    # step of a busy machine's noise.
    assert RATE * (1 - RESOLUTION) / (1 + RESOLUTION) <= capacity["capacity_qps"] <= knee
    steps = outcome["steps"]
    assert [step["step"] for step in steps] == list(range(1, len(steps) + 1))
    assert capacity["steps"] == len(steps)
    assert capacity["load_seconds"] == pytest.approx(len(steps) * (STEP + WARMUP))
    found = [step for step in steps if step["qps"] == capacity["capacity_qps"]]
    assert all(step["holds"] for step in found) and found[-1]["phase"] == "confirm"
    for step in steps:  # each step's result, in fortio's shape, for reports
        assert step["result"]["DurationHistogram"]["Count"] == step["summary"]["requests"] > 0
        assert float(step["result"]["RequestedQPS"]) == step["qps"]
    return capacity


def test_a_p99_target_breaks_first_where_the_queue_grows():
    with running(RATE, SERVICE, lifetime=80) as url:
        outcome = search(url)
    assert outcome.get("failed") is not True, outcome
    capacity = assert_found(outcome, queue_knee())
    assert capacity["broken"]["target"] == "p99_ms"
    assert capacity["broken"]["measured"] > P99_MS
    assert capacity["broken"]["qps"] == capacity["missed_qps"]
    missed = next(step for step in outcome["steps"] if step["qps"] == capacity["missed_qps"])
    assert missed["missed"][0] == "p99_ms" and missed["summary"]["success_rate"] >= SUCCESS
    assert outcome["msg"].startswith(f"capacity {capacity['capacity_qps']:g} qps")


def test_a_success_rate_target_breaks_first_when_the_server_sheds_load():
    with running(RATE, SERVICE, shed=True, lifetime=80) as url:
        outcome = search(url)
    assert outcome.get("failed") is not True, outcome
    capacity = assert_found(outcome, shed_knee())
    assert capacity["broken"]["target"] == "success_rate"
    assert capacity["broken"]["measured"] < SUCCESS
    missed = next(step for step in outcome["steps"] if step["qps"] == capacity["missed_qps"])
    assert "p99_ms" not in missed["missed"]  # shed calls are answered at once
    codes = {str(code): count for code, count in missed["result"]["RetCodes"].items()}
    assert codes["503"] > 0, codes


def test_a_target_missed_at_start_qps_is_reported_as_such():
    with running(RATE, SERVICE, lifetime=30) as url:
        outcome = search(url, targets={"p50_ms": SERVICE * 1000 / 2}, start_qps=50)
    assert outcome.get("failed") is not True, outcome
    capacity = outcome["capacity"]
    assert capacity["below_start"] and capacity["capacity_qps"] is None
    assert capacity["missed_qps"] == 50 and capacity["broken"]["target"] == "p50_ms"
    assert len(outcome["steps"]) == 1
    assert outcome["msg"].startswith("capacity below start_qps")


def test_max_qps_bounds_the_search():
    with running(RATE, SERVICE, lifetime=30) as url:
        outcome = search(url, start_qps=50, max_qps=120, confirm=0)
    capacity = outcome["capacity"]
    assert capacity["capped"] and capacity["capacity_qps"] == 120
    assert [step["qps"] for step in outcome["steps"]] == [50, 100, 120]


def test_bad_search_options_fail_in_one_message_before_any_request():
    outcome = call_module(main, {"url": "http://127.0.0.1:9/", "duration": "10s", "search": {
        "targets": {"p99_ms": -1, "added_p90_ms": 3, "proxy_memory_mib": 100},
        "start_qps": 500, "max_qps": 100, "resolution": 0, "step_duration": "soon",
        "cooldown": "-1s", "confirm": 99, "growth": 1}})
    assert outcome["failed"]
    message = outcome["msg"]
    for expected in ("targets.p99_ms:", "search.targets.added_p90_ms: expected a target one run "
                     "measures", "needs a baseline or Prometheus", "search.targets.proxy_memory_mib:",
                     "search.max_qps: expected at least start_qps (500)", "search.resolution:",
                     "search.step_duration:", "search.cooldown:", "search.confirm:", "search.growth:",
                     "duration: expected no duration with search"):
        assert expected in message, message


def test_check_mode_checks_the_search_and_sends_nothing():
    outcome = call_module(main, {"url": "http://127.0.0.1:9/", "search": {
        "targets": {"p99_ms": 5}, "max_qps": 100}}, check_mode=True)
    assert outcome.get("failed") is not True and "no request was sent" in outcome["msg"]
