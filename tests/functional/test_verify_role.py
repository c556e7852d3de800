"""playbooks/verify.yml (roles/verify) with the local engine against local HTTP servers.

Two `tests.support.load_targets` servers stand in for the service reached through the mesh (2 ms per
answer) and without it (1 ms): a run with reachable targets passes and writes the report; a run
with a target set unreachably low fails with slo_check's table and still writes the report; bad
inputs fail before the first request (the servers record every arrival); and the proxy figures
come from a stand-in Prometheus that answers known values and records the queries it was sent.
Every load is 3 s at 50 requests/s.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from tests.support.ansible_runner import REPO_ROOT, run_playbook
from tests.support.http_stub import QuietHandler, StubServer, serving
from tests.support.load_targets import running

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLAYBOOK = REPO_ROOT / "playbooks" / "verify.yml"
HOST = "cluster-a"
REACHABLE = {"p50_ms": 250, "p99_ms": 500, "success_rate": 0.99, "min_qps_ratio": 0.8,
             "added_p50_ms": 250}
REPORT_FILES = ("report.json", "report.md", "report.html", "latency-percentiles.png",
                "mesh.json", "baseline.json", "mesh.progress", "baseline.progress")


@pytest.fixture(scope="module")
def servers():
    """(mesh URL, baseline URL): the same answer, 2 ms and 1 ms after each request."""
    with running("delay", "--base", "0.002") as mesh, running("delay", "--base", "0.001") as baseline:
        yield mesh, baseline


def play(tmp_path: Path, host_vars: dict):
    """Run playbooks/verify.yml for one inventory host; reports go under tmp_path/reports."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {HOST: {
        "ansible_connection": "local", "meshtune_report_dir": str(tmp_path / "reports"),
        "verify_engine": "local", "verify_qps": 50, "verify_connections": 4,
        "verify_duration": "3s", "verify_warmup": "0s", **host_vars}}}}))
    return run_playbook(PLAYBOOK, inventory=str(inventory))


def latest_report(tmp_path: Path) -> Path:
    return (tmp_path / "reports" / HOST / "latest").resolve()


def test_reachable_targets_pass_and_write_the_report(servers, tmp_path):
    mesh, baseline = servers
    result = play(tmp_path, {"verify_url": mesh, "verify_baseline_url": baseline,
                             "meshtune_verify_targets": REACHABLE})
    assert result.returncode == 0, result.stdout[-4000:]
    report_dir = latest_report(tmp_path)
    assert report_dir.parent == tmp_path / "reports" / HOST
    assert report_dir.name.endswith("Z"), report_dir  # <UTC start time>, one directory per run
    for name in REPORT_FILES:
        assert (report_dir / name).is_file(), name
    report = json.loads((report_dir / "report.json").read_text())
    assert report["checks_passed"] is True
    assert [check["target"] for check in report["checks"]] == [
        "p50_ms", "p99_ms", "success_rate", "min_qps_ratio", "added_p50_ms"]
    assert report["runs"][0]["requests"] == 150 and report["baseline"]["requests"] == 150
    assert "passed: every target met" in result.stdout
    assert f"report: {tmp_path / 'reports' / HOST}" in result.stdout


def test_unreachable_target_fails_with_the_table_and_keeps_the_report(servers, tmp_path):
    mesh, baseline = servers
    result = play(tmp_path, {"verify_url": mesh, "verify_baseline_url": baseline,
                             "meshtune_verify_targets": {**REACHABLE, "p50_ms": 0.0001}})
    assert result.returncode != 0, result.stdout[-4000:]
    failure = result.stdout.split("Fail the play on a missed target")[-1]
    assert "1 of 5 targets missed: p50_ms" in failure
    assert "target " in failure and "| margin" in failure and "MISSED" in failure
    report_dir = latest_report(tmp_path)
    assert f"Report: {report_dir}/report.html" in failure
    report = json.loads((report_dir / "report.json").read_text())
    assert report["checks_passed"] is False
    missed = [check["target"] for check in report["checks"] if not check["ok"]]
    assert missed == ["p50_ms"]
    assert (report_dir / "report.html").is_file()


@pytest.mark.parametrize(("host_vars", "expected"), [
    pytest.param({"meshtune_verify_targets": {"p95_ms": 10}},
                 "meshtune_verify_targets) names p95_ms, which is not a target", id="unknown-target"),
    pytest.param({"meshtune_verify_targets": {"p99_ms": "fast"}},
                 "p99_ms must be numbers of at least 0", id="limit-not-a-number"),
    pytest.param({"verify_url": ""}, "verify_url: the local engine needs the URL", id="no-url"),
    pytest.param({"verify_baseline_url": ""}, "verify_baseline_url: the local engine needs",
                 id="no-baseline-url"),
    pytest.param({"verify_baseline": False, "meshtune_verify_targets": {"added_p99_ms": 5}},
                 "verify_baseline is false, but the targets added_p99_ms", id="added-without-baseline"),
    pytest.param({"meshtune_verify_targets": {"proxy_memory_mib": 100}},
                 "verify_prometheus_url is empty, but the targets proxy_memory_mib",
                 id="proxy-without-prometheus"),
    pytest.param({"verify_prometheus_url": "http://127.0.0.1:9"},
                 "verify_proxy_namespace and verify_proxy_workload", id="prometheus-without-workload"),
    pytest.param({"verify_duration": "3 seconds"}, "verify_duration: a duration", id="bad-duration"),
    pytest.param({"verify_engine": "wrk"}, "verify_engine must be one of: fortio, local", id="bad-engine"),
    pytest.param({"verify_load_options": {"url": "http://elsewhere/"}},
                 "verify_load_options: url cannot be set there", id="per-run-option"),
    pytest.param({"verify_headers": {"Bad Header": "x"}},
                 "The baseline load's options are not valid", id="header-rejected-by-load-test"),
])
def test_bad_inputs_fail_before_any_load(host_vars, expected, tmp_path):
    records = tmp_path / "mesh-record.json", tmp_path / "baseline-record.json"
    with running("delay", record=records[0]) as mesh, running("delay", record=records[1]) as baseline:
        result = play(tmp_path, {"verify_url": mesh, "verify_baseline_url": baseline,
                                 "meshtune_verify_targets": {"p99_ms": 500}, **host_vars})
    assert result.returncode != 0, result.stdout[-3000:]
    output = " ".join((result.stdout + result.stderr).split())
    assert expected in output, result.stdout[-3000:]
    for record in records:
        assert json.loads(record.read_text())["arrivals"] == []
    assert not (tmp_path / "reports").exists()


class FakePrometheus(QuietHandler):
    """Answers instant queries by what they measure and range queries with two points; records
    every request's form fields in the server's `requests` list."""

    figures: ClassVar[dict[str, float]] = {
        "container_cpu_usage_seconds_total": 0.25, "max_over_time": 42.5, "deriv": 0.0}

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        self.server.requests.append({"path": self.path, **form})
        query = form.get("query", "")
        if self.path.endswith("/query_range"):
            start = float(form["start"])
            data = {"resultType": "matrix", "result": [
                {"metric": {"pod": "web-5d8c7b9f4-abcde"}, "values": [[start, "1"], [start + 1, "2"]]}]}
        else:
            value = next((v for key, v in self.figures.items() if key in query), None)
            at = float(form["time"])
            data = {"resultType": "vector",
                    "result": [] if value is None else [{"metric": {}, "value": [at, str(value)]}]}
        self.reply(200, "application/json", json.dumps({"status": "success", "data": data}).encode())


def fake_prometheus():
    server = StubServer(FakePrometheus)
    server.requests = []
    return serving(server)


def test_proxy_figures_come_from_prometheus_over_the_mesh_window(servers, tmp_path):
    mesh, baseline = servers
    targets = {**REACHABLE, "proxy_cpu_per_1k_rps": 0.5, "proxy_memory_mib": 64,
               "proxy_memory_growth_mib_per_min": 1}
    with fake_prometheus() as prometheus:
        result = play(tmp_path, {
            "verify_url": mesh, "verify_baseline_url": baseline, "meshtune_verify_targets": targets,
            "verify_prometheus_url": f"http://127.0.0.1:{prometheus.server_port}",
            "verify_proxy_namespace": "shop", "verify_proxy_workload": "web",
            "verify_proxy_query_delay": 0})
    assert result.returncode == 0, result.stdout[-4000:]
    report_dir = latest_report(tmp_path)
    mesh_run = json.loads((report_dir / "mesh.json").read_text())
    window = math.ceil(mesh_run["ActualDuration"] / 1e9)

    instant = [request for request in prometheus.requests if request["path"].endswith("/query")]
    assert len(instant) == 4
    for request in instant:
        assert f"[{window}s]" in request["query"], request["query"]
    workload_queries = [request["query"] for request in instant if "istio-proxy" in request["query"]]
    assert len(workload_queries) == 3
    for query in workload_queries:
        assert 'namespace="shop"' in query and 'pod=~"web-([a-z0-9]+-)?[a-z0-9]+"' in query, query
    assert any('destination_workload="web"' in query for query in workload_queries)

    proxy = json.loads((report_dir / "proxy.json").read_text())
    assert proxy["figures"] == {"cpu_per_1k_rps": 0.25, "memory_mib": 42.5,
                                "memory_growth_mib_per_min": 0.0, "push_latency_p99_ms": None}
    assert proxy["window_seconds"] == pytest.approx(mesh_run["ActualDuration"] / 1e9)
    assert float(instant[0]["time"]) == pytest.approx(proxy["window_end"], abs=0.01)
    ranged = [request for request in prometheus.requests if request["path"].endswith("/query_range")]
    assert len(ranged) == 2
    span = float(ranged[0]["end"]) - float(ranged[0]["start"])
    assert span == pytest.approx(proxy["window_seconds"], abs=0.01)

    report = json.loads((report_dir / "report.json").read_text())
    measured = {check["target"]: check["measured"] for check in report["checks"]}
    assert measured["proxy_cpu_per_1k_rps"] == 0.25
    assert measured["proxy_memory_mib"] == 42.5
    assert measured["proxy_memory_growth_mib_per_min"] == 0.0
    assert report["checks_passed"] is True
    assert len(report["series"]) == 2
    assert "No data for push_latency_p99_ms in shop/web" in " ".join(result.stdout.split())


def test_fortio_engine_runs_checked_baseline_then_mesh_in_the_cluster(kubeapi, tmp_path):
    """The fortio engine against the test API server, which runs no pods: the namespace is
    created, both runs' options pass load_test's check mode against the cluster, and the baseline
    run creates its own objects (<name>-baseline-*) and fails waiting for its client pods."""
    result = play(tmp_path, {
        "verify_engine": "fortio", "meshtune_kubeconfig": str(kubeapi.kubeconfig),
        "verify_revision": "canary", "verify_load_options": {"start_timeout": "1s"},
        "meshtune_verify_targets": {"p99_ms": 50, "added_p99_ms": 5}})
    assert result.returncode != 0, result.stdout[-4000:]
    mesh_check = result.stdout.split("check mode for run mesh")[1].split("TASK")[0]
    assert "ok: [cluster-a -> localhost]" in mesh_check
    failed = result.stdout.split("Send the load of run baseline")[-1]
    assert "meshtune-verify-baseline-client" in failed, failed[:3000]
    assert "Send the load of run mesh" not in result.stdout.split("Run the loads, baseline first")[1]
    assert kubeapi.kubectl("get", "namespace", "meshtune-load", "-o", "name").stdout.strip()
