# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Worker processes that share a run: forked, started at one instant, reporting progress and
figures to the parent over socket pairs; a worker that fails or dies fails the run."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import os
import pickle
import selectors
import signal
import socket
import struct
import time
import traceback

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.errors import LoadError
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.schedule import START_LEAD

# Messages are pickled tuples behind a 4-byte length, over a socket pair:
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


def _start_worker(work, share, siblings, with_progress):
    parent_end, worker_end = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the worker: runs its share and leaves with os._exit, whatever happens
        status = 70
        try:
            parent_end.close()
            for sibling in siblings:
                sibling.sock.close()
            _worker_main(work, share, worker_end, with_progress)
            status = 0
        except BaseException:  # noqa: BLE001 - everything is reported to the parent
            with contextlib.suppress(BaseException):
                _send_message(worker_end, ("error", traceback.format_exc()))
        finally:
            os._exit(status)
    worker_end.close()
    return _Worker(share, pid, parent_end)


def _worker_main(work, share, sock, with_progress):
    """Say ready, take the start instant from the parent, run the share and send its figures."""
    def start():
        _send_message(sock, ("ready",))
        message = _receive_message(sock)
        return message[1]

    progress = None
    if with_progress:
        def progress(tick, snapshot):
            _send_message(sock, ("progress", tick, snapshot))

    _send_message(sock, ("result", work(share, start=start, progress=progress, parent=sock)))


def _overdue(workers, ready, limits):
    """The LoadError for workers that missed their time (see run_workers' `limits`)."""
    late = [worker.name for worker in workers if worker.result is None and worker.open]
    if ready < len(workers):
        return LoadError(f"{', '.join(late)} did not connect and get ready within "
                         f"{limits[0]:g} s; stopped")
    return LoadError(f"{', '.join(late)} did not report within {limits[1]:g} s of the start "
                     "(the end of the schedule plus twice the timeout and a grace period); stopped")


def run_workers(shares, work, merger, limits=(None, None)):
    """Fork a worker per share that runs `work(share, start=, progress=, parent=)`, start them all
    at one instant, and return their figures in share order. `merger`, unless None, takes their
    progress snapshots (`add`) and final snapshots (`finish`). `limits`: (seconds the workers
    may take to get ready, seconds after the start instant within which they must report), each
    None for no limit; a worker that misses one is killed and fails the run, so that a stuck
    worker cannot keep the run from ending."""
    workers = []
    failed = True
    selector = selectors.DefaultSelector()
    try:
        for share in shares:
            workers.append(_start_worker(work, share, workers, merger is not None))
        for worker in workers:
            selector.register(worker.sock, selectors.EVENT_READ, worker)
        ready = 0
        running = len(workers)
        deadline = None if limits[0] is None else time.monotonic() + limits[0]
        while running:
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                raise _overdue(workers, ready, limits)
            for key, _events in selector.select(timeout):
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
                            deadline = None if limits[1] is None else t0 + limits[1]
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
    return [worker.result for worker in workers]
