"""The upgrade gate's control-plane comparison against a real Prometheus: istiod series of two
revisions, labelled by `revision` as the istiod scrape job labels them, written as TSDB blocks by
`promtool tsdb create-blocks-from openmetrics`. After the upgrade the new revision pushes three
times as often per connected proxy as the old one; convergence and queue times stay the same and
memory grows by a tenth. meshtune.mesh.control_plane_compare must find exactly the push rate
beyond its limit, and playbooks/upgrade.yml must roll the canary back on that miss."""

from __future__ import annotations

import subprocess
import time

import pytest
import yaml

from ansible_collections.meshtune.mesh.plugins.modules import control_plane_compare
from tests.conftest import require_program
from tests.functional.test_upgrade_playbooks import (
    NAMESPACES,
    REVISION_ANNOTATION,
    WORKLOADS,
    Cluster,
    succeeded,
)
from tests.observability.prometheus import PrometheusServer, free_port
from tests.support.module_harness import call_module

pytestmark = [pytest.mark.integration]

OLD, NEW = "1-29-6", "1-30-3"
STEP, SAMPLES = 15, 121  # half an hour of samples
PROXIES = {OLD: 100, NEW: 20}
PUSHES_PER_PROXY = {OLD: 0.02, NEW: 0.06}  # per second: the new revision pushes three times as often
MEMORY = {OLD: 500 * 2**20, NEW: 550 * 2**20}
# Cumulative bucket counts added per sample, the same for both revisions.
BUCKETS = {"0.01": 50, "0.1": 90, "1": 100, "+Inf": 100}


def openmetrics(first: int) -> str:
    lines = []
    series = {"pilot_xds": "gauge", "pilot_xds_pushes": "gauge",
              "process_resident_memory_bytes": "gauge"}
    for name, kind in series.items():
        lines.append(f"# TYPE {name} {kind}")
        for revision in (OLD, NEW):
            labels = f'job="istiod",revision="{revision}"'
            for i in range(SAMPLES):
                value = {"pilot_xds": PROXIES[revision],
                         "pilot_xds_pushes": round(i * STEP * PUSHES_PER_PROXY[revision]
                                                   * PROXIES[revision], 6),
                         "process_resident_memory_bytes": MEMORY[revision]}[name]
                lines.append(f"{name}{{{labels}}} {value} {first + i * STEP}")
    for name in ("pilot_proxy_convergence_time", "pilot_proxy_queue_time"):
        lines.append(f"# TYPE {name} histogram")
        for revision in (OLD, NEW):
            labels = f'job="istiod",revision="{revision}"'
            for i in range(SAMPLES):
                at = first + i * STEP
                for bound, count in BUCKETS.items():
                    lines.append(f'{name}_bucket{{{labels},le="{bound}"}} {i * count} {at}')
                lines.append(f"{name}_sum{{{labels}}} {i * 10} {at}")
                lines.append(f"{name}_count{{{labels}}} {i * BUCKETS['+Inf']} {at}")
    return "\n".join([*lines, "# EOF"]) + "\n"


class Metrics:
    def __init__(self, url: str, last: int):
        self.url, self.last = url, last


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    binary, promtool = require_program("prometheus"), require_program("promtool")
    directory = tmp_path_factory.mktemp("control-plane")
    last = (int(time.time()) - 600) // STEP * STEP
    (directory / "metrics.om").write_text(openmetrics(last - (SAMPLES - 1) * STEP))
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(directory / "metrics.om"),
                    str(directory / "data")], check=True, capture_output=True, timeout=60)
    (directory / "prometheus.yml").write_text("global:\n  scrape_interval: 15s\n")
    server = PrometheusServer(binary, directory / "prometheus.yml", directory / "data").start()
    yield Metrics(server.url, last)
    server.stop()


def compare(prometheus, **options) -> dict:
    return call_module(control_plane_compare.main, {
        "url": prometheus.url, "revision": NEW, "previous_revision": OLD, "window": "10m",
        "time": str(prometheus.last), **options})


def test_the_push_rate_tripling_misses_its_limit(prometheus):
    result = compare(prometheus)
    assert result["failed"] is True
    figures = {c["figure"]: c for c in result["comparisons"]}
    expected_ratio = PUSHES_PER_PROXY[NEW] / PUSHES_PER_PROXY[OLD]
    assert figures["push_rate"]["old"] == pytest.approx(PUSHES_PER_PROXY[OLD])
    assert figures["push_rate"]["ratio"] == pytest.approx(expected_ratio)
    assert figures["memory"]["ratio"] == pytest.approx(MEMORY[NEW] / MEMORY[OLD])
    assert figures["convergence_p99"]["ratio"] == pytest.approx(1.0)
    assert figures["queue_time_p99"]["ratio"] == pytest.approx(1.0)
    assert {name: c["ok"] for name, c in figures.items()} == {
        "push_rate": False, "convergence_p99": True, "queue_time_p99": True, "memory": True}
    assert result["msg"].startswith(f"Control plane of {NEW} worse than {OLD} over the same 10m: "
                                    "push_rate beyond the limit")
    assert "MISSED" in result["table"]


def test_a_looser_limit_passes(prometheus):
    result = compare(prometheus, limits={"push_rate": PUSHES_PER_PROXY[NEW] / PUSHES_PER_PROXY[OLD] + 0.5})
    assert "failed" not in result, result.get("msg")
    assert result["compared"] is True


def test_a_window_without_data_is_reported_not_judged(prometheus):
    result = compare(prometheus, time=str(prometheus.last - 7200))
    assert "failed" not in result
    assert {c["ok"] for c in result["comparisons"]} == {None}
    assert "No data for push_rate, convergence_p99, queue_time_p99, memory" in str(result["warnings"])


def test_an_unreachable_prometheus_skips_or_fails():
    url = f"http://127.0.0.1:{free_port()}"
    skipped = call_module(control_plane_compare.main, {"url": url, "revision": NEW, "previous_revision": OLD})
    assert "failed" not in skipped and skipped["compared"] is False
    assert "Control plane not compared: Cannot reach Prometheus" in str(skipped["warnings"])
    failed = call_module(control_plane_compare.main, {"url": url, "revision": NEW, "previous_revision": OLD,
                                                      "when_unreachable": "fail"})
    assert failed["failed"] is True and failed["msg"].startswith("Cannot reach Prometheus")


def test_bad_options_fail_before_any_query():
    result = call_module(control_plane_compare.main, {
        "url": "ftp://prometheus", "revision": NEW, "previous_revision": NEW, "window": "soon",
        "limits": {"push_rate": 0, "cpu": 2}})
    assert result["failed"] is True
    for part in ("url", "previous_revision: expected a revision other than revision", "window",
                 "limits.push_rate: expected a factor above 0", "limits.cpu: expected one of push_rate"):
        assert part in result["msg"]


def test_a_control_plane_miss_rolls_the_canary_back(prometheus, kubeapi_factory, tmp_path):
    cluster = Cluster(kubeapi_factory(), tmp_path)
    succeeded(cluster.play("install.yml", {"istio_version": "1.29.6"}))
    cluster.server.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(WORKLOADS))
    result = cluster.play("upgrade.yml", {
        "istio_revision": NEW, "istio_previous_revision": OLD,
        "istio_gate_prometheus_url": prometheus.url, "istio_gate_compare_time": str(prometheus.last)})
    assert result.returncode != 0
    output = " ".join(result.stdout.split())
    assert "failed at 'Compare the new control plane with the old one over the same window'" in output
    assert f"Control plane of {NEW} worse than {OLD} over the same 10m: push_rate beyond the limit" in output
    assert f"Rolled back: shop are on {OLD} again" in output
    assert cluster.labels() == dict.fromkeys(NAMESPACES, OLD)
    assert cluster.values("istio-base")["defaultRevision"] == OLD
    assert cluster.pod_annotations()["shop/web"][REVISION_ANNOTATION] == OLD
