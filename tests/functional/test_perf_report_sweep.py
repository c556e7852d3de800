"""perf_report with sweeps: cost curves per sidecar mode against the rate, and two sweeps compared."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from PIL import Image

from ansible_collections.meshtune.mesh.plugins.module_utils.histogram import (
    DEFAULT_PERCENTILES,
    FortioBuckets,
    HistogramRecorder,
)
from ansible_collections.meshtune.mesh.plugins.modules import perf_report
from tests.support.fortio_samples import fortio_result
from tests.support.module_harness import call_module

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

RATES = (100, 400, 1600)
# Milliseconds each mode adds to the service's 1 ms, growing with the rate.
MODE_COST = {"baseline": 0.0, "server": 0.3, "both": 0.7}


def point_result(mode, qps, slower):
    generator = random.Random(f"{mode}-{qps}-{slower}")
    base = (1.0 + MODE_COST[mode] * (1 + qps / 1600) * slower) / 1000
    histogram = HistogramRecorder(FortioBuckets(0.0001))
    histogram.record_many([base * generator.uniform(0.9, 1.6) for _sample in range(500)])
    return fortio_result(DurationHistogram=histogram.export(DEFAULT_PERCENTILES),
                         RequestedQPS=str(qps), ActualQPS=float(qps), RetCodes={"200": 500})


def write_sweep(directory, label, slower):
    directory.mkdir()
    points = []
    for mode in MODE_COST:
        for qps in RATES:
            name = f"{mode}-{qps}.json"
            (directory / name).write_text(json.dumps(point_result(mode, qps, slower)))
            point = {"mode": mode, "qps": qps, "connections": 8, "result_file": name}
            if mode != "baseline":
                point["proxy"] = {"cpu_per_1k_rps": 0.2 * slower + qps / 1e5, "memory_mib": 40 + qps / 100}
            points.append(point)
    path = directory / "sweep.json"
    path.write_text(json.dumps({"label": label, "points": points}))
    return str(path)


@pytest.fixture
def sweeps(tmp_path):
    return [write_sweep(tmp_path / "before", "before", 1.0), write_sweep(tmp_path / "after", "after", 0.5)]


def test_two_sweeps_draw_the_cost_curves_and_a_table_per_mode(sweeps, tmp_path):
    output = tmp_path / "report"
    first = call_module(perf_report.main, {"sweeps": sweeps, "output_dir": str(output),
                                           "title": "sidecar cost"})
    assert first.get("failed") is not True, first
    names = [path.rsplit("/", 1)[1] for path in first["report_files"]]
    assert names == ["report.json", "report.md", "report.html", "sweep-latency.png",
                     "sweep-added-latency.png", "sweep-proxy-cost.png"]
    for name in names[3:]:
        with Image.open(output / name) as image:
            assert image.format == "PNG" and image.size == (900, 500)
    # Deterministic: the same inputs give the same bytes, so a rerun writes nothing.
    again = call_module(perf_report.main, {"sweeps": sweeps, "output_dir": str(output),
                                           "title": "sidecar cost"})
    assert again["changed"] is False and again["changed_files"] == []
    other = tmp_path / "other"
    call_module(perf_report.main, {"sweeps": sweeps, "output_dir": str(other), "title": "sidecar cost"})
    for name in names:
        assert (other / name).read_bytes() == (output / name).read_bytes(), name

    report = json.loads((output / "report.json").read_text())
    assert report["sweeps"] == ["before", "after"]
    points = {(p["sweep"], p["mode"], p["qps"]): p for p in report["points"]}
    assert len(points) == 2 * 3 * len(RATES)
    for (sweep, _mode, qps), point in points.items():
        base = points[(sweep, "baseline", qps)]["summary"]
        for key in ("p50_ms", "p90_ms", "p99_ms"):
            assert point["added_latency"][key] == pytest.approx(point["summary"][key] - base[key], abs=1e-3)
    # The "after" sweep's modes cost half as much: its added p50 is lower.
    assert points[("after", "both", 1600)]["added_latency"]["p50_ms"] < \
        points[("before", "both", 1600)]["added_latency"]["p50_ms"]
    assert points[("before", "server", 400)]["proxy"] == {"cpu_per_1k_rps": 0.2 + 400 / 1e5,
                                                          "memory_mib": 40 + 400 / 100}

    markdown = (output / "report.md").read_text()
    for sweep in ("before", "after"):
        for mode in MODE_COST:
            assert f"{sweep} mode {mode}, 8 connections" in markdown
    assert markdown.count("| rate (qps) |") == 6
    assert first["points"][0]["mode"] == "baseline"


@pytest.mark.parametrize(("change", "expected"), [
    ({"mode": "client"}, "sweeps[0].points[0].mode: expected one of baseline, server, both"),
    ({"connections": 0}, "sweeps[0].points[0].connections: expected a count of at least 1"),
    ({"result_file": "missing.json"}, "sweeps[0].points[0].result_file"),
    ({"proxy": {"cpu_per_1k_rps": "lots"}}, "sweeps[0].points[0].proxy.cpu_per_1k_rps"),
])
def test_a_bad_point_is_named(sweeps, tmp_path, change, expected):
    path = Path(sweeps[0])
    data = json.loads(path.read_text())
    data["points"][0].update(change)
    path.write_text(json.dumps(data))
    outcome = call_module(perf_report.main, {"sweeps": sweeps, "output_dir": str(tmp_path / "r")})
    assert outcome["failed"] and expected in outcome["msg"], outcome["msg"]
    assert not (tmp_path / "r").exists()


def test_two_sweeps_need_two_labels(sweeps, tmp_path):
    outcome = call_module(perf_report.main, {"sweeps": [sweeps[0], sweeps[0]],
                                             "output_dir": str(tmp_path / "r")})
    assert outcome["failed"] and "sweeps[1]: expected sweeps with different labels" in outcome["msg"]


def test_sweeps_and_results_are_exclusive(sweeps, tmp_path):
    outcome = call_module(perf_report.main, {"sweeps": sweeps, "results": sweeps,
                                             "output_dir": str(tmp_path / "r")})
    assert outcome["failed"] and "mutually exclusive" in outcome["msg"]
