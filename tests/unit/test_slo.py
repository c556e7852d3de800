"""SLO judging and the fortio result reader: exact checks, margins, percentiles and input errors."""

from __future__ import annotations

import copy
import json
import math

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils import slo
from ansible_collections.meshtune.mesh.plugins.module_utils.run_result import (
    FortioResult,
    percentile_from_buckets,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption
from tests.support.fortio_samples import baseline_result, fortio_result


def judged(targets: dict, **inputs) -> list[tuple]:
    message, checks = slo.plan_checks({"targets": targets, "result": fortio_result(), **inputs})
    assert message is None, message
    return [(c.target, c.measured, c.limit, c.margin, c.ok, c.unit) for c in checks]


# --- exact checks and margins ---------------------------------------------------------------

CASES = [
    pytest.param({"p50_ms": 2, "p90_ms": 3, "p99_ms": 4, "p999_ms": 20}, {}, [
        ("p50_ms", 1.75, 2.0, 0.25, True, "ms"),
        ("p90_ms", 3.0, 3.0, 0.0, True, "ms"),          # exactly at the limit is met
        ("p99_ms", 5.0, 4.0, -1.0, False, "ms"),
        ("p999_ms", 10.0, 20.0, 10.0, True, "ms"),
    ], id="latency-percentiles"),
    pytest.param({"success_rate": 0.999, "min_qps_ratio": 0.99}, {}, [
        ("success_rate", 1.0, 0.999, 0.001, True, "ratio"),
        ("min_qps_ratio", 0.9905, 0.99, 0.0005, True, "ratio"),
    ], id="lower-bounds-met"),
    pytest.param({"success_rate": 0.999, "min_qps_ratio": 0.995}, {"result": fortio_result(
        RetCodes={"200": 9980, "503": 15, "-1": 5})}, [
        ("success_rate", 0.998, 0.999, -0.001, False, "ratio"),
        ("min_qps_ratio", 0.9905, 0.995, -0.0045, False, "ratio"),
    ], id="lower-bounds-missed"),
    pytest.param({"added_p50_ms": 1, "added_p90_ms": 1, "added_p99_ms": 2}, {"baseline": baseline_result()}, [
        ("added_p50_ms", 0.65, 1.0, 0.35, True, "ms"),
        ("added_p90_ms", 1.4, 1.0, -0.4, False, "ms"),
        ("added_p99_ms", 1.9, 2.0, 0.1, True, "ms"),
    ], id="added-latency"),
    pytest.param({"proxy_cpu_per_1k_rps": 0.35, "proxy_memory_mib": 40,
                  "proxy_memory_growth_mib_per_min": 0.5, "push_latency_p99_ms": 100},
                 {"proxy": {"cpu_per_1k_rps": 0.41, "memory_mib": "38.5",
                            "memory_growth_mib_per_min": 0, "push_latency_p99_ms": 250}}, [
        ("proxy_cpu_per_1k_rps", 0.41, 0.35, -0.06, False, "vCPU"),
        ("proxy_memory_mib", 38.5, 40.0, 1.5, True, "MiB"),
        ("proxy_memory_growth_mib_per_min", 0.0, 0.5, 0.5, True, "MiB/min"),
        ("push_latency_p99_ms", 250.0, 100.0, -150.0, False, "ms"),
    ], id="proxy-figures"),
]


@pytest.mark.parametrize(("targets", "inputs", "expected"), CASES)
def test_checks_and_margins(targets, inputs, expected):
    assert judged(targets, **inputs) == expected


def test_checks_come_in_a_fixed_order_whatever_the_target_order():
    names = [c[0] for c in judged({"success_rate": 0.9, "p999_ms": 50, "p50_ms": 5})]
    assert names == ["p50_ms", "p999_ms", "success_rate"]


def test_errors_count_as_failures_once():
    # fortio puts socket errors in RetCodes as -1 and every non-2xx call in ErrorsDurationHistogram.
    both = fortio_result(RetCodes={"200": 990, "500": 6, "-1": 4})
    both["ErrorsDurationHistogram"]["Count"] = 10
    assert FortioResult("result", both).outcomes() == (990, 1000)
    # A result that records failed calls only in ErrorsDurationHistogram still counts them.
    hidden = fortio_result(RetCodes={"200": 990})
    hidden["ErrorsDurationHistogram"]["Count"] = 10
    assert FortioResult("result", hidden).success_rate() == 0.99
    # 2xx other than 200 are successes; 3xx/4xx are not.
    mixed = fortio_result(RetCodes={"200": 90, "204": 5, "301": 2, "429": 3})
    assert FortioResult("result", mixed).outcomes() == (95, 100)


def test_nan_proxy_figure_misses_its_target():
    checks = judged({"proxy_memory_mib": 40}, proxy={"memory_mib": float("nan")})
    assert checks[0][0] == "proxy_memory_mib"
    assert math.isnan(checks[0][1]) and math.isnan(checks[0][3])
    assert checks[0][4] is False


# --- percentiles from buckets ---------------------------------------------------------------

def test_percentile_from_buckets_interpolates_like_fortio():
    data = fortio_result()["DurationHistogram"]
    buckets = [(b["Start"], b["End"], b["Percent"]) for b in data["Data"]]

    def at(percentile):
        return percentile_from_buckets(buckets, 10000, 0.0004, 0.25, percentile)

    assert at(100) == 0.25                     # at 100 % the maximum
    assert at(0.01) == 0.0004                  # within the first call: the minimum
    assert at(10) == pytest.approx(0.0004 + (10 - 0.01) / (20 - 0.01) * 0.0006)
    assert at(50) == pytest.approx(0.00175)   # 0.001 + (50-20)/(60-20) * 0.001
    assert at(99.9) == pytest.approx(0.01)    # bucket edge: the bucket's end
    assert at(99.95) == pytest.approx(0.01 + 0.5 * 0.24)


def test_fortio_example_three_points():
    # fortio's own example: values 10, 20, 30 -> p50 is 15 (linear between 10 and 20).
    buckets = [(10, 10, 100 / 3), (10, 20, 200 / 3), (20, 30, 100)]
    assert percentile_from_buckets(buckets, 3, 10, 30, 50) == pytest.approx(15)


def test_missing_percentile_is_computed_from_the_buckets():
    result = fortio_result()
    result["DurationHistogram"]["Percentiles"] = [{"Percentile": 50, "Value": 0.00175}]
    checks = slo.plan_checks({"result": result, "targets": {"p90_ms": 3, "p999_ms": 20, "p99_ms": 5}})[1]
    measured = {c.target: c.measured for c in checks}
    assert measured == {"p90_ms": 3.0, "p99_ms": 5.0, "p999_ms": 10.0}
    # Without any listed percentiles, counts (not the Percent field) drive the interpolation.
    del result["DurationHistogram"]["Percentiles"]
    for bucket in result["DurationHistogram"]["Data"]:
        del bucket["Percent"]
    assert FortioResult("result", result).percentile_ms(75) == pytest.approx(2.5)


def test_percentile_needs_buckets_when_not_listed():
    result = fortio_result()
    result["DurationHistogram"]["Data"] = []
    message, checks = slo.plan_checks({"result": result, "targets": {"p75_ms": 1, "p99_ms": 1, "p90_ms": 3}})
    assert checks == []
    assert "targets.p75_ms: expected a known target name" in message
    # p99 and p90 are listed: only a percentile that is not listed needs the buckets.
    message, checks = slo.plan_checks({"result": result, "targets": {"p999_ms": 1}})
    assert message is None
    del result["DurationHistogram"]["Percentiles"][4]
    message = slo.plan_checks({"result": result, "targets": {"p999_ms": 1}})[0]
    assert message == ("Invalid options (nothing was changed): result.DurationHistogram.Data: expected "
                       "histogram buckets (a non-empty list of {Start, End, Count}), got []")


# --- input errors, all reported before judging ----------------------------------------------

def test_unknown_target_names_the_key_and_lists_the_valid_ones():
    message, checks = slo.plan_checks({"result": fortio_result(), "targets": {"p99": 10, "p50_ms": 5}})
    assert checks == []
    valid = ("p50_ms, p90_ms, p99_ms, p999_ms, success_rate, min_qps_ratio, added_p50_ms, added_p90_ms, "
             "added_p99_ms, proxy_cpu_per_1k_rps, proxy_memory_mib, proxy_memory_growth_mib_per_min, "
             "push_latency_p99_ms, min_capacity_ratio")
    assert message == ("Invalid options (nothing was changed): targets.p99: expected a known target "
                       f"name, one of: {valid}, got 'p99'")


def test_missing_baseline_names_what_is_missing():
    targets = {"added_p99_ms": 2, "added_p50_ms": 1}
    message = slo.plan_checks({"result": fortio_result(), "targets": targets})[0]
    assert message == ("Invalid options (nothing was changed): baseline: expected a fortio result of the "
                       "same load without sidecars (baseline or baseline_file) for targets added_p50_ms, "
                       "added_p99_ms, got None")


def test_missing_proxy_figures_and_every_other_problem_at_once():
    message = slo.plan_checks({
        "result": fortio_result(RequestedQPS="max"),
        "targets": {"proxy_cpu_per_1k_rps": 0.5, "success_rate": 99.9, "p99_ms": "fast",
                    "min_qps_ratio": 0.9},
        "proxy": {"memory_mib": "lots", "cpu": 1},
    })[0]
    problems = message.split(": ", 1)[1].split("; ")
    assert problems == [
        "targets.success_rate: expected a share between 0 and 1 (0.999 for 99.9 %), got 99.9",
        "targets.p99_ms: expected a number, got 'fast'",
        "proxy.memory_mib: expected a number, got 'lots'",
        "proxy.cpu: expected a known proxy figure, one of: cpu_per_1k_rps, memory_mib, "
        "memory_growth_mib_per_min, push_latency_p99_ms, got 'cpu'",
        "proxy.cpu_per_1k_rps: expected the measured sidecar CPU per 1000 requests/s in vCPU for target "
        "proxy_cpu_per_1k_rps, got None",
        "result.RequestedQPS: expected a fixed request rate (the run was not made with -qps N), got 'max'",
    ]


@pytest.mark.parametrize(("change", "path"), [
    (lambda r: r.pop("RetCodes"), "result.RetCodes"),
    (lambda r: r.update(RetCodes={"200": "many"}), "result.RetCodes.200"),
    (lambda r: r.pop("DurationHistogram"), "result.DurationHistogram"),
    (lambda r: r["DurationHistogram"].update(Percentiles=[{"Percentile": 99, "Value": "slow"}]),
     "result.DurationHistogram.Percentiles[0].Value"),
    (lambda r: r.update(ActualQPS=None), "result.ActualQPS"),
])
def test_malformed_result_names_the_json_path(change, path):
    result = fortio_result()
    change(result)
    targets = {"p99_ms": 5, "success_rate": 0.9, "min_qps_ratio": 0.9}
    message = slo.plan_checks({"result": result, "targets": targets})[0]
    assert f"): {path}: expected " in message or f"; {path}: expected " in message, message


def test_result_file_is_read_and_named_in_errors(tmp_path):
    path = tmp_path / "mesh.json"
    path.write_text(json.dumps(fortio_result()))
    message, checks = slo.plan_checks({"result_file": str(path), "targets": {"p50_ms": 2}})
    assert message is None and checks[0].measured == 1.75
    broken = copy.deepcopy(fortio_result())
    broken["DurationHistogram"]["Percentiles"] = "none"
    path.write_text(json.dumps(broken))
    message = slo.plan_checks({"result_file": str(path), "targets": {"p50_ms": 2}})[0]
    assert f"result_file ({path}).DurationHistogram.Percentiles: expected" in message
    path.write_text("{not json")
    message = slo.plan_checks({"result_file": str(path), "targets": {"p50_ms": 2}})[0]
    assert message.startswith("Invalid options (nothing was changed): result_file: expected a fortio "
                              "JSON result file, but it is not JSON")


def test_limits_must_be_sane_numbers():
    with pytest.raises(InvalidOption, match=r"targets\.p99_ms: expected a finite number of at least 0"):
        slo.check_limit("p99_ms", -1)
    with pytest.raises(InvalidOption, match=r"targets\.p99_ms: expected a number"):
        slo.check_limit("p99_ms", True)
    assert slo.check_limit("p99_ms", "12.5") == 12.5


# --- the table ------------------------------------------------------------------------------

def test_table_and_headline():
    targets = {"p99_ms": 4, "p50_ms": 2, "success_rate": 0.999}
    checks = slo.plan_checks({"result": fortio_result(RetCodes={"200": 9980, "503": 20}),
                              "targets": targets})[1]
    outcome = slo.checks_result(checks)
    assert outcome["passed"] is False
    assert outcome["table"] == "\n".join([
        "target       | measured | limit    | margin   | ok",
        "-------------+----------+----------+----------+-------",
        "p50_ms       | 1.75 ms  | <= 2 ms  | +0.25 ms | ok",
        "p99_ms       | 5 ms     | <= 4 ms  | -1 ms    | MISSED",
        "success_rate | 0.998    | >= 0.999 | -0.001   | MISSED",
    ])
    assert outcome["msg"] == ("SLO check failed: 2 of 3 targets missed: p99_ms (5 ms above 4 ms), "
                              "success_rate (0.998 below 0.999)\n" + outcome["table"])
    passing = slo.checks_result(slo.plan_checks({"result": fortio_result(), "targets": {"p50_ms": 2}})[1])
    assert passing["passed"] is True
    assert passing["msg"].startswith("SLO check passed: all 1 targets met\n")


def test_number_format():
    assert [slo.format_number(v) for v in (0.1 + 0.2, 1234567.0, 0.00001234, float("inf"), float("nan"))] \
        == ["0.3", "1234567", "0.00001234", "+Inf", "NaN"]
