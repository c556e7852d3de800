"""playbooks/rightsize.yml: report only by default; with rightsize_apply the values are written,
then the verify role (local engine against a local server) gates them, and a miss puts the old
values back. Prometheus and the cluster hold the same generated mesh as test_sidecar_recommend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.functional.test_sidecar_recommend import (
    CPU,
    NAMESPACES,
    WINDOW_HOURS,
    WORKLOADS,
    load,
    series,
    template_annotations,
)
from tests.observability.tsdb import serve_series
from tests.support.ansible_runner import REPO_ROOT, run_playbook
from tests.support.load_targets import running

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLAYBOOK = REPO_ROOT / "playbooks" / "rightsize.yml"
HOST = "cluster-a"
REACHABLE = {"p50_ms": 250, "success_rate": 0.99}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    with serve_series(series(), tmp_path_factory.mktemp("rightsize-playbook")) as server:
        yield server


@pytest.fixture(scope="module")
def target():
    with running("delay", "--base", "0.002") as url:
        yield url


@pytest.fixture
def cluster(kubeapi_factory):
    server = kubeapi_factory()
    load(server)
    return server


def play(tmp_path: Path, server, prometheus, **host_vars):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {HOST: {
        "ansible_connection": "local", "meshtune_kubeconfig": str(server.kubeconfig),
        "meshtune_report_dir": str(tmp_path / "reports"),
        "rightsize_prometheus_url": prometheus.url, "rightsize_namespaces": NAMESPACES,
        "rightsize_options": {"window": f"{WINDOW_HOURS}h", "max_step_down": 1},
        "verify_engine": "local", "verify_baseline": False, "verify_qps": 50,
        "verify_connections": 4, "verify_duration": "2s", "verify_warmup": "0s", **host_vars}}}}))
    return run_playbook(PLAYBOOK, inventory=str(inventory))


def writes(server):
    verbs = server.stats()["requests"]["by_verb"]
    return sum(verbs.get(v, 0) for v in ("create", "update", "patch", "delete"))


def report_dir(tmp_path):
    (directory,) = (tmp_path / "reports" / HOST).glob("rightsize-*")
    return directory


def annotated(server):
    return {w.name: template_annotations(server, w.kind, w.namespace, w.name)
            for w in WORKLOADS if not w.expect_skip}


def test_reports_only_by_default(tmp_path, cluster, prometheus):
    cluster.reset_stats()
    result = play(tmp_path, cluster, prometheus)
    assert result.returncode == 0, result.stdout[-4000:]
    assert writes(cluster) == 0
    directory = report_dir(tmp_path)
    for name in ("rightsize.md", "rightsize.html", "rightsize.json"):
        assert (directory / name).is_file(), name
    data = json.loads((directory / "rightsize.json").read_text())
    assert data["totals"]["resized"] > 0
    assert "report: " in result.stdout and "requested CPU" in result.stdout


def test_apply_passes_the_gate_and_keeps_the_values(tmp_path, cluster, prometheus, target):
    result = play(tmp_path, cluster, prometheus, rightsize_apply=True, verify_url=target,
                  meshtune_verify_targets=REACHABLE)
    assert result.returncode == 0, result.stdout[-4000:]
    data = json.loads((report_dir(tmp_path) / "rightsize.json").read_text())
    for entry in data["recommendations"]:
        if entry["action"] == "resize":
            assert template_annotations(cluster, entry["kind"], entry["namespace"], entry["name"])[CPU] == \
                entry["recommended"]["cpu_request"]
    assert "passed: every target met" in result.stdout


def test_a_missed_gate_puts_the_old_values_back(tmp_path, cluster, prometheus, target):
    before = annotated(cluster)
    result = play(tmp_path, cluster, prometheus, rightsize_apply=True, verify_url=target,
                  meshtune_verify_targets={**REACHABLE, "p50_ms": 0.0001})
    assert result.returncode != 0, result.stdout[-4000:]
    assert "old values of" in result.stdout and "were put back" in result.stdout
    assert annotated(cluster) == before
