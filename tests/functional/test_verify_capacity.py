"""playbooks/verify.yml with verify_search: the capacity through the mesh and without it.

Two token-bucket servers (tests/support/capacity_server.py) stand in for the service through the mesh
(300 requests/s admitted) and without it (400 requests/s); the searches run half-second steps.
"""

from __future__ import annotations

import json

import pytest

from tests.functional.test_verify_role import HOST, latest_report, play
from tests.support.capacity_server import running

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEARCH = {"verify_search": True, "verify_search_start_qps": 100, "verify_search_max_qps": 1600,
          "verify_search_step_duration": "0.5s", "verify_search_confirm": 1,
          "verify_warmup": "0.25s", "verify_connections": 64}


def test_mesh_and_baseline_capacities_are_searched_and_their_ratio_judged(tmp_path):
    with running(300, 0.002, lifetime=120) as mesh, running(400, 0.002, lifetime=120) as baseline:
        result = play(tmp_path, {**SEARCH, "verify_url": mesh, "verify_baseline_url": baseline,
                                 "meshtune_verify_targets": {"p99_ms": 50, "success_rate": 0.99,
                                                             "min_capacity_ratio": 0.5}})
    assert result.returncode == 0, result.stdout[-4000:]
    report_dir = latest_report(tmp_path)
    found = {run: json.loads((report_dir / f"capacity-{run}.json").read_text())
             for run in ("baseline", "mesh")}
    capacity = {run: found[run]["capacity"]["capacity_qps"] for run in found}
    for run, rate in (("baseline", 400), ("mesh", 300)):
        assert rate * 0.85 <= capacity[run] <= rate * 1.15, found[run]["capacity"]
        assert found[run]["steps"][0]["result"]["DurationHistogram"]["Count"] > 0
        assert (report_dir / f"capacity-{run}.progress").is_file()
    # The steps of both searches, drawn against the rate: each rate once per run.
    curves = json.loads((report_dir / "capacity" / "report.json").read_text())
    for run, mode in (("baseline", "baseline"), ("mesh", "both")):
        rates = sorted({step["qps"] for step in found[run]["steps"]})
        assert sorted(p["qps"] for p in curves["points"] if p["mode"] == mode) == rates
    assert (report_dir / "capacity" / "sweep-latency.png").is_file()
    report = json.loads((report_dir / "report.json").read_text())
    ratio = next(check for check in report["checks"] if check["target"] == "min_capacity_ratio")
    assert ratio["measured"] == pytest.approx(capacity["mesh"] / capacity["baseline"], rel=1e-6)
    assert ratio["ok"] is True
    assert f"capacity: baseline {capacity['baseline']:g}" in result.stdout.replace(".0 qps", " qps")


def test_a_capacity_ratio_target_without_the_search_fails_before_any_load(tmp_path):
    result = play(tmp_path, {"verify_url": "http://127.0.0.1:9/", "verify_baseline_url":
                             "http://127.0.0.1:9/", "meshtune_verify_targets": {"min_capacity_ratio": 0.8}})
    assert result.returncode != 0
    assert "min_capacity_ratio compares capacities: set verify_search: true" in result.stdout
    assert not (tmp_path / "reports" / HOST).exists()
