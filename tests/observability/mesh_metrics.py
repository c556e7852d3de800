"""A small Istio mesh's metrics, as OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`.

The series carry the names and labels real Istio proxies, istiod and cAdvisor export, plus the
target labels meshtune's scrape jobs add (job, instance, namespace, pod, workload, revision,
node). Values follow a deterministic model: constant request rates split over fixed latency
and size distributions, linear CPU counters, and proxy memory that is flat (with a small wave)
or grows linearly. The model's true values are kept on `SampleMesh` so tests can compare what
Prometheus computes with what was put in.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# Istio's default buckets for istio_request_duration_milliseconds.
DURATION_BUCKETS_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
                       300000, 600000, 1800000, 3600000)
# Buckets for istio_request_bytes / istio_response_bytes.
SIZE_BUCKETS_BYTES = (1, 10, 100, 1000, 10000, 100000, 1000000, 10000000)
# istiod's buckets for pilot_proxy_convergence_time (seconds).
CONVERGENCE_BUCKETS_S = (0.1, 0.5, 1, 3, 5, 10, 20, 30)
MIB = 1048576.0

# A distribution is a list of (upper bound, share of observations at or below it); the share
# reaches 1 at the last bound, so every larger bucket holds everything.
Distribution = tuple[tuple[float, float], ...]

FAST = ((5, 0.2), (10, 0.6), (25, 0.9), (50, 0.995), (100, 1.0))  # p99 about 49 ms
SLOW = ((10, 0.2), (25, 0.5), (50, 0.8), (100, 0.9), (250, 0.95), (500, 0.995), (1000, 1.0))  # p99 472 ms
REQUEST_SIZE = ((100, 0.1), (1000, 1.0))
RESPONSE_SIZE = ((1000, 0.2), (10000, 1.0))
PUSH_TIME = ((0.1, 0.8), (0.5, 0.995), (1, 1.0))                          # p99 about 490 ms


@dataclass(frozen=True)
class Workload:
    """A Deployment with sidecars: its pods and what its proxies cost."""

    namespace: str
    name: str
    pods: tuple[str, ...]
    proxy_cpu_cores: float           # per pod
    proxy_cpu_limit_cores: float     # per pod
    proxy_memory_mib: float          # per pod at the start of the data
    proxy_memory_growth_mib_per_min: float = 0.0
    latency: Distribution = FAST     # server-side, for its inbound requests

    def pod_ip(self, pod: str) -> str:
        """A stable made-up pod IP (the same on every run)."""
        subnet = sum(ord(char) for char in self.name) % 200
        return f"10.1.{subnet}.{10 + self.pods.index(pod)}"


@dataclass(frozen=True)
class Call:
    """Traffic from one workload to another: HTTP requests, or a TCP connection stream."""

    source: Workload
    destination: Workload
    rps: float
    error_ratio: float = 0.0         # share of 503 answers
    tcp: bool = False


@dataclass
class SampleMesh:
    """The mesh the tests load: fortio -> productpage -> reviews -> mysqldb (TCP)."""

    fortio: Workload = field(default_factory=lambda: Workload(
        "bench", "fortio-client", ("fortio-client-6f8d9c7b5-x2k9p",), 0.12, 1.0, 40.0))
    productpage: Workload = field(default_factory=lambda: Workload(
        "shop", "productpage-v1", ("productpage-v1-5f7c9d8b6-g5h6j",), 0.30, 2.0, 60.0, latency=FAST))
    reviews: Workload = field(default_factory=lambda: Workload(
        "shop", "reviews-v1", ("reviews-v1-6d5c8b7f9-a1b2c", "reviews-v1-6d5c8b7f9-d3e4f"), 0.22, 0.25, 80.0,
        proxy_memory_growth_mib_per_min=2.0, latency=SLOW))
    mysqldb: Workload = field(default_factory=lambda: Workload(
        "shop", "mysqldb-v1", ("mysqldb-v1-7c6b5d4f3-r4t5y",), 0.02, 1.0, 30.0))
    istiod_pod: str = "istiod-6c9d8f7b5-q2w3e"
    istio_version: str = "1.24.3"
    push_rate: float = 2.0
    # reviews-v1's local rate limit, per pod: requests over the limit, and of them refused (rps).
    rate_limited_rps: float = 6.0
    rate_limit_enforced_rps: float = 4.0

    @property
    def workloads(self) -> tuple[Workload, ...]:
        return (self.fortio, self.productpage, self.reviews, self.mysqldb)

    @property
    def calls(self) -> tuple[Call, ...]:
        return (
            Call(self.fortio, self.productpage, 400.0),
            Call(self.productpage, self.reviews, 400.0, error_ratio=0.02),
            Call(self.reviews, self.mysqldb, 2.0, tcp=True),
        )


def _labels(**labels: str) -> str:
    inner = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return "{" + inner + "}"


def _value(number: float) -> str:
    return format(number, ".12g")


class _Family:
    """One metric family: its type and series, each series a label string and a value function."""

    def __init__(self, name: str, kind: str):
        self.name = name
        self.kind = kind
        self.series: list[tuple[str, str, object]] = []  # (sample name, labels, f(t) -> value)

    def add(self, labels: str, value, suffix: str = "") -> None:
        self.series.append((self.name + suffix, labels, value))


class _Histogram:
    """One histogram family: per label set an observation rate and a distribution."""

    def __init__(self, name: str, buckets: tuple[float, ...]):
        self.name = name
        self.buckets = buckets
        self.series: list[tuple[dict[str, str], float, Distribution, float]] = []

    def add(self, labels: dict[str, str], rate: float, distribution: Distribution, mean: float) -> None:
        self.series.append((labels, rate, distribution, mean))


def _cumulative_share(distribution: Distribution, bound: float) -> float:
    share = 0.0
    for upper, cumulative in distribution:
        if upper <= bound:
            share = cumulative
    return share


def _target(workload: Workload, pod: str) -> dict[str, str]:
    return {"job": "envoy-stats", "instance": f"{workload.pod_ip(pod)}:15020",
            "namespace": workload.namespace, "pod": pod, "workload": workload.name}


def _istio_labels(call: Call, reporter: str, code: str) -> dict[str, str]:
    service = f"{call.destination.name.rsplit('-v', 1)[0]}.{call.destination.namespace}.svc.cluster.local"
    return {
        "reporter": reporter,
        "source_workload": call.source.name, "source_workload_namespace": call.source.namespace,
        "destination_workload": call.destination.name,
        "destination_workload_namespace": call.destination.namespace,
        "destination_service": service,
        "request_protocol": "tcp" if call.tcp else "http",
        **({} if call.tcp else {"response_code": code, "response_flags": "-"}),
        "connection_security_policy": "mutual_tls" if reporter == "destination" else "unknown",
    }


def _families(mesh: SampleMesh, start: float) -> tuple[list[_Family], list[_Histogram]]:
    families = {name: _Family(name, kind) for name, kind in (
        ("up", "gauge"),
        ("istio_requests", "counter"),
        ("istio_tcp_sent_bytes", "counter"),
        ("istio_tcp_received_bytes", "counter"),
        ("istio_tcp_connections_opened", "counter"),
        ("istio_tcp_connections_closed", "counter"),
        ("container_cpu_usage_seconds", "counter"),
        ("container_memory_working_set_bytes", "gauge"),
        ("container_spec_cpu_quota", "gauge"),
        ("container_spec_cpu_period", "gauge"),
        ("pilot_xds_pushes", "unknown"),
        # Envoy's counters keep their stat names (no _total), as pilot_xds_pushes does.
        ("envoy_http_local_rate_limiter_http_local_rate_limit_rate_limited", "unknown"),
        ("envoy_http_local_rate_limiter_http_local_rate_limit_enforced", "unknown"),
        ("pilot_xds", "gauge"),
    )}
    duration = _Histogram("istio_request_duration_milliseconds", DURATION_BUCKETS_MS)
    request_size = _Histogram("istio_request_bytes", SIZE_BUCKETS_BYTES)
    response_size = _Histogram("istio_response_bytes", SIZE_BUCKETS_BYTES)
    convergence = _Histogram("pilot_proxy_convergence_time", CONVERGENCE_BUCKETS_S)
    warm_up = 7200.0  # the counters have been running for two hours when the data starts

    def counter(rate: float):
        return lambda t: rate * (t - start + warm_up)

    def constant(number: float):
        return lambda t: number

    # Proxies: scrape targets, requests (each reporting proxy reports its share), cAdvisor series.
    for workload in mesh.workloads:
        for pod in workload.pods:
            families["up"].add(_labels(**_target(workload, pod)), constant(1))
    for call in mesh.calls:
        for reporter, proxy in (("source", call.source), ("destination", call.destination)):
            share = call.rps / len(proxy.pods)
            for pod in proxy.pods:
                target = _target(proxy, pod)
                if call.tcp:
                    labels = _labels(**target, **_istio_labels(call, reporter, ""))
                    families["istio_tcp_sent_bytes"].add(labels, counter(share * 2048), "_total")
                    families["istio_tcp_received_bytes"].add(labels, counter(share * 8192), "_total")
                    families["istio_tcp_connections_opened"].add(labels, counter(share), "_total")
                    families["istio_tcp_connections_closed"].add(labels, counter(share), "_total")
                    continue
                for code, code_share in (("200", 1 - call.error_ratio), ("503", call.error_ratio)):
                    if code_share <= 0:
                        continue
                    labels = {**target, **_istio_labels(call, reporter, code)}
                    rate = share * code_share
                    families["istio_requests"].add(_labels(**labels), counter(rate), "_total")
                    duration.add(labels, rate, call.destination.latency, 40.0)
                    request_size.add(labels, rate, REQUEST_SIZE, 600.0)
                    response_size.add(labels, rate, RESPONSE_SIZE, 4000.0)

    for pod in mesh.reviews.pods:
        labels = _labels(**_target(mesh.reviews, pod))
        families["envoy_http_local_rate_limiter_http_local_rate_limit_rate_limited"].add(
            labels, counter(mesh.rate_limited_rps))
        families["envoy_http_local_rate_limiter_http_local_rate_limit_enforced"].add(
            labels, counter(mesh.rate_limit_enforced_rps))

    for workload in mesh.workloads:
        for index, pod in enumerate(workload.pods):
            base = {"job": "kubernetes-cadvisor", "instance": "10.0.0.5:10250", "node": "node-1",
                    "namespace": workload.namespace, "pod": pod}
            proxy = _labels(**base, container="istio-proxy",
                            image=f"docker.io/istio/proxyv2:{mesh.istio_version}",
                            id=f"/kubepods/burstable/pod{index}/istio-proxy")
            app = _labels(**base, container=workload.name.rsplit("-v", 1)[0],
                          image=f"example/{workload.name}:1", id=f"/kubepods/burstable/pod{index}/app")
            pod_cgroup = _labels(**base, container="", id=f"/kubepods/burstable/pod{index}")
            families["container_cpu_usage_seconds"].add(proxy, counter(workload.proxy_cpu_cores), "_total")
            families["container_cpu_usage_seconds"].add(app, counter(0.5), "_total")
            families["container_cpu_usage_seconds"].add(
                pod_cgroup, counter(workload.proxy_cpu_cores + 0.5), "_total")
            families["container_spec_cpu_quota"].add(proxy, constant(workload.proxy_cpu_limit_cores * 100000))
            families["container_spec_cpu_period"].add(proxy, constant(100000))
            families["container_spec_cpu_quota"].add(app, constant(200000))
            families["container_spec_cpu_period"].add(app, constant(100000))
            families["container_memory_working_set_bytes"].add(proxy, _memory(workload, index, start))
            families["container_memory_working_set_bytes"].add(app, constant(256 * MIB))

    # istiod and the kubelet's own target.
    istiod = {"job": "istiod", "instance": "10.1.0.2:15014", "namespace": "istio-system",
              "pod": mesh.istiod_pod, "revision": "default"}
    families["up"].add(_labels(**istiod), constant(1))
    kubelet = _labels(job="kubernetes-cadvisor", instance="10.0.0.5:10250", node="node-1")
    families["up"].add(kubelet, constant(1))
    for push_type, rate in (("cds", 0.2), ("eds", 1.5), ("lds", 0.2), ("rds", 0.1)):
        families["pilot_xds_pushes"].add(_labels(**istiod, type=push_type), counter(rate))
    proxies = sum(len(workload.pods) for workload in mesh.workloads)
    families["pilot_xds"].add(_labels(**istiod, version=mesh.istio_version), constant(proxies))
    convergence.add(istiod, mesh.push_rate, PUSH_TIME, 0.08)
    return list(families.values()), [duration, request_size, response_size, convergence]


def _memory(workload: Workload, index: int, start: float):
    """Working set: a base, a slow wave (no trend), and the workload's growth per minute."""
    base = (workload.proxy_memory_mib + 2 * index) * MIB
    growth = workload.proxy_memory_growth_mib_per_min * MIB / 60.0

    def value(t: float) -> float:
        wave = 0.5 * MIB * math.sin((t - start) / 600.0 * 2 * math.pi)
        return base + wave + growth * (t - start)

    return value


def timestamps(end: float, duration: float = 3600.0, step: float = 15.0) -> list[float]:
    """Whole-second sample times, `step` apart, the last at or before `end`."""
    last = math.floor(end)
    count = int(duration // step)
    return [last - (count - i) * step for i in range(count + 1)]


def openmetrics_lines(mesh: SampleMesh, times: list[float]) -> Iterator[str]:
    """The OpenMetrics exposition of the whole series, one sample per line, ending with # EOF."""
    start = times[0]
    families, histograms = _families(mesh, start)
    for family in families:
        yield f"# TYPE {family.name} {family.kind}\n"
        for sample_name, labels, value in family.series:
            prefix = sample_name + labels + " "
            for t in times:
                yield f"{prefix}{_value(value(t))} {int(t)}\n"
    for histogram in histograms:
        yield f"# TYPE {histogram.name} histogram\n"
        for labels, rate, distribution, mean in histogram.series:
            bounds = [*histogram.buckets, math.inf]
            prefixes = [f"{histogram.name}_bucket{_labels(**labels, le=_le(bound))} " for bound in bounds]
            shares = [_cumulative_share(distribution, bound) for bound in bounds]
            sum_prefix = histogram.name + "_sum" + _labels(**labels) + " "
            count_prefix = histogram.name + "_count" + _labels(**labels) + " "
            for t in times:
                total = rate * (t - start + 7200.0)
                stamp = f" {int(t)}\n"
                for prefix, share in zip(prefixes, shares, strict=True):
                    yield prefix + _value(total * share) + stamp
                yield sum_prefix + _value(total * mean) + stamp
                yield count_prefix + _value(total) + stamp
    yield "# EOF\n"


def _le(bound: float) -> str:
    if bound == math.inf:
        return "+Inf"
    return str(int(bound)) if float(bound).is_integer() else repr(float(bound))


def write_openmetrics(path: Path, mesh: SampleMesh, times: list[float]) -> int:
    """Write the exposition to `path`; returns the number of sample lines."""
    lines = 0
    with path.open("w", encoding="utf-8") as out:
        chunk: list[str] = []
        for line in openmetrics_lines(mesh, times):
            chunk.append(line)
            if len(chunk) >= 4096:
                out.write("".join(chunk))
                lines += len(chunk)
                chunk.clear()
        out.write("".join(chunk))
        lines += len(chunk)
    return lines
