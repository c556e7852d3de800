"""meshtune_monitoring: external. The prometheus and grafana roles install and write nothing, and
the verify role's proxy figures come from meshtune_prometheus_url: a real Prometheus on 127.0.0.1
scraping tests/observability/live_mesh.py, whose known rates the figures must match."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from tests.conftest import require_program
from tests.observability import live_mesh
from tests.observability.prometheus import PrometheusServer
from tests.support.ansible_runner import run_playbook

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WINDOW_SECONDS = 6
WRITE_VERBS = ("create", "update", "patch", "delete")
INSTALL = """
- name: The install roles in external mode
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/meshtune.mesh.meshtune:
      kubeconfig: "{{ meshtune_kubeconfig }}"
  roles:
    - role: meshtune.mesh.prometheus
    - role: meshtune.mesh.grafana
"""
PROXY = """
- name: Proxy figures from the external Prometheus
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Measure the window
      ansible.builtin.include_role:
        name: meshtune.mesh.verify
        tasks_from: proxy

    - name: Keep the figures
      ansible.builtin.copy:
        content: "{{ verify_proxy_figures | to_json }}"
        dest: "{{ outcome_file }}"
        mode: "0644"
"""


def test_external_mode_installs_nothing_and_writes_only_the_dashboards(kubeapi, tmp_path):
    playbook = tmp_path / "install.yml"
    playbook.write_text(INSTALL)
    kubeapi.kubectl("create", "namespace", "monitoring")
    kubeapi.reset_stats()
    result = run_playbook(playbook, {"meshtune_kubeconfig": str(kubeapi.kubeconfig),
                                     "meshtune_monitoring": "external",
                                     "meshtune_prometheus_url": "https://prometheus.example.internal"})
    assert result.returncode == 0, result.stdout[-4000:]
    writes = {resource: verbs for resource, verbs in kubeapi.stats()["requests"]["by_resource"].items()
              if any(verb in WRITE_VERBS for verb in verbs)}
    assert list(writes) == ["configmaps"] and writes["configmaps"].get("create") == 1, writes
    names = kubeapi.kubectl("get", "configmaps", "-n", "monitoring", "-o", "name").stdout.split()
    assert "configmap/meshtune-dashboards" in names


def test_external_mode_needs_the_prometheus_url(kubeapi, tmp_path):
    playbook = tmp_path / "install.yml"
    playbook.write_text(INSTALL)
    result = run_playbook(playbook, {"meshtune_kubeconfig": str(kubeapi.kubeconfig),
                                     "meshtune_monitoring": "external"})
    assert result.returncode != 0
    assert "meshtune_monitoring is external: set meshtune_prometheus_url" in " ".join(result.stdout.split())


def test_verify_reads_the_external_prometheus(tmp_path):
    binary = require_program("prometheus")
    with live_mesh.LiveMeshExporter() as exporter:
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "mesh", "honor_labels": True,
                                "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}]}]}))
        server = PrometheusServer(binary, config, tmp_path / "data").start()
        try:
            first = server.wait_for(lambda: server.query("timestamp(pilot_proxy_convergence_time_count)"),
                                    timeout=30)
            assert first, "Prometheus never scraped the exporter"
            settle = float(first[0]["value"][1]) + WINDOW_SECONDS + 3 - time.time()
            if settle > 0:
                time.sleep(settle)
            playbook, outcome = tmp_path / "proxy.yml", tmp_path / "figures.json"
            playbook.write_text(PROXY)
            result = run_playbook(playbook, {
                "meshtune_monitoring": "external", "meshtune_prometheus_url": server.url,
                "verify_proxy_window_end": f"{time.time() - 1.5:.3f}",
                "verify_proxy_window_seconds": WINDOW_SECONDS, "verify_proxy_query_delay": 0,
                "verify_proxy_namespace": live_mesh.NAMESPACE, "verify_proxy_workload": live_mesh.WORKLOAD,
                "outcome_file": str(outcome)})
        finally:
            server.stop()
    assert outcome.exists(), result.stdout[-4000:]
    figures = json.loads(outcome.read_text())
    assert figures["cpu_per_1k_rps"] == pytest.approx(live_mesh.EXPECTED["cpu_per_1k_rps"], rel=0.03)
    expected = live_mesh.EXPECTED["push_latency_p99_ms"]
    assert figures["push_latency_p99_ms"] == pytest.approx(expected, rel=0.001)
