"""The verify role's proxy figures from a real Prometheus scraping a live exporter.

Prometheus (the Debian package's binary) scrapes tests/observability/live_mesh.py every second:
cAdvisor-style CPU and memory of istio-proxy containers, destination-reported istio_requests_total
and istiod's pilot_proxy_convergence_time, all growing at known rates. The role's own queries
(roles/verify tasks_from proxy, default verify_proxy_queries) must find exactly those rates, leave
out app containers, another workload's pods and source-reported requests, and slo_check must judge
the figures: limits above them pass, limits below them fail with the table.
"""

from __future__ import annotations

import json
import math
import time

import pytest
import yaml

from tests.conftest import require_program
from tests.observability import live_mesh
from tests.observability.prometheus import PrometheusServer
from tests.support.ansible_runner import run_playbook
from tests.support.fortio_samples import fortio_result

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WINDOW_SECONDS = 8
# Rates from 1 s scrapes of values computed at scrape time: a few milliseconds of jitter each.
TOLERANCE = 0.03
PLAYBOOK = """
- name: Proxy figures of one window, judged
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Measure the window
      ansible.builtin.include_role:
        name: meshtune.mesh.verify
        tasks_from: proxy

    - name: Judge the figures
      meshtune.mesh.slo_check:
        result: "{{ lookup('ansible.builtin.file', result_file) | from_json }}"
        proxy: "{{ verify_proxy_figures }}"
        targets: "{{ targets }}"
      register: judged
      ignore_errors: true

    - name: Keep what was measured and judged
      ansible.builtin.copy:
        content: "{{ {'figures': verify_proxy_figures, 'record': verify_proxy_record,
                      'series': verify_proxy_series, 'judged': judged} | to_json }}"
        dest: "{{ outcome_file }}"
        mode: "0644"
"""


@pytest.fixture(scope="module")
def scraped(tmp_path_factory):
    """(Prometheus URL, exporter) once Prometheus holds more than a window of samples."""
    binary = require_program("prometheus")
    root = tmp_path_factory.mktemp("proxy-cost")
    with live_mesh.LiveMeshExporter() as exporter:
        config = root / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "mesh", "honor_labels": True,
                                "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}]}]}))
        server = PrometheusServer(binary, config, root / "data").start()
        try:
            first = server.wait_for(lambda: server.query("timestamp(pilot_proxy_convergence_time_count)"),
                                    timeout=30)
            assert first, "Prometheus never scraped the exporter"
            # A full window after the first scrape, and its last scrape stored.
            settle = float(first[0]["value"][1]) + WINDOW_SECONDS + 3 - time.time()
            if settle > 0:
                time.sleep(settle)
            yield server.url, exporter
        finally:
            server.stop()


def measure(tmp_path, scraped, targets: dict, **overrides) -> dict:
    """Run the role's proxy tasks for the window ending 1.5 s ago, then slo_check on the figures."""
    url, exporter = scraped
    result_file = tmp_path / "mesh.json"
    count = int(live_mesh.RPS * WINDOW_SECONDS)
    result_file.write_text(json.dumps(fortio_result(RetCodes={"200": count}, ActualQPS=live_mesh.RPS,
                                                    RequestedQPS=f"{live_mesh.RPS:g}")))
    outcome = tmp_path / "outcome.json"
    playbook = tmp_path / "proxy.yml"
    playbook.write_text(PLAYBOOK)
    end = time.time() - 1.5
    process = run_playbook(playbook, {
        "verify_prometheus_url": url, "verify_proxy_window_end": f"{end:.3f}",
        "verify_proxy_window_seconds": WINDOW_SECONDS, "verify_proxy_namespace": live_mesh.NAMESPACE,
        "verify_proxy_workload": live_mesh.WORKLOAD, "verify_proxy_query_delay": 0,
        "result_file": str(result_file), "outcome_file": str(outcome), "targets": targets, **overrides})
    assert outcome.exists(), process.stdout[-4000:] + process.stderr[-2000:]
    data = json.loads(outcome.read_text())
    data["elapsed_at_end"] = end - exporter.started
    return data


def assert_close(measured: float, expected: float, tolerance: float = TOLERANCE) -> None:
    assert measured == pytest.approx(expected, rel=tolerance), (measured, expected)


def test_proxy_figures_match_the_exporters_known_rates(scraped, tmp_path):
    data = measure(tmp_path, scraped, {"proxy_cpu_per_1k_rps": 10})
    figures = data["figures"]
    assert set(figures) == {"cpu_per_1k_rps", "memory_mib", "memory_growth_mib_per_min",
                            "push_latency_p99_ms"}
    # 0.05 cores for 100 requests/s: app containers, the canary's proxy and the client-side
    # reports of the same requests are all left out.
    assert_close(figures["cpu_per_1k_rps"], live_mesh.EXPECTED["cpu_per_1k_rps"])
    assert_close(figures["memory_growth_mib_per_min"], live_mesh.EXPECTED["memory_growth_mib_per_min"])
    assert_close(figures["push_latency_p99_ms"], live_mesh.EXPECTED["push_latency_p99_ms"], 0.001)
    # The peak is the last sample in the window: at most one scrape (0.05 MiB) before its end.
    peak = live_mesh.expected_memory_mib(data["elapsed_at_end"])
    assert peak - 0.1 <= figures["memory_mib"] <= peak + 0.01, (figures["memory_mib"], peak)
    record = data["record"]
    assert record["namespace"] == live_mesh.NAMESPACE and record["workload"] == live_mesh.WORKLOAD
    assert record["window_seconds"] == WINDOW_SECONDS
    assert all("istio-proxy" in query or "pilot_" in query for query in record["queries"].values())
    assert data["judged"]["failed"] is False


def test_figures_are_judged_against_proxy_targets(scraped, tmp_path):
    expected = live_mesh.EXPECTED
    generous = {"proxy_cpu_per_1k_rps": expected["cpu_per_1k_rps"] * 1.2, "proxy_memory_mib": 200,
                "proxy_memory_growth_mib_per_min": expected["memory_growth_mib_per_min"] * 1.2,
                "push_latency_p99_ms": expected["push_latency_p99_ms"] * 1.1}
    passed = measure(tmp_path, scraped, generous)["judged"]
    assert passed["failed"] is False, passed
    assert [check["ok"] for check in passed["checks"]] == [True] * 4

    strict = {**generous, "proxy_cpu_per_1k_rps": expected["cpu_per_1k_rps"] * 0.8,
              "proxy_memory_growth_mib_per_min": 0.5}
    missed = measure(tmp_path, scraped, strict)["judged"]
    assert missed["failed"] is True
    outcome = {check["target"]: check["ok"] for check in missed["checks"]}
    assert outcome == {"proxy_cpu_per_1k_rps": False, "proxy_memory_mib": True,
                       "proxy_memory_growth_mib_per_min": False, "push_latency_p99_ms": True}
    assert "proxy_cpu_per_1k_rps" in missed["msg"] and "proxy_memory_growth_mib_per_min" in missed["msg"]


def test_a_workload_without_data_gives_nan_and_misses_its_target(scraped, tmp_path):
    data = measure(tmp_path, scraped, {"proxy_memory_mib": 1000}, verify_proxy_workload="nonexistent")
    figures = data["figures"]
    workload_figures = ("cpu_per_1k_rps", "memory_mib", "memory_growth_mib_per_min")
    assert all(math.isnan(figures[key]) for key in workload_figures)
    assert data["judged"]["failed"] is True
    assert data["judged"]["checks"][0]["ok"] is False
