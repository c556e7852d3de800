# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The driver of https:// runs: TLS connections as protocols on an asyncio event loop."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import asyncio
import contextlib
import socket
import ssl

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.errors import (
    SOCKET_ERROR,
    ClosedEarly,
    Expired,
    LoadError,
    ProtocolError,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.http1 import ResponseReader
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.schedule import START_LEAD, Slot


class _Connection(asyncio.Protocol):
    """One keep-alive connection of an https:// run, as an asyncio protocol over a TLS
    transport, carrying one request at a time. It tells its slot the outcome of each request
    (`Slot.finished`) from the callback that read the response's last byte or saw the
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
        self._fail(Expired())

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
            self._fail(ProtocolError("bytes arrived with no request outstanding"))
            return
        try:
            done = self.reader.feed(data)
        except ProtocolError as err:
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
            self._settle(SOCKET_ERROR, ClosedEarly(self.reader.received))
        else:
            self._settle(SOCKET_ERROR, exc)


class _TlsSlot(Slot):
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


class AsyncioDriver:
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
            reader = ResponseReader(run.head, run.head_cache)
            _transport, connection = await asyncio.wait_for(loop.create_connection(
                lambda: _Connection(slot, reader), sock=sock, ssl=run.ssl_context,
                server_hostname=run.target.host), remaining)
        except BaseException:
            sock.close()
            raise
        run.tally.sockets += 1
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


def client_ssl_context(target, validate_certs):
    if target.scheme != "https":
        return None
    context = ssl.create_default_context()
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
