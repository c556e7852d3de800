"""Prometheus query options and result conversion, without a server."""

from __future__ import annotations

import math

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils.prometheus import (
    MAX_POINTS,
    convert,
    format_seconds,
    parse_duration,
    parse_time,
    plan_queries,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption

NOW = 1714564800.0  # 2024-05-01T12:00:00Z


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("1m", 60), ("1h30m", 5400), ("500ms", 0.5), ("1d", 86400), ("2w", 1209600),
    ("1.5", 1.5), (15, 15), ("1m30s500ms", 90.5),
])
def test_durations(text, seconds):
    assert parse_duration("step", text) == seconds


@pytest.mark.parametrize("text", ["30 seconds", "0", "-5s", "s", "", "1x", True, "nan", "inf"])
def test_bad_durations(text):
    with pytest.raises(InvalidOption, match=r"^step: expected"):
        parse_duration("step", text)


@pytest.mark.parametrize(("text", "seconds"), [
    ("2024-05-01T12:00:00Z", NOW),
    ("2024-05-01T12:00:00.250Z", NOW + 0.25),
    ("2024-05-01T14:00:00+02:00", NOW),
    ("2024-05-01t06:30:00-05:30", NOW),
    ("1714564800", NOW), ("1714564800.5", NOW + 0.5), (1714564800, NOW),
    ("now", NOW), ("-10m", NOW - 600), ("now-1h", NOW - 3600), ("now - 90s", NOW - 90), ("+5m", NOW + 300),
])
def test_times(text, seconds):
    assert parse_time("time", text, NOW) == seconds


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01T00:00:00Z", "2024-05-01 12:00", "-10 minutes",
                                  "-1", "now-", None])
def test_bad_times(text):
    with pytest.raises(InvalidOption, match=r"^time: expected an RFC3339 time"):
        parse_time("time", text, NOW)


def test_seconds_are_sent_as_plain_decimals():
    assert [format_seconds(v) for v in (NOW, NOW + 0.25, 30.0, 0.3, 1e-4)] == [
        "1714564800", "1714564800.25", "30", "0.3", "0"]


def params(**options):
    base = {"url": "http://prometheus:9090", "query": "up", "queries": None, "time": None, "start": None,
            "end": None, "step": None, "timeout": 30.0, "bearer_token": None, "username": None,
            "password": None, "ca_cert": None, "client_cert": None, "client_key": None, "headers": None}
    base.update(options)
    return base


def test_plan_instant_defaults_to_now_for_every_query():
    message, plan = plan_queries(params(query=None, queries={"a": "up", "b": "sum(up)"}), NOW)
    assert message is None
    assert plan.kind == "instant" and plan.time == NOW
    assert list(plan.queries.items()) == [("a", "up"), ("b", "sum(up)")]


def test_plan_range_end_defaults_to_now():
    message, plan = plan_queries(params(start="-1h", step="1m"), NOW)
    assert message is None
    assert (plan.kind, plan.start, plan.end, plan.step) == ("range", NOW - 3600, NOW, 60.0)


def test_plan_range_point_limit():
    span = MAX_POINTS * 10
    assert plan_queries(params(start=str(NOW - span), end=str(NOW), step="10s"), NOW)[0] is None
    message = plan_queries(params(start=str(NOW - span), end=str(NOW), step="9s"), NOW)[0]
    assert message == ("Invalid options (nothing was changed): step: expected at least 10s, as Prometheus "
                       "returns at most 11000 points per series, got '9s'")


def test_plan_reports_every_problem_at_once():
    message, plan = plan_queries(params(url="http://x/?a=1", query=None, queries={},
                                        end="soon", step="fast", timeout=-1,
                                        bearer_token="t", username="u"), NOW)
    assert plan is None
    assert message.split(": ", 1)[1].split("; ") == [
        "url: expected an http(s) URL of the Prometheus server, such as http://prometheus.istio-system:9090, "
        "got 'http://x/?a=********'",
        "queries: expected at least one name: PromQL pair, got {}",
        "step: expected a duration such as 30s, 1m, 1h30m or a number of seconds, got 'fast'",
        "end: expected an RFC3339 time (2024-05-01T12:00:00Z), unix seconds, now, or a relative time such "
        "as -10m, got 'soon'",
        "start: expected a start time, as end and step make a range query, got None",
        "timeout: expected a positive number of seconds, at most 86400 (a day), got -1",
        "bearer_token: expected either bearer_token or username/password, not both, got '(hidden)'",
    ]
    assert "'t'" not in message


def test_convert_vector_matrix_scalar_string():
    vector = convert({"resultType": "vector", "result": [
        {"metric": {"pod": "a"}, "value": [NOW, "1.5"]},
        {"metric": {"pod": "b"}, "value": [NOW, "NaN"]},
        {"metric": {"pod": "c"}, "value": [NOW, "+Inf"]},
        {"metric": {"pod": "d"}, "value": [NOW, "-Inf"]},
    ]})
    assert vector["result_type"] == "vector" and vector["value"] is None
    values = [s["value"] for s in vector["result"]]
    assert values[0] == 1.5 and math.isnan(values[1]) and values[2:] == [math.inf, -math.inf]
    assert vector["result"][0] == {"metric": {"pod": "a"}, "value": 1.5, "timestamp": NOW}

    single = convert({"resultType": "vector", "result": [{"metric": {}, "value": [NOW, "0.35"]}]})
    assert single["value"] == 0.35

    matrix = convert({"resultType": "matrix", "result": [
        {"metric": {"pod": "a"}, "values": [[NOW, "1"], [NOW + 30, "2e3"]]}]})
    assert matrix == {"result_type": "matrix", "value": None,
                      "result": [{"metric": {"pod": "a"}, "values": [[NOW, 1.0], [NOW + 30, 2000.0]]}]}

    assert convert({"resultType": "scalar", "result": [NOW, "-Inf"]}) == {
        "result_type": "scalar", "result": {"timestamp": NOW, "value": -math.inf}, "value": -math.inf}
    assert convert({"resultType": "string", "result": [NOW, "mesh"]}) == {
        "result_type": "string", "result": {"timestamp": NOW, "value": "mesh"}, "value": None}


def test_convert_native_histograms():
    histogram = {"count": "10", "sum": "3.5", "buckets": [[0, "0.5", "1", "4"], [0, "1", "2", "6"]]}
    vector = convert({"resultType": "vector", "result": [{"metric": {}, "histogram": [NOW, histogram]}]})
    assert vector["result"] == [{"metric": {}, "timestamp": NOW, "histogram": {
        "count": 10.0, "sum": 3.5, "buckets": [[0, 0.5, 1.0, 4.0], [0, 1.0, 2.0, 6.0]]}}]
    assert vector["value"] is None
    matrix = convert({"resultType": "matrix", "result": [{"metric": {}, "histograms": [[NOW, histogram]]}]})
    assert matrix["result"][0]["values"] == []
    assert matrix["result"][0]["histograms"][0][1]["count"] == 10.0
