"""load_test's capacity search with the fortio engine, against the test API server.

A stand-in for the Job controller and the kubelet plays each step's Job in turn: its pods answer
within 1-4 ms up to KNEE requests/s and ever slower beyond, so the search's outcome is known.
"""

from __future__ import annotations

import random
import time

import pytest
from kubernetes.client.rest import ApiException

from ansible_collections.meshtune.mesh.plugins.module_utils import run_result
from ansible_collections.meshtune.mesh.plugins.module_utils.histogram import DEFAULT_PERCENTILES
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen import fortio_run
from ansible_collections.meshtune.mesh.plugins.modules.load_test import main
from tests.support.fortio_cluster import (
    FORTIO_LOG_END,
    FORTIO_LOG_START,
    NAMESPACE,
    Cluster,
    histogram_of,
    kube_apis,
)
from tests.support.fortio_samples import fortio_result
from tests.support.module_harness import call_module

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

KNEE = 300.0
P99_MS = 20.0


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch):
    monkeypatch.setattr(fortio_run, "POLL_INTERVAL", 0.05)


@pytest.fixture(scope="module")
def apis(kubeapi):
    apis = kube_apis(kubeapi.kubeconfig)
    apis["core"].create_namespace({"metadata": {"name": NAMESPACE}})
    return apis


class SearchCluster(Cluster):
    """Plays every Job named <name>-client, one after another, until none comes for `idle` s."""

    def __init__(self, *args, idle=5.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.idle = idle
        self.jobs = []

    def _play(self):
        batch = self.apis["batch"]
        last = time.monotonic()
        while time.monotonic() - last < self.idle:
            try:
                job = self.apis["raw"].sanitize_for_serialization(
                    batch.read_namespaced_job(f"{self.name}-client", self.namespace))
            except ApiException as error:
                if error.status != 404:
                    raise
                job = None
            if job is None or job["metadata"]["uid"] in {seen["metadata"]["uid"] for seen in self.jobs}:
                time.sleep(0.02)
                continue
            if not self.jobs:
                self.seen["Job"] = job
                self._read_objects()
            self.jobs.append(job)
            self.play_job(job, pod_suffix=f"-s{len(self.jobs)}")
            last = time.monotonic()

    def pod_log_text(self, index, url, job):
        args = job["spec"]["template"]["spec"]["containers"][0]["args"]
        qps = float(args[args.index("-qps") + 1]) * job["spec"]["completions"]
        slower = 1.0 if qps <= KNEE else 1.0 + 40 * (qps - KNEE) / KNEE
        generator = random.Random(f"{qps}-{index}")
        samples = [slower * generator.uniform(0.001, 0.004) for _sample in range(200)]
        result = fortio_result(Labels="search", Version="1.77.0", RequestedQPS=f"{qps:g}",
                               DurationHistogram=histogram_of(samples).export(DEFAULT_PERCENTILES),
                               ErrorsDurationHistogram=histogram_of([]).export(DEFAULT_PERCENTILES),
                               RetCodes={"200": len(samples)}, URL=url)
        return FORTIO_LOG_START.replace("{url}", url) + run_result.dumps(result) + FORTIO_LOG_END


def test_each_step_is_a_job_on_one_server_and_the_knee_is_found(kubeapi, apis):
    cluster = SearchCluster(kubeapi, apis, name="search", namespace=NAMESPACE, job_timeout=60)
    cluster.start()
    outcome = call_module(main, {
        "engine": "fortio", "namespace": NAMESPACE, "name": "search", "client_pods": 2,
        "connections": 4, "warmup": "0s", "timeout": "1s", "start_timeout": "5s",
        "kubeconfig": str(kubeapi.kubeconfig), "sidecar": "server",
        "search": {"targets": {"p99_ms": P99_MS}, "start_qps": 50, "max_qps": 2000,
                   "resolution": 0.05, "step_duration": "1s", "confirm": 2}})
    cluster.join(timeout=15)
    assert cluster.error is None, cluster.error
    assert outcome.get("failed") is not True, outcome
    capacity = outcome["capacity"]
    # p99 is just under 4 ms times the slowdown: it passes P99_MS between these two rates.
    lowest_miss = KNEE * (1 + (P99_MS / 4.0 - 1) / 40)
    highest_hold = KNEE * (1 + (P99_MS / 3.9 - 1) / 40)
    assert capacity["capacity_qps"] <= highest_hold and capacity["missed_qps"] >= lowest_miss
    assert capacity["capacity_qps"] >= lowest_miss / 1.05
    assert capacity["missed_qps"] / capacity["capacity_qps"] - 1 <= 0.05
    assert capacity["broken"]["target"] == "p99_ms"
    # One Job per step, each with the step's rate split over the pods, all on one server.
    steps = outcome["steps"]
    assert len(cluster.jobs) == len(steps)
    for job, step in zip(cluster.jobs, steps, strict=True):
        args = job["spec"]["template"]["spec"]["containers"][0]["args"]
        assert float(args[args.index("-qps") + 1]) * 2 == pytest.approx(step["qps"])
        assert args[args.index("-t") + 1] == "1s"
        assert job["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    assert cluster.seen["Deployment"]["spec"]["template"]["metadata"]["labels"][
        "sidecar.istio.io/inject"] == "true"
    assert [entry["state"] for entry in outcome["objects"]] == ["deleted"] * len(outcome["objects"])
    selector = "meshtune.io/load-test=search"
    assert apis["apps"].list_namespaced_deployment(NAMESPACE, label_selector=selector).items == []


def test_check_mode_checks_the_cluster_and_creates_nothing(kubeapi, apis):
    outcome = call_module(main, {
        "engine": "fortio", "namespace": NAMESPACE, "name": "search-check",
        "kubeconfig": str(kubeapi.kubeconfig),
        "search": {"targets": {"p99_ms": P99_MS}, "max_qps": 400}}, check_mode=True)
    assert outcome.get("failed") is not True, outcome
    assert [entry["state"] for entry in outcome["objects"]] == ["would create"] * 4
    assert "capacity" not in outcome
    selector = "meshtune.io/load-test=search-check"
    assert apis["batch"].list_namespaced_job(NAMESPACE, label_selector=selector).items == []
