"""meshtune.mesh.load_test run as Ansible runs it, against servers on 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils import run_result
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen import engine
from ansible_collections.meshtune.mesh.plugins.modules.load_test import main
from tests.functional.test_load_engine import self_signed
from tests.support.ansible_runner import run_module
from tests.support.load_targets import running as load_target
from tests.support.local_nginx import free_port
from tests.support.module_harness import call_module

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
REPOSITORY = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def listening() -> Iterator[tuple[str, socket.socket]]:
    """A port on 127.0.0.1 that accepts nothing by itself: (its URL, the listening socket), to
    count the connections that reached it (accepted) afterwards."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/", sock


def connections_made(sock: socket.socket) -> int:
    sock.setblocking(False)
    count = 0
    while True:
        try:
            peer, _address = sock.accept()
        except BlockingIOError:
            return count
        peer.close()
        count += 1


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
                                "protocol": 0, "tls": 0, "client_exhausted": 0, "not_sent": 0,
                                "other": 0}
    assert summary["client_errors"] == summary["server_errors"] == summary["not_sent"] == 0
    assert result["first_errors"] == {}
    assert result["schedule"] == {"planned": 300, "sent": 300, "not_sent": 0, "not_sent_share": 0.0,
                                  "max_not_sent": 0.01, "slipped": False}
    assert "warnings" not in result
    fortio = result["result"]
    assert fortio["Labels"] == "baseline"
    assert fortio["URL"] == url + "ping?x=********"  # query values masked
    assert fortio["RequestedQPS"] == "200" and fortio["RequestedDuration"] == "1.5s"
    assert fortio["RetCodes"] == {"200": 300}
    assert fortio["ClientErrors"] == {} and fortio["NotSent"] == 0
    assert result["result_file"] == str(result_file)
    text = result_file.read_text(encoding="utf-8")
    assert run_result.loads(text) == fortio
    assert run_result.dumps(run_result.loads(text)) == text
    view = run_result.FortioResult("result", run_result.read_result_file("r", str(result_file)))
    assert view.percentile_ms(99) == pytest.approx(summary["p99_ms"], abs=0.001)
    lines = progress_file.read_text(encoding="utf-8").splitlines()
    assert "start: 200 qps, 4 connections, 1500ms after 500ms warm-up" in lines[0]
    assert sum(" measure sent=" in line or " warmup sent=" in line for line in lines) >= 3
    assert "done: p50=" in lines[-1]
    assert len(json.loads(record.read_text())["arrivals"]) == 400  # warm-up included


def test_server_errors_are_results_not_failures():
    with load_target("reset") as url:
        result = call_module(main, {"url": url, "qps": 100, "requests": 50, "connections": 2,
                                    "timeout": "1s"})
    assert not result.get("failed"), result
    assert result["errors"]["connection_reset"] == 50
    assert result["summary"]["success_rate"] == 0.0
    assert result["summary"]["server_errors"] == 50 and result["summary"]["client_errors"] == 0
    assert result["result"]["RetCodes"] == {"-1": 50}
    assert result["result"]["ClientErrors"] == {}


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
    assert run_result.loads(result_file.read_text(encoding="utf-8"))["RetCodes"] == {"200": 100}


@pytest.mark.parametrize(("options", "path", "expected"), [
    pytest.param({"qps": 1e12, "duration": "2s"}, "qps:", "at most", id="qps-1e12"),
    pytest.param({"qps": 1e7, "duration": "2s"}, "qps:", "per worker process", id="qps-1e7"),
    pytest.param({"qps": engine.MAX_QPS_PER_WORKER * 1.5, "workers": 1, "requests": 10},
                 "qps:", "workers 1", id="qps-above-one-worker"),
    pytest.param({"qps": 0, "requests": engine.MAX_REQUESTS + 1}, "requests:",
                 f"at most {engine.MAX_REQUESTS} requests per run", id="requests-cap"),
    pytest.param({"qps": 50000, "duration": "1h"}, "duration:",
                 f"at most {engine.MAX_REQUESTS} requests per run", id="duration-times-qps-cap"),
    pytest.param({"qps": 100, "requests": 100, "max_not_sent": 1.5}, "max_not_sent:", "a share",
                 id="max-not-sent"),
])
def test_load_beyond_the_bounds_fails_before_any_connection(options, path, expected):
    with listening() as (url, sock):
        result = call_module(main, {"url": url, "connections": 8, **options})
        assert connections_made(sock) == 0
    assert result["failed"], result
    assert path in result["msg"] and expected in result["msg"], result["msg"]
    assert "result" not in result


def test_a_refused_port_fails_naming_the_client_error():
    result = call_module(main, {"url": f"http://127.0.0.1:{free_port()}/", "qps": 100,
                                "requests": 50, "connections": 2, "timeout": "1s"})
    assert result["failed"], result
    message = result["msg"]
    assert "failed before reaching the server" in message
    assert "connection_refused: 50" in message and "connection refused" in message.lower()
    # The figures still come back, with the client errors apart from the server's.
    assert result["errors"]["connection_refused"] == 50
    assert result["summary"]["client_errors"] == 50 and result["summary"]["server_errors"] == 0
    assert result["result"]["RetCodes"] == {"-1": 50}
    assert result["result"]["ClientErrors"] == {"connection_refused": 50}
    assert "Connection refused" in result["first_errors"]["connection_refused"]


def test_a_self_signed_certificate_fails_naming_the_certificate_problem(tmp_path):
    cert, key = self_signed(tmp_path)
    with load_target("delay", "--tls-cert", cert, "--tls-key", key) as url:
        result = call_module(main, {"url": url, "qps": 50, "requests": 10, "connections": 2})
    assert result["failed"], result
    assert "tls: 10" in result["msg"]
    assert "certificate verification failed: self-signed certificate" in result["msg"].lower()
    assert result["result"]["ClientErrors"] == {"tls": 10}
    assert result["summary"]["server_errors"] == 0


def test_a_target_that_stalls_ends_the_run_and_marks_the_slipped_schedule(tmp_path):
    """A server that never answers: two connections hold a request each for the 0.2 s timeout,
    so most of the 100 requests due in the second are more than the timeout late and never
    sent. The run ends by itself; the result says how much of the schedule was not kept."""
    result_file = tmp_path / "result.json"
    with load_target("hang") as url:
        result = call_module(main, {"url": url, "qps": 100, "duration": "1s", "connections": 2,
                                    "timeout": "200ms", "result_file": str(result_file)})
        tolerated = call_module(main, {"url": url, "qps": 100, "duration": "1s", "connections": 2,
                                       "timeout": "200ms", "max_not_sent": 1})
    assert result["failed"], result
    assert "the schedule slipped" in result["msg"] and "max_not_sent (1.00%)" in result["msg"]
    schedule = result["schedule"]
    assert schedule["planned"] == 100 and schedule["sent"] + schedule["not_sent"] == 100
    assert schedule["not_sent"] > 50 and schedule["slipped"] is True
    assert schedule["not_sent_share"] == pytest.approx(schedule["not_sent"] / 100)
    assert result["summary"]["not_sent"] == result["result"]["NotSent"] == schedule["not_sent"]
    assert result["errors"]["timeout"] == schedule["sent"] == result["summary"]["server_errors"]
    assert "more than the timeout" in result["first_errors"]["not_sent"]
    assert run_result.loads(result_file.read_text())["NotSent"] == schedule["not_sent"]
    # Allowed to slip: a result with a warning instead of a failure.
    assert not tolerated.get("failed"), tolerated
    assert tolerated["schedule"]["slipped"] is False and tolerated["schedule"]["not_sent"] > 50
    warnings = [w["event"]["msg"] if isinstance(w, dict) else w for w in tolerated["warnings"]]
    assert any("were due but never sent" in warning for warning in warnings), warnings


RUN_WITH_FILE_LIMIT = """
import json, resource, sys
from ansible_collections.meshtune.mesh.plugins.modules.load_test import main
from tests.support.module_harness import call_module
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
print(json.dumps(call_module(main, json.loads(sys.argv[2]))))
"""


def test_connections_beyond_the_open_file_limit_fail_before_any_connection():
    with listening() as (url, sock):
        outcome = subprocess.run(
            [sys.executable, "-c", RUN_WITH_FILE_LIMIT, "64",
             json.dumps({"url": url, "qps": 100, "requests": 100, "connections": 100})],
            capture_output=True, text=True, timeout=60, cwd=REPOSITORY, check=False,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                [str(REPOSITORY), *filter(None, [os.environ.get("PYTHONPATH")])])))
        assert connections_made(sock) == 0
    assert outcome.returncode == 0, outcome.stderr
    result = json.loads(outcome.stdout.splitlines()[-1])
    assert result["failed"], result
    assert "connections: expected at most" in result["msg"]
    assert "open-file limit (RLIMIT_NOFILE soft limit 64" in result["msg"]
