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
is read and written directly (selector_driver): the call that reads the last byte of a response
records it and sends the connection's next request, with no event loop, transport, task or
callback handle per request, and latencies are recorded into the histograms in batches. That
takes about a third of the CPU time per request that asyncio's transports and protocols took.
https:// runs on an asyncio event loop, whose SSL transports do the TLS (asyncio_driver); the
schedule and the slots (schedule), the bookkeeping (_Run) and the response parser (http1) are
the same for both. Open-loop runs wait with select(), whose timeout has microsecond resolution,
where epoll rounds every timeout up to a whole millisecond; every late wake-up would be charged
to latency. select() handles descriptors below 1024, so a process with more than
schedule.SELECT_LIMIT connections, and closed-loop runs, which have no send times to keep, use
the platform's default selector.

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

Bounds: a run asks for at most MAX_QPS_PER_WORKER per worker process that can run at once
(rate_bound) and at most MAX_REQUESTS requests (options checks both before anything is sent), so
the requests that are due but cannot be sent cannot pile up without end. A run ends about twice
the timeout after its last request was due whatever the target does; worker processes that have
not reported STOP_GRACE later are killed. `assess` then says whether the run measured the
target: requests that never reached it (client errors: errors.CLIENT_ERROR_KINDS) and requests
never sent (not_sent) are kept apart from the server's errors.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import asyncio
import datetime
import functools
import math
import os
import socket
import time

from ansible_collections.meshtune.mesh.plugins.module_utils.histogram import HistogramRecorder
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.asyncio_driver import (
    AsyncioDriver,
    client_ssl_context,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.errors import (
    CLIENT_ERROR_KINDS,
    SERVER_ERROR_KINDS,
    SOCKET_ERROR,
    LoadError,
    describe_error,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.http1 import build_request, parse_url
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.schedule import (
    Plan,
    clock,
    new_selector,
    split_shares,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.selector_driver import SelectorDriver
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.workers import run_workers

IDEMPOTENT_METHODS = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"))
# Requests time out at most 1/TIMEOUT_TICKS of the timeout (and at most 50 ms) late.
TIMEOUT_TICKS = 20
# workers 0: one worker process per this many requests per second asked for. One process holds
# a few thousand per second precisely beside its other work; below this, a second process only
# adds start-up time.
AUTO_QPS_PER_WORKER = 2000
# Latencies wait in a list until this many, then go into the histograms in one pass.
RECORD_BATCH = 512
# The most requests per second the schedule of one worker process may ask for. A worker spends
# about 8 microseconds of CPU time on each request at best (keep-alive, small responses, one
# worker at full speed against nginx on loopback sent 61 000 per second, one core busy), so
# no worker keeps a schedule much above 100 000 per second even on a fast, idle core. A faster
# schedule only piles up requests that are due and can never be sent, each of which still costs
# the engine its bookkeeping: `qps` 1e12 would keep a core busy for days.
MAX_QPS_PER_WORKER = 100000
# The most requests one run may plan, warm-up included: about half an hour of one worker at its
# best rate. A longer load test is better sent as several runs, whose separate results also
# show drift; and a run of a request count at qps 0 (closed loop) must end in a bounded time.
MAX_REQUESTS = 100000000
# A run whose schedule slipped: more than this share of its measured requests was not sent
# (more than the timeout late). The load_test module's default for max_not_sent.
DEFAULT_MAX_NOT_SENT = 0.01
# Worker processes that have not reported this long after the run should have ended (the
# schedule's end plus twice the timeout) are killed and fail the run.
STOP_GRACE = 10.0


def is_ok_code(code):
    """fortio's codeIsOK: 2xx, and 418 which fortio's echo server sends on purpose."""
    return 200 <= code <= 299 or code == 418


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


class Tally:
    """The counters of a run, or of one worker's part of it; merge() adds another tally's.

    histogram: latency of every measured request, from its intended send time (errors included,
    as in fortio's DurationHistogram); errors_histogram: the same for failed requests only;
    service_histogram: from the actual send, what a closed-loop tool would have reported.
    codes and error_kinds: measured requests per HTTP code (SOCKET_ERROR: no response) and per
    error kind. sent: measured requests sent; not_sent: measured requests dropped for being more
    than the timeout late (in histogram and errors_histogram, code SOCKET_ERROR, kind not_sent).
    warmup_sent: warm-up requests; sockets: connections opened. first_errors: for each error kind,
    (monotonic time, message) of the first measured request's error.
    """

    def __init__(self):
        self.histogram = HistogramRecorder()
        self.errors_histogram = HistogramRecorder()
        self.service_histogram = HistogramRecorder()
        self.codes = {}
        self.error_kinds = {}
        self.sent = 0
        self.not_sent = 0
        self.warmup_sent = 0
        self.sockets = 0
        self.first_errors = {}

    def merge(self, other):
        """Add another tally: histograms bucket by bucket, counts by key, the earlier first error."""
        self.histogram.merge(other.histogram)
        self.errors_histogram.merge(other.errors_histogram)
        self.service_histogram.merge(other.service_histogram)
        for mine, theirs in ((self.codes, other.codes), (self.error_kinds, other.error_kinds)):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count
        self.sent += other.sent
        self.not_sent += other.not_sent
        self.warmup_sent += other.warmup_sent
        self.sockets += other.sockets
        for kind, first in other.first_errors.items():
            if kind not in self.first_errors or first[0] < self.first_errors[kind][0]:
                self.first_errors[kind] = first

    def first_error_messages(self):
        """{kind: message} of the first measured error of each kind, the earliest first."""
        ordered = sorted(self.first_errors.items(), key=lambda item: item[1][0])
        return {kind: message for kind, (_when, message) in ordered}


class RunResult(Tally):
    """Figures of one run (its Tally and the run-wide figures); run_result.result_from_run turns
    it into fortio's JSON shape.

    planned: the measured requests the schedule had (None for a closed loop with a duration).
    window: seconds the measured requests were sent over, from the first intended send to the
    last actual one plus one interval; achieved_qps = sent / window. workers: the worker
    processes that sent the load (1: the calling process itself).
    """

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.start_time = None
        self.planned = None
        self.window = 0.0
        self.achieved_qps = 0.0
        self.elapsed = 0.0
        self.workers = 1

    @property
    def ok(self):
        return sum(count for code, count in self.codes.items() if is_ok_code(code))

    @property
    def client_errors(self):
        """Measured requests that never reached the target's HTTP server (errors.CLIENT_ERROR_KINDS)."""
        return sum(self.error_kinds.get(kind, 0) for kind in CLIENT_ERROR_KINDS)

    @property
    def server_errors(self):
        """Measured requests the server answered with a code other than 2xx (and 418), or
        answered too late, not in HTTP or not at all (errors.SERVER_ERROR_KINDS)."""
        answered = sum(count for code, count in self.codes.items()
                       if code != SOCKET_ERROR and not is_ok_code(code))
        return answered + sum(self.error_kinds.get(kind, 0) for kind in SERVER_ERROR_KINDS)

    @property
    def not_sent_share(self):
        """The share of the measured requests that was due but never sent (0 for a closed loop)."""
        due = self.sent + self.not_sent
        return self.not_sent / due if due else 0.0


def _kinds_text(run, kinds):
    """`kind: count (first: message)` for each of `kinds` that occurred, the earliest first."""
    messages = run.first_error_messages()
    seen = [kind for kind in messages if kind in kinds and run.error_kinds.get(kind)]
    seen += [kind for kind in kinds if run.error_kinds.get(kind) and kind not in seen]
    return ", ".join(f"{kind}: {run.error_kinds[kind]} (first: {messages.get(kind, '?')})"
                     for kind in seen)


def schedule_figures(run, max_not_sent):
    """How well the run kept its schedule: planned, sent and not_sent measured requests, the
    not-sent share, the allowed share and whether the schedule slipped beyond it."""
    share = run.not_sent_share
    return {"planned": run.planned, "sent": run.sent, "not_sent": run.not_sent,
            "not_sent_share": round(share, 6), "max_not_sent": max_not_sent,
            "slipped": share > max_not_sent}


def assess(run, max_not_sent=DEFAULT_MAX_NOT_SENT):
    """(failure message or None, warnings) for a finished run.

    A run fails when what it measured is not the target: every request it sent failed before
    reaching the server (nothing listening, TLS refused, ...); the sending host ran out of
    descriptors or ports (client_exhausted), so part of the load was never offered; or more
    than `max_not_sent` of the measured requests were due but never sent (the schedule
    slipped: the target answered too slowly for the connections, or this host could not keep
    the rate). Client errors and unsent requests below those marks are warnings. Everything
    else (timeouts, resets, 5xx, ...) is the server's doing and a result, judged by slo_check.
    """
    failures = []
    warnings = []
    client = run.client_errors
    if run.sent and client == run.sent:
        failures.append(f"every measured request that was sent ({run.sent}) failed before "
                        f"reaching the server: {_kinds_text(run, CLIENT_ERROR_KINDS)}")
    elif run.error_kinds.get("client_exhausted"):
        failures.append("this host ran out of its own resources while sending the load (file "
                        "descriptors, local ports or socket memory), so part of the load was never "
                        f"offered: {_kinds_text(run, ('client_exhausted',))}; lower connections, or "
                        "raise the open-file limit (ulimit -n)")
    elif client:
        warnings.append(f"{client} of {run.sent} measured requests sent failed before reaching the "
                        f"server (client errors, not server errors): "
                        f"{_kinds_text(run, CLIENT_ERROR_KINDS)}")
    if run.not_sent:
        due = run.sent + run.not_sent
        text = (f"{run.not_sent} of {due} measured requests ({run.not_sent_share:.2%}) were due but "
                f"never sent, more than the timeout ({run.spec.timeout:g} s) late")
        if run.not_sent_share > max_not_sent:
            failures.append(f"the schedule slipped: {text}, more than max_not_sent "
                            f"({max_not_sent:.2%}): the target answered too slowly for "
                            f"{run.spec.connections} connections, or this host could not keep "
                            "the rate; give more connections, a lower qps or more workers")
        else:
            warnings.append(f"{text} (max_not_sent {max_not_sent:.2%})")
    return ("; ".join(failures) or None), warnings


class _Run:
    """One worker's part of a run: its share of the schedule and its figures. A driver moves
    the bytes: SelectorDriver for http://, AsyncioDriver for https://."""

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
        self.ssl_context = client_ssl_context(target, spec.validate_certs)
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
            self.driver = SelectorDriver(self, new_selector(plan, share.connections))
        else:
            self.driver = AsyncioDriver(self, loop)
        self.wait_until = self.driver.wait_until
        self.slots = [self.driver.new_slot() for _slot in range(share.connections)]
        self.latencies = []
        self.service_times = []
        self.tally = Tally()
        self.issued = 0
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
        done = clock()
        tally = self.tally
        if not slot.measured:
            tally.warmup_sent += 1
            return done
        latency = done - slot.intended
        self.latencies.append(latency)
        sent = slot.sent
        self.service_times.append(done - sent)
        if not (200 <= code <= 299 or code == 418):
            tally.errors_histogram.record(latency)
        codes = tally.codes
        codes[code] = codes.get(code, 0) + 1
        if kind is not None:
            tally.error_kinds[kind] = tally.error_kinds.get(kind, 0) + 1
        tally.sent += 1
        if sent < self.first_send:
            self.first_send = sent
        if sent > self.last_send:
            self.last_send = sent
        self.last_done = done
        if len(self.latencies) >= RECORD_BATCH:
            self._flush()
        return done

    def note_first_error(self, kind, error):
        """Keep the first measured error of each kind, in words, for the result."""
        self.tally.first_errors[kind] = (clock(), describe_error(error, self.timeout))

    def not_sent(self, intended, measured, now):
        """A request more than the timeout late: recorded with its lateness, never sent."""
        tally = self.tally
        if not measured:
            tally.warmup_sent += 1
            return
        if "not_sent" not in tally.first_errors:
            tally.first_errors["not_sent"] = (now, f"due {now - intended:.3f} s earlier, more than "
                                              f"the timeout ({self.timeout:g} s) late: not sent")
        latency = now - intended
        self.latencies.append(latency)
        tally.errors_histogram.record(latency)
        tally.codes[SOCKET_ERROR] = tally.codes.get(SOCKET_ERROR, 0) + 1
        tally.error_kinds["not_sent"] = tally.error_kinds.get("not_sent", 0) + 1
        tally.not_sent += 1
        if len(self.latencies) >= RECORD_BATCH:
            self._flush()

    def _flush(self):
        self.tally.histogram.record_many(self.latencies)
        self.tally.service_histogram.record_many(self.service_times)
        self.latencies = []
        self.service_times = []

    def snapshot(self, now):
        self._flush()
        return {"elapsed": now - self.t0, "measured": now >= self.measured_start,
                "issued": self.issued, "sent": self.tally.sent,
                "errors": self.tally.errors_histogram.count,
                "histogram": self.tally.histogram.copy()}

    def _report(self, end):
        """This worker's figures, as _combine takes them (plain data: it may cross processes)."""
        snapshot = self.snapshot(end)
        return {
            "t0": self.t0, "end": end, "snapshot": snapshot, "tally": self.tally,
            "first_send": self.first_send, "last_send": self.last_send,
            "last_done": self.last_done,
        }


def _combine(spec, plan, reports):
    """One RunResult from the figures of every worker: histograms merge bucket by bucket, counts
    add, and the window runs over all workers' sends, so a split run reads as one."""
    result = RunResult(spec)
    result.workers = len(reports)
    t0 = reports[0]["t0"]
    for report in reports:
        result.merge(report["tally"])
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
            histogram = HistogramRecorder()
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


def usable_cpus():
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def resolve_workers(spec):
    """Worker processes for `spec`. `workers` when set (at most one per connection); for 0,
    one per AUTO_QPS_PER_WORKER requests per second asked for (qps 0: no limit), at most one per
    CPU this process may run on and one per connection."""
    return worker_count(spec.workers, spec.connections, spec.qps)


def worker_count(workers, connections, qps):
    """resolve_workers from the three options it depends on."""
    if not hasattr(os, "fork"):
        return 1
    if workers > 0:
        return max(1, min(workers, connections))
    count = min(usable_cpus(), connections)
    if qps > 0:
        count = min(count, math.ceil(qps / AUTO_QPS_PER_WORKER))
    return max(1, count)


def rate_bound(connections, workers):
    """(the highest qps a run may ask for, the worker processes that bound assumes): at most
    MAX_QPS_PER_WORKER per worker, for as many workers as can run at once, which is at most one
    per usable CPU and one per connection, and `workers` when given (0: the engine picks)."""
    running = min(usable_cpus(), connections) if hasattr(os, "fork") else 1
    if workers:
        running = min(running, workers)
    running = max(1, running)
    return MAX_QPS_PER_WORKER * running, running


def planned_requests(qps, duration, requests, warmup):
    """The requests a run will send, warm-up included, or None when that depends on the server
    (qps 0 with a duration)."""
    if qps > 0:
        measured = requests if requests is not None else int(duration * qps + 1e-9)
        return measured + math.ceil(warmup * qps - 1e-9)
    return requests


def _new_loop(plan, connections):
    return asyncio.SelectorEventLoop(new_selector(plan, connections))


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
    plan = Plan(spec)
    shares = split_shares(spec, plan, resolve_workers(spec))
    merger = None
    if spec.progress is not None and spec.progress_interval > 0:
        merger = _ProgressMerger(len(shares), spec.progress)
    work = functools.partial(_run_share, spec, target, address, plan)
    if len(shares) == 1:
        progress = None if merger is None else functools.partial(merger.add, 0)
        reports = [work(shares[0], progress=progress)]
    else:
        reports = run_workers(shares, work, merger, limits=_worker_limits(spec, plan))
    return _combine(spec, plan, reports)


def _worker_limits(spec, plan):
    """(seconds the workers may take to be ready, seconds after the start instant by which they
    must have reported): a worker connects within the timeout before it says ready, and every
    request ends at most twice the timeout after its due time (sent up to a timeout late, then
    answered or expired within one); STOP_GRACE more for a busy machine. The second is None when
    the run's length depends on the server (qps 0 with a request count)."""
    length = plan.length()
    end = None if length is None else length + 2 * spec.timeout + STOP_GRACE
    return spec.timeout + STOP_GRACE, end


def _run_share(spec, target, address, plan, share, start=None, progress=None, parent=None):
    """Run one share in this process, on an event loop of its own; its figures (see _combine).
    `start`, `progress` and `parent` as for _Run.run."""
    loop = _new_loop(plan, share.connections)
    try:
        return loop.run_until_complete(_Run(spec, target, address, loop, plan, share).run(
            start=start, progress=progress, parent=parent))
    finally:
        _close_loop(loop)
