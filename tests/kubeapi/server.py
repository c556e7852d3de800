"""HTTP transport for the test API server: threads, keep-alive, chunked watch streams."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TextIO
from urllib.parse import parse_qsl, urlsplit

import yaml

from .api import KubeAPI, Request, Response, Target
from .errors import ApiError, conflict
from .faults import FaultInjector, FaultPlan


class Stats:
    """Request counts by verb and by resource, for benchmarks that count API calls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.total = 0
            self.by_verb: Counter = Counter()
            self.by_resource: dict[str, Counter] = {}

    def count(self, verb: str, resource: str) -> None:
        with self._lock:
            self.total += 1
            self.by_verb[verb] += 1
            self.by_resource.setdefault(resource, Counter())[verb] += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {"total": self.total, "by_verb": dict(self.by_verb),
                    "by_resource": {k: dict(v) for k, v in self.by_resource.items()}}


class KubeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, api: KubeAPI, faults: FaultInjector,
                 access_log: TextIO | None = None) -> None:
        super().__init__(address, Handler)
        self.api = api
        self.faults = faults
        self.stats = Stats()
        self.access_log = access_log
        self._log_lock = threading.Lock()

    def log_access(self, method: str, path: str, headers, code: int, seconds: float) -> None:
        """One line per request with the media types, to see what a real client sends and expects,
        and the time the server took (a watch: until its first response)."""
        if self.access_log is None:
            return
        line = (f"{method} {path} {code} {seconds * 1000:.1f}ms "
                f"content-type={headers.get('Content-Type') or '-'} "
                f"accept={headers.get('Accept') or '-'}\n")
        with self._log_lock:
            self.access_log.write(line)
            self.access_log.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small responses on keep-alive connections: no 40 ms stalls
    server: KubeHTTPServer

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        """Quiet: tests read `/_stats`; `--access-log` writes the server's own request log."""

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        started = time.monotonic()
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(method, url.path, dict(parse_qsl(url.query, keep_blank_values=True)),
                          self.headers.get("Content-Type") or "application/json", body,
                          self.headers.get("Accept") or "")
        try:
            if url.path.startswith("/_"):
                response = self._control(request)
            elif url.path in ("/healthz", "/readyz", "/livez"):
                response = Response(200, "ok", headers={"Content-Type": "text/plain"})
            else:
                response = self._api(request)
                if response is None:
                    return
        except ApiError as err:
            response = Response(err.code, err.status(), headers=err.headers)
        except Exception as err:  # noqa: BLE001 - a server answers 500, it does not die
            response = Response(500, ApiError(500, f"internal error: {err!r}").status())
        self.server.log_access(method, self.path, self.headers, response.code,
                               time.monotonic() - started)
        self._send(response)

    def _api(self, request: Request) -> Response | None:
        api = self.server.api
        resolved = api.resolve(request.path)
        if isinstance(resolved, Target):
            verb = api.verb(request.method, resolved, request.query)
            self.server.stats.count(verb, resolved.verb_resource)
            fault = self.server.faults.draw(verb)
            if fault == "reset":
                self._reset_connection()
                return None
            if fault:
                raise _fault_error(fault, resolved)
        return api.handle(request)

    def _control(self, request: Request) -> Response:
        """Test-only endpoints: `/_stats`, `/_faults` and `/_pods/{ns}/{name}/log`."""
        server = self.server
        if request.path == "/_stats":
            if request.method == "DELETE":
                server.stats.reset()
            return Response(200, {"requests": server.stats.snapshot(),
                                  "faults": server.faults.snapshot(),
                                  "objects": server.api.store.revision})
        if request.path == "/_faults":
            if request.method == "PUT":
                spec = json.loads(request.body or b"{}")
                try:
                    server.faults.configure(FaultPlan(
                        rate=float(spec.get("rate", 0)), kinds=list(spec.get("faults", ["500"])),
                        seed=spec.get("seed"), verbs=spec.get("verbs")))
                except ValueError as err:
                    raise ApiError(400, str(err)) from err
            return Response(200, server.faults.snapshot())
        parts = request.path.strip("/").split("/")
        if len(parts) == 4 and parts[0] == "_pods" and parts[3] == "log" and request.method == "PUT":
            server.api.pod_logs[(parts[1], parts[2])] = request.body.decode()
            return Response(200, {"ok": True})
        raise ApiError(404, "the server could not find the requested resource")

    def _send(self, response: Response) -> None:
        headers = {"Content-Type": "application/json", "Cache-Control": "no-cache, private",
                   **response.headers}
        if response.stream is not None:
            self._send_stream(response, headers)
            return
        if isinstance(response.body, bytes):
            payload = response.body
        elif isinstance(response.body, str):
            payload = response.body.encode()
        else:
            payload = json.dumps(response.body, separators=(",", ":")).encode()
        self.send_response(response.code)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _send_stream(self, response: Response, headers: dict) -> None:
        self.send_response(200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in response.stream:
                line = json.dumps(event, separators=(",", ":")).encode() + b"\n"
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _reset_connection(self) -> None:
        """Drop the connection with a TCP reset, as a crashed or overloaded peer does."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


def _fault_error(fault: str, target: Target) -> ApiError:
    if fault == "409":
        return conflict(target.rtype, target.name or target.rtype.plural,
                        "the object has been modified; please apply your changes to the latest "
                        "version and try again")
    if fault == "429":
        return ApiError(429, "Too many requests, please try again later.",
                        details={"retryAfterSeconds": 1}, headers={"Retry-After": "1"})
    return ApiError(500, "Internal error occurred: injected fault", reason="InternalError")


def kubeconfig(server_url: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "kubeapi",
        "clusters": [{"name": "kubeapi", "cluster": {"server": server_url}}],
        "users": [{"name": "kubeapi-admin", "user": {"token": "kubeapi-test-token"}}],
        "contexts": [{"name": "kubeapi", "context": {"cluster": "kubeapi", "user": "kubeapi-admin",
                                                     "namespace": "default"}}],
        "preferences": {},
    }


def write_kubeconfig(path: Path, server_url: str) -> None:
    """Write atomically, so a reader polling for the file never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(yaml.safe_dump(kubeconfig(server_url), sort_keys=False))
    partial.replace(path)
