"""meshtune.mesh.load_test run as Ansible runs it, against servers on 127.0.0.1 only."""

from __future__ import annotations

import json

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen import fortio_format
from ansible_collections.meshtune.mesh.plugins.modules.load_test import main
from tests.ansible_runner import run_module
from tests.load_targets import running as load_target
from tests.local_nginx import free_port
from tests.module_harness import call_module

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_bad_options_fail_in_one_message_before_any_request(tmp_path):
    record = tmp_path / "arrivals.json"
    with load_target("delay", record=record) as url:
        result = call_module(main, {
            "url": url, "method": "GET /", "qps": -5, "connections": 0, "duration": "30",
            "requests": 10, "warmup": "soon", "timeout": "0s", "progress_interval": "1 minute",
            "headers": {"X Bad": "1", "X-Multi": "a\r\nb"},
            "result_file": str(tmp_path / "missing" / "result.json")})
    assert result["failed"]
    message = result["msg"]
    for path in ("method:", "qps:", "connections:", "duration:", "warmup:", "timeout:",
                 "progress_interval:", "headers.X Bad:", "result_file:"):
        assert path in message, path
    assert json.loads(record.read_text())["arrivals"] == []


@pytest.mark.parametrize(("options", "path"), [
    ({"url": "ftp://127.0.0.1/"}, "url:"),
    ({"url": "http://user:secret@127.0.0.1/"}, "url:"),
    ({"url": "http://127.0.0.1:99999/"}, "url:"),
    ({"duration": None}, "duration:"),
    ({"qps": 10, "duration": "50ms"}, "duration:"),
    ({"headers": {"X-Multi": "a\nb"}}, "headers.X-Multi:"),
    ({"headers": {"X-List": [1, 2]}}, "headers.X-List:"),
    ({"engine": "k6"}, "engine"),
])
def test_each_bad_option_is_named(options, path):
    args = {"url": "http://127.0.0.1:9/", "duration": "1s", **options}
    result = call_module(main, {key: value for key, value in args.items() if value is not None})
    assert result["failed"]
    assert path in result["msg"]


def test_check_mode_sends_nothing(tmp_path):
    record = tmp_path / "arrivals.json"
    with load_target("delay", record=record) as url:
        result = call_module(main, {"url": url, "qps": 100, "duration": "1s"}, check_mode=True)
    assert not result.get("failed"), result
    assert result["changed"] is False
    assert "result" not in result
    assert json.loads(record.read_text())["arrivals"] == []


def test_a_run_returns_and_writes_a_fortio_result_and_progress(tmp_path):
    result_file = tmp_path / "result.json"
    progress_file = tmp_path / "progress.log"
    record = tmp_path / "arrivals.json"
    with load_target("delay", "--base", "0.002", record=record) as url:
        result = call_module(main, {
            "url": url + "ping?x=1", "qps": 200, "connections": 4, "duration": "1500ms",
            "warmup": "500ms", "labels": "baseline", "headers": {"X-Test": 1},
            "result_file": str(result_file), "progress_file": str(progress_file),
            "progress_interval": "500ms"})
    assert not result.get("failed"), result
    assert result["changed"] is False
    summary = result["summary"]
    assert summary["requests"] == 300
    assert summary["success_rate"] == 1.0 and summary["errors"] == 0
    assert summary["achieved_qps"] == pytest.approx(200, rel=0.01)
    assert 2.0 <= summary["p50_ms"] <= summary["p90_ms"] <= summary["p99_ms"] <= summary["p999_ms"]
    assert result["errors"] == {"timeout": 0, "connection_refused": 0, "connection_reset": 0,
                                "protocol": 0, "tls": 0, "not_sent": 0, "other": 0}
    fortio = result["result"]
    assert fortio["Labels"] == "baseline"
    assert fortio["URL"] == url + "ping?x=1"
    assert fortio["RequestedQPS"] == "200" and fortio["RequestedDuration"] == "1.5s"
    assert fortio["RetCodes"] == {"200": 300}
    assert result["result_file"] == str(result_file)
    text = result_file.read_text(encoding="utf-8")
    assert fortio_format.loads(text) == fortio
    assert fortio_format.dumps(fortio_format.loads(text)) == text
    view = fortio_format.FortioResult("result", fortio_format.read_result_file("r", str(result_file)))
    assert view.percentile_ms(99) == pytest.approx(summary["p99_ms"], abs=0.001)
    lines = progress_file.read_text(encoding="utf-8").splitlines()
    assert "start: 200 qps, 4 connections, 1500ms after 500ms warm-up" in lines[0]
    assert sum(" measure sent=" in line or " warmup sent=" in line for line in lines) >= 3
    assert "done: p50=" in lines[-1]
    assert len(json.loads(record.read_text())["arrivals"]) == 400  # warm-up included


def test_errors_are_results_not_failures():
    result = call_module(main, {"url": f"http://127.0.0.1:{free_port()}/", "qps": 100,
                                "requests": 50, "connections": 2, "timeout": "1s"})
    assert not result.get("failed"), result
    assert result["errors"]["connection_refused"] == 50
    assert result["summary"]["success_rate"] == 0.0
    assert result["result"]["RetCodes"] == {"-1": 50}


def test_the_module_runs_under_ansible_playbook(tmp_path):
    """AnsiballZ packs the loadgen package with the module, as on a real controller."""
    result_file = tmp_path / "fortio.json"
    with load_target("delay") as url:
        outcome = run_module(tmp_path, "meshtune.mesh.load_test", {
            "url": url, "qps": 100, "connections": 2, "requests": 100,
            "result_file": str(result_file)})
    assert not outcome.get("failed"), outcome
    assert outcome["summary"]["requests"] == 100
    assert outcome["summary"]["achieved_qps"] == pytest.approx(100, rel=0.01)
    assert fortio_format.loads(result_file.read_text(encoding="utf-8"))["RetCodes"] == {"200": 100}
