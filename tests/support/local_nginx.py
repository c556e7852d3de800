"""nginx on a free 127.0.0.1 port, with its configuration and logs in a directory of ours.

Used as a fast, well-known HTTP server to load: tests check the load engine's rate against it,
the benchmark compares the engine with wrk on it. One worker process, so the load generator has
the other core of a two-core machine.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# 612 bytes: the size of nginx's default index page, which published wrk figures use.
BODY = "x" * 611 + "\n"

CONFIG = """\
worker_processes 1;
daemon off;
master_process on;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format stamp '$msec $status';
    access_log {access_log};
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type text/plain;
            return 200 "{body}";
        }}
    }}
}}
"""


@dataclass
class Nginx:
    port: int
    root: Path
    access_log: Path | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def access_times(self) -> list[float]:
        """Arrival times ($msec) of the requests nginx logged, in log order."""
        if self.access_log is None:
            raise ValueError("nginx was started without an access log")
        return [float(line.split()[0]) for line in self.access_log.read_text().splitlines() if line]

    def logged_arrivals(self, expected: int) -> list[float]:
        """access_times() once the log holds `expected` lines (or after 2 s): nginx writes a line
        after it has sent the response, so the last lines may trail the client's end by a moment."""
        deadline = time.monotonic() + 2.0
        arrivals = self.access_times()
        while len(arrivals) < expected and time.monotonic() < deadline:
            time.sleep(0.01)
            arrivals = self.access_times()
        return arrivals


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def nginx_program() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if Path(path).exists()), None)


def _wait_listening(port: int, process: subprocess.Popen, root: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = root / "error.log"
            messages = process.stderr.read().decode(errors="replace") if process.stderr else ""
            if log.exists():
                messages += log.read_text(errors="replace")
            raise RuntimeError(f"nginx exited: {messages}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.02)
    raise RuntimeError("nginx did not start listening within 10 s")


@contextlib.contextmanager
def run_nginx(root: Path, program: str, log_requests: bool = False) -> Iterator[Nginx]:
    """nginx serving 612 bytes at / on 127.0.0.1; stopped when the block ends."""
    root.mkdir(parents=True, exist_ok=True)
    access_log = root / "access.log" if log_requests else None
    for _attempt in range(5):
        port = free_port()
        config = root / "nginx.conf"
        config.write_text(CONFIG.format(
            root=root, port=port, body=BODY.replace("\n", "\\n"),
            access_log=f"{access_log} stamp" if access_log else "off"))
        process = subprocess.Popen([program, "-p", str(root), "-c", str(config)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_listening(port, process, root)
        except RuntimeError:
            process.kill()
            process.wait()
            if "Address already in use" in str(sys.exc_info()[1]):
                continue  # another process took the port between free_port() and nginx
            raise
        try:
            yield Nginx(port, root, access_log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return
    raise RuntimeError("no free port for nginx after 5 attempts")
