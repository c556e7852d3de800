"""HTTP servers with known behaviour, to check the load engine against: one per process.

Each runs in its own process (so it has its own core and interpreter lock, and the engine's
timing is not disturbed by it), listens on a free 127.0.0.1 port, prints the port on its first
line of output and serves until it gets SIGTERM. Then `delay` and `stall` write what they did to
the --record file as JSON: the arrival time of every request and the service time they applied.

    python -m tests.support.load_targets delay --seed 7 --base 0.05 --mean 0.05 --record out.json
    python -m tests.support.load_targets stall --first 1.0 --period 2.5 --stall 1.0
    python -m tests.support.load_targets hang | reset | garbage
    python -m tests.support.load_targets delay --tls-cert cert.pem --tls-key key.pem   (HTTPS)

Kinds:
  delay    answers each request after a delay drawn from a seeded distribution
           (base + exponential with the given mean, capped at --cap), or at once with --mean 0
           and --base 0
  stall    answers at once, except that it stalls for --stall seconds every --period seconds,
           the first stall starting --first seconds after the first request: whatever arrives
           in a stall is answered at its end
  hang     reads requests and never answers
  reset    reads a request, then resets the connection (RST)
  garbage  answers every request with bytes that are not HTTP
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import selectors
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n")


class Recorder:
    """Arrival times and applied service times, written once at the end."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.service: list[float] = []

    def dump(self, path: str | None) -> None:
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump({"arrivals": self.arrivals, "service": self.service}, handle)


class Server(asyncio.Protocol):
    """Reads requests without body (the engine's GETs) one at a time and lets `respond` answer."""

    def __init__(self, respond) -> None:
        self.respond = respond
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.respond(self.transport, time.monotonic())


def delay_responder(loop, recorder: Recorder, seed: int, base: float, mean: float, cap: float):
    rng = random.Random(seed)

    def respond(transport, arrival: float) -> None:
        delay = min(base + (rng.expovariate(1 / mean) if mean > 0 else 0.0), cap)
        recorder.arrivals.append(arrival)

        def answer() -> None:
            if not transport.is_closing():
                transport.write(RESPONSE)
            recorder.service.append(time.monotonic() - arrival)

        if delay > 0:
            loop.call_at(arrival + delay, answer)
        else:
            answer()

    return respond


def stall_responder(loop, recorder: Recorder, period: float, stall: float, first_stall: float):
    first: list[float] = []

    def respond(transport, arrival: float) -> None:
        if not first:
            first.append(arrival)
        recorder.arrivals.append(arrival)
        since = arrival - first[0] - first_stall
        phase = since % period
        release = arrival + (stall - phase) if since >= 0 and phase < stall else arrival

        def answer() -> None:
            if not transport.is_closing():
                transport.write(RESPONSE)
            recorder.service.append(time.monotonic() - arrival)

        if release > arrival:
            loop.call_at(release, answer)
        else:
            answer()

    return respond


def hang_responder(transport, arrival: float) -> None:
    """Never answers."""


def reset_responder(transport, arrival: float) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def garbage_responder(transport, arrival: float) -> None:
    transport.write(b"HELLO, THIS IS NOT HTTP\r\n\r\n")


async def serve(args) -> None:
    loop = asyncio.get_running_loop()
    recorder = Recorder()
    if args.kind == "delay":
        respond = delay_responder(loop, recorder, args.seed, args.base, args.mean, args.cap)
    elif args.kind == "stall":
        respond = stall_responder(loop, recorder, args.period, args.stall, args.first)
    else:
        respond = {"hang": hang_responder, "reset": reset_responder,
                   "garbage": garbage_responder}[args.kind]
    context = None
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
    stop = loop.create_future()
    # Before the port is printed: a SIGTERM right after it must still write the record.
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    server = await loop.create_server(lambda: Server(respond), "127.0.0.1", 0, backlog=1024,
                                      ssl=context)
    print(server.sockets[0].getsockname()[1], flush=True)
    await stop
    server.close()
    recorder.dump(args.record)


@contextlib.contextmanager
def server_process(module: str, *arguments: str, scheme: str = "http") -> Iterator[str]:
    """Run `python -m <module> <arguments>`, a server that prints its port on its first line;
    yields its URL on 127.0.0.1; stops it with SIGTERM at the end (killed after 10 s)."""
    repository = Path(__file__).resolve().parents[2]
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(repository), *filter(None, [os.environ.get("PYTHONPATH")])]))
    process = subprocess.Popen([sys.executable, "-m", module, *arguments], stdout=subprocess.PIPE,
                               cwd=repository, env=environment)
    try:
        port = int(process.stdout.readline())
        yield f"{scheme}://127.0.0.1:{port}/"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running(kind: str, *options: str, record: Path | None = None) -> Iterator[str]:
    """Start one of these servers in its own process; yields its URL (https:// with --tls-cert);
    stops it at the end (and lets it write `record`)."""
    arguments = [kind, *options] + (["--record", str(record)] if record is not None else [])
    with server_process("tests.support.load_targets", *arguments,
                        scheme="https" if "--tls-cert" in options else "http") as url:
        yield url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["delay", "stall", "hang", "reset", "garbage"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--base", type=float, default=0.0, help="fixed part of each delay (s)")
    parser.add_argument("--mean", type=float, default=0.0, help="mean of the random part (s)")
    parser.add_argument("--cap", type=float, default=10.0, help="largest delay (s)")
    parser.add_argument("--period", type=float, default=2.5)
    parser.add_argument("--stall", type=float, default=1.0)
    parser.add_argument("--first", type=float, default=1.0, help="when the first stall starts (s)")
    parser.add_argument("--record", help="write arrivals and service times here on SIGTERM")
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="and this private key (PEM)")
    args = parser.parse_args(argv)
    # select() wakes timers to the microsecond; epoll rounds them up to whole milliseconds.
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        loop.run_until_complete(serve(args))
    finally:
        loop.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
