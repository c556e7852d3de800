"""The local load engine split over worker processes: one schedule, exact merges, clear failures.

Rates stay where a two-core machine holds them beside the server; nothing here asserts speed.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen import engine
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen import workers as worker_processes
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.engine import (
    LoadError,
    LoadSpec,
    resolve_workers,
    run_load,
)
from ansible_collections.meshtune.mesh.plugins.modules.load_test import main
from tests.conftest import require_program
from tests.support.load_targets import running as load_target
from tests.support.local_nginx import run_nginx
from tests.support.module_harness import call_module

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def relative(value: float, reference: float) -> float:
    return abs(value - reference) / reference


def test_two_workers_send_one_constant_rate_schedule(tmp_path):
    """Worker k of 2 takes requests k, k+2, ...: the server sees one request every 1/qps, not
    pairs of requests every 2/qps (or twice the requests), and the figures merge exactly."""
    qps = 400.0
    record = tmp_path / "arrivals.json"
    with load_target("delay", record=record) as url:
        result = run_load(LoadSpec(url, qps=qps, connections=8, duration=3.0, workers=2))
    arrivals = sorted(json.loads(record.read_text())["arrivals"])

    assert result.workers == 2
    assert result.codes == {200: 1200}
    assert result.sent == result.histogram.count == result.service_histogram.count == 1200
    assert result.sockets == 8
    assert len(arrivals) == 1200
    assert relative(result.achieved_qps, qps) <= 0.01
    assert relative((len(arrivals) - 1) / (arrivals[-1] - arrivals[0]), qps) <= 0.01
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert relative(statistics.median(gaps), 1 / qps) <= 0.2, statistics.median(gaps)
    # Every arrival near its place in the one schedule: start + i / qps.
    offsets = [arrival - index / qps for index, arrival in enumerate(arrivals)]
    assert max(offsets) - min(offsets) < 0.05, (min(offsets), max(offsets))


def test_counts_merge_exactly_in_a_closed_loop(tmp_path):
    nginx = require_program("nginx")
    with run_nginx(tmp_path / "nginx", nginx, log_requests=True) as server:
        result = run_load(LoadSpec(server.url, qps=0, connections=6, requests=3001, workers=3))
        arrivals = server.logged_arrivals(3001)
    assert result.workers == 3
    assert result.codes == {200: 3001}
    assert result.sent == result.histogram.count == result.service_histogram.count == 3001
    assert result.errors_histogram.count == 0
    assert result.sockets == 6
    assert len(arrivals) == 3001
    assert result.window > 0 and result.achieved_qps == pytest.approx(3001 / result.window)


def test_rate_holds_with_two_workers_and_progress_merges(tmp_path):
    nginx = require_program("nginx")
    qps = 2000.0
    reports = []
    with run_nginx(tmp_path / "nginx", nginx, log_requests=True) as server:
        result = run_load(LoadSpec(server.url, qps=qps, connections=16, duration=3.0, warmup=0.5,
                                   workers=2, progress_interval=1.0, progress=reports.append))
        arrivals = server.logged_arrivals(7000)
    assert result.workers == 2
    assert result.codes == {200: 6000}
    assert result.sent == 6000 and result.warmup_sent == 1000
    assert len(arrivals) == 7000
    measured = arrivals[1000:]
    nginx_rate = (len(measured) - 1) / (measured[-1] - measured[0])
    assert relative(result.achieved_qps, qps) <= 0.01
    assert relative(nginx_rate, qps) <= 0.01, nginx_rate
    # One line per second over both workers: their sent counts, rates and errors add up.
    assert 2 <= len(reports) <= 4, reports
    assert [report["phase"] for report in reports][:1] == ["measure"]
    assert [round(report["elapsed"]) for report in reports] == list(range(1, len(reports) + 1))
    assert reports[0]["sent"] == pytest.approx(qps * 0.5, abs=40)
    assert all(relative(report["rate"], qps) <= 0.05 for report in reports), reports
    assert all(report["errors"] == 0 and report["p99_ms"] > 0 for report in reports)
    assert [report["sent"] for report in reports] == sorted(report["sent"] for report in reports)


def assert_stopped_early(record, expected_if_waited: int) -> None:
    """The surviving worker was stopped at the failure, not left to send its share to the end,
    and no worker process is left behind."""
    arrivals = json.loads(record.read_text())["arrivals"]
    assert len(arrivals) < expected_if_waited / 5, len(arrivals)
    children = [entry for entry in os.listdir("/proc") if entry.isdigit()
                and _parent_of(entry) == os.getpid()]
    assert children == [], children


def _parent_of(pid: str):
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_a_worker_that_fails_fails_the_run_with_its_error(monkeypatch, tmp_path):
    original = engine._Run.run

    async def failing_run(self, *args, **kwargs):
        if self.worker == 1:
            raise RuntimeError("worker fault for the test")
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(engine._Run, "run", failing_run)
    record = tmp_path / "arrivals.json"
    with load_target("delay", record=record) as url, \
            pytest.raises(LoadError, match="load worker 2 of 2 failed") as raised:
        run_load(LoadSpec(url, qps=100, connections=2, duration=30.0, workers=2))
    assert "worker fault for the test" in str(raised.value)
    assert_stopped_early(record, expected_if_waited=1500)


def test_a_worker_that_dies_fails_the_run(monkeypatch, tmp_path):
    original = worker_processes._worker_main

    def dying(work, share, sock, with_progress):
        if share.index == 0:
            os._exit(3)
        original(work, share, sock, with_progress)

    monkeypatch.setattr(worker_processes, "_worker_main", dying)
    record = tmp_path / "arrivals.json"
    with load_target("delay", record=record) as url, \
            pytest.raises(LoadError, match="load worker 1 of 2 exited with status 3 without a result"):
        run_load(LoadSpec(url, qps=100, connections=2, duration=30.0, workers=2))
    assert_stopped_early(record, expected_if_waited=1500)


@pytest.mark.parametrize(("options", "workers"), [
    ({"qps": 100, "connections": 8}, 1),
    ({"qps": 2000, "connections": 8}, 1),
    ({"qps": 2001, "connections": 8}, 2),
    ({"qps": 9000, "connections": 8}, 5),
    ({"qps": 100000, "connections": 8}, 6),
    ({"qps": 100000, "connections": 3}, 3),
    ({"qps": 0, "connections": 50}, 6),
    ({"qps": 0, "connections": 1}, 1),
    ({"qps": 0, "connections": 50, "workers": 2}, 2),
    ({"qps": 0, "connections": 2, "workers": 4}, 2),
])
def test_workers_0_picks_by_rate_cpus_and_connections(monkeypatch, options, workers):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(6)), raising=False)
    assert resolve_workers(LoadSpec("http://127.0.0.1:1/", requests=1, **options)) == workers


def test_module_option_workers(tmp_path):
    with load_target("delay") as url:
        result = call_module(main, {"url": url, "qps": 200, "connections": 4, "workers": 2,
                                    "duration": "1s"})
        bad = call_module(main, {"url": url, "connections": 2, "workers": 3, "duration": "1s"})
    assert not result.get("failed"), result
    assert result["result"]["RetCodes"] == {"200": 200}
    assert result["summary"]["requests"] == 200
    assert bad["failed"] and "workers:" in bad["msg"]
