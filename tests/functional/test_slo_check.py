"""meshtune.mesh.slo_check through ansible-playbook: packaged with its utilities, the table in the play."""

from __future__ import annotations

import json

import pytest

from tests.support.ansible_runner import run_module
from tests.support.fortio_samples import baseline_result, fortio_result

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


def deeply_nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_a_deeply_nested_result_file_fails_with_one_message(tmp_path):
    (tmp_path / "deep.json").write_text('{"DurationHistogram": ' + deeply_nested(100000) + "}")
    (tmp_path / "labels.json").write_text(json.dumps(fortio_result())[:-1] + ', "Labels": '
                                          + deeply_nested(500) + "}")
    result = run_module(tmp_path, MODULE, {"result_file": str(tmp_path / "deep.json"),
                                           "baseline_file": str(tmp_path / "labels.json"),
                                           "targets": {"p99_ms": 5, "added_p99_ms": 1}})
    assert result["failed"] is True
    assert result["msg"] == (
        "Invalid options (nothing was changed): result_file: expected a fortio JSON result file, but its "
        f"JSON is nested too deeply to be one, got '{tmp_path / 'deep.json'}'; baseline_file "
        f"({tmp_path / 'labels.json'}).Labels: expected a string, got 'a list of 1'")
    # ansible-core 2.19 records "(traceback unavailable)" for every failure: no Python trace here.
    assert result.get("exception", "(traceback unavailable)") == "(traceback unavailable)"
    assert "Traceback" not in json.dumps(result)


def test_an_impossible_result_fails_instead_of_passing(tmp_path):
    result_file = tmp_path / "mesh.json"
    impossible = fortio_result(RetCodes={"200": 20000})
    impossible["DurationHistogram"]["Percentiles"][0]["Value"] = -0.001
    result_file.write_text(json.dumps(impossible))
    result = run_module(tmp_path, MODULE, {"result_file": str(result_file),
                                           "targets": {"p50_ms": 2, "success_rate": 0.99}})
    assert result["failed"] is True
    assert "passed" not in result
    assert result["msg"] == (
        f"Invalid options (nothing was changed): result_file ({result_file}).DurationHistogram."
        "Percentiles[0].Value: expected a number of at least 0, got -0.001")
