"""One check of a whole fortio result (run_result.validate_result), shared by slo_check and
perf_report: every impossible figure is refused with the file and the JSON path, never judged."""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils import report, run_result, slo
from ansible_collections.meshtune.mesh.plugins.module_utils.histogram import (
    DEFAULT_PERCENTILES,
    LOG_LINEAR,
    FortioBuckets,
    HistogramRecorder,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption
from tests.support.fortio_samples import fortio_result


def histogram(result):
    return result["DurationHistogram"]


def percentile(result, index):
    return histogram(result)["Percentiles"][index]


def bucket(result, index):
    return histogram(result)["Data"][index]


ERRORS_10001 = {"Count": 10001, "Data": [{"Start": 0.001, "End": 0.002, "Count": 10001}]}

# (change to fortio_result(), JSON path of the field, what the message says is expected)
IMPOSSIBLE = [
    pytest.param(lambda r: histogram(r).update(Min=-0.0004), "DurationHistogram.Min",
                 "a number of at least 0", id="negative-min"),
    pytest.param(lambda r: histogram(r).update(Avg=-1), "DurationHistogram.Avg",
                 "a number of at least 0", id="negative-average"),
    pytest.param(lambda r: percentile(r, 0).update(Value=-0.001), "DurationHistogram.Percentiles[0].Value",
                 "a number of at least 0", id="negative-percentile-latency"),
    pytest.param(lambda r: bucket(r, 0).update(Start=-0.001), "DurationHistogram.Data[0].Start",
                 "a number of at least 0", id="negative-bucket-start"),
    pytest.param(lambda r: percentile(r, 4).update(Percentile=150),
                 "DurationHistogram.Percentiles[4].Percentile", "a number of at most 100",
                 id="percentile-above-100"),
    pytest.param(lambda r: percentile(r, 0).update(Percentile=-50),
                 "DurationHistogram.Percentiles[0].Percentile", "a number of at least 0",
                 id="percentile-below-0"),
    pytest.param(lambda r: bucket(r, 2).update(Start=0.004, End=0.003), "DurationHistogram.Data[2].End",
                 "a number not below Start (0.004)", id="bucket-start-after-end"),
    pytest.param(lambda r: r.update(RetCodes={"200": 10000, "503": 5}), "RetCodes",
                 "at most DurationHistogram.Count (10000) calls in all, but they add up to 10005",
                 id="more-return-codes-than-calls"),
    pytest.param(lambda r: histogram(r).update(Count=-10000), "DurationHistogram.Count",
                 "a count (an integer of at least 0)", id="negative-count"),
    pytest.param(lambda r: r.update(RetCodes={"200": -1}), "RetCodes.200",
                 "a count (an integer of at least 0)", id="negative-return-code-count"),
    pytest.param(lambda r: histogram(r).update(Count=9000), "DurationHistogram.Count",
                 "the sum of the bucket counts (10000)", id="count-not-the-sum-of-the-buckets"),
    pytest.param(lambda r: r.update(ErrorsDurationHistogram=ERRORS_10001), "ErrorsDurationHistogram.Count",
                 "at most DurationHistogram.Count (10000)", id="more-errors-than-calls"),
    pytest.param(lambda r: histogram(r)["Data"].reverse(), "DurationHistogram.Data[1]",
                 "buckets in increasing order", id="buckets-out-of-order"),
    pytest.param(lambda r: bucket(r, 1).update(Percent=120), "DurationHistogram.Data[1].Percent",
                 "a number of at most 100", id="share-above-100"),
    pytest.param(lambda r: percentile(r, 3).update(Value=0.001), "DurationHistogram.Percentiles[3].Value",
                 "a latency not below that of a lower percentile (0.003)", id="p99-below-p90"),
    pytest.param(lambda r: histogram(r).update(Min=0.3), "DurationHistogram.Max",
                 "a latency not below Min (0.3)", id="max-below-min"),
    pytest.param(lambda r: r.update(ActualQPS=-990.5), "ActualQPS", "a number of at least 0",
                 id="negative-rate"),
    pytest.param(lambda r: r.update(RequestedQPS="-5"), "RequestedQPS", "a request rate",
                 id="negative-requested-rate"),
    pytest.param(lambda r: histogram(r).update(Max=float("inf")), "DurationHistogram.Max",
                 "a finite number", id="infinite-latency"),
    pytest.param(lambda r: histogram(r).update(Count=2 ** 64), "DurationHistogram.Count",
                 "a count", id="count-beyond-int64"),
    pytest.param(lambda r: r.update(Labels=[[["deep"]]]), "Labels", "a string", id="labels-not-a-string"),
]


def impossible(change):
    result = copy.deepcopy(fortio_result())
    change(result)
    return result


@pytest.mark.parametrize(("change", "path", "expected"), IMPOSSIBLE)
def test_validate_result_names_the_impossible_field(change, path, expected):
    with pytest.raises(InvalidOption) as raised:
        run_result.validate_result("result", impossible(change))
    assert raised.value.path == f"result.{path}"
    assert expected in raised.value.expected


@pytest.mark.parametrize(("change", "path", "expected"), IMPOSSIBLE)
def test_slo_check_refuses_an_impossible_result_file_instead_of_judging_it(
        tmp_path, change, path, expected):
    result_file = tmp_path / "mesh.json"
    result_file.write_text(json.dumps(impossible(change)))
    targets = {"p50_ms": 100, "p99_ms": 100, "success_rate": 0.5}
    message, checks = slo.plan_checks({"result_file": str(result_file), "targets": targets})
    assert checks == []
    assert f"result_file ({result_file}).{path}: expected {expected}" in message, message


@pytest.mark.parametrize(("change", "path", "expected"), IMPOSSIBLE)
def test_perf_report_refuses_an_impossible_result_file(tmp_path, change, path, expected):
    result_file = tmp_path / "mesh.json"
    result_file.write_text(json.dumps(impossible(change)))
    message, planned = report.plan_report({"results": [str(result_file)],
                                           "output_dir": str(tmp_path / "report")})
    assert planned is None
    assert f"results[0] ({result_file}).{path}: expected {expected}" in message, message


def test_an_inline_result_is_checked_the_same_way():
    result = impossible(lambda r: histogram(r).update(Min=-1))
    message = slo.plan_checks({"result": result, "targets": {"p50_ms": 10}})[0]
    assert "result.DurationHistogram.Min: expected a number of at least 0, got -1" in message
    baseline = slo.plan_checks({"result": fortio_result(), "baseline": result,
                                "targets": {"added_p50_ms": 10}})[0]
    assert "baseline.DurationHistogram.Min: expected a number of at least 0" in baseline


def test_what_fortio_and_the_local_engine_write_passes():
    assert run_result.validate_result("result", fortio_result()) is not None
    assert run_result.validate_result("result", fortio_result(
        RequestedQPS="max", ErrorsDurationHistogram=None, RetCodes={"200": 9990, "-1": 10})) is not None
    for layout in (LOG_LINEAR, FortioBuckets()):
        for latencies in ([0.0], [0.25], [0.0001 * i for i in range(1, 5000)], [0.001, 0.001, 7.5]):
            recorded = HistogramRecorder(layout)
            for latency in latencies:
                recorded.record(latency)
            empty = HistogramRecorder(layout).export(DEFAULT_PERCENTILES)
            result = fortio_result(DurationHistogram=recorded.export(DEFAULT_PERCENTILES),
                                   ErrorsDurationHistogram=empty, RetCodes={"200": len(latencies)})
            run_result.validate_result("result", result)


def deeply_nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [100000, 5000])
def test_json_nested_too_deeply_is_named_not_raised(tmp_path, depth):
    result_file = tmp_path / "deep.json"
    result_file.write_text('{"DurationHistogram": ' + deeply_nested(depth) + "}")
    message = slo.plan_checks({"result_file": str(result_file), "targets": {"p99_ms": 5}})[0]
    assert message == ("Invalid options (nothing was changed): result_file: expected a fortio JSON result "
                       f"file, but its JSON is nested too deeply to be one, got '{result_file}'")
    message = report.plan_report({"results": [str(result_file)], "output_dir": str(tmp_path / "r")})[0]
    assert "results[0]: expected a fortio JSON result file, but its JSON is nested too deeply" in message
