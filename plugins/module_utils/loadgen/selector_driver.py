# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The driver of http:// runs: non-blocking sockets read and written from one selector."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import contextlib
import errno
import math
import os
import selectors
import socket

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.errors import (
    SOCKET_ERROR,
    ClosedEarly,
    Expired,
    LoadError,
    ProtocolError,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.http1 import ResponseReader
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.schedule import START_LEAD, Slot, clock

# Bytes asked of the kernel per read of a plain connection.
RECEIVE_SIZE = 1 << 16


class _PlainSlot(Slot):
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
        self.reader = ResponseReader(run.head, run.head_cache)

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
        if self.deadline <= clock():
            self.driver.fail_soon(self, Expired())
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
            self.run.tally.sockets += 1
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
            self.fail(ProtocolError("bytes arrived with no request outstanding"))
            return
        reader = self.reader
        try:
            done = reader.feed(data)
        except ProtocolError as err:
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
                self.finished(SOCKET_ERROR, ClosedEarly(self.reader.received))

    def fail(self, error):
        self.close()
        if self.busy:
            self.busy = False
            self.finished(SOCKET_ERROR, error)

    def expire_if_overdue(self, now):
        # Busy without a socket: its connection failed and the failure waits in fail_soon.
        if self.busy and now >= self.deadline and self.sock is not None:
            self.fail(Expired())

    def close(self):
        sock = self.sock
        if sock is not None:
            self.sock = None
            self.connecting = False
            self.unsent = None
            self.selector.unregister(sock)
            sock.close()


class SelectorDriver:
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
        """A coroutine only to share the entry with AsyncioDriver: it never waits on an event
        loop."""
        run = self.run
        try:
            self._preconnect()
            run.begin(start() if start is not None else clock() + START_LEAD)
            if parent is not None:
                self.selector.register(parent, selectors.EVENT_READ, None)
            self._wait_for_start()
            self._serve(progress)
            return clock()
        finally:
            for slot in run.slots:
                slot.close()
            self.selector.close()

    def _preconnect(self):
        """Open the connections before the clock starts; failures count later, per request."""
        slots = self.run.slots
        limit = clock() + self.run.timeout
        for slot in slots:
            with contextlib.suppress(OSError):
                slot.open()
        while any(slot.connecting for slot in slots):
            remaining = limit - clock()
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
            now = clock()
            if now >= run.t0:
                break
            self._dispatch(self.selector.select(run.t0 - now))
        for slot in run.slots:
            slot.next(clock())

    def _serve(self, progress):
        """Send and read until every slot is done."""
        run = self.run
        select = self.selector.select
        dispatch = self._dispatch
        due = self.due
        tick = run.sweep_tick
        interval = run.spec.progress_interval
        next_sweep = clock() + tick
        ticks = 0
        next_progress = run.t0 + interval if progress is not None else math.inf
        while run.active:
            if self.failures:
                failures, self.failures = self.failures, []
                for slot, error in failures:
                    slot.fail(error)
            now = clock()
            while due and due[0][0] <= now:
                intended, slot, measured = due.popleft()
                slot.start(intended, measured, now)
                now = clock()
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
            dispatch(select(max(wake - clock(), 0.0)))

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
