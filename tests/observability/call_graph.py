"""A mesh's call graph as Istio's traffic counters, in TSDB blocks served by a real Prometheus.

Each `Call` becomes the counters the source proxy reports (`reporter="source"`) and, for calls
inside the registry, the destination proxy's copy (`reporter="destination"`, which a traffic
query must not count twice). HTTP calls split their requests over response codes 200 and 503;
TCP calls count opened connections. Every counter starts at 0 and grows linearly to the call's
`total` over the data, so the totals are known exactly in the test.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.observability.prometheus import PrometheusServer

STEP = 15  # seconds between samples
SAMPLES = 241  # one hour, both ends included
ERROR_SHARE = 0.25  # of an HTTP call's requests answered 503


@dataclass(frozen=True)
class Call:
    """What one source workload sent to one destination over the data's hour."""

    namespace: str
    workload: str
    service_namespace: str
    service: str  # destination_service: a registry host, or what Istio reports for passthrough
    total: int  # requests (HTTP) or connections opened (TCP)
    tcp: bool = False
    cluster: str = ""  # PassthroughCluster / BlackHoleCluster for calls outside the registry

    @property
    def service_name(self) -> str:
        """destination_service_name: the cluster for calls outside the registry, else the Service."""
        return self.cluster or self.service.split(".")[0]

    @property
    def host(self) -> str:
        return f"{self.service_namespace}/{self.service}"


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{key}="{value}"' for key, value in labels.items()) + "}"


def _series(call: Call, reporter: str) -> list[tuple[str, str, int]]:
    """(metric, labels, total) of the counters one proxy reports for a call."""
    base = {"reporter": reporter, "source_workload": call.workload,
            "source_workload_namespace": call.namespace,
            "destination_service": call.service,
            "destination_service_namespace": call.service_namespace,
            "destination_service_name": call.service_name,
            "pod": f"{call.workload}-6f8d9c7b5-x2k9p"}
    if call.tcp:
        return [("istio_tcp_connections_opened_total",
                 _labels(**base, request_protocol="tcp"), call.total)]
    errors = round(call.total * ERROR_SHARE)
    return [("istio_requests_total", _labels(**base, request_protocol="http", response_code=code), total)
            for code, total in (("200", call.total - errors), ("503", errors)) if total]


def openmetrics(calls: list[Call], first: int) -> str:
    """The OpenMetrics text of every call's counters, one sample per STEP from `first`."""
    families: dict[str, list[tuple[str, int]]] = {}
    for call in calls:
        reporters = ["source"] if call.cluster else ["source", "destination"]
        for reporter in reporters:
            for metric, labels, total in _series(call, reporter):
                families.setdefault(metric, []).append((labels, total))
    lines = []
    for metric, series in families.items():
        lines.append(f"# TYPE {metric.removesuffix('_total')} counter")
        for labels, total in series:
            lines.extend(f"{metric}{labels} {total * i // (SAMPLES - 1)} {first + i * STEP}"
                         for i in range(SAMPLES))
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def serve(calls: list[Call], directory: Path, prometheus: str, promtool: str) -> PrometheusServer:
    """A started Prometheus reading TSDB blocks of `calls`; the last sample ten minutes ago."""
    last = (int(time.time()) - 600) // STEP * STEP
    (directory / "calls.om").write_text(openmetrics(calls, last - (SAMPLES - 1) * STEP))
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(directory / "calls.om"),
                    str(directory / "data")], check=True, capture_output=True, timeout=60)
    config = directory / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    return PrometheusServer(prometheus, config, directory / "data").start()
