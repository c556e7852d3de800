"""An HTTP server whose capacity is enforced by a token bucket, so its knee is known exactly.

It runs in its own process on a free 127.0.0.1 port (printed on its first line), answers the
load engine's GETs, and exits by itself after --lifetime seconds or at SIGTERM. Its capacity
does not depend on how fast the machine is: requests are admitted at --rate per second at most
(a generic cell rate algorithm, bursts of up to --burst), and each admitted request is answered
--service seconds after its admission.

- queue (default): a request beyond the rate waits for its turn, so above the rate the queue,
  and with it the latency, grows for as long as the load lasts;
- --shed: a request beyond the rate is answered at once with 503 instead.

    python -m tests.support.capacity_server --rate 400 --service 0.002
    python -m tests.support.capacity_server --rate 400 --service 0.002 --shed
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import selectors
import signal
import sys
from collections.abc import Iterator

from tests.support.load_targets import RESPONSE, Server, server_process

SHED_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n"
                 b"Content-Type: text/plain\r\n\r\nshed\n")


class TokenBucket:
    """When each request may start: at most `rate` per second, bursts of `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.interval = 1.0 / rate
        self.tolerance = (burst - 1) * self.interval
        self.theoretical = 0.0  # GCRA's theoretical arrival time of the next request

    def admit(self, now: float, shed: bool) -> float | None:
        """The start time of a request arriving `now`; None when shed (no token left)."""
        theoretical = max(self.theoretical, now)
        start = max(now, theoretical - self.tolerance)
        if shed and start > now:
            return None
        self.theoretical = theoretical + self.interval
        return start


def responder(loop, bucket: TokenBucket, service: float, shed: bool):
    def respond(transport, arrival: float) -> None:
        start = bucket.admit(arrival, shed)

        def answer(reply: bytes) -> None:
            if not transport.is_closing():
                transport.write(reply)

        if start is None:
            answer(SHED_RESPONSE)
        else:
            loop.call_at(start + service, answer, RESPONSE)

    return respond


async def serve(args) -> None:
    loop = asyncio.get_running_loop()
    respond = responder(loop, TokenBucket(args.rate, args.burst), args.service, args.shed)
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    loop.call_later(args.lifetime, lambda: stop.done() or stop.set_result(None))
    server = await loop.create_server(lambda: Server(respond), "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await stop
    server.close()


@contextlib.contextmanager
def running(rate: float, service: float, burst: int = 4, shed: bool = False,
            lifetime: float = 300.0) -> Iterator[str]:
    """Start the server in its own process; yields its URL; stops it at the end."""
    arguments = ["--rate", str(rate), "--service", str(service), "--burst", str(burst),
                 "--lifetime", str(lifetime)] + (["--shed"] if shed else [])
    with server_process("tests.support.capacity_server", *arguments) as url:
        yield url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=400.0, help="requests admitted per second")
    parser.add_argument("--service", type=float, default=0.002, help="answer after admission (s)")
    parser.add_argument("--burst", type=int, default=4, help="requests admitted at once at most")
    parser.add_argument("--shed", action="store_true", help="answer 503 beyond the rate")
    parser.add_argument("--lifetime", type=float, default=300.0, help="exit after this long (s)")
    args = parser.parse_args(argv)
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        loop.run_until_complete(serve(args))
    finally:
        loop.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
