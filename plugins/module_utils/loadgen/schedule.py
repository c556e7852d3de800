# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The schedule of a run: which requests are due when (Plan), each worker process's share of
them (Share), and how a connection takes the due requests in order (Slot)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import selectors
import time

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.errors import ClosedEarly, error_kind

SELECT_LIMIT = 500
# Connections are opened before the clock starts; the first request is due this much later.
START_LEAD = 0.01
# The clock of the schedule, the same in every process: what asyncio's loop.time() reads too.
clock = time.monotonic


class Plan:
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

    def length(self):
        """Seconds from the start instant to the last request's due time (open loop) or to the
        deadline (closed loop with a duration); None for a closed loop with a request count,
        whose length depends on the server."""
        if self.open_loop:
            return (self.last_index - 1) * self.interval
        if self.spec.duration is None:
            return None
        return self.spec.warmup + self.spec.duration


class Share:
    """One worker's part: request indexes `index`, `index` + `workers`, ... of the open-loop
    schedule, `connections` of the connections and, closed loop, `requests` of the requests."""

    def __init__(self, index, workers, connections, requests):
        self.index = index
        self.workers = workers
        self.connections = connections
        self.requests = requests


def split_shares(spec, plan, workers):
    """The shares of `workers` worker processes, as even as the numbers allow."""
    shares = []
    for index in range(workers):
        connections = spec.connections // workers + (index < spec.connections % workers)
        requests = None
        if not plan.open_loop and spec.requests is not None:
            requests = spec.requests // workers + (index < spec.requests % workers)
        shares.append(Share(index, workers, connections, requests))
    return shares


class Slot:
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
                now = clock()
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
        self.next(clock())

    def start_due(self, intended, measured):
        """Send the request due at `intended` (a timer's callback)."""
        self.start(intended, measured, clock())

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
            if isinstance(error, (ClosedEarly, ConnectionResetError, BrokenPipeError)) and \
                    not self.fresh and not self.retried and self.run.retry_stale and \
                    getattr(error, "received", 0) == 0:
                # A kept-alive connection the server closed while idle: send once more on a new
                # one, as HTTP clients do for idempotent requests.
                self.retried = True
                self.send()
                return
            kind = error_kind(error)
            if self.measured and kind not in self.run.tally.first_errors:
                self.run.note_first_error(kind, error)
        self.next(self.run.record(self, code, kind))


def new_selector(plan, connections):
    """select() for open loops, for its microsecond timeouts, as long as the descriptors fit;
    the platform's default selector otherwise."""
    if plan.open_loop and connections <= SELECT_LIMIT:
        return selectors.SelectSelector()
    return selectors.DefaultSelector()
