"""Report figures, tables and files (module_utils.report and plots), from fortio sample results."""

from __future__ import annotations

import copy
import json
import os
import re

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils import plots, report
from ansible_collections.meshtune.mesh.plugins.module_utils.files import current_umask
from tests.support.fortio_samples import baseline_result, fortio_result

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def faster_result() -> dict:
    """A second mesh run: the sample with other percentiles (and a slower tail)."""
    result = fortio_result(ActualQPS=999.0)
    histogram = result["DurationHistogram"]
    histogram["Max"] = 0.3
    histogram["Percentiles"] = [
        {"Percentile": 50, "Value": 0.0014},
        {"Percentile": 75, "Value": 0.002},
        {"Percentile": 90, "Value": 0.0027},
        {"Percentile": 99, "Value": 0.0055},
        {"Percentile": 99.9, "Value": 0.012},
    ]
    return result


def write(directory, name, document) -> str:
    path = directory / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def plan(**params):
    problem, planned = report.plan_report(params)
    assert problem is None, problem
    return planned


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("results")
    return {
        "results": [write(directory, "balanced.json", fortio_result()),
                    write(directory, "performance.json", faster_result())],
        "baseline": write(directory, "baseline.json", baseline_result()),
        "output_dir": str(directory / "report"),
        "title": "Profiles at 1000 qps",
        "checks": [{"target": "p99_ms", "measured": 5.0, "limit": 10.0, "margin": 5.0, "ok": True,
                    "unit": "ms", "bound": "max"},
                   {"target": "success_rate", "measured": 0.995, "limit": 0.999, "margin": -0.004,
                    "ok": False, "unit": "ratio", "bound": "min"}],
        "series": {"proxy memory (MiB)": [
            {"metric": {"pod": "productpage-v1"}, "values": [[1764489600 + 15 * i, 40 + i / 10]
                                                             for i in range(20)]}]},
    }


@pytest.fixture(scope="module")
def rendered(inputs):
    planned = plan(**inputs)
    return planned, report.render_files(planned)


def test_summary_figures_are_the_fortio_percentiles(inputs):
    planned = plan(**inputs)
    first = planned.runs[0].summary
    assert [first[key] for key in report.LATENCY_KEYS] == [1.75, 2.5, 3.0, 5.0, 10.0, 250.0]
    assert (first["requested_qps"], first["achieved_qps"], first["requests"]) == (1000.0, 990.5, 10000)
    assert (first["success_rate"], first["errors"], dict(first["error_codes"])) == (1.0, 0, {})
    assert first["name"] == "balanced"
    assert first["file"] == inputs["results"][0]
    assert first["duration_s"] == 10.096
    assert planned.runs[1].summary["p99_ms"] == 5.5
    assert planned.runs[1].summary["max_ms"] == 300.0


def test_percentiles_missing_from_the_list_come_from_the_buckets(inputs):
    baseline = plan(**inputs).baseline.summary
    # baseline_result lists p50, p90, p99 only: p75 and p99.9 are interpolated in the Data buckets
    # as fortio does (p75 in the 2-3 ms bucket from 60 % to 90 %, p99.9 at the end of 5-10 ms).
    assert (baseline["p50_ms"], baseline["p75_ms"], baseline["p90_ms"], baseline["p99_ms"],
            baseline["p999_ms"]) == (1.1, 2.5, 1.6, 3.1, 10.0)


def test_errors_by_code_and_kind(tmp_path):
    result = fortio_result(RetCodes={"200": 9950, "503": 30, "-1": 20},
                           ErrorTypes={"timeout": 15, "connection_reset": 5})
    summary = plan(results=[write(tmp_path, "errors.json", result)],
                   output_dir=str(tmp_path)).runs[0].summary
    assert summary["success_rate"] == 0.995
    assert summary["errors"] == 50
    assert dict(summary["error_codes"]) == {"-1": 20, "503": 30}
    assert list(summary["error_types"].items()) == [("connection_reset", 5), ("timeout", 15)]
    assert summary["added_latency"] is None


def test_deltas_compare_each_run_with_the_first(inputs):
    planned = plan(**inputs)
    assert len(planned.deltas) == 1
    delta = planned.deltas[0]
    assert (delta["run"], delta["versus"]) == ("performance", "balanced")
    assert delta["p50_ms"] == {"ms": -0.35, "percent": -20.0}
    assert delta["p90_ms"] == {"ms": -0.3, "percent": -10.0}
    assert delta["p99_ms"] == {"ms": 0.5, "percent": 10.0}
    assert delta["p999_ms"] == {"ms": 2.0, "percent": 20.0}
    assert delta["max_ms"] == {"ms": 50.0, "percent": 20.0}


def test_single_run_has_no_deltas(inputs):
    assert plan(results=inputs["results"][:1], output_dir=inputs["output_dir"]).deltas == []


def test_added_latency_is_run_minus_baseline_per_percentile(inputs):
    added = plan(**inputs).runs[0].summary["added_latency"]
    assert added["p50_ms"] == {"ms": 0.65, "percent": 59.09}
    assert added["p90_ms"] == {"ms": 1.4, "percent": 87.5}
    assert added["p99_ms"] == {"ms": 1.9, "percent": 61.29}
    assert added["p999_ms"] == {"ms": 0.0, "percent": 0.0}


def test_difference_against_zero_has_no_percentage():
    assert report.difference(1.5, 0.0) == {"ms": 1.5, "percent": None}


def test_curve_spans_the_distribution_on_the_inverse_tail_axis(inputs):
    run = plan(**inputs).runs[0]
    percentiles = [p for p, _ms in run.curve]
    assert percentiles[0] == 0.0
    assert percentiles[-1] == pytest.approx(99.99)
    assert plots.inverse_tail(percentiles[-1]) == pytest.approx(10000.0)
    latencies = [ms for _p, ms in run.curve]
    assert latencies == sorted(latencies)
    assert latencies[0] == pytest.approx(0.4)  # the minimum
    # Points on the curve are fortio's interpolation, so they pass through the listed percentiles:
    # every 25th point is one more 9 (90, 99, 99.9).
    assert run.curve[25] == pytest.approx((90.0, 3.0))
    assert run.curve[50] == pytest.approx((99.0, 5.0))
    assert run.curve[75] == pytest.approx((99.9, 10.0))
    assert run.marks == [(50.0, 1.75), (75.0, 2.5), (90.0, 3.0), (99.0, 5.0), (99.9, 10.0)]
    assert run.buckets[0] == pytest.approx((0.4, 1.0, 20.0, 20.0))
    assert sum(share for _s, _e, share, _c in run.buckets) == pytest.approx(100.0)


def test_markdown_tables(rendered):
    markdown = rendered[1]["report.md"].decode("utf-8")
    lines = markdown.splitlines()
    assert lines[0] == "# Profiles at 1000 qps"
    assert "| figure | baseline (baseline) | balanced | performance |" in lines
    assert "| --- | ---: | ---: | ---: |" in lines
    assert "| p50 (ms) | 1.1 | 1.75 | 1.4 |" in lines
    assert "| p99.9 (ms) | 10 | 10 | 12 |" in lines
    assert "| max (ms) | 250 | 250 | 300 |" in lines
    assert "| achieved qps | 1000 | 990.5 | 999 |" in lines
    assert "| success rate | 100 % | 100 % | 100 % |" in lines
    assert "## Differences between runs" in lines
    assert "| percentile | performance vs balanced |" in lines
    assert "| p50 | -0.35 ms (-20 %) |" in lines
    assert "| p99 | +0.5 ms (+10 %) |" in lines
    assert "## Latency added by the mesh" in lines
    assert "| percentile | baseline (baseline, ms) | balanced | performance |" in lines
    assert "| p50 | 1.1 | +0.65 ms (+59.09 %) | +0.3 ms (+27.27 %) |" in lines
    assert "1 of 2 targets missed." in lines
    assert "| p99_ms | 5 ms | ≤ 10 ms | +5 ms | ✓ |" in lines
    assert "| success_rate | 0.995 | ≥ 0.999 | -0.004 | ✗ |" in lines
    assert "![Latency by percentile, mesh vs. baseline (percentile axis on a 1/(1-p) log scale)]" \
           "(latency-percentiles.png)" in lines
    assert "![Latency histogram of balanced](histogram-1-balanced.png)" in lines
    assert "![Prometheus series proxy memory (MiB)](series-1-proxy-memory-mib.png)" in lines


def test_report_json_lists_figures_checks_and_plots(rendered):
    planned, files = rendered
    data = json.loads(files["report.json"])
    assert list(data) == ["title", "percentiles", "runs", "baseline", "deltas", "checks",
                          "checks_passed", "series", "plots"]
    assert data["percentiles"] == [50.0, 75.0, 90.0, 99.0, 99.9]
    assert [run["name"] for run in data["runs"]] == ["balanced", "performance"]
    assert data["runs"][0]["p99_ms"] == 5.0
    assert data["runs"][0]["added_latency"]["p99_ms"] == {"ms": 1.9, "percent": 61.29}
    assert data["baseline"]["name"] == "baseline"
    assert data["deltas"] == json.loads(json.dumps(planned.deltas))
    assert data["checks_passed"] is False
    assert [check["ok"] for check in data["checks"]] == [True, False]
    assert data["series"] == ["proxy memory (MiB)"]
    assert data["plots"] == ["latency-percentiles.png", "histogram-baseline-baseline.png",
                             "histogram-1-balanced.png", "histogram-2-performance.png",
                             "series-1-proxy-memory-mib.png"]
    assert list(files) == ["report.json", "report.md", "report.html"] + data["plots"]


def test_html_escapes_every_text(tmp_path):
    hostile = "<script>alert('x')</script> & \"co\""
    results = [write(tmp_path, "a.json", fortio_result(Labels=hostile)),
               write(tmp_path, "b.json", fortio_result(Labels="b|<img src=x onerror=alert(1)>"))]
    checks = [{"target": "<b>p99_ms</b>", "measured": 1.0, "limit": 2.0, "margin": 1.0, "ok": True,
               "unit": "ms", "bound": "max"}]
    planned = plan(results=results, output_dir=str(tmp_path), title=hostile, checks=checks)
    sections = report.document(planned, list(report.plot_files(planned)))
    page = report.render_html(planned.title, sections)
    assert "<script>" not in page
    assert "<img src=x" not in page
    assert "<b>" not in page
    assert "<title>&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;co&quot;</title>" in page
    assert "<th>b|&lt;img src=x onerror=alert(1)&gt;</th>" in page
    assert "<td>&lt;b&gt;p99_ms&lt;/b&gt;</td>" in page
    assert re.findall(r"<img [^>]*>", page)[0] == \
        '<img src="latency-percentiles.png" alt="Latency by percentile (percentile axis on a 1/(1-p) ' \
        'log scale)">'
    markdown = report.render_markdown(planned.title, sections)
    assert "| figure | \\<script>alert('x')\\</script> & \"co\" | b\\|\\<img src=x onerror=alert(1)> |" \
        in markdown.splitlines()


def test_html_is_self_contained(rendered):
    page = rendered[1]["report.html"].decode("utf-8")
    assert page.startswith("<!DOCTYPE html>\n")
    assert "<style>" in page
    assert not re.search(r"(src|href)=\"(https?:|//|/)", page)
    assert "<script" not in page
    assert '<td class="missed">✗</td>' in page
    assert '<td class="ok">✓</td>' in page
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources == json.loads(rendered[1]["report.json"])["plots"]


def test_two_renders_give_identical_bytes(inputs, rendered):
    again = report.render_files(plan(**copy.deepcopy(inputs)))
    first = rendered[1]
    assert list(again) == list(first)
    for name, content in first.items():
        assert again[name] == content, name
    for name in json.loads(first["report.json"])["plots"]:
        assert first[name].startswith(PNG_SIGNATURE)
        assert b"Software" not in first[name]
        assert b"matplotlib" not in first[name]


def test_other_figures_change_only_their_files(inputs, rendered, tmp_path):
    changed = copy.deepcopy(inputs)
    changed["results"][1] = write(tmp_path, "performance.json", faster_result() | {"ActualQPS": 998.0})
    files = report.render_files(plan(**changed))
    differing = [name for name in files if files[name] != rendered[1][name]]
    assert differing == ["report.json", "report.md", "report.html"]


def test_files_to_write_and_write_files(rendered, tmp_path):
    files = rendered[1]
    output = tmp_path / "out" / "report"
    assert report.files_to_write(str(output), files) == list(files)
    report.write_files(str(output), files, ["report.md", "latency-percentiles.png"])
    assert sorted(p.name for p in output.iterdir()) == ["latency-percentiles.png", "report.md"]
    assert (output / "report.md").stat().st_mode & 0o777 == 0o666 & ~current_umask()
    assert report.files_to_write(str(output), files) == [
        name for name in files if name not in ("report.md", "latency-percentiles.png")]


def test_report_files_respect_the_umask_and_keep_a_replaced_file_s_mode(rendered, tmp_path):
    files = rendered[1]
    output = tmp_path / "private"
    previous = os.umask(0o077)
    try:
        report.write_files(str(output), files, ["report.md", "report.json"])
    finally:
        os.umask(previous)
    assert (output / "report.md").stat().st_mode & 0o777 == 0o600
    (output / "report.json").chmod(0o640)
    report.write_files(str(output), {**files, "report.json": b"{}\n"}, ["report.json"])
    assert (output / "report.json").stat().st_mode & 0o777 == 0o640
    assert (output / "report.json").read_bytes() == b"{}\n"
    assert sorted(path.name for path in output.iterdir()) == ["report.json", "report.md"]


def test_a_url_with_credentials_is_masked_in_the_report(inputs, tmp_path):
    secret = fortio_result(URL="http://alice:pw-s3cret@shop:9080/cart?token=tok-s3cret&page=2")
    changed = copy.deepcopy(inputs)
    changed["results"][1] = write(tmp_path, "performance.json", json.dumps(secret))
    planned = plan(**changed)
    assert planned.runs[1].summary["url"] == ("http://alice:********@shop:9080/cart?token=********"
                                              "&page=********")
    for name, content in report.render_files(planned).items():
        assert b"s3cret" not in content, name


def test_series_accepts_prometheus_query_results():
    labelled = report.check_series("cpu", {"query": "x", "result_type": "matrix", "result": [
        {"metric": {"__name__": "rate", "pod": "a", "container": "istio-proxy"},
         "values": [[1764489600, "0.25"], [1764489615.5, "NaN"]]}]})
    label, points = labelled.lines[0]
    assert label == "container=istio-proxy, pod=a"
    assert points[0] == (1764489600.0, 0.25)
    assert points[1][1] != points[1][1]  # NaN: a gap in the plot
    assert report.check_series("cpu", [{"metric": {}, "values": []}]).lines == [("cpu", [])]


@pytest.mark.parametrize(("changes", "expected"), [
    ({"title": ["a"]}, "title: expected a non-empty string"),
    ({"title": "  "}, "title: expected a non-empty string"),
    ({"results": []}, "results: expected a list of at least one result file"),
    ({"checks": [{"target": "p99_ms", "ok": "yes"}]}, "checks[0].ok: expected true or false"),
    ({"checks": [{"target": "p99_ms", "ok": True, "measured": "5"}]},
     "checks[0].measured: expected a number"),
    ({"series": {"cpu": {"result_type": "vector", "result": []}}},
     "series.cpu.result_type: expected matrix (a range query)"),
    ({"series": {"cpu": [{"metric": {}, "values": [[1, 2, 3]]}]}},
     "series.cpu[0].values[0]: expected a [timestamp, value] pair"),
    ({"series": {"cpu": [{"metric": {}, "values": [[1, "many"]]}]}},
     "series.cpu[0].values[0][1]: expected a number"),
])
def test_bad_options_are_named(inputs, changes, expected):
    problem, planned = report.plan_report({**inputs, **changes})
    assert planned is None
    assert problem.startswith("Invalid options (nothing was changed): ")
    assert expected in problem


@pytest.mark.parametrize(("document", "expected"), [
    ("{not json", "results[1]: expected a fortio JSON result file, but it is not JSON"),
    ([1, 2], "results[1] ({path}): expected a fortio result (a JSON object with DurationHistogram)"),
    ({"RetCodes": {"200": 1}}, "results[1] ({path}).DurationHistogram: expected a fortio histogram"),
    (fortio_result(RetCodes={}), "results[1] ({path}).RetCodes: expected a map of status code"),
    (fortio_result(ActualQPS="fast"), "results[1] ({path}).ActualQPS: expected a number"),
    (fortio_result(RequestedQPS="lots"), "results[1] ({path}).RequestedQPS: expected a request rate"),
    (dict(fortio_result(), DurationHistogram={"Count": 0, "Data": None}, RetCodes={"200": 0}),
     "results[1] ({path}).DurationHistogram.Count: expected a run with at least one recorded call"),
])
def test_unusable_result_files_are_named(tmp_path, inputs, document, expected):
    path = write(tmp_path, "bad.json", document if isinstance(document, str) else json.dumps(document))
    problem, _planned = report.plan_report({**inputs, "results": [inputs["results"][0], path]})
    assert expected.format(path=path) in problem


def test_missing_files_and_unwritable_output_are_all_named(tmp_path, inputs):
    blocker = write(tmp_path, "file", "not a directory")
    problem, _planned = report.plan_report({
        **inputs, "results": [inputs["results"][0], str(tmp_path / "missing.json")],
        "baseline": str(tmp_path), "output_dir": blocker + "/report"})
    assert "output_dir: expected a directory that can be created (its parent " + blocker in problem
    assert "results[1]: expected a readable fortio JSON result file (No such file or directory)" in problem
    assert "baseline: expected a readable fortio JSON result file (Is a directory)" in problem
    problem, _planned = report.plan_report({**inputs, "output_dir": blocker})
    assert "output_dir: expected a directory, but it is an existing file" in problem


def test_run_names_fall_back_to_file_names_when_labels_clash(tmp_path):
    results = [write(tmp_path, "a.json", fortio_result()), str(tmp_path / "a.json")]
    planned = plan(results=results, output_dir=str(tmp_path))
    assert [run.name for run in planned.runs] == ["a", "a (2)"]
    assert list(report.plot_files(planned))[1:] == ["histogram-1-a.png", "histogram-2-a-2.png"]
