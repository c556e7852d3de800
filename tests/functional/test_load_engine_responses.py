"""The local load engine reading awkward but valid HTTP/1.1 answers over plain http://.

The server here answers from a thread of the test process, each answer written as the test
scripts it: in pieces as small as one byte (with TCP_NODELAY and a pause between them, so that
they reach the engine in separate reads), with chunked bodies, interim 1xx answers, bodies that
end with the connection, or connections that the server closes between requests. Every answer
must count once, with its status code and no error.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen import selector_driver
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.engine import (
    SOCKET_ERROR,
    LoadSpec,
    RunResult,
    run_load,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

OK_BODY = b"hello, world\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n" + OK_BODY
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;name=value\r\nhello\r\n8\r\n, world\n\r\n0\r\nX-Trailer: yes\r\n\r\n")


def read_request(conn: socket.socket, pending: bytearray) -> bytes | None:
    """The next request's head (its body, by Content-Length, is read and dropped); None at EOF."""
    while b"\r\n\r\n" not in pending:
        data = conn.recv(1 << 16)
        if not data:
            return None
        pending += data
    end = pending.index(b"\r\n\r\n") + 4
    head = bytes(pending[:end])
    del pending[:end]
    length = 0
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(pending) < length:
        data = conn.recv(1 << 16)
        if not data:
            return None
        pending += data
    del pending[:length]
    return head


def dribble(conn: socket.socket, data: bytes, size: int, pause: float = 0.0005) -> None:
    for start in range(0, len(data), size):
        conn.sendall(data[start:start + size])
        time.sleep(pause)


@contextlib.contextmanager
def serving(answer: Callable[[socket.socket, bytes, int], bool]) -> Iterator[tuple[str, list[int]]]:
    """A server on 127.0.0.1 whose `answer(conn, head, number)` writes the answer to request
    `number` of a connection and says whether to keep the connection. Yields its URL and the
    list of requests it read (one entry per request, for counting)."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[int] = []
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = bytearray()
        number = 0
        with conn:
            while not stop.is_set():
                try:
                    head = read_request(conn, pending)
                except OSError:
                    return
                if head is None:
                    return
                seen.append(number)
                try:
                    keep = answer(conn, head, number)
                except OSError:
                    return
                number += 1
                if not keep:
                    return

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _address = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/", seen
    finally:
        stop.set()
        thread.join()
        listener.close()


def run(url: str, **options) -> RunResult:
    options = {"connections": 2, "requests": 20, "timeout": 2.0, "workers": 1, **options}
    return run_load(LoadSpec(url, **options))


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
@pytest.mark.parametrize(("response", "qps"), [
    pytest.param(OK, 0, id="content-length-closed-loop"),
    pytest.param(CHUNKED, 200, id="chunked-open-loop"),
])
def test_answers_split_across_reads(response, qps, size):
    def answer(conn, _head, _number):
        dribble(conn, response, size)
        return True

    with serving(answer) as (url, seen):
        result = run(url, qps=qps)
    assert result.codes == {200: 20} and result.error_kinds == {}
    assert len(seen) == 20 and result.sockets == 2


def test_interim_answers_and_a_head_request():
    def answer(conn, head, _number):
        if head.startswith(b"HEAD "):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")  # no body for HEAD
        else:
            dribble(conn, b"HTTP/1.1 100 Continue\r\n\r\n" + OK, 10)
        return True

    with serving(answer) as (url, _seen):
        get = run(url)
        head = run(url, method="HEAD")
    assert get.codes == {200: 20} and get.error_kinds == {}
    assert head.codes == {200: 20} and head.error_kinds == {}


def test_connection_close_and_bodies_that_end_with_the_connection():
    answers = itertools.count()

    def answer(conn, _head, _number):
        if next(answers) % 2 == 0:
            conn.sendall(b"HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        else:
            dribble(conn, b"HTTP/1.1 202 Accepted\r\n\r\nbody until the end", 5)
        return False  # both end the connection

    with serving(answer) as (url, seen):
        result = run(url)
    assert result.codes == {201: 10, 202: 10}
    assert result.error_kinds == {}
    assert len(seen) == 20 and result.sockets == 20


def test_a_kept_alive_connection_the_server_closes_is_retried_once():
    """The server closes every connection after one answer without saying so. The next
    request on that connection meets the closed connection (an end or a reset before any
    answer byte) and goes again once, on a new connection: no error counts."""
    def answer(conn, _head, _number):
        conn.sendall(OK)
        time.sleep(0.002)  # let the engine send its next request on this connection, mostly
        return False

    with serving(answer) as (url, seen):
        result = run(url, requests=30)
    assert result.codes == {200: 30} and result.error_kinds == {}
    assert len(seen) == 30 and result.sockets >= 30


def test_a_server_that_breaks_off_an_answer_counts_a_reset():
    def answer(conn, _head, _number):
        conn.sendall(OK[:20])
        return False

    with serving(answer) as (url, _seen):
        result = run(url, requests=10)
    assert result.codes == {SOCKET_ERROR: 10}
    assert result.error_kinds == {"connection_reset": 10}


def test_a_request_body_larger_than_the_socket_buffers():
    body = b"x" * (8 << 20)

    def answer(conn, head, _number):
        assert head.startswith(b"POST ")
        conn.sendall(OK)
        return True

    with serving(answer) as (url, seen):
        result = run(url, method="POST", body=body, requests=4, connections=1)
    assert result.codes == {200: 4} and result.error_kinds == {}
    assert len(seen) == 4 and result.sockets == 1


def test_a_closed_loop_against_a_port_with_nothing_listening_counts_every_refusal():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run(f"http://127.0.0.1:{port}/", requests=None, duration=0.3, qps=0)
    assert set(result.codes) == {SOCKET_ERROR} and result.sent > 100
    assert result.error_kinds == {"connection_refused": result.sent}
    assert result.sockets == 0


def test_a_closed_loop_whose_connections_fail_at_once_counts_every_failure(monkeypatch):
    """Connecting that fails inside the call itself (as ENETUNREACH does, with no packet sent):
    each failure must be reported from the loop, not from inside the send that follows it."""

    class Unreachable(socket.socket):
        def connect_ex(self, address):
            return errno.ENETUNREACH

    monkeypatch.setattr(selector_driver.socket, "socket", Unreachable)
    result = run("http://127.0.0.1:9/", requests=None, duration=0.3, qps=0)
    assert set(result.codes) == {SOCKET_ERROR} and result.sent > 100
    assert result.error_kinds == {"other": result.sent}
    assert result.sockets == 0
