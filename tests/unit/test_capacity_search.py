"""The capacity search alone, against fake evaluators: exact, noisy and lucky ones."""

from __future__ import annotations

import math
import random

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.search import (
    BISECT,
    CONFIRM,
    GROW,
    Verdict,
    search_capacity,
    worst_miss,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.slo import judge

LIMIT_MS = 10.0


class Threshold:
    """A service that holds its p99 target up to `capacity` requests/s, p99 growing with the rate.

    `noise` moves the capacity seen by each run by up to that share either way (seeded), as a
    real run's quiet or busy moment would; `lucky` rates hold on their first run only.
    """

    def __init__(self, capacity, noise=0.0, seed=0, lucky=()):
        self.capacity = capacity
        self.noise = noise
        self.random = random.Random(seed)
        self.lucky = lucky
        self.runs = {}

    def __call__(self, qps, phase):
        self.runs[qps] = self.runs.get(qps, 0) + 1
        seen = self.capacity * (1 + self.random.uniform(-self.noise, self.noise))
        lucky = self.runs[qps] == 1 and any(low < qps <= high for low, high in self.lucky)
        p99 = LIMIT_MS * qps / seen
        if lucky:
            p99 = min(p99, LIMIT_MS)
        checks = [judge("p99_ms", p99, LIMIT_MS), judge("success_rate", 1.0, 0.99)]
        return Verdict(all(check.ok for check in checks), checks, payload={"qps": qps})


@pytest.mark.parametrize("capacity", [37.0, 400.0, 1234.5, 9000.0])
@pytest.mark.parametrize("resolution", [0.01, 0.05, 0.2])
def test_an_exact_service_s_capacity_is_bracketed_within_the_resolution(capacity, resolution):
    outcome = search_capacity(Threshold(capacity), start_qps=10, max_qps=20000,
                              resolution=resolution, confirm=1)
    assert outcome.capacity_qps <= capacity < outcome.missed_qps
    assert outcome.missed_qps / outcome.capacity_qps - 1 <= resolution
    assert outcome.broken.target == "p99_ms"
    assert outcome.broken.measured == pytest.approx(LIMIT_MS * outcome.missed_qps / capacity)
    # The phases come in order, and the found rate was confirmed once more.
    phases = [step.phase for step in outcome.steps]
    assert phases == sorted(phases, key=[GROW, BISECT, CONFIRM].index)
    assert outcome.steps[-1].phase == CONFIRM and outcome.steps[-1].qps == outcome.capacity_qps


def test_the_result_is_monotone_in_the_service_s_capacity():
    found = [search_capacity(Threshold(capacity), 10, 5000, 0.05).capacity_qps
             for capacity in range(50, 3000, 37)]
    assert found == sorted(found)


def test_a_lucky_run_above_capacity_is_caught_by_the_confirmations():
    service = {"capacity": 400.0, "lucky": [(400.0, 440.0)]}
    unconfirmed = search_capacity(Threshold(**service), 100, 1000, 0.05, confirm=0)
    assert unconfirmed.capacity_qps > 400  # a single lucky run set it
    confirmed = search_capacity(Threshold(**service), 100, 1000, 0.05, confirm=2)
    assert confirmed.capacity_qps <= 400 < confirmed.missed_qps
    # The capacity held in each of its runs, and every rate above it missed at least once.
    runs = {}
    for step in confirmed.steps:
        runs.setdefault(step.qps, []).append(step.holds)
    assert all(runs[confirmed.capacity_qps]) and len(runs[confirmed.capacity_qps]) == 3
    assert all(not all(results) for rate, results in runs.items() if rate > confirmed.capacity_qps)


@pytest.mark.parametrize("seed", range(20))
def test_with_noise_the_capacity_held_every_time_it_was_run(seed):
    service = Threshold(500.0, noise=0.05, seed=seed)
    outcome = search_capacity(service, 50, 2000, 0.05, confirm=3)
    held = [step.holds for step in outcome.steps if step.qps == outcome.capacity_qps]
    assert len(held) >= 4 and all(held)
    # Whatever the noise, the capacity is within the noise of the truth.
    assert 500.0 * 0.95 / 1.05 <= outcome.capacity_qps <= 500.0 * 1.05


def test_a_target_missed_at_start_is_reported_not_hidden():
    outcome = search_capacity(Threshold(5.0), start_qps=10, max_qps=1000, resolution=0.05)
    assert outcome.below_start and outcome.capacity_qps is None
    assert outcome.missed_qps == 10
    assert outcome.broken.target == "p99_ms" and outcome.broken.measured == pytest.approx(20.0)
    assert len(outcome.steps) == 1


def test_a_start_rate_that_fails_its_confirmation_is_no_capacity():
    outcome = search_capacity(Threshold(10.0, lucky=[(9.0, 20.0)]), start_qps=11, max_qps=11,
                              resolution=0.05, confirm=1)
    assert outcome.capacity_qps is None and outcome.missed_qps == 11


def test_max_qps_is_never_exceeded_and_a_capped_search_says_so():
    service = Threshold(10000.0)
    outcome = search_capacity(service, 10, 700, 0.05, confirm=2)
    assert outcome.capped and outcome.capacity_qps == 700 and outcome.missed_qps is None
    assert outcome.broken is None
    assert max(service.runs) == 700 and min(service.runs) == 10
    assert service.runs[700] == 3


def test_every_rate_run_lies_between_start_and_max():
    service = Threshold(333.0, noise=0.1, seed=3)
    outcome = search_capacity(service, 20, 450, 0.02, confirm=2)
    assert all(20 <= step.qps <= 450 for step in outcome.steps)


def test_the_target_furthest_past_its_limit_broke_first():
    checks = [judge("p99_ms", 12.0, 10.0), judge("success_rate", 0.5, 0.99),
              judge("p50_ms", 1.0, 5.0)]
    assert worst_miss(checks).target == "success_rate"
    assert worst_miss([judge("p50_ms", math.nan, 5.0), judge("p99_ms", 99.0, 10.0)]).target == "p50_ms"
    assert worst_miss([judge("p50_ms", 1.0, 5.0)]) is None


@pytest.mark.parametrize("arguments", [(0, 10, 0.05), (20, 10, 0.05), (10, 20, 0), (10, 20, -1)])
def test_impossible_bounds_are_refused(arguments):
    with pytest.raises(ValueError):
        search_capacity(Threshold(5.0), *arguments)
