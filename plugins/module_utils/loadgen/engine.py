# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The local load engine: open-loop, constant-rate HTTP/1.1 requests from one selector per process.

Open loop, because a closed loop hides stalls. A client that waits for each answer before it
sends the next request sends nothing while the server stalls, so the stall shows up as one slow
request and a lower rate instead of as the hundreds of requests that were due during it
("coordinated omission"). Here request i is due at start + i / qps whatever happened before, and
its latency is counted from that intended send time: a request that waited for a free connection
because the server stalled is charged the wait.

One process drives many non-blocking keep-alive connections from one selector, because that
is what reaches the rates accurately in Python: threads with http.client spend their time on the
GIL and on header parsing, and their sleeps wake up late. For http://, each connection's socket
is read and written directly (_PlainSlot, _SelectorDriver): the call that reads the last byte of
a response records it and sends the connection's next request, with no event loop, transport,
task or callback handle per request, and latencies are recorded into the histograms in batches.
That takes about a third of the CPU time per request that asyncio's transports and protocols
took. https:// runs on an asyncio event loop, whose SSL transports do the TLS
(_Connection, _AsyncioDriver); the schedule, the bookkeeping (_Slot, _Run) and the response
parser (_ResponseReader) are the same for both. Open-loop runs wait with select(), whose timeout
has microsecond resolution, where epoll rounds every timeout up to a whole millisecond; every
late wake-up would be charged to latency. select() handles descriptors below 1024, so a process
with more than SELECT_LIMIT connections, and closed-loop runs, which have no send times to keep,
use the platform's default selector.

Worker processes: one interpreter tops out at a few ten thousand requests per second on one
core, so a run can be split over `workers` processes, each with its own selector and its share
of the connections. Worker k of W takes the requests whose index is k modulo W, so together they
send exactly the constant-rate schedule; all start at one instant on the system-wide monotonic
clock. Their figures merge exactly (histograms add bucket by bucket, counts add) and the
achieved rate is computed over the common window, as for one process. The workers are forked
(the code that runs them may not be importable from a file, as inside an Ansible module), report
to the parent over a socket pair, always end with os._exit, and stop when the parent goes away;
a worker that fails or dies fails the run with a LoadError that names it. With `workers` 0 the
engine picks: one per AUTO_QPS_PER_WORKER requests per second asked for (one per CPU for qps 0),
at most one per CPU the process may run on and one per connection.

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
import collections
import contextlib
import datetime
import errno
import math
import os
import pickle
import selectors
import signal
import socket
import ssl
import struct
import time
import traceback
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
# workers 0: one worker process per this many requests per second asked for. One process holds
# a few thousand per second precisely beside its other work; below this, a second process only
# adds start-up time.
AUTO_QPS_PER_WORKER = 2000
# Latencies wait in a list until this many, then go into the histograms in one pass.
RECORD_BATCH = 512
# Parsed response heads kept per run: servers send the same head again and again, except for
# the Date header, which changes once a second.
HEAD_CACHE_SIZE = 64
# Bytes asked of the kernel per read of a plain connection.
RECEIVE_SIZE = 1 << 16
# The clock of the schedule, the same in every process: what asyncio's loop.time() reads too.
_clock = time.monotonic


def is_ok_code(code):
    """fortio's codeIsOK: 2xx, and 418 which fortio's echo server sends on purpose."""
    return 200 <= code <= 299 or code == 418


class LoadError(Exception):
    """The run could not start (for example, the host name does not resolve), or one of its
    worker processes failed."""


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
    send (connecting included), and how late a request may be sent. `workers` worker
    processes share the load (0: the engine picks, see resolve_workers). `progress`, when set,
    is called every `progress_interval` seconds with a dict: elapsed, phase (warmup or measure),
    sent, rate (requests sent per second over the last interval), p99_ms (so far) and errors,
    over all workers.
    """

    def __init__(self, url, method="GET", headers=None, body=b"", qps=0.0, connections=1,
                 duration=None, requests=None, warmup=0.0, timeout=5.0, validate_certs=True,
                 progress_interval=0.0, progress=None, workers=0):
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
        self.workers = int(workers)


class RunResult:
    """Figures of one run; fortio_format.result_from_run turns it into fortio's JSON shape.

    histogram: latency of every measured request, from its intended send time (errors included,
    as in fortio's DurationHistogram); errors_histogram: the same for failed requests only;
    service_histogram: from the actual send, what a closed-loop tool would have reported.
    sent: measured requests sent; not_sent: measured requests dropped for being more than the
    timeout late (in histogram and errors_histogram, code SOCKET_ERROR, kind not_sent).
    window: seconds the measured requests were sent over, from the first intended send to the
    last actual one plus one interval; achieved_qps = sent / window. workers: the worker
    processes that sent the load (1: the calling process itself).
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
        self.workers = 1

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


class _ResponseReader:
    """Reads the responses of one connection, one at a time, from the bytes as they arrive,
    whatever their split: `begin` before each request, `feed` with each piece of bytes (True
    once the response is complete, _ProtocolError if the bytes are not HTTP/1.x), and
    `ends_with_close` when the connection ends. Both transports use it."""

    def __init__(self, head_request, head_cache):
        self.head_request = head_request
        self.head_cache = head_cache
        self.buffer = bytearray()
        self.code = None
        self.mode = None
        self.remaining = 0
        self.keep_alive = True
        self.received = 0
        self.chunk_pos = 0
        self.in_trailer = False

    def begin(self):
        if self.buffer:
            self.buffer.clear()
        self.mode = None
        self.received = 0

    def ends_with_close(self):
        """Whether the end of the connection completes the response (a body without length)."""
        return self.mode == "close"

    def feed(self, data):
        """True when the response is complete."""
        self.received += len(data)
        if self.mode == "length":
            self.remaining -= len(data)
            if self.remaining < 0:
                raise _ProtocolError("more bytes than Content-Length")
            return self.remaining == 0
        if self.mode is None and not self.buffer:
            # The usual case: the whole head in the first bytes; read it without copying.
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                self._parse_head(data[:end])
                if self.mode == "length":
                    self.remaining -= len(data) - end - 4
                    if self.remaining < 0:
                        raise _ProtocolError("more bytes than Content-Length")
                    return self.remaining == 0
                if self.mode == "interim":
                    self.mode = None
                data = data[end + 4:]
        self.buffer += data
        return self._feed_buffer()

    def _feed_buffer(self):
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
        """Status code and how the body ends, from the head cache when the server sent the same
        head before (it usually has: only its Date changes, once a second)."""
        parsed = self.head_cache.get(head)
        if parsed is None:
            parsed = _read_head(head, self.head_request)
            if len(self.head_cache) >= HEAD_CACHE_SIZE:
                self.head_cache.clear()
            self.head_cache[head] = parsed
        self.code, self.mode, self.remaining, self.keep_alive = parsed
        if self.mode == "chunked":
            self.chunk_pos = 0
            self.in_trailer = False

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


def _read_head(head, head_request):
    """(code, how the body ends, Content-Length, keep-alive) of a response head. Looks up only
    the three headers that matter, in the lower-cased head, instead of splitting every line."""
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
    if 100 <= code < 200 and code != 101:
        return code, "interim", 0, True
    keep_alive = b"keep-alive" in connection if status[0] == b"HTTP/1.0" else \
        b"close" not in connection
    if head_request or code in (204, 304) or code < 200:
        return code, "none", 0, keep_alive
    if chunked:
        return code, "chunked", 0, keep_alive
    if length is not None:
        return code, "length", length, keep_alive
    return code, "close", 0, False


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


class _Plan:
    """The schedule of the whole run, the same in every worker: which requests are due when."""

    def __init__(self, spec):
        self.spec = spec
        self.open_loop = spec.qps > 0
        self.interval = 1.0 / spec.qps if self.open_loop else 0.0
        self.warmup_requests = 0
        self.last_index = None
        self.planned = spec.requests
        if self.open_loop:
            # Requests due before `warmup` seconds are the warm-up; the measured ones follow.
            self.warmup_requests = math.ceil(spec.warmup * spec.qps - 1e-9)
            self.planned = spec.requests if spec.requests is not None else \
                int(spec.duration * spec.qps + 1e-9)
            self.last_index = self.warmup_requests + self.planned

    def measured_start(self, t0):
        if self.open_loop:
            return t0 + self.warmup_requests * self.interval
        return t0 + self.spec.warmup

    def deadline(self, t0):
        """When a closed loop with a duration stops taking requests; None otherwise."""
        if self.open_loop or self.spec.duration is None:
            return None
        return self.measured_start(t0) + self.spec.duration


class _Share:
    """One worker's part: request indexes `index`, `index` + `workers`, ... of the open-loop
    schedule, `connections` of the connections and, closed loop, `requests` of the requests."""

    def __init__(self, index, workers, connections, requests):
        self.index = index
        self.workers = workers
        self.connections = connections
        self.requests = requests


def _shares(spec, plan, workers):
    shares = []
    for index in range(workers):
        connections = spec.connections // workers + (index < spec.connections % workers)
        requests = None
        if not plan.open_loop and spec.requests is not None:
            requests = spec.requests // workers + (index < spec.requests % workers)
        shares.append(_Share(index, workers, connections, requests))
    return shares


class _Slot:
    """One connection's place in the run: takes the due requests in order, one at a time. The
    driver's subclass sends each request (`send`) and reports its outcome (`finished`)."""

    def __init__(self, run):
        self.run = run
        self.intended = 0.0
        self.sent = 0.0
        self.measured = False
        self.retried = False
        self.fresh = False
        self.next = self.next_open if run.open_loop else self.next_closed

    def next_open(self, now):
        run = self.run
        while True:
            index = run.next_index
            if index >= run.last_index:
                run.slot_done()
                return
            run.next_index = index + run.step
            intended = run.t0 + index * run.interval
            measured = index >= run.warmup_requests
            if intended > now:
                run.wait_until(self, intended, measured)
                return
            if now - intended > run.timeout:
                run.not_sent(intended, measured, now)
                now = _clock()
                continue
            self.start(intended, measured, now)
            return

    def next_closed(self, now):
        run = self.run
        measured = now >= run.measured_start
        if measured:
            if run.deadline is not None and now >= run.deadline:
                run.slot_done()
                return
            if run.quota is not None:
                if run.taken >= run.quota:
                    run.slot_done()
                    return
                run.taken += 1
        self.start(now, measured, now)

    def resume(self):
        """Take the next due request (a timer's callback)."""
        self.next(_clock())

    def start_due(self, intended, measured):
        """Send the request due at `intended` (a timer's callback)."""
        self.start(intended, measured, _clock())

    def start(self, intended, measured, now):
        self.intended = intended
        self.measured = measured
        self.sent = now
        self.retried = False
        self.run.issued += 1
        self.send()

    def send(self):
        raise NotImplementedError

    def finished(self, code, error):
        """The outcome of the current request: record it and go on with the next one."""
        kind = None
        if error is not None:
            if isinstance(error, (_ClosedEarly, ConnectionResetError, BrokenPipeError)) and \
                    not self.fresh and not self.retried and self.run.retry_stale and \
                    getattr(error, "received", 0) == 0:
                # A kept-alive connection the server closed while idle: send once more on a new
                # one, as HTTP clients do for idempotent requests.
                self.retried = True
                self.send()
                return
            kind = _error_kind(error)
        self.next(self.run.record(self, code, kind))


class _PlainSlot(_Slot):
    """A slot of an http:// run that is its own connection: one non-blocking socket, which the
    run's selector reports readable or writable to `readable` and `writable`. A response is read
    and the next request sent in that one call: no transport, buffer or callback in between."""

    def __init__(self, run, driver):
        super().__init__(run)
        self.driver = driver
        self.selector = driver.selector
        self.sock = None
        self.connecting = False
        self.busy = False
        self.deadline = 0.0
        self.unsent = None
        self.reader = _ResponseReader(run.head, run.head_cache)

    def open(self):
        """Start connecting without waiting; OSError when that fails at once. The selector
        reports the outcome as writable."""
        family, address = self.run.address
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            error = sock.connect_ex(address)
            if error not in (0, errno.EINPROGRESS):
                raise OSError(error, os.strerror(error))
            self.selector.register(sock, selectors.EVENT_WRITE, self)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.connecting = True

    def send(self):
        if self.sock is not None:
            self.fresh = False
            self.transmit()
            return
        self.fresh = True
        self.busy = True
        self.deadline = self.sent + self.run.timeout
        if self.deadline <= _clock():
            self.driver.fail_soon(self, _Expired())
            return
        try:
            self.open()
        except OSError as err:
            self.driver.fail_soon(self, err)

    def transmit(self):
        self.reader.begin()
        self.busy = True
        self.deadline = self.sent + self.run.timeout
        request = self.run.request
        try:
            written = self.sock.send(request)
        except (BlockingIOError, InterruptedError):
            written = 0
        except OSError as err:
            self.fail(err)
            return
        if written < len(request):
            self.unsent = memoryview(request)[written:]
            self.selector.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self)

    def writable(self):
        sock = self.sock
        if self.connecting:
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                self.fail(OSError(error, os.strerror(error)))
                return
            self.connecting = False
            self.run.sockets += 1
            self.selector.modify(sock, selectors.EVENT_READ, self)
            if self.busy:
                self.transmit()
            return
        try:
            written = sock.send(self.unsent)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            self.fail(err)
            return
        self.unsent = self.unsent[written:]
        if not self.unsent:
            self.unsent = None
            self.selector.modify(sock, selectors.EVENT_READ, self)

    def readable(self):
        try:
            data = self.sock.recv(RECEIVE_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            self.fail(err)
            return
        if not data:
            self.ended()
            return
        if not self.busy:
            self.fail(_ProtocolError("bytes arrived with no request outstanding"))
            return
        reader = self.reader
        try:
            done = reader.feed(data)
        except _ProtocolError as err:
            self.fail(err)
            return
        if done:
            if not reader.keep_alive or self.unsent is not None:
                # An answer before the whole request went out: the rest would read as the next.
                self.close()
            self.busy = False
            self.finished(reader.code, None)

    def ended(self):
        """The server closed the connection: the end of a body without length, or an error."""
        self.close()
        if self.busy:
            self.busy = False
            if self.reader.ends_with_close():
                self.finished(self.reader.code, None)
            else:
                self.finished(SOCKET_ERROR, _ClosedEarly(self.reader.received))

    def fail(self, error):
        self.close()
        if self.busy:
            self.busy = False
            self.finished(SOCKET_ERROR, error)

    def expire_if_overdue(self, now):
        # Busy without a socket: its connection failed and the failure waits in fail_soon.
        if self.busy and now >= self.deadline and self.sock is not None:
            self.fail(_Expired())

    def close(self):
        sock = self.sock
        if sock is not None:
            self.sock = None
            self.connecting = False
            self.unsent = None
            self.selector.unregister(sock)
            sock.close()


class _Connection(asyncio.Protocol):
    """One keep-alive connection of an https:// run, as an asyncio protocol over a TLS
    transport, carrying one request at a time. It tells its slot the outcome of each request
    (`_Slot.finished`) from the callback that read the response's last byte or saw the
    connection fail: no future and no task wake-up per request."""

    def __init__(self, slot, reader):
        self.slot = slot
        self.reader = reader
        self.transport = None
        self.busy = False
        self.deadline = 0.0
        self.reusable = True

    def connection_made(self, transport):
        self.transport = transport

    def send(self, request, deadline):
        self.reader.begin()
        self.deadline = deadline
        self.busy = True
        self.transport.write(request)

    def overdue(self, now):
        return self.busy and now >= self.deadline

    def expire(self):
        self._fail(_Expired())

    def close(self):
        self.reusable = False
        self.busy = False
        if self.transport is not None:
            self.transport.abort()

    def _settle(self, code, error):
        self.busy = False
        self.slot.finished(code, error)

    def _fail(self, error):
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()
        if self.busy:
            self._settle(SOCKET_ERROR, error)

    def data_received(self, data):
        if not self.busy:
            self._fail(_ProtocolError("bytes arrived with no request outstanding"))
            return
        try:
            done = self.reader.feed(data)
        except _ProtocolError as err:
            self._fail(err)
            return
        if done:
            if not self.reader.keep_alive:
                self.reusable = False
                self.transport.close()
            self._settle(self.reader.code, None)

    def eof_received(self):
        return False  # let the transport close; connection_lost settles the request

    def connection_lost(self, exc):
        self.reusable = False
        if not self.busy:
            return
        if exc is None and self.reader.ends_with_close():
            self._settle(self.reader.code, None)
        elif exc is None:
            self._settle(SOCKET_ERROR, _ClosedEarly(self.reader.received))
        else:
            self._settle(SOCKET_ERROR, exc)


class _TlsSlot(_Slot):
    """A slot of an https:// run: its connections are _Connection protocols on an asyncio
    event loop, opened by a task (connecting is the slow path)."""

    def __init__(self, run, driver):
        super().__init__(run)
        self.driver = driver
        self.connection = None

    def send(self):
        connection = self.connection
        if connection is None or not connection.reusable:
            self.driver.spawn(self.reconnect())
            return
        self.fresh = False
        connection.send(self.run.request, self.sent + self.run.timeout)

    async def reconnect(self):
        run = self.run
        self.close()
        self.fresh = True
        try:
            connection = await self.driver.connect(self, self.sent + run.timeout)
        except (OSError, asyncio.TimeoutError) as err:
            self.finished(SOCKET_ERROR, err)
            return
        self.connection = connection
        connection.send(run.request, self.sent + run.timeout)

    def expire_if_overdue(self, now):
        connection = self.connection
        if connection is not None and connection.overdue(now):
            connection.expire()

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class _Run:
    """One worker's part of a run: its share of the schedule and its figures. A driver moves
    the bytes: _SelectorDriver for http://, _AsyncioDriver for https://."""

    def __init__(self, spec, target, address, loop, plan, share):
        self.spec = spec
        self.target = target
        self.address = address
        self.plan = plan
        self.request = build_request(target, spec.method, spec.headers, spec.body)
        self.head = spec.method == "HEAD"
        self.retry_stale = spec.method in IDEMPOTENT_METHODS
        self.head_cache = {}
        self.timeout = spec.timeout
        # Requests are expired by a sweep over the slots this often, instead of by a timer each.
        self.sweep_tick = min(0.05, spec.timeout / TIMEOUT_TICKS)
        self.ssl_context = _ssl_context(target, spec.validate_certs)
        self.open_loop = plan.open_loop
        self.interval = plan.interval
        self.warmup_requests = plan.warmup_requests
        self.last_index = plan.last_index
        self.worker = share.index
        self.next_index = share.index
        self.step = share.workers
        self.quota = share.requests
        self.taken = 0
        if self.ssl_context is None:
            self.driver = _SelectorDriver(self, _new_selector(plan, share.connections))
        else:
            self.driver = _AsyncioDriver(self, loop)
        self.wait_until = self.driver.wait_until
        self.slots = [self.driver.new_slot() for _slot in range(share.connections)]
        self.latencies = []
        self.service_times = []
        self.histogram = Histogram()
        self.errors_histogram = Histogram()
        self.service_histogram = Histogram()
        self.codes = {}
        self.error_kinds = {}
        self.sent = 0
        self.not_sent_count = 0
        self.warmup_sent = 0
        self.issued = 0
        self.sockets = 0
        self.first_send = math.inf
        self.last_send = -math.inf
        self.last_done = -math.inf
        self.t0 = None
        self.measured_start = None
        self.deadline = None
        self.active = 0

    async def run(self, start=None, progress=None, parent=None):
        """Connect, wait for the start instant (`start()` returns it; default: now), send, and
        return this worker's figures (see _combine). `progress(tick, snapshot)` is called every
        progress interval; `parent`, a socket that only ever becomes readable when the parent
        process is gone, ends the run early."""
        if progress is not None and self.spec.progress_interval <= 0:
            progress = None
        end = await self.driver.drive(start, progress, parent)
        return self._report(end)

    def begin(self, t0):
        """The clock starts: the first requests are due at t0."""
        self.t0 = t0
        self.measured_start = self.plan.measured_start(t0)
        self.deadline = self.plan.deadline(t0)
        self.active = len(self.slots)

    def slot_done(self):
        self.active -= 1
        if self.active == 0:
            self.driver.stop()

    def sweep(self, now):
        """Expire overdue requests. One sweep every TIMEOUT_TICKS-th of the timeout (at most
        every 50 ms) instead of a timer per request: at thousands of requests per second the
        timers would cost more than the sweep over the connections."""
        for slot in self.slots:
            slot.expire_if_overdue(now)

    def record(self, slot, code, kind):
        """The outcome of the slot's request; returns the time it was recorded at, which is when
        a closed loop sends the next request."""
        done = _clock()
        if not slot.measured:
            self.warmup_sent += 1
            return done
        latency = done - slot.intended
        self.latencies.append(latency)
        sent = slot.sent
        self.service_times.append(done - sent)
        if not (200 <= code <= 299 or code == 418):
            self.errors_histogram.record(latency)
        codes = self.codes
        codes[code] = codes.get(code, 0) + 1
        if kind is not None:
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1
        self.sent += 1
        if sent < self.first_send:
            self.first_send = sent
        if sent > self.last_send:
            self.last_send = sent
        self.last_done = done
        if len(self.latencies) >= RECORD_BATCH:
            self._flush()
        return done

    def not_sent(self, intended, measured, now):
        """A request more than the timeout late: recorded with its lateness, never sent."""
        if not measured:
            self.warmup_sent += 1
            return
        latency = now - intended
        self.latencies.append(latency)
        self.errors_histogram.record(latency)
        self.codes[SOCKET_ERROR] = self.codes.get(SOCKET_ERROR, 0) + 1
        self.error_kinds["not_sent"] = self.error_kinds.get("not_sent", 0) + 1
        self.not_sent_count += 1
        if len(self.latencies) >= RECORD_BATCH:
            self._flush()

    def _flush(self):
        self.histogram.record_many(self.latencies)
        self.service_histogram.record_many(self.service_times)
        self.latencies = []
        self.service_times = []

    def snapshot(self, now):
        self._flush()
        return {"elapsed": now - self.t0, "measured": now >= self.measured_start,
                "issued": self.issued, "sent": self.sent,
                "errors": self.errors_histogram.count, "histogram": self.histogram.copy()}

    def _report(self, end):
        """This worker's figures, as _combine takes them (plain data: it may cross processes)."""
        snapshot = self.snapshot(end)
        return {
            "t0": self.t0, "end": end, "snapshot": snapshot,
            "histogram": self.histogram, "errors_histogram": self.errors_histogram,
            "service_histogram": self.service_histogram, "codes": self.codes,
            "error_kinds": self.error_kinds, "sent": self.sent, "not_sent": self.not_sent_count,
            "warmup_sent": self.warmup_sent, "sockets": self.sockets,
            "first_send": self.first_send, "last_send": self.last_send,
            "last_done": self.last_done,
        }


class _SelectorDriver:
    """Runs an http:// run's slots (_PlainSlot) from one selector, in this call: the selector
    reports each socket to its slot, whose handler reads the response and sends the next
    request. Open loop, the requests that wait for their due time queue in `due` in time order
    (they are handed out in index order, so appending keeps the queue sorted) and the selector
    waits until the first of them; the timeout sweep and progress ticks share that wait."""

    def __init__(self, run, selector):
        self.run = run
        self.selector = selector
        self.due = collections.deque()
        self.failures = []

    def new_slot(self):
        return _PlainSlot(self.run, self)

    def wait_until(self, slot, when, measured):
        self.due.append((when, slot, measured))

    def fail_soon(self, slot, error):
        """A connection that failed as it was being opened, reported from the loop rather than
        from inside the send: a closed loop against a refused port would recurse otherwise."""
        self.failures.append((slot, error))

    def stop(self):
        """The loop in `_serve` ends by itself once no slot is active."""

    async def drive(self, start, progress, parent):
        """A coroutine only to share the entry with _AsyncioDriver: it never waits on an event
        loop."""
        run = self.run
        try:
            self._preconnect()
            run.begin(start() if start is not None else _clock() + START_LEAD)
            if parent is not None:
                self.selector.register(parent, selectors.EVENT_READ, None)
            self._wait_for_start()
            self._serve(progress)
            return _clock()
        finally:
            for slot in run.slots:
                slot.close()
            self.selector.close()

    def _preconnect(self):
        """Open the connections before the clock starts; failures count later, per request."""
        slots = self.run.slots
        limit = _clock() + self.run.timeout
        for slot in slots:
            with contextlib.suppress(OSError):
                slot.open()
        while any(slot.connecting for slot in slots):
            remaining = limit - _clock()
            if remaining <= 0:
                break
            self._dispatch(self.selector.select(remaining))
        for slot in slots:
            if slot.connecting:
                slot.close()

    def _wait_for_start(self):
        """Until the start instant, when every slot takes its first request."""
        run = self.run
        while True:
            now = _clock()
            if now >= run.t0:
                break
            self._dispatch(self.selector.select(run.t0 - now))
        for slot in run.slots:
            slot.next(_clock())

    def _serve(self, progress):
        """Send and read until every slot is done."""
        run = self.run
        select = self.selector.select
        dispatch = self._dispatch
        due = self.due
        tick = run.sweep_tick
        interval = run.spec.progress_interval
        next_sweep = _clock() + tick
        ticks = 0
        next_progress = run.t0 + interval if progress is not None else math.inf
        while run.active:
            if self.failures:
                failures, self.failures = self.failures, []
                for slot, error in failures:
                    slot.fail(error)
            now = _clock()
            while due and due[0][0] <= now:
                intended, slot, measured = due.popleft()
                slot.start(intended, measured, now)
                now = _clock()
            if now >= next_sweep:
                run.sweep(now)
                next_sweep = now + tick
            if now >= next_progress:
                ticks += 1
                progress(ticks, run.snapshot(now))
                next_progress = run.t0 + (ticks + 1) * interval
            if not run.active:
                break
            wake = now if self.failures else min(next_sweep, next_progress)
            if due and due[0][0] < wake:
                wake = due[0][0]
            dispatch(select(max(wake - _clock(), 0.0)))

    @staticmethod
    def _dispatch(events):
        for key, mask in events:
            slot = key.data
            if slot is None:
                raise LoadError("the parent process is gone")
            sock = key.fileobj
            if sock is not slot.sock:
                continue  # closed (and perhaps replaced) earlier in this batch
            if mask & selectors.EVENT_WRITE:
                slot.writable()
                if sock is not slot.sock:
                    continue
            if mask & selectors.EVENT_READ:
                slot.readable()


class _AsyncioDriver:
    """Runs an https:// run's slots (_TlsSlot) on an asyncio event loop, whose SSL transports
    do the TLS: timers for due requests, a task per connection being opened, a watchdog task
    for the timeout sweep."""

    def __init__(self, run, loop):
        self.run = run
        self.loop = loop
        self.tasks = set()
        self.finished = None

    def new_slot(self):
        return _TlsSlot(self.run, self)

    def wait_until(self, slot, when, measured):
        self.loop.call_at(when, slot.start_due, when, measured)

    def stop(self):
        if self.finished is not None and not self.finished.done():
            self.finished.set_result(None)

    async def drive(self, start, progress, parent):
        run = self.run
        loop = self.loop
        await asyncio.gather(*(self._preconnect(slot) for slot in run.slots))
        run.begin(start() if start is not None else loop.time() + START_LEAD)
        self.finished = loop.create_future()
        loop.set_exception_handler(self._on_loop_error)
        helpers = [loop.create_task(self._watchdog())]
        if progress is not None:
            helpers.append(loop.create_task(self._progress(progress)))
        if parent is not None:
            loop.add_reader(parent.fileno(), self._abandon, "the parent process is gone")
        for slot in run.slots:
            loop.call_at(run.t0, slot.resume)
        if not run.slots:
            self.finished.set_result(None)
        try:
            await self.finished
        finally:
            if parent is not None:
                loop.remove_reader(parent.fileno())
            for task in [*helpers, *self.tasks]:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for slot in run.slots:
                slot.close()
        return loop.time()

    def spawn(self, coroutine):
        """A task for the slow paths (connecting); kept until done so that it is not lost."""
        task = self.loop.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _abandon(self, reason):
        if not self.finished.done():
            self.finished.set_exception(LoadError(reason))

    def _on_loop_error(self, loop, context):
        """A failure inside a callback would otherwise only be logged and the run would wait
        for it forever: end the run with it. OS errors on transports are counted per request."""
        error = context.get("exception")
        if isinstance(error, Exception) and not isinstance(error, OSError) and \
                self.finished is not None and not self.finished.done():
            self.finished.set_exception(error)
            return
        loop.default_exception_handler(context)

    async def connect(self, slot, deadline):
        run = self.run
        loop = self.loop
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise asyncio.TimeoutError()
        family, address = run.address
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, address), remaining)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError()
            reader = _ResponseReader(run.head, run.head_cache)
            _transport, connection = await asyncio.wait_for(loop.create_connection(
                lambda: _Connection(slot, reader), sock=sock, ssl=run.ssl_context,
                server_hostname=run.target.host), remaining)
        except BaseException:
            sock.close()
            raise
        run.sockets += 1
        return connection

    async def _preconnect(self, slot):
        """Open the connections before the clock starts; failures count later, per request."""
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            slot.connection = await self.connect(slot, self.loop.time() + self.run.timeout)

    async def _watchdog(self):
        while True:
            await asyncio.sleep(self.run.sweep_tick)
            self.run.sweep(self.loop.time())

    async def _progress(self, report):
        loop = self.loop
        run = self.run
        interval = run.spec.progress_interval
        tick = 0
        while True:
            tick += 1
            delay = run.t0 + tick * interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            report(tick, run.snapshot(loop.time()))


def _ssl_context(target, validate_certs):
    if target.scheme != "https":
        return None
    context = ssl.create_default_context()
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _combine(spec, plan, reports):
    """One RunResult from the figures of every worker: histograms merge bucket by bucket, counts
    add, and the window runs over all workers' sends, so a split run reads as one."""
    result = RunResult(spec)
    result.workers = len(reports)
    t0 = reports[0]["t0"]
    for report in reports:
        result.histogram.merge(report["histogram"])
        result.errors_histogram.merge(report["errors_histogram"])
        result.service_histogram.merge(report["service_histogram"])
        for name in ("codes", "error_kinds"):
            counts = getattr(result, name)
            for key, count in report[name].items():
                counts[key] = counts.get(key, 0) + count
        result.sent += report["sent"]
        result.not_sent += report["not_sent"]
        result.warmup_sent += report["warmup_sent"]
        result.sockets += report["sockets"]
    first_send = min(report["first_send"] for report in reports)
    last_send = max(report["last_send"] for report in reports)
    last_done = max(report["last_done"] for report in reports)
    measured_start = plan.measured_start(t0)
    result.planned = plan.planned
    result.elapsed = max(report["end"] for report in reports) - t0
    wall = time.time() + (measured_start - time.monotonic())
    result.start_time = datetime.datetime.fromtimestamp(wall).astimezone()
    if plan.open_loop:
        last = last_send - measured_start if result.sent else 0.0
        result.window = max(last, (result.planned - 1) * plan.interval) + plan.interval
    elif spec.duration is not None:
        result.window = spec.duration
    elif result.sent:
        result.window = last_done - first_send
    result.achieved_qps = result.sent / result.window if result.window > 0 else 0.0
    return result


class _ProgressMerger:
    """Progress over all workers: a line for tick n once every worker still running has sent its
    snapshot for tick n (a worker that has ended counts with its final figures)."""

    def __init__(self, workers, progress):
        self.workers = workers
        self.progress = progress
        self.ticks = {}
        self.final = {}
        self.emitted = 0
        self.last_issued = 0
        self.last_elapsed = 0.0

    def add(self, worker, tick, snapshot):
        self.ticks.setdefault(tick, {})[worker] = snapshot
        self._emit()

    def finish(self, worker, snapshot):
        self.final[worker] = snapshot
        self._emit()

    def _emit(self):
        while True:
            tick = self.emitted + 1
            got = self.ticks.get(tick)
            if not got or any(worker not in got and worker not in self.final
                              for worker in range(self.workers)):
                return
            snapshots = [got.get(worker) or self.final[worker] for worker in range(self.workers)]
            del self.ticks[tick]
            self.emitted = tick
            histogram = Histogram()
            for snapshot in snapshots:
                histogram.merge(snapshot["histogram"])
            current = max(got.values(), key=lambda snapshot: snapshot["elapsed"])
            issued = sum(snapshot["issued"] for snapshot in snapshots)
            span = current["elapsed"] - self.last_elapsed
            self.progress({
                "elapsed": current["elapsed"],
                "phase": "measure" if current["measured"] else "warmup",
                "sent": sum(snapshot["sent"] for snapshot in snapshots),
                "rate": (issued - self.last_issued) / span if span > 0 else 0.0,
                "p99_ms": histogram.percentile(99.0) * 1000.0,
                "errors": sum(snapshot["errors"] for snapshot in snapshots),
            })
            self.last_issued, self.last_elapsed = issued, current["elapsed"]


def resolve_workers(spec):
    """Worker processes for `spec`. `workers` when set (at most one per connection); for 0,
    one per AUTO_QPS_PER_WORKER requests per second asked for (qps 0: no limit), at most one per
    CPU this process may run on and one per connection."""
    if not hasattr(os, "fork"):
        return 1
    if spec.workers > 0:
        return max(1, min(spec.workers, spec.connections))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)
    workers = min(cpus, spec.connections)
    if spec.qps > 0:
        workers = min(workers, math.ceil(spec.qps / AUTO_QPS_PER_WORKER))
    return max(1, workers)


def _new_selector(plan, connections):
    if plan.open_loop and connections <= SELECT_LIMIT:
        return selectors.SelectSelector()
    return selectors.DefaultSelector()


def _new_loop(plan, connections):
    return asyncio.SelectorEventLoop(_new_selector(plan, connections))


def _close_loop(loop):
    try:
        if hasattr(loop, "shutdown_default_executor"):
            loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def _resolve(target):
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError as err:
        raise LoadError(f"cannot resolve {target.host}: {err}") from err
    family, _type, _proto, _name, address = infos[0]
    return family, address


def run_load(spec):
    """Run the load described by `spec` and return its RunResult (LoadError if it cannot start
    or a worker process fails)."""
    target = parse_url(spec.url)
    address = _resolve(target)
    plan = _Plan(spec)
    shares = _shares(spec, plan, resolve_workers(spec))
    if len(shares) == 1:
        return _run_here(spec, target, address, plan, shares[0])
    return _run_workers(spec, target, address, plan, shares)


def _run_here(spec, target, address, plan, share):
    progress = None
    if spec.progress is not None and spec.progress_interval > 0:
        merger = _ProgressMerger(1, spec.progress)

        def progress(tick, snapshot):
            merger.add(0, tick, snapshot)

    loop = _new_loop(plan, share.connections)
    try:
        report = loop.run_until_complete(
            _Run(spec, target, address, loop, plan, share).run(progress=progress))
    finally:
        _close_loop(loop)
    return _combine(spec, plan, [report])


# Worker processes. Messages are pickled tuples behind a 4-byte length, over a socket pair:
# worker to parent ("ready",), ("progress", tick, snapshot), ("result", report) or
# ("error", traceback); parent to worker ("start", t0).
_LENGTH = struct.Struct("!I")


def _send_message(sock, message):
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_LENGTH.pack(len(data)) + data)


def _receive_exactly(sock, size):
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise LoadError("the parent process closed its end before the start")
        data += chunk
    return bytes(data)


def _receive_message(sock):
    (size,) = _LENGTH.unpack(_receive_exactly(sock, _LENGTH.size))
    return pickle.loads(_receive_exactly(sock, size))


class _Worker:
    """The parent's handle on one worker process."""

    def __init__(self, share, pid, sock):
        self.share = share
        self.pid = pid
        self.sock = sock
        self.buffer = bytearray()
        self.result = None
        self.open = True

    @property
    def name(self):
        return f"load worker {self.share.index + 1} of {self.share.workers}"

    def messages(self):
        while len(self.buffer) >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(self.buffer)
            if len(self.buffer) < _LENGTH.size + size:
                return
            data = bytes(self.buffer[_LENGTH.size:_LENGTH.size + size])
            del self.buffer[:_LENGTH.size + size]
            yield pickle.loads(data)

    def reap(self, kill):
        """Wait for the process to end (killing it first when `kill`); its exit, in words."""
        if self.pid is None:
            return "ended"
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        _pid, status = os.waitpid(self.pid, 0)
        self.pid = None
        if os.WIFSIGNALED(status):
            return f"was killed by signal {os.WTERMSIG(status)}"
        return f"exited with status {os.WEXITSTATUS(status)}"


def _start_worker(spec, target, address, plan, share, siblings):
    parent_end, worker_end = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the worker: runs its share and leaves with os._exit, whatever happens
        status = 70
        try:
            parent_end.close()
            for sibling in siblings:
                sibling.sock.close()
            _worker_main(spec, target, address, plan, share, worker_end)
            status = 0
        except BaseException:  # noqa: BLE001 - everything is reported to the parent
            with contextlib.suppress(BaseException):
                _send_message(worker_end, ("error", traceback.format_exc()))
        finally:
            os._exit(status)
    worker_end.close()
    return _Worker(share, pid, parent_end)


def _worker_main(spec, target, address, plan, share, sock):
    def start():
        _send_message(sock, ("ready",))
        message = _receive_message(sock)
        return message[1]

    progress = None
    if spec.progress is not None and spec.progress_interval > 0:
        def progress(tick, snapshot):
            _send_message(sock, ("progress", tick, snapshot))

    loop = _new_loop(plan, share.connections)
    try:
        report = loop.run_until_complete(_Run(spec, target, address, loop, plan, share).run(
            start=start, progress=progress, parent=sock))
    finally:
        _close_loop(loop)
    _send_message(sock, ("result", report))


def _run_workers(spec, target, address, plan, shares):
    """Fork a worker per share, start them all at one instant, and combine their figures."""
    merger = None
    if spec.progress is not None and spec.progress_interval > 0:
        merger = _ProgressMerger(len(shares), spec.progress)
    workers = []
    failed = True
    selector = selectors.DefaultSelector()
    try:
        for share in shares:
            workers.append(_start_worker(spec, target, address, plan, share, workers))
        for worker in workers:
            selector.register(worker.sock, selectors.EVENT_READ, worker)
        ready = 0
        running = len(workers)
        while running:
            for key, _events in selector.select():
                worker = key.data
                data = worker.sock.recv(1 << 16)
                if not data:
                    selector.unregister(worker.sock)
                    worker.open = False
                    running -= 1
                    if worker.result is None:
                        raise LoadError(f"{worker.name} {worker.reap(kill=False)} without a result")
                    continue
                worker.buffer += data
                for message in worker.messages():
                    if message[0] == "error":
                        raise LoadError(f"{worker.name} failed:\n{message[1]}")
                    if message[0] == "ready":
                        ready += 1
                        if ready == len(workers):
                            t0 = time.monotonic() + START_LEAD
                            for each in workers:
                                _send_message(each.sock, ("start", t0))
                    elif message[0] == "progress" and merger is not None:
                        merger.add(worker.share.index, message[1], message[2])
                    elif message[0] == "result":
                        worker.result = message[1]
                        if merger is not None:
                            merger.finish(worker.share.index, worker.result["snapshot"])
        failed = False
    finally:
        selector.close()
        for worker in workers:
            worker.sock.close()
            worker.reap(kill=failed)
    return _combine(spec, plan, [worker.result for worker in workers])
