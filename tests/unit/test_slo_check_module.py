"""meshtune.mesh.slo_check run in-process: a missed target fails the task with the table."""

from __future__ import annotations

import json

from ansible_collections.meshtune.mesh.plugins.modules import slo_check
from tests.support.fortio_samples import baseline_result, fortio_result
from tests.support.module_harness import call_module


def test_passing_run_returns_checks_and_table():
    targets = {"p99_ms": 10, "added_p90_ms": 2, "success_rate": 0.999}
    result = call_module(slo_check.main, {"result": fortio_result(), "baseline": baseline_result(),
                                          "targets": targets})
    assert result.get("failed") is not True, result
    assert result["changed"] is False
    assert result["passed"] is True
    assert [c["target"] for c in result["checks"]] == ["p99_ms", "success_rate", "added_p90_ms"]
    assert result["checks"][0] == {"target": "p99_ms", "measured": 5.0, "limit": 10.0, "margin": 5.0,
                                   "ok": True, "unit": "ms", "bound": "max"}
    assert result["msg"] == "SLO check passed: all 3 targets met\n" + result["table"]


def test_missed_target_fails_with_the_table_in_msg(tmp_path):
    path = tmp_path / "mesh.json"
    path.write_text(json.dumps(fortio_result(RetCodes={"200": 9950, "-1": 50})))
    result = call_module(slo_check.main, {
        "result_file": str(path), "proxy": {"memory_mib": 52.25},
        "targets": {"p99_ms": 4.5, "success_rate": 0.999, "proxy_memory_mib": 50, "p50_ms": 2}})
    assert result["failed"] is True
    assert result["passed"] is False
    assert result["msg"] == "\n".join([
        "SLO check failed: 3 of 4 targets missed: p99_ms (5 ms above 4.5 ms), success_rate (0.995 below "
        "0.999), proxy_memory_mib (52.25 MiB above 50 MiB)",
        "target           | measured  | limit     | margin    | ok",
        "-----------------+-----------+-----------+-----------+-------",
        "p50_ms           | 1.75 ms   | <= 2 ms   | +0.25 ms  | ok",
        "p99_ms           | 5 ms      | <= 4.5 ms | -0.5 ms   | MISSED",
        "success_rate     | 0.995     | >= 0.999  | -0.004    | MISSED",
        "proxy_memory_mib | 52.25 MiB | <= 50 MiB | -2.25 MiB | MISSED",
    ])
    assert result["table"] == result["msg"].split("\n", 1)[1]
    assert [c["ok"] for c in result["checks"]] == [True, False, False, False]


def test_check_mode_judges_the_same():
    result = call_module(slo_check.main, {"result": fortio_result(), "targets": {"p50_ms": 1}},
                         check_mode=True)
    assert result["failed"] is True
    assert result["checks"][0]["margin"] == -0.75


def test_input_errors_fail_before_judging():
    result = call_module(slo_check.main, {"result": fortio_result(),
                                          "targets": {"p99_ms": 1, "p95_ms": 2, "added_p99_ms": 1}})
    assert result["failed"] is True
    assert "checks" not in result
    assert result["msg"].startswith("Invalid options (nothing was changed): targets.p95_ms: expected a "
                                    "known target name, one of: p50_ms, p90_ms, p99_ms, p999_ms, ")
    assert "; baseline: expected a fortio result of the same load without sidecars (baseline or " \
           "baseline_file) for targets added_p99_ms, got None" in result["msg"]


def test_result_and_result_file_are_exclusive_and_one_is_required(tmp_path):
    both = call_module(slo_check.main, {"result": fortio_result(), "result_file": str(tmp_path / "x.json"),
                                        "targets": {"p50_ms": 1}})
    assert both["failed"] is True and "result|result_file" in both["msg"]
    neither = call_module(slo_check.main, {"targets": {"p50_ms": 1}})
    assert neither["failed"] is True and "result, result_file" in neither["msg"]
