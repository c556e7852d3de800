"""A live stand-in for what Prometheus scrapes from a mesh under load, with known rates.

One HTTP endpoint on 127.0.0.1 serves, at every scrape, the series that kubelet's cAdvisor, the
sidecars (merged metrics) and istiod would expose, each computed from the time elapsed since the
exporter started, so every figure the verify role derives from Prometheus has an exact expected
value:

- container_cpu_usage_seconds_total{container="istio-proxy"} of two pods of the measured
  workload, growing by CPU_CORES[pod] cores; app containers and another workload's sidecar beside
  them must not count;
- container_memory_working_set_bytes of the same containers: MEMORY_MIB[pod] + growth per minute;
- istio_requests_total reported by the destination proxies: RPS requests/s in all, split over
  the pods and status codes;
- pilot_proxy_convergence_time, a histogram whose observations all fall into PUSH_BUCKET.
"""

from __future__ import annotations

import time

from tests.support.http_stub import MetricsEndpoint

NAMESPACE = "shop"
WORKLOAD = "web"
PODS = ("web-7d9c8b6f5d-x1y2z", "web-7d9c8b6f5d-k8m4p")
OTHER_POD = "web-canary-5b4c7d9f8-q2w3e"       # another workload whose name starts like it
CPU_CORES = {PODS[0]: 0.03, PODS[1]: 0.02}       # istio-proxy CPU, cores
APP_CPU_CORES = 0.5                              # each app container: must not be counted
MEMORY_MIB = {PODS[0]: 48.0, PODS[1]: 40.0}      # istio-proxy working set at the start
GROWTH_MIB_PER_MIN = {PODS[0]: 3.0, PODS[1]: 1.0}
RPS = 100.0                                      # destination-reported requests/s to WORKLOAD
PUSHES_PER_SECOND = 4.0
PUSH_BUCKETS = (0.1, 0.5, 1.0, 5.0)             # le bounds of pilot_proxy_convergence_time (s)
PUSH_BUCKET = (0.1, 0.5)                        # every push took between these

MIB = 1024 * 1024

# What the queries must find over any window inside the exporter's lifetime.
EXPECTED = {
    "cpu_per_1k_rps": sum(CPU_CORES.values()) / (RPS / 1000.0),
    "memory_growth_mib_per_min": max(GROWTH_MIB_PER_MIN.values()),
    # histogram_quantile interpolates linearly inside the bucket
    "push_latency_p99_ms": (PUSH_BUCKET[0] + 0.99 * (PUSH_BUCKET[1] - PUSH_BUCKET[0])) * 1000.0,
}


def expected_memory_mib(elapsed_at_end: float) -> float:
    """The largest istio-proxy working set of the workload at `elapsed_at_end` seconds."""
    return max(MEMORY_MIB[pod] + GROWTH_MIB_PER_MIN[pod] * elapsed_at_end / 60.0 for pod in PODS)


def _container(metric: str, pod: str, container: str, value: float, workload_ns: str = NAMESPACE) -> str:
    return (f'{metric}{{namespace="{workload_ns}",pod="{pod}",container="{container}",'
            f'image="example/{container}"}} {value!r}')


def exposition(elapsed: float) -> str:
    """The text a scrape returns `elapsed` seconds after the start."""
    lines = ["# TYPE container_cpu_usage_seconds_total counter"]
    for pod in PODS:
        lines.append(_container("container_cpu_usage_seconds_total", pod, "istio-proxy",
                                CPU_CORES[pod] * elapsed))
        lines.append(_container("container_cpu_usage_seconds_total", pod, "web",
                                APP_CPU_CORES * elapsed))
    lines.append(_container("container_cpu_usage_seconds_total", OTHER_POD, "istio-proxy", 2.0 * elapsed))
    lines.append("# TYPE container_memory_working_set_bytes gauge")
    for pod in PODS:
        mib = MEMORY_MIB[pod] + GROWTH_MIB_PER_MIN[pod] * elapsed / 60.0
        lines.append(_container("container_memory_working_set_bytes", pod, "istio-proxy", mib * MIB))
        lines.append(_container("container_memory_working_set_bytes", pod, "web", 900.0 * MIB))
    lines.append(_container("container_memory_working_set_bytes", OTHER_POD, "istio-proxy",
                            (500.0 + 60.0 * elapsed) * MIB))
    lines.append("# TYPE istio_requests_total counter")
    shares = {(PODS[0], "200"): 0.55, (PODS[1], "200"): 0.4, (PODS[0], "503"): 0.05}
    for (pod, code), share in shares.items():
        lines.append(
            f'istio_requests_total{{reporter="destination",pod="{pod}",'
            f'destination_workload="{WORKLOAD}",destination_workload_namespace="{NAMESPACE}",'
            f'source_workload="loadgen",response_code="{code}"}} {RPS * share * elapsed!r}')
    # The client side reports the same requests again: a query must not count them twice.
    lines.append(f'istio_requests_total{{reporter="source",pod="loadgen-1",destination_workload="{WORKLOAD}",'
                 f'destination_workload_namespace="{NAMESPACE}",source_workload="loadgen",'
                 f'response_code="200"}} {RPS * elapsed!r}')
    lines.append("# TYPE pilot_proxy_convergence_time histogram")
    pushes = PUSHES_PER_SECOND * elapsed
    for bound in PUSH_BUCKETS:
        count = pushes if bound >= PUSH_BUCKET[1] else 0.0
        lines.append(f'pilot_proxy_convergence_time_bucket{{le="{bound}"}} {count!r}')
    lines.append(f'pilot_proxy_convergence_time_bucket{{le="+Inf"}} {pushes!r}')
    lines.append(f"pilot_proxy_convergence_time_sum {pushes * 0.3!r}")
    lines.append(f"pilot_proxy_convergence_time_count {pushes!r}")
    return "\n".join(lines) + "\n"


class LiveMeshExporter(MetricsEndpoint):
    """Serves exposition(now - start) on 127.0.0.1:<port>/metrics while in a `with` block."""

    def __init__(self):
        super().__init__("/metrics")
        self.started = None

    def body(self) -> str:
        return exposition(time.time() - self.started)

    def __enter__(self) -> LiveMeshExporter:
        self.started = time.time()
        return super().__enter__()
