"""Small HTTP servers on 127.0.0.1 for tests: a handler class served from a thread."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps test output clean and answers with one call."""

    def reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class StubServer(ThreadingHTTPServer):
    """A threading HTTP server on a free 127.0.0.1 port."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        super().__init__(("127.0.0.1", 0), handler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def serving(server: StubServer) -> Iterator[StubServer]:
    """Serve from a thread while in the block; shut down and close afterwards."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class MetricsEndpoint:
    """Serves body() as Prometheus text at `path` while in a `with` block; counts the scrapes."""

    def __init__(self, path: str):
        self.path = path
        self.scrapes = 0
        endpoint = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                if self.path != endpoint.path:
                    self.send_error(404)
                    return
                endpoint.scrapes += 1
                self.reply(200, "text/plain; version=0.0.4", endpoint.body().encode())

        self.server = StubServer(Handler)
        self.port = self.server.port
        self._serving = serving(self.server)

    def body(self) -> str:
        raise NotImplementedError

    def __enter__(self):
        self._serving.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._serving.__exit__(*exc)
