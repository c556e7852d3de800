"""A stand-in for one injected pod's merged-metrics endpoint (:15020/stats/prometheus)."""

from __future__ import annotations

from tests.support.http_stub import MetricsEndpoint

# What a reviews pod's sidecar exposes (a few of its series): Istio standard metrics carry
# no pod or namespace labels, the scrape job adds them.
PROXY_METRICS = """\
# TYPE istio_requests_total counter
istio_requests_total{reporter="destination",source_workload="productpage-v1",source_workload_namespace="shop",\
destination_workload="reviews-v1",destination_workload_namespace="shop",\
destination_service="reviews.shop.svc.cluster.local",request_protocol="http",response_code="200",\
response_flags="-",connection_security_policy="mutual_tls"} 1234
# TYPE istio_build gauge
istio_build{component="proxy",tag="1.24.3"} 1
"""


class ProxyMetricsExporter(MetricsEndpoint):
    """Serves PROXY_METRICS on 127.0.0.1 at `path`; counts the scrapes it answered."""

    def __init__(self, path: str = "/stats/prometheus"):
        super().__init__(path)

    def body(self) -> str:
        return PROXY_METRICS
