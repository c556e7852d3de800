"""meshtune.mesh.slo_check through ansible-playbook: packaged with its utilities, the table in the play."""

from __future__ import annotations

import json

import pytest

from tests.ansible_runner import run_module
from tests.fortio_samples import baseline_result, fortio_result

pytestmark = pytest.mark.integration

MODULE = "meshtune.mesh.slo_check"


def test_missed_targets_fail_the_task_with_the_table(tmp_path):
    (tmp_path / "mesh.json").write_text(json.dumps(fortio_result()))
    (tmp_path / "baseline.json").write_text(json.dumps(baseline_result()))
    result = run_module(tmp_path, MODULE, {
        "result_file": str(tmp_path / "mesh.json"), "baseline_file": str(tmp_path / "baseline.json"),
        "proxy": {"memory_growth_mib_per_min": "0.25"},
        "targets": {"p999_ms": 8, "added_p90_ms": 1.5, "proxy_memory_growth_mib_per_min": 0.5}})
    assert result["failed"] is True, result
    assert result["passed"] is False
    assert result["msg"].splitlines()[0] == (
        "SLO check failed: 1 of 3 targets missed: p999_ms (10 ms above 8 ms)")
    assert result["msg"].splitlines()[1:] == result["table"].splitlines()
    assert [(c["target"], c["margin"]) for c in result["checks"]] == [
        ("p999_ms", -2.0), ("added_p90_ms", 0.1), ("proxy_memory_growth_mib_per_min", 0.25)]
