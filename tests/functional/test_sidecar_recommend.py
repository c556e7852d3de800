"""meshtune.mesh.sidecar_recommend: a real Prometheus over TSDB blocks of generated cAdvisor and
kube-state-metrics series, and the test API server holding the workloads, ReplicaSets and pods.

Every expected value is computed here from the samples the test generated: the per-minute CPU
rates between the counter's samples, their percentile (linear interpolation, as Prometheus's
quantile_over_time), and the largest working set.
"""

from __future__ import annotations

import itertools
import json
import math
import socket
import time
from dataclasses import dataclass, field

import pytest
import yaml

from ansible_collections.meshtune.mesh.plugins.modules import sidecar_recommend
from tests.observability.tsdb import Series, aligned_times, counter, serve_series
from tests.support.module_harness import call_module

pytestmark = pytest.mark.integration

MIB = 1048576
STEP = 60.0
WINDOW_HOURS = 48
CPU = "sidecar.istio.io/proxyCPU"
CPU_LIMIT = "sidecar.istio.io/proxyCPULimit"
MEMORY = "sidecar.istio.io/proxyMemory"
MEMORY_LIMIT = "sidecar.istio.io/proxyMemoryLimit"
PROXY_CONFIG = "proxy.istio.io/config"
# The cluster's injector defaults (not Istio's chart defaults, to prove they are read).
DEFAULTS = {"cpu_request": "150m", "cpu_limit": "1500m", "memory_request": "192Mi",
            "memory_limit": "768Mi", "concurrency": 2}
NAMESPACES = ["shop", "pay"]
# A recording rule's per-pod CPU rate, as max by (namespace, pod) (rate(...[5m])) records it.
RECORDED = "meshtune:istio_proxy_cpu_usage:rate5m"
END = math.floor((time.time() - 120) / STEP) * STEP
TIMES = aligned_times(WINDOW_HOURS * 3600, STEP, END)


@dataclass
class Pod:
    """One pod's sidecar: CPU rate (cores) and working set (bytes) per sample index."""

    name: str
    cpu: list[float]
    memory: list[float]
    start: int = 0              # first sample index
    stop: int = len(TIMES)      # one past the last
    owner: tuple[str, str] | None = None     # live pod's controller (kind, name)
    ksm: tuple[str, str] | None = None       # kube_pod_owner (owner_kind, owner_name)


@dataclass
class Workload:
    kind: str
    namespace: str
    name: str
    pods: list[Pod]
    annotations: dict = field(default_factory=dict)
    replicasets: list[str] = field(default_factory=list)   # kept generations (Deployments)
    expect_skip: str | None = None
    leak: bool = False

    @property
    def key(self):
        return (self.kind, self.namespace, self.name)


def flat(value):
    return [value] * len(TIMES)


def levels(*parts):
    """Piecewise-constant values: (share of the samples, value) ..."""
    values = []
    for share, value in parts:
        values += [value] * round(share * len(TIMES))
    return (values + [parts[-1][1]] * len(TIMES))[:len(TIMES)]


def wave(base_mib, amplitude_mib=1.5):
    return [(base_mib + amplitude_mib * math.sin(i / 10 * 2 * math.pi)) * MIB for i in range(len(TIMES))]


def bursty_cpu():
    values = levels((0.5, 0.04), (0.5, 0.07))
    for start in (300, 900, 1700, 2400):          # four 15-minute bursts: 2 % of the window
        values[start:start + 15] = [0.9] * 15
    return values


def hours(count):
    return int(count * 3600 / STEP)


HALF = hours(30)
WORKLOADS = [
    # Steady, with every setting annotated; two pods, the busier one sizes it; the cut is capped.
    Workload("Deployment", "shop", "steady", [
        Pod("steady-5d8f7c9b6-aaaaa", flat(0.123), wave(88), owner=("ReplicaSet", "steady-5d8f7c9b6")),
        Pod("steady-5d8f7c9b6-bbbbb", flat(0.2), wave(92.3), owner=("ReplicaSet", "steady-5d8f7c9b6"))],
        annotations={CPU: "500m", CPU_LIMIT: "1", MEMORY: "256Mi", MEMORY_LIMIT: "512Mi",
                     PROXY_CONFIG: "concurrency: 2\n"},
        replicasets=["steady-5d8f7c9b6"]),
    # Bursty: p95 far below the max; on the injector's defaults (no annotation).
    Workload("Deployment", "shop", "bursty", [
        Pod("bursty-6b7c8d9f5-ccccc", bursty_cpu(), wave(70), owner=("ReplicaSet", "bursty-6b7c8d9f5"))],
        replicasets=["bursty-6b7c8d9f5"]),
    # Restarted mid-window: the old ReplicaSet's pod is gone from the API, the new one's lives; a
    # CPU limit annotation below the new request.
    Workload("Deployment", "shop", "restarted", [
        Pod("restarted-7c9d8b6f4-ddddd", flat(0.1), flat(100.4 * MIB), stop=HALF),
        Pod("restarted-84f6d5c7b-eeeee", flat(0.3), flat(120.7 * MIB), start=HALF,
            owner=("ReplicaSet", "restarted-84f6d5c7b"))],
        annotations={CPU_LIMIT: "200m"},
        replicasets=["restarted-7c9d8b6f4", "restarted-84f6d5c7b"]),
    # Leaking: the working set grows steadily; mapped only through kube-state-metrics.
    Workload("StatefulSet", "pay", "ledger", [
        Pod("ledger-0", flat(0.05), [(60 + 0.05 * i) * MIB for i in range(len(TIMES))],
            ksm=("StatefulSet", "ledger"))],
        annotations={MEMORY: "100Mi"}, leak=True),
    # Too little history: six hours.
    Workload("Deployment", "pay", "young", [
        Pod("young-9f8e7d6c5-fffff", flat(0.08), flat(70 * MIB), start=len(TIMES) - hours(6),
            owner=("ReplicaSet", "young-9f8e7d6c5"))],
        replicasets=["young-9f8e7d6c5"],
        expect_skip="too little history"),
    # A DaemonSet below the floors.
    Workload("DaemonSet", "pay", "agent", [
        Pod("agent-x7k2p", flat(0.002), flat(20 * MIB), owner=("DaemonSet", "agent"))]),
]


def series():
    """The cAdvisor and kube-state-metrics series of every pod."""
    result = []
    for workload in WORKLOADS:
        for pod in workload.pods:
            times = TIMES[pod.start:pod.stop]
            labels = {"namespace": workload.namespace, "pod": pod.name, "container": "istio-proxy",
                      "job": "kubernetes-cadvisor", "image": "docker.io/istio/proxyv2:1.30.3"}
            result.append(Series("container_cpu_usage_seconds_total", labels,
                                 counter(pod.cpu[pod.start:pod.stop], times, start=1000.0)))
            result.append(Series("container_memory_working_set_bytes", labels,
                                 list(zip(times, pod.memory[pod.start:pod.stop], strict=True))))
            result.append(Series(RECORDED, {"namespace": workload.namespace, "pod": pod.name},
                                 list(zip(times, pod.cpu[pod.start:pod.stop], strict=True))))
            # the application container beside it must not count
            app = {**labels, "container": workload.name}
            result.append(Series("container_memory_working_set_bytes", app,
                                 [(t, 900.0 * MIB) for t in times]))
            if pod.ksm:
                result.append(Series("kube_pod_owner", {
                    "namespace": workload.namespace, "pod": pod.name, "owner_kind": pod.ksm[0],
                    "owner_name": pod.ksm[1], "owner_is_controller": "true"},
                    [(t, 1.0) for t in times]))
    return result


# ---- what the module must find, from the samples ----------------------------------------------

def percentile(values, q):
    """Linear interpolation between closest ranks (Prometheus's quantile_over_time)."""
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def sample_rates(pod):
    """Per-minute rates between the counter's generated samples."""
    samples = counter(pod.cpu[pod.start:pod.stop], TIMES[pod.start:pod.stop], start=1000.0)
    return [(b[1] - a[1]) / (b[0] - a[0]) for a, b in itertools.pairwise(samples)]


def up(value, unit):
    return math.ceil(round(value / unit, 6)) * unit


def quantity(text):
    units = {"m": 0.001, "Mi": MIB, "Gi": 1024 * MIB, "": 1}
    for suffix in ("Mi", "Gi", "m"):
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * units[suffix]
    return float(text)


def expected(workload, headroom=0.1, memory_headroom=0.15, step_down=0.5, percent=95):
    """The recommended values, computed from the generated samples."""
    annotations = workload.annotations
    current_cpu = quantity(annotations.get(CPU, DEFAULTS["cpu_request"]))
    current_memory = quantity(annotations.get(MEMORY, DEFAULTS["memory_request"]))
    current_limit = quantity(annotations.get(CPU_LIMIT, DEFAULTS["cpu_limit"]))
    usage = max(percentile(sample_rates(pod), percent) for pod in workload.pods)
    milli = max(up(usage * (1 + headroom) * 1000, 5), 10)
    milli = max(milli, up(current_cpu * 1000 * (1 - step_down), 5))
    peak = max(max(pod.memory[pod.start:pod.stop]) for pod in workload.pods)
    if workload.leak:
        memory = current_memory
    else:
        memory = max(up(peak * (1 + memory_headroom), MIB), 64 * MIB)
        memory = max(memory, up(current_memory * (1 - step_down), MIB))
    memory_limit = max(memory, quantity(annotations.get(MEMORY_LIMIT, DEFAULTS["memory_limit"]))) \
        if workload.leak else memory
    limit = max(current_limit * 1000, milli)
    threads = max(1, min(math.ceil(milli / 1000), int(limit // 1000)))
    return {"cpu_request": f"{milli}m", "cpu_limit_milli": limit,
            "memory_request": f"{int(memory // MIB)}Mi", "memory_limit": f"{int(memory_limit // MIB)}Mi",
            "concurrency": threads, "cpu_usage": usage, "memory_peak": peak}


# ---- the cluster -------------------------------------------------------------------------------

def workload_object(workload):
    selector = {"app": workload.name}
    template = {"metadata": {"labels": selector},
                "spec": {"containers": [{"name": workload.name, "image": "nginx:1.27"}]}}
    if workload.annotations:
        template["metadata"]["annotations"] = dict(workload.annotations)
    spec = {"selector": {"matchLabels": selector}, "template": template}
    if workload.kind != "DaemonSet":
        spec["replicas"] = len([p for p in workload.pods if p.stop == len(TIMES)])
    if workload.kind == "StatefulSet":
        spec["serviceName"] = workload.name
    return {"apiVersion": "apps/v1", "kind": workload.kind,
            "metadata": {"name": workload.name, "namespace": workload.namespace, "labels": selector},
            "spec": spec}


def owner_reference(kind, name, api_version="apps/v1"):
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": f"uid-{kind}-{name}",
            "controller": True}


def cluster_objects():
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
               for name in [*NAMESPACES, "istio-system"]]
    values = {"global": {"proxy": {"resources": {
        "requests": {"cpu": DEFAULTS["cpu_request"], "memory": DEFAULTS["memory_request"]},
        "limits": {"cpu": DEFAULTS["cpu_limit"], "memory": DEFAULTS["memory_limit"]}}}}}
    objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "istio-sidecar-injector", "namespace": "istio-system"},
                    "data": {"values": json.dumps(values), "config": "policy: enabled\n"}})
    objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "istio", "namespace": "istio-system"},
                    "data": {"mesh": yaml.safe_dump({"defaultConfig": {"concurrency": 2}})}})
    for workload in WORKLOADS:
        objects.append(workload_object(workload))
        for replicaset in workload.replicasets:
            body = workload_object(workload)
            body["kind"] = "ReplicaSet"
            body["metadata"] = {"name": replicaset, "namespace": workload.namespace,
                                "labels": {"app": workload.name},
                                "ownerReferences": [owner_reference("Deployment", workload.name)]}
            objects.append(body)
        for pod in workload.pods:
            if pod.owner is None:
                continue
            objects.append({"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": pod.name, "namespace": workload.namespace, "labels": {"app": workload.name},
                "ownerReferences": [owner_reference(*pod.owner)]},
                "spec": {"containers": [{"name": workload.name, "image": "nginx:1.27"}]}})
    objects.append(workload_object(Workload("Deployment", "shop", "legacy", [],
                                            annotations={"sidecar.istio.io/inject": "false"})))
    return objects


def load(server):
    server.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(cluster_objects()))


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    with serve_series(series(), tmp_path_factory.mktemp("rightsizing")) as server:
        yield server


@pytest.fixture(scope="module")
def cluster(kubeapi):
    load(kubeapi)
    return kubeapi


def writes(server):
    verbs = server.stats()["requests"]["by_verb"]
    return sum(verbs.get(v, 0) for v in ("create", "update", "patch", "delete"))


def run(server, prometheus, check_mode=False, diff=False, **extra):
    args = {"kubeconfig": str(server.kubeconfig), "prometheus_url": prometheus.url,
            "namespaces": NAMESPACES, "window": f"{WINDOW_HOURS}h", "min_history": "24h",
            "cpu_headroom": 0.1, **extra}
    return call_module(sidecar_recommend.main, args, check_mode=check_mode, diff=diff)


def by_name(result):
    return {entry["name"]: entry for entry in result["recommendations"]}


def template_annotations(server, kind, namespace, name):
    live = json.loads(server.kubectl("get", kind.lower(), name, "-n", namespace, "-o", "json").stdout)
    return live["spec"]["template"]["metadata"].get("annotations") or {}


# ---- the tests ---------------------------------------------------------------------------------

def test_exact_recommendations_from_the_samples(cluster, prometheus, tmp_path):
    result = run(cluster, prometheus, output_dir=str(tmp_path / "report"))
    assert not result.get("failed"), result
    found = by_name(result)
    assert set(found) == {w.name for w in WORKLOADS} | {"legacy"}
    for workload in WORKLOADS:
        entry = found[workload.name]
        if workload.expect_skip:
            assert entry["action"] == "skipped", entry
            assert workload.expect_skip in entry["reason"]
            continue
        want = expected(workload)
        rec = entry["recommended"]
        assert entry["usage"]["cpu_cores"] == pytest.approx(want["cpu_usage"], rel=1e-9), workload.name
        assert entry["usage"]["memory_bytes"] == want["memory_peak"], workload.name
        assert rec["cpu_request"] == want["cpu_request"], (workload.name, entry["reasons"])
        assert rec["memory_request"] == want["memory_request"], (workload.name, entry["reasons"])
        assert rec["memory_limit"] == want["memory_limit"], workload.name
        assert quantity(rec["cpu_limit"]) * 1000 == pytest.approx(want["cpu_limit_milli"]), workload.name
        assert rec["concurrency"] == want["concurrency"], workload.name
        assert entry["leak_suspect"] is workload.leak, workload.name
        assert entry["pods"] == len(workload.pods), workload.name
    assert found["legacy"]["action"] == "skipped"
    assert "injection is off" in found["legacy"]["reason"]


def test_a_recording_rule_gives_the_same_recommendations(cluster, prometheus):
    recorded = by_name(run(cluster, prometheus, cpu_recording_rule=RECORDED))
    computed = by_name(run(cluster, prometheus))
    for workload in WORKLOADS:
        if workload.expect_skip:
            continue
        usage = max(percentile(pod.cpu[pod.start:pod.stop], 95) for pod in workload.pods)
        assert recorded[workload.name]["usage"]["cpu_cores"] == pytest.approx(usage, rel=1e-9)
        assert recorded[workload.name]["recommended"] == computed[workload.name]["recommended"]


def test_the_cases_behave_as_their_names_say(cluster, prometheus):
    found = by_name(run(cluster, prometheus))
    bursty = found["bursty"]
    assert bursty["usage"]["cpu_cores"] < 0.1 < max(WORKLOADS[1].pods[0].cpu)  # p95 far below max
    assert bursty["current_source"] == "mesh defaults"
    assert bursty["current"] == DEFAULTS
    assert found["steady"]["current_source"] == "pod template annotations"
    assert "max_step_down" in found["steady"]["reasons"]["cpu_request"]
    assert "max_step_down" in found["steady"]["reasons"]["memory_request"]
    restarted = found["restarted"]
    assert restarted["history_hours"] >= WINDOW_HOURS - 1   # both generations: not split
    assert "raised to the request" in restarted["reasons"]["cpu_limit"]
    assert found["ledger"]["leak_suspect"] and "leak suspect" in found["ledger"]["reasons"]["memory_request"]
    assert found["ledger"]["recommended"]["memory_request"] == "100Mi"
    assert "min_cpu" in found["agent"]["reasons"]["cpu_request"]
    assert "min_memory" in found["agent"]["reasons"]["memory_request"]
    assert found["young"]["history_hours"] < 24


def test_limits_never_below_requests(cluster, prometheus):
    for extra in ({}, {"cpu_limit": "2", "memory_limit": 1.5}):
        for entry in run(cluster, prometheus, **extra)["recommendations"]:
            if entry["action"] == "skipped":
                continue
            rec = entry["recommended"]
            assert quantity(rec["cpu_limit"]) >= quantity(rec["cpu_request"]), entry
            assert quantity(rec["memory_limit"]) >= quantity(rec["memory_request"]), entry
            assert 1 <= rec["concurrency"] <= max(1, int(quantity(rec["cpu_limit"]))), entry


def test_totals_and_tune_entries(cluster, prometheus):
    result = run(cluster, prometheus)
    entries = result["recommendations"]
    cpu_before = sum(quantity(e["current"]["cpu_request"]) * e["replicas"] for e in entries)
    cpu_after = sum(quantity(e["recommended"]["cpu_request"]) * e["replicas"] for e in entries)
    memory_after = sum(quantity(e["recommended"]["memory_request"]) * e["replicas"] for e in entries)
    totals = result["totals"]
    assert totals["cpu_request_cores_before"] == pytest.approx(cpu_before)
    assert totals["cpu_request_cores_after"] == pytest.approx(cpu_after)
    assert totals["memory_request_bytes_after"] == memory_after
    resized = {e["name"] for e in entries if e["action"] == "resize"}
    (entry,) = result["tune_sidecars"]
    assert {w["name"] for w in entry["workloads"]} == resized
    assert len(result["queries"]) == 8


def test_check_mode_writes_nothing(cluster, prometheus, tmp_path):
    cluster.reset_stats()
    result = run(cluster, prometheus, check_mode=True, diff=True, apply=True,
                 output_dir=str(tmp_path / "never"))
    assert result["changed"] is True, result
    assert writes(cluster) == 0
    assert not (tmp_path / "never").exists()
    resized = {e["name"] for e in result["recommendations"] if e["action"] == "resize"}
    assert {r["name"] for r in result["results"] if r["action"] == "updated"} == resized
    assert {d["before_header"].split("/")[-1] for d in result["diff"]} == resized
    assert template_annotations(cluster, "Deployment", "shop", "bursty") == {}


def test_apply_then_rerun_writes_nothing_and_rollback_restores(cluster, prometheus, tmp_path):
    cluster.reset_stats()
    first = run(cluster, prometheus, apply=True, max_step_down=1)
    assert not first.get("failed"), first
    resized = [e for e in first["recommendations"] if e["action"] == "resize"]
    assert writes(cluster) == len(resized) == first["summary"]["updated"]
    for entry in resized:
        annotations = template_annotations(cluster, entry["kind"], entry["namespace"], entry["name"])
        assert annotations[CPU] == entry["recommended"]["cpu_request"]
        assert annotations[MEMORY] == entry["recommended"]["memory_request"]
        assert yaml.safe_load(annotations[PROXY_CONFIG])["concurrency"] == entry["recommended"]["concurrency"]
    cluster.reset_stats()
    second = run(cluster, prometheus, apply=True, max_step_down=1)
    assert writes(cluster) == 0
    assert second["changed"] is False, second["results"]
    assert second["tune_sidecars"] == []

    # The rollback entries of the first run restore what was there before.
    from ansible_collections.meshtune.mesh.plugins.modules import sidecar_resources
    for entry in first["rollback"]:
        outcome = call_module(sidecar_resources.main, {"kubeconfig": str(cluster.kubeconfig), **entry})
        assert not outcome.get("failed"), outcome["msg"]
    for workload in WORKLOADS:
        if workload.expect_skip:
            continue
        assert template_annotations(cluster, workload.kind, workload.namespace, workload.name) == \
            workload.annotations, workload.name


def test_report_files(cluster, prometheus, tmp_path):
    result = run(cluster, prometheus, output_dir=str(tmp_path))
    assert sorted(p.rsplit("/", 1)[-1] for p in result["report_files"]) == \
        ["rightsize.html", "rightsize.json", "rightsize.md"]
    data = json.loads((tmp_path / "rightsize.json").read_text())
    assert [e["name"] for e in data["recommendations"]] == [e["name"] for e in result["recommendations"]]
    markdown = (tmp_path / "rightsize.md").read_text()
    steady = by_name(result)["steady"]["recommended"]["cpu_request"]
    assert f"500m → {steady}" in markdown
    assert "<table>" in (tmp_path / "rightsize.html").read_text()


def test_converges_under_api_faults(kubeapi_factory, prometheus):
    server = kubeapi_factory("--fault-rate", "0.3", "--faults", "429,500", "--seed", "7")
    server.set_faults(0.0)
    load(server)
    server.set_faults(0.3, faults=("429", "500"), seed=7)
    result = run(server, prometheus, apply=True, max_step_down=1)
    assert not result.get("failed"), result
    assert result["retries"] > 0
    server.set_faults(0.0)
    server.reset_stats()
    again = run(server, prometheus, apply=True, max_step_down=1)
    assert writes(server) == 0 and again["changed"] is False
    for entry in result["recommendations"]:
        if entry["action"] == "resize":
            assert template_annotations(server, entry["kind"], entry["namespace"], entry["name"])[CPU] == \
                entry["recommended"]["cpu_request"]


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(("extra", "option"), [
    ({"cpu_percentile": 0}, "cpu_percentile"),
    ({"cpu_percentile": 100.5}, "cpu_percentile"),
    ({"cpu_headroom": -0.1}, "cpu_headroom"),
    ({"memory_headroom": -1}, "memory_headroom"),
    ({"window": "30s", "step": "1m"}, "window"),
    ({"min_history": "72h"}, "min_history"),
    ({"cpu_limit": "0.5"}, "cpu_limit"),
    ({"memory_limit": 0.9}, "memory_limit"),
    ({"max_step_down": 1.5}, "max_step_down"),
    ({"min_memory": "lots"}, "min_memory"),
    ({"metric_filter": "cluster=eu"}, "metric_filter"),
    ({"metric_filter": 'cluster=~"("'}, "metric_filter"),
    ({"prometheus_url": "http://127.0.0.1:{port}"}, "prometheus_url"),
])
def test_bad_inputs_fail_naming_the_option_before_any_write(cluster, prometheus, extra, option):
    extra = {key: value.format(port=closed_port()) if isinstance(value, str) and "{port}" in value
             else value for key, value in extra.items()}
    cluster.reset_stats()
    result = run(cluster, prometheus, apply=True, **extra)
    assert result.get("failed"), result
    assert option in result["msg"], result["msg"]
    assert "Traceback" not in result["msg"]
    assert writes(cluster) == 0
