"""A mesh's call graph as Istio's traffic counters, served by a real Prometheus (tsdb.serve_series).

Each `Call` becomes the counters the source proxy reports (`reporter="source"`) and, for calls
inside the registry, the destination proxy's copy (`reporter="destination"`, which a traffic
query must not count twice). HTTP calls split their requests over response codes 200 and 503;
TCP calls count opened connections. Every counter starts at 0 and grows linearly to the call's
`total` over the data, so the totals are known exactly in the test.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.observability.prometheus import PrometheusServer
from tests.observability.tsdb import Series, aligned_times, serve_series

STEP = 15  # seconds between samples
DURATION = 3600  # one hour of samples, both ends included
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


def _counters(call: Call, reporter: str) -> list[tuple[str, dict[str, str], int]]:
    """(metric, labels, total) of the counters one proxy reports for a call."""
    base = {"reporter": reporter, "source_workload": call.workload,
            "source_workload_namespace": call.namespace,
            "destination_service": call.service,
            "destination_service_namespace": call.service_namespace,
            "destination_service_name": call.service_name,
            "pod": f"{call.workload}-6f8d9c7b5-x2k9p"}
    if call.tcp:
        return [("istio_tcp_connections_opened_total", {**base, "request_protocol": "tcp"}, call.total)]
    errors = round(call.total * ERROR_SHARE)
    return [("istio_requests_total", {**base, "request_protocol": "http", "response_code": code}, total)
            for code, total in (("200", call.total - errors), ("503", errors)) if total]


def series(calls: list[Call], times: list[float]) -> list[Series]:
    """Every call's counters at `times`: from 0 at the first to the call's total at the last."""
    last = len(times) - 1
    return [Series(metric, labels, [(moment, total * index // last) for index, moment in enumerate(times)])
            for call in calls
            for reporter in (["source"] if call.cluster else ["source", "destination"])
            for metric, labels, total in _counters(call, reporter)]


@contextlib.contextmanager
def serve(calls: list[Call], directory: Path) -> Iterator[PrometheusServer]:
    """A real Prometheus holding an hour of `calls`, the last sample ten minutes ago."""
    times = aligned_times(DURATION, STEP, time.time() - 600)
    with serve_series(series(calls, times), directory) as server:
        yield server
