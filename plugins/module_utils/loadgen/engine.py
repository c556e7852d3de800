# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The local load engine: open-loop, constant-rate HTTP/1.1 requests from one asyncio loop.

Open loop, because a closed loop hides stalls. A client that waits for each answer before it
sends the next request sends nothing while the server stalls, so the stall shows up as one slow
request and a lower rate instead of as the hundreds of requests that were due during it
("coordinated omission"). Here request i is due at start + i / qps whatever happened before, and
its latency is counted from that intended send time: a request that waited for a free connection
because the server stalled is charged the wait.

One event loop and a small HTTP/1.1 client protocol, because that is what reaches the rates
accurately in Python: threads with http.client spend their time on the GIL and on header
parsing, and their sleeps wake up late. The loop uses select(), whose timeout has microsecond
resolution, where epoll rounds every timeout up to a whole millisecond; every late wake-up would
be charged to latency. select() handles descriptors below 1024, so runs with more than
SELECT_LIMIT connections use the platform's default selector.

Each of `connections` keep-alive connections carries one request at a time (no pipelining); they
take the due requests in order. Every request due within the run is sent, late if all connections
are busy, except one that is more than `timeout` late: it is not sent, and counts as a `not_sent`
error with the latency it had reached, so a server that stalls at the very end of a run still
shows. `qps` 0 is a closed loop at full speed, for finding the maximum rate, where latency is
counted from the actual send.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import asyncio
import contextlib
import datetime
import math
import selectors
import socket
import ssl
import time
from urllib.parse import urlsplit

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.histogram import Histogram

# fortio's code for a call that got no HTTP status (connection error, timeout, bad response).
SOCKET_ERROR = -1
ERROR_KINDS = ("timeout", "connection_refused", "connection_reset", "protocol", "tls", "not_sent",
               "other")
SELECT_LIMIT = 500
MAX_HEAD_BYTES = 64 * 1024
IDEMPOTENT_METHODS = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"))
USER_AGENT = "meshtune.mesh load_test"
# Connections are opened before the clock starts; the first request is due this much later.
START_LEAD = 0.01
# Requests time out at most 1/TIMEOUT_TICKS of the timeout (and at most 50 ms) late.
TIMEOUT_TICKS = 20


def is_ok_code(code):
    """fortio's codeIsOK: 2xx, and 418 which fortio's echo server sends on purpose."""
    return 200 <= code <= 299 or code == 418


class LoadError(Exception):
    """The run could not start (for example, the host name does not resolve)."""


class Target:
    """Where the requests go: scheme, host, port, request path and Host header."""

    def __init__(self, scheme, host, port, path, host_header):
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
        self.host_header = host_header


def parse_url(url):
    """The Target of an http:// or https:// URL; ValueError saying what is wrong otherwise."""
    if not isinstance(url, str) or not url or any(ord(char) <= 32 or ord(char) == 127 for char in url):
        raise ValueError("an http:// or https:// URL without spaces or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a URL without credentials (send them with headers, e.g. Authorization)")
    try:
        port = parts.port
    except ValueError as err:
        raise ValueError("a URL with a port from 1 to 65535") from err
    host = parts.hostname
    if not host:
        raise ValueError("a URL with a host, such as http://127.0.0.1:8080/")
    if port == 0:
        raise ValueError("a URL with a port from 1 to 65535")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, host, port or (443 if scheme == "https" else 80), path, parts.netloc)


def build_request(target, method, headers, body):
    """The bytes of one request, built once and sent as is."""
    names = {name.lower() for name in headers}
    lines = [f"{method} {target.path} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {target.host_header}")
    if "user-agent" not in names:
        lines.append(f"User-Agent: {USER_AGENT}")
    for name, value in headers.items():
        lines.append(f"{name}: {value}")
    if (body or method in ("POST", "PUT", "PATCH")) and "content-length" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


class LoadSpec:
    """What to send, how fast and for how long. Times are seconds.

    Exactly one of `duration` and `requests` is set. `warmup` seconds of load at the same rate
    come first and are left out of every figure. `timeout` limits each request from its actual
    send (connecting included), and how late a request may be sent. `progress`, when set, is
    called every `progress_interval`
    seconds with a dict: elapsed, phase (warmup or measure), sent, rate (requests sent per second
    over the last interval), p99_ms (so far) and errors.
    """

    def __init__(self, url, method="GET", headers=None, body=b"", qps=0.0, connections=1,
                 duration=None, requests=None, warmup=0.0, timeout=5.0, validate_certs=True,
                 progress_interval=0.0, progress=None):
        if (duration is None) == (requests is None):
            raise ValueError("set exactly one of duration and requests")
        self.url = url
        self.method = method.upper()
        self.headers = dict(headers or {})
        self.body = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        self.qps = float(qps)
        self.connections = int(connections)
        self.duration = None if duration is None else float(duration)
        self.requests = None if requests is None else int(requests)
        self.warmup = float(warmup)
        self.timeout = float(timeout)
        self.validate_certs = validate_certs
        self.progress_interval = float(progress_interval)
        self.progress = progress


class RunResult:
    """Figures of one run; fortio_format.result_from_run turns it into fortio's JSON shape.

    histogram: latency of every measured request, from its intended send time (errors included,
    as in fortio's DurationHistogram); errors_histogram: the same for failed requests only;
    service_histogram: from the actual send, what a closed-loop tool would have reported.
    sent: measured requests sent; not_sent: measured requests dropped for being more than the
    timeout late (in histogram and errors_histogram, code SOCKET_ERROR, kind not_sent).
    window: seconds the measured requests were sent over, from the first intended send to the
    last actual one plus one interval; achieved_qps = sent / window.
    """

    def __init__(self, spec):
        self.spec = spec
        self.start_time = None
        self.histogram = Histogram()
        self.errors_histogram = Histogram()
        self.service_histogram = Histogram()
        self.codes = {}
        self.error_kinds = {}
        self.sent = 0
        self.not_sent = 0
        self.planned = None
        self.warmup_sent = 0
        self.window = 0.0
        self.achieved_qps = 0.0
        self.sockets = 0
        self.elapsed = 0.0

    @property
    def ok(self):
        return sum(count for code, count in self.codes.items() if is_ok_code(code))


class _ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.x response."""


class _ClosedEarly(Exception):
    """The connection ended before the response did; `received` says how many bytes came."""

    def __init__(self, received):
        super().__init__(f"connection closed after {received} bytes of response")
        self.received = received


class _Expired(Exception):
    """No complete response within the request timeout."""


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time."""

    def __init__(self, loop, head):
        self.loop = loop
        self.head = head
        self.transport = None
        self.waiter = None
        self.deadline = None
        self.reusable = True
        self.buffer = bytearray()
        self._reset()

    def _reset(self):
        self.buffer.clear()
        self.code = None
        self.mode = None
        self.remaining = 0
        self.keep_alive = True
        self.received = 0
        self.chunk_pos = 0
        self.in_trailer = False

    def connection_made(self, transport):
        self.transport = transport

    def send(self, request, deadline):
        self._reset()
        self.waiter = self.loop.create_future()
        self.deadline = deadline
        self.transport.write(request)
        return self.waiter

    def overdue(self, now):
        return self.waiter is not None and not self.waiter.done() and now >= self.deadline

    def expire(self):
        self._fail(_Expired())

    def close(self):
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, error):
        self.reusable = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data):
        waiter = self.waiter
        if waiter is None or waiter.done():
            self._fail(_ProtocolError("bytes arrived with no request outstanding"))
            return
        self.received += len(data)
        try:
            done = self._feed(data)
        except _ProtocolError as err:
            self._fail(err)
            return
        if done:
            if not self.keep_alive:
                self.reusable = False
                self.transport.close()
            waiter.set_result(self.code)

    def eof_received(self):
        return False  # let the transport close; connection_lost settles the waiter

    def connection_lost(self, exc):
        self.reusable = False
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if exc is None and self.mode == "close":
            waiter.set_result(self.code)
        elif exc is None:
            waiter.set_exception(_ClosedEarly(self.received))
        else:
            waiter.set_exception(exc)

    def _feed(self, data):
        """True when the response is complete."""
        if self.mode == "length":
            self.remaining -= len(data)
            if self.remaining < 0:
                raise _ProtocolError("more bytes than Content-Length")
            return self.remaining == 0
        self.buffer += data
        while self.mode is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD_BYTES:
                    raise _ProtocolError("response head larger than 64 KiB")
                return False
            self._parse_head(bytes(self.buffer[:end]))
            del self.buffer[:end + 4]
            if self.mode == "interim":
                self.mode = None
        if self.mode == "length":
            self.remaining -= len(self.buffer)
            self.buffer.clear()
            if self.remaining < 0:
                raise _ProtocolError("more bytes than Content-Length")
            return self.remaining == 0
        if self.mode == "none":
            if self.buffer:
                raise _ProtocolError("bytes after a response without body")
            return True
        if self.mode == "chunked":
            return self._parse_chunks()
        self.buffer.clear()
        return False  # "close": the body ends with the connection

    def _parse_head(self, head):
        """Status code and how the body ends. Looks up only the three headers that matter, in
        the lower-cased head, instead of splitting every line: this runs once per request."""
        line_end = head.find(b"\r\n")
        status = (head if line_end < 0 else head[:line_end]).split(None, 2)
        if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or len(status[1]) != 3 or \
                not status[1].isdigit():
            raise _ProtocolError("not an HTTP/1.x status line")
        code = int(status[1])
        fields = head[line_end:].lower() if line_end >= 0 else b""
        length = _field(fields, b"\r\ncontent-length:")
        if length is not None:
            try:
                length = int(length)
            except ValueError as err:
                raise _ProtocolError("bad Content-Length") from err
            if length < 0:
                raise _ProtocolError("bad Content-Length")
        chunked = b"chunked" in (_field(fields, b"\r\ntransfer-encoding:") or b"")
        connection = _field(fields, b"\r\nconnection:") or b""
        self.code = code
        if 100 <= code < 200 and code != 101:
            self.mode = "interim"
            return
        if status[0] == b"HTTP/1.0":
            self.keep_alive = b"keep-alive" in connection
        else:
            self.keep_alive = b"close" not in connection
        if self.head or code in (204, 304) or code < 200:
            self.mode = "none"
        elif chunked:
            self.mode = "chunked"
        elif length is not None:
            self.mode = "length"
            self.remaining = length
        else:
            self.mode = "close"
            self.keep_alive = False

    def _parse_chunks(self):
        buffer = self.buffer
        position = self.chunk_pos
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                if len(buffer) - position > MAX_HEAD_BYTES:
                    raise _ProtocolError("chunk header too long")
                self.chunk_pos = position
                return False
            if self.in_trailer:
                if line_end == position:
                    if line_end + 2 != len(buffer):
                        raise _ProtocolError("bytes after the last chunk")
                    return True
                position = line_end + 2
                continue
            size_text = bytes(buffer[position:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError as err:
                raise _ProtocolError("bad chunk size") from err
            if size == 0:
                self.in_trailer = True
                position = line_end + 2
                continue
            data_end = line_end + 2 + size
            if len(buffer) < data_end + 2:
                self.chunk_pos = position
                return False
            if buffer[data_end:data_end + 2] != b"\r\n":
                raise _ProtocolError("chunk not followed by CRLF")
            # Drop what was read, so long bodies do not pile up.
            del buffer[:data_end + 2]
            position = 0


def _field(fields, name):
    """The value of the first header `name` (b"\\r\\nname:", lower case) in `fields`, or None."""
    start = fields.find(name)
    if start < 0:
        return None
    start += len(name)
    end = fields.find(b"\r\n", start)
    return fields[start:end if end >= 0 else len(fields)].strip()


def _error_kind(error):
    if isinstance(error, (asyncio.TimeoutError, _Expired, socket.timeout)):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(error, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, _ClosedEarly)):
        return "connection_reset"
    if isinstance(error, _ProtocolError):
        return "protocol"
    if isinstance(error, ssl.SSLError):
        return "tls"
    return "other"


class _Run:
    """The state of one run inside its event loop."""

    def __init__(self, spec, target, loop):
        self.spec = spec
        self.target = target
        self.loop = loop
        self.request = build_request(target, spec.method, spec.headers, spec.body)
        self.head = spec.method == "HEAD"
        self.retry_stale = spec.method in IDEMPOTENT_METHODS
        self.result = RunResult(spec)
        self.connections = [None] * spec.connections
        self.address = None
        self.ssl_context = None
        self.open_loop = spec.qps > 0
        self.interval = 1.0 / spec.qps if self.open_loop else 0.0
        self.next_index = 0
        self.warmup_requests = 0
        self.last_index = None
        self.measured_taken = 0
        self.issued = 0
        self.first_send = None
        self.last_send = None
        self.last_done = None
        self.t0 = None
        self.measured_start = None
        self.deadline = None
        if self.open_loop:
            # Requests due before `warmup` seconds are the warm-up; the measured ones follow.
            self.warmup_requests = math.ceil(spec.warmup * spec.qps - 1e-9)
            planned = spec.requests if spec.requests is not None else \
                int(spec.duration * spec.qps + 1e-9)
            self.result.planned = planned
            self.last_index = self.warmup_requests + planned
        else:
            self.result.planned = spec.requests

    async def run(self):
        spec = self.spec
        await self._resolve()
        await asyncio.gather(*(self._preconnect(slot) for slot in range(spec.connections)))
        self.t0 = self.loop.time() + START_LEAD
        if self.open_loop:
            self.measured_start = self.t0 + self.warmup_requests * self.interval
        else:
            self.measured_start = self.t0 + spec.warmup
            if spec.duration is not None:
                self.deadline = self.measured_start + spec.duration
        wall = time.time() + (self.measured_start - self.loop.time())
        self.result.start_time = datetime.datetime.fromtimestamp(wall).astimezone()
        worker = self._open_worker if self.open_loop else self._closed_worker
        helpers = [self.loop.create_task(self._watchdog())]
        if spec.progress is not None and spec.progress_interval > 0:
            helpers.append(self.loop.create_task(self._progress()))
        try:
            await asyncio.gather(*(worker(slot) for slot in range(spec.connections)))
        finally:
            for helper in helpers:
                helper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await helper
            for connection in self.connections:
                if connection is not None:
                    connection.close()
        self._finish()
        return self.result

    async def _resolve(self):
        target = self.target
        if target.scheme == "https":
            self.ssl_context = ssl.create_default_context()
            if not self.spec.validate_certs:
                self.ssl_context.check_hostname = False
                self.ssl_context.verify_mode = ssl.CERT_NONE
        try:
            infos = await self.loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except OSError as err:
            raise LoadError(f"cannot resolve {target.host}: {err}") from err
        family, _type, _proto, _name, address = infos[0]
        self.address = (family, address)

    async def _connect(self, deadline):
        remaining = deadline - self.loop.time()
        if remaining <= 0:
            raise asyncio.TimeoutError()
        family, address = self.address
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(self.loop.sock_connect(sock, address), remaining)
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError()
            _transport, connection = await asyncio.wait_for(self.loop.create_connection(
                lambda: _Connection(self.loop, self.head), sock=sock, ssl=self.ssl_context,
                server_hostname=self.target.host if self.ssl_context else None), remaining)
        except BaseException:
            sock.close()
            raise
        self.result.sockets += 1
        return connection

    async def _preconnect(self, slot):
        """Open the connections before the clock starts; failures count later, per request."""
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            self.connections[slot] = await self._connect(self.loop.time() + self.spec.timeout)

    async def _open_worker(self, slot):
        loop = self.loop
        while True:
            index = self.next_index
            if index >= self.last_index:
                return
            self.next_index = index + 1
            intended = self.t0 + index * self.interval
            delay = intended - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > self.spec.timeout:
                self._not_sent(intended, index >= self.warmup_requests)
                continue
            await self._one(slot, intended, index >= self.warmup_requests)

    async def _closed_worker(self, slot):
        spec = self.spec
        loop = self.loop
        delay = self.t0 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        while True:
            now = loop.time()
            measured = now >= self.measured_start
            if measured:
                if self.deadline is not None and now >= self.deadline:
                    return
                if spec.requests is not None:
                    if self.measured_taken >= spec.requests:
                        return
                    self.measured_taken += 1
            await self._one(slot, now, measured)

    async def _one(self, slot, intended, measured):
        loop = self.loop
        sent = loop.time()
        self.issued += 1
        code, kind = await self._exchange(slot, sent)
        done = loop.time()
        result = self.result
        if not measured:
            result.warmup_sent += 1
            return
        latency = done - intended
        result.histogram.record(latency)
        result.service_histogram.record(done - sent)
        if not is_ok_code(code):
            result.errors_histogram.record(latency)
        result.codes[code] = result.codes.get(code, 0) + 1
        if kind is not None:
            result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1
        result.sent += 1
        if self.first_send is None or sent < self.first_send:
            self.first_send = sent
        if self.last_send is None or sent > self.last_send:
            self.last_send = sent
        if self.last_done is None or done > self.last_done:
            self.last_done = done

    def _not_sent(self, intended, measured):
        """A request more than the timeout late: recorded with its lateness, never sent."""
        result = self.result
        if not measured:
            result.warmup_sent += 1
            return
        latency = self.loop.time() - intended
        result.histogram.record(latency)
        result.errors_histogram.record(latency)
        result.codes[SOCKET_ERROR] = result.codes.get(SOCKET_ERROR, 0) + 1
        result.error_kinds["not_sent"] = result.error_kinds.get("not_sent", 0) + 1
        result.not_sent += 1

    async def _exchange(self, slot, sent):
        """(status code, None) or (SOCKET_ERROR, error kind) for one request on one connection."""
        deadline = sent + self.spec.timeout
        for attempt in (0, 1):
            connection = self.connections[slot]
            fresh = False
            if connection is None or not connection.reusable:
                if connection is not None:
                    connection.close()
                self.connections[slot] = None
                try:
                    connection = await self._connect(deadline)
                except (OSError, asyncio.TimeoutError) as err:
                    return SOCKET_ERROR, _error_kind(err)
                self.connections[slot] = connection
                fresh = True
            waiter = connection.send(self.request, deadline)
            try:
                return await waiter, None
            except (_ClosedEarly, ConnectionResetError, BrokenPipeError) as err:
                # A kept-alive connection the server closed while idle: send once more on a new
                # one, as HTTP clients do for idempotent requests.
                stale = not fresh and getattr(err, "received", 0) == 0
                if not (stale and attempt == 0 and self.retry_stale):
                    return SOCKET_ERROR, _error_kind(err)
            except (_Expired, _ProtocolError, OSError, asyncio.TimeoutError) as err:
                return SOCKET_ERROR, _error_kind(err)
        return SOCKET_ERROR, "connection_reset"

    async def _watchdog(self):
        """Expires overdue requests. One sweep every TIMEOUT_TICKS-th of the timeout (at most
        every 50 ms) instead of a timer per request: at thousands of requests per second the
        timers' heap would cost more than the sweep over the connections."""
        tick = min(0.05, self.spec.timeout / TIMEOUT_TICKS)
        while True:
            await asyncio.sleep(tick)
            now = self.loop.time()
            for connection in self.connections:
                if connection is not None and connection.overdue(now):
                    connection.expire()

    async def _progress(self):
        loop = self.loop
        interval = self.spec.progress_interval
        tick = self.t0
        last_issued = 0
        last_time = loop.time()
        while True:
            tick += interval
            delay = tick - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            span = now - last_time
            self.spec.progress({
                "elapsed": now - self.t0,
                "phase": "measure" if now >= self.measured_start else "warmup",
                "sent": self.result.sent,
                "rate": (self.issued - last_issued) / span if span > 0 else 0.0,
                "p99_ms": self.result.histogram.percentile(99.0) * 1000.0,
                "errors": self.result.errors_histogram.count,
            })
            last_issued, last_time = self.issued, now

    def _finish(self):
        result = self.result
        spec = self.spec
        result.elapsed = self.loop.time() - self.t0
        if self.open_loop:
            last = (self.last_send - self.measured_start) if self.last_send is not None else 0.0
            result.window = max(last, (result.planned - 1) * self.interval) + self.interval
        elif spec.duration is not None:
            result.window = spec.duration
        elif self.first_send is not None:
            result.window = self.last_done - self.first_send
        result.achieved_qps = result.sent / result.window if result.window > 0 else 0.0


def run_load(spec):
    """Run the load described by `spec` and return its RunResult (LoadError if it cannot start)."""
    target = parse_url(spec.url)
    small = spec.connections <= SELECT_LIMIT
    selector = selectors.SelectSelector() if small else selectors.DefaultSelector()
    loop = asyncio.SelectorEventLoop(selector)
    try:
        return loop.run_until_complete(_Run(spec, target, loop).run())
    finally:
        try:
            if hasattr(loop, "shutdown_default_executor"):
                loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
