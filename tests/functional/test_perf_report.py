"""meshtune.mesh.perf_report: the files it writes, re-runs, check mode, bad inputs, playbooks/report.yml."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from ansible_collections.meshtune.mesh.plugins.modules import perf_report
from tests.support.ansible_runner import REPO_ROOT, run_playbook
from tests.support.fortio_samples import baseline_result, fortio_result
from tests.support.module_harness import call_module

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

REPORT_FILES = ["report.json", "report.md", "report.html"]


@pytest.fixture
def results(tmp_path):
    """Two mesh runs and a baseline, as files."""
    slower = fortio_result(Labels="mesh", ActualQPS=980.0)
    slower["DurationHistogram"]["Percentiles"][3]["Value"] = 0.0065  # p99 6.5 ms
    paths = {"first": tmp_path / "first.json", "second": tmp_path / "second.json",
             "baseline": tmp_path / "base.json"}
    paths["first"].write_text(json.dumps(fortio_result()))
    paths["second"].write_text(json.dumps(slower))
    paths["baseline"].write_text(json.dumps(baseline_result()))
    return paths


def arguments(paths, directory, **changes):
    args = {"results": [str(paths["first"]), str(paths["second"])],
            "baseline": str(paths["baseline"]), "output_dir": str(directory)}
    args.update(changes)
    return args


def test_writes_the_report_and_a_rerun_changes_nothing(results, tmp_path):
    output = tmp_path / "build" / "report"
    checks = [{"target": "p99_ms", "measured": 5.0, "limit": 10.0, "margin": 5.0, "ok": True,
               "unit": "ms", "bound": "max"}]
    series = {"proxy cpu (vCPU)": {"result_type": "matrix", "result": [
        {"metric": {"pod": "productpage-v1"}, "values": [[1764489600 + 30 * i, 0.1 + i / 100]
                                                         for i in range(10)]}]}}
    args = arguments(results, output, title="Balanced profile", checks=checks, series=series)
    first = call_module(perf_report.main, args)
    assert first.get("failed") is not True, first
    assert first["changed"] is True
    names = [path.rsplit("/", 1)[1] for path in first["report_files"]]
    assert names[:3] == REPORT_FILES
    assert names[3:] == ["latency-percentiles.png", "histogram-baseline-base.png",
                         "histogram-1-first.png", "histogram-2-second.png",
                         "series-1-proxy-cpu-vcpu.png"]
    assert first["changed_files"] == first["report_files"]
    assert sorted(p.name for p in output.iterdir()) == sorted(names)
    for name in names[3:]:
        with Image.open(output / name) as image:
            assert image.format == "PNG"
            assert image.size == (900, 500)

    assert [run["name"] for run in first["summary"]] == ["first", "second"]
    assert first["summary"][1]["p99_ms"] == 6.5
    assert first["summary"][0]["added_latency"]["p99_ms"] == {"ms": 1.9, "percent": 61.29}
    assert first["baseline"]["p50_ms"] == 1.1
    assert first["deltas"] == [json.loads(json.dumps(first["deltas"][0]))]
    assert first["deltas"][0]["p99_ms"] == {"ms": 1.5, "percent": 30.0}
    assert first["checks_passed"] is True
    data = json.loads((output / "report.json").read_text())
    assert data["runs"] == first["summary"]
    assert data["plots"] == names[3:]
    markdown = (output / "report.md").read_text()
    assert "| p99 | +1.5 ms (+30 %) |" in markdown.splitlines()
    assert "| p99_ms | 5 ms | ≤ 10 ms | +5 ms | ✓ |" in markdown.splitlines()
    assert "<h1>Balanced profile</h1>" in (output / "report.html").read_text()

    stamps = {p.name: p.stat().st_mtime_ns for p in output.iterdir()}
    again = call_module(perf_report.main, args)
    assert again["changed"] is False, again["changed_files"]
    assert again["changed_files"] == []
    assert {p.name: p.stat().st_mtime_ns for p in output.iterdir()} == stamps


def test_changed_inputs_rewrite_only_what_differs(results, tmp_path):
    output = tmp_path / "report"
    assert call_module(perf_report.main, arguments(results, output))["changed"] is True
    changed = call_module(perf_report.main, arguments(results, output, title="Other title"))
    assert changed["changed"] is True
    assert [p.rsplit("/", 1)[1] for p in changed["changed_files"]] == \
        [*REPORT_FILES, "latency-percentiles.png"]


def test_check_mode_writes_nothing(results, tmp_path):
    output = tmp_path / "report"
    planned = call_module(perf_report.main, arguments(results, output), check_mode=True)
    assert planned.get("failed") is not True, planned
    assert planned["changed"] is True
    assert planned["changed_files"] == planned["report_files"]
    assert planned["summary"][0]["p50_ms"] == 1.75
    assert not output.exists()

    call_module(perf_report.main, arguments(results, output))
    before = {p.name: p.read_bytes() for p in output.iterdir()}
    assert call_module(perf_report.main, arguments(results, output), check_mode=True)["changed"] is False
    other = call_module(perf_report.main, arguments(results, output, title="New"), check_mode=True)
    assert other["changed"] is True
    assert len(other["changed_files"]) == 4
    assert {p.name: p.read_bytes() for p in output.iterdir()} == before


@pytest.mark.parametrize(("change", "option"), [
    (lambda r, t: {"results": [str(r["first"]), str(t / "missing.json")]}, "results[1]: expected a readable"),
    (lambda r, t: {"baseline": str(r["bad"])}, "baseline: expected a fortio JSON result file, but it is not"),
    (lambda r, t: {"results": [str(r["other"])]}, "results[0] ({other}).DurationHistogram: expected a"),
    (lambda r, t: {"output_dir": str(r["first"])}, "output_dir: expected a directory, but it is an existing"),
    (lambda r, t: {"title": {"text": "x"}}, "title: expected a non-empty string"),
    (lambda r, t: {"checks": [{"ok": True}]}, "checks[0].target: expected a target name"),
    (lambda r, t: {"series": {"cpu": "high"}}, "series.cpu: expected a range-query result"),
], ids=["missing result", "baseline not json", "not fortio", "output file", "title", "checks", "series"])
def test_bad_inputs_fail_naming_the_option(results, tmp_path, change, option):
    results["bad"] = tmp_path / "bad.json"
    results["bad"].write_text("{")
    results["other"] = tmp_path / "other.json"
    results["other"].write_text(json.dumps({"checks": []}))
    output = tmp_path / "report"
    result = call_module(perf_report.main, arguments(results, output, **change(results, tmp_path)))
    assert result["failed"] is True
    assert result["msg"].startswith("Invalid options (nothing was changed): ")
    assert option.format(other=results["other"]) in result["msg"]
    assert not output.exists()


def test_report_playbook_writes_the_three_files(results, tmp_path):
    output = tmp_path / "from-playbook"
    process = run_playbook(REPO_ROOT / "playbooks" / "report.yml", {
        "report_results": [str(results["first"]), str(results["second"])],
        "report_baseline": str(results["baseline"]), "report_output_dir": str(output),
        "report_title": "Past runs"})
    assert process.returncode == 0, process.stdout + process.stderr
    for name in [*REPORT_FILES, "latency-percentiles.png"]:
        assert (output / name).is_file(), name
    assert json.loads((output / "report.json").read_text())["title"] == "Past runs"
    assert "changed=1" in process.stdout
    assert "first: 5.0" in process.stdout


def test_report_playbook_requires_result_files(tmp_path):
    process = run_playbook(REPO_ROOT / "playbooks" / "report.yml",
                           {"report_output_dir": str(tmp_path / "report")})
    assert process.returncode != 0
    assert "Give the result files to report as a list" in process.stdout
    assert not (tmp_path / "report").exists()


def test_without_matplotlib_the_module_says_what_to_install(results, tmp_path, monkeypatch):
    monkeypatch.setattr(perf_report, "HAS_MATPLOTLIB", False)
    result = call_module(perf_report.main, arguments(results, tmp_path / "report"))
    assert result["failed"] is True
    assert "Failed to import the required Python library (matplotlib)" in result["msg"]
    assert not (tmp_path / "report").exists()


def test_a_deeply_nested_result_file_fails_with_one_message(results, tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text('{"DurationHistogram": ' + "[" * 100000 + "]" * 100000 + "}")
    result = call_module(perf_report.main, arguments(results, tmp_path / "report",
                                                     results=[str(results["first"]), str(deep)]))
    assert result["failed"] is True
    assert result["msg"] == (
        "Invalid options (nothing was changed): results[1]: expected a fortio JSON result file, but its "
        f"JSON is nested too deeply to be one, got '{deep}'")
    assert "exception" not in result
    assert not (tmp_path / "report").exists()


def test_an_impossible_result_is_refused_and_a_url_s_credentials_stay_out(results, tmp_path):
    impossible = fortio_result()
    impossible["DurationHistogram"]["Data"][0]["Start"] = 0.002  # after its End, 0.001
    path = tmp_path / "impossible.json"
    path.write_text(json.dumps(impossible))
    refused = call_module(perf_report.main, arguments(results, tmp_path / "refused", results=[str(path)]))
    assert refused["failed"] is True
    assert f"results[0] ({path}).DurationHistogram.Data[0].End: expected a number not below Start " \
           "(0.002), got 0.001" in refused["msg"]

    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(fortio_result(URL="http://u:pw-s3cret@shop/?token=tok-s3cret")))
    output = tmp_path / "report"
    written = call_module(perf_report.main, arguments(results, output, results=[str(secret)]))
    assert written["summary"][0]["url"] == "http://u:********@shop/?token=********"
    assert "s3cret" not in json.dumps(written)
    for name in output.iterdir():
        assert b"s3cret" not in name.read_bytes(), name


def _run_at(resolution, samples):
    from ansible_collections.meshtune.mesh.plugins.module_utils.histogram import (
        DEFAULT_PERCENTILES,
        FortioBuckets,
        HistogramRecorder,
    )

    histogram = HistogramRecorder(FortioBuckets(resolution))
    histogram.record_many(samples)
    return fortio_result(DurationHistogram=histogram.export(DEFAULT_PERCENTILES),
                         RetCodes={"200": len(samples)}), histogram


def test_each_percentile_shows_the_width_of_its_bucket(tmp_path):
    samples = [0.0002 + 0.0006 * i / 999 for i in range(1000)]  # 0.2 to 0.8 ms
    paths = []
    for name, resolution in (("fine", 0.0001), ("coarse", 0.001)):
        result, _histogram = _run_at(resolution, samples)
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(result))
        paths.append(str(path))
    output = tmp_path / "report"
    outcome = call_module(perf_report.main, {"results": paths, "output_dir": str(output)})
    assert outcome.get("failed") is not True, outcome
    runs = json.loads((output / "report.json").read_text())["runs"]
    fine, coarse = (run["bucket_width_ms"]["p50_ms"] for run in runs)
    assert fine == pytest.approx(0.1)
    # At fortio's 1 ms the one bucket spans every call: from the minimum to the maximum.
    assert coarse == pytest.approx((max(samples) - min(samples)) * 1000)
    assert "p50 bucket width (ms)" in (output / "report.md").read_text()
