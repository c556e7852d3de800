"""slo_check's min_capacity_ratio: capacity through the mesh over capacity without it."""

from __future__ import annotations

import math

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils.slo import plan_checks
from tests.support.fortio_samples import fortio_result


def judge(capacity, limit=0.8, **targets):
    return plan_checks({"result": fortio_result(), "capacity": capacity,
                        "targets": {"min_capacity_ratio": limit, **targets}})


@pytest.mark.parametrize(("mesh", "baseline"), [(800, 1000), (950, 1000), (700, 1000), (1, 3)])
def test_the_ratio_is_judged_as_a_lower_bound(mesh, baseline):
    problem, [check] = judge({"mesh_qps": mesh, "baseline_qps": baseline})
    assert problem is None
    assert check.measured == pytest.approx(mesh / baseline)
    assert check.ok is (mesh / baseline >= 0.8)
    assert check.margin == pytest.approx(mesh / baseline - 0.8)


@pytest.mark.parametrize("capacity", [{"mesh_qps": None, "baseline_qps": 1000},
                                      {"mesh_qps": 500, "baseline_qps": None},
                                      {"mesh_qps": 500, "baseline_qps": 0}])
def test_a_capacity_below_the_search_s_start_misses(capacity):
    _problem, [check] = judge(capacity)
    assert math.isnan(check.measured) and not check.ok


def test_the_capacities_are_required_and_checked():
    problem, checks = judge(None)
    assert checks == [] and "capacity: expected the capacities found with and without" in problem
    problem, _checks = judge({"mesh_qps": -5, "baseline_qps": 10, "other": 1})
    assert "capacity: expected a dict with mesh_qps and baseline_qps" in problem
    assert "capacity.mesh_qps: expected a rate of at least 0" in problem
