"""A stand-in for one injected pod's merged-metrics endpoint (:15020/stats/prometheus)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


class ProxyMetricsExporter:
    """Serves PROXY_METRICS on 127.0.0.1 at `path`; counts the scrapes it answered."""

    def __init__(self, path: str = "/stats/prometheus"):
        self.path = path
        self.scrapes = 0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != exporter.path:
                    self.send_error(404)
                    return
                exporter.scrapes += 1
                body = PROXY_METRICS.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ProxyMetricsExporter:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
