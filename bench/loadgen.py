"""The local load engine beside wrk: maximum rate, a fixed rate held, and a stall shown or hidden.

Peer: wrk (`wrk -t2 -cN -dD`), a C load generator with one thread per core, against the same
nginx on 127.0.0.1 (one worker process, 612-byte responses, keep-alive), with the same
connections and the same duration. Both run in this one process's run, alternating
(engine, wrk, engine, wrk, ...) so that a noisy neighbour on the machine hits both alike; the
figures are the sums over the rounds.

1. Maximum rate: the engine closed loop (qps 0, workers 0: one worker process per usable CPU)
   against wrk. ratio = engine / wrk; the target is at least 0.5 on two cores, where nginx takes
   one core's worth of the machine from both tools.
2. A fixed rate, open loop: 60 % of the engine's measured maximum and a modest 1000/s; requested
   against achieved (target: within 1 %), with p50/p99 and requests not sent.
3. A stalling server (tests/support/load_targets.py `stall`: 1 s stall every 3 s): the engine at a fixed
   rate counts each request's latency from its intended send time, so the requests due during a
   stall show in its p99. A closed loop sends nothing while the server stalls: the engine at
   qps 0 shows what that hides. wrk is a closed loop too, but wrk 4 back-fills its latency
   figures afterwards (it adds the requests one connection would have sent at the run's average
   pace while a response was late), so its `--latency` p99 estimates the stall rather than
   hiding it. Each run gets a fresh server, so all meet the same stalls.

Only servers this benchmark starts on 127.0.0.1 are loaded. It ends by itself in about 70 s.

    python -m bench.loadgen [--duration 5] [--connections 50] [--rounds 2]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.engine import (
    LoadSpec,
    RunResult,
    resolve_workers,
    run_load,
)
from tests.support.load_targets import running as load_target
from tests.support.local_nginx import nginx_program, run_nginx

WRK_RATE_RE = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.MULTILINE)
WRK_P99_RE = re.compile(r"^\s+99%\s+([0-9.]+)(us|ms|s)\s*$", re.MULTILINE)
UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
# Stall server: 1 s stall every 3 s, the first 1 s after the first request.
STALL = ("--first", "1.0", "--period", "3.0", "--stall", "1.0")
STALL_QPS = 500.0
STALL_CONNECTIONS = 16


def wrk(url: str, duration: int, connections: int) -> str:
    return subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url],
                          check=True, capture_output=True, text=True, timeout=duration + 30).stdout


def wrk_rate(output: str) -> float:
    match = WRK_RATE_RE.search(output)
    if not match:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{output}")
    return float(match.group(1))


def wrk_p99(output: str) -> float:
    match = WRK_P99_RE.search(output)
    if not match:
        raise RuntimeError(f"no 99% line in wrk's --latency output:\n{output}")
    return float(match.group(1)) * UNIT_SECONDS[match.group(2)]


def engine(url: str, qps: float, duration: int, connections: int) -> RunResult:
    return run_load(LoadSpec(url, qps=qps, connections=connections, duration=float(duration),
                             timeout=5.0, workers=0))


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def maximum_rate(url: str, args) -> float:
    spec = LoadSpec(url, qps=0, connections=args.connections, duration=1.0)
    print(f"nginx on 127.0.0.1, 612-byte responses, {args.connections} connections, "
          f"{args.duration} s per run, {args.rounds} rounds alternating")
    print(f"1. maximum rate: engine qps 0 ({resolve_workers(spec)} workers) vs "
          f"wrk -t2 -c{args.connections} -d{args.duration}s")
    engine_total = peer_total = 0.0
    for round_number in range(1, args.rounds + 1):
        result = engine(url, 0, args.duration, args.connections)
        peer = wrk_rate(wrk(url, args.duration, args.connections))
        engine_total += result.achieved_qps
        peer_total += peer
        print(f"   round {round_number}: engine {result.achieved_qps:9.0f}/s "
              f"(p99 {ms(result.histogram.percentile(99))}, codes {result.codes})   "
              f"wrk {peer:9.0f}/s")
    engine_rate, peer_rate = engine_total / args.rounds, peer_total / args.rounds
    print(f"   engine {engine_rate:.0f}/s, wrk {peer_rate:.0f}/s, "
          f"ratio engine / wrk {engine_rate / peer_rate:.3f} (target >= 0.5)")
    return engine_rate


def fixed_rates(url: str, args, maximum: float) -> None:
    duration = args.duration + 3  # a late last request weighs less in a longer window
    print(f"2. fixed rate, open loop, {duration} s: requested vs achieved (target within 1 %)")
    for qps in (round(maximum * 0.6, -2), 1000.0):
        result = engine(url, qps, duration, args.connections)
        print(f"   {qps:7.0f}/s requested, {result.achieved_qps:9.1f}/s achieved "
              f"({(result.achieved_qps / qps - 1) * 100:+.2f} %), {result.workers} workers, "
              f"p50 {ms(result.histogram.percentile(50))}, p99 {ms(result.histogram.percentile(99))}, "
              f"not sent {result.not_sent}, codes {result.codes}")


def stall(args) -> None:
    duration = max(args.duration, 6)
    print(f"3. stalling server (1 s stall every 3 s), {STALL_CONNECTIONS} connections, {duration} s:")
    with load_target("stall", *STALL) as url:
        result = engine(url, STALL_QPS, duration, STALL_CONNECTIONS)
    with load_target("stall", *STALL) as url:
        closed = engine(url, 0, duration, STALL_CONNECTIONS)
    with load_target("stall", *STALL) as url:
        output = wrk(url, duration, STALL_CONNECTIONS)
    print(f"   engine open loop at {STALL_QPS:.0f}/s: p99 {ms(result.histogram.percentile(99))}, "
          f"max {ms(result.histogram.maximum)}, achieved {result.achieved_qps:.1f}/s")
    print(f"   engine closed loop (qps 0): p99 {ms(closed.histogram.percentile(99))} "
          f"at {closed.achieved_qps:.0f}/s (the stall hides)")
    print(f"   wrk -t2 -c{STALL_CONNECTIONS} --latency: p99 {ms(wrk_p99(output))} "
          f"at {wrk_rate(output):.0f}/s (closed loop, back-filled afterwards by wrk)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    nginx = nginx_program()
    missing = [name for name, path in (("nginx", nginx), ("wrk", shutil.which("wrk"))) if not path]
    if missing:
        sys.exit(f"needs {' and '.join(missing)} (.ci/run installs them)")
    with tempfile.TemporaryDirectory(prefix="bench-loadgen-") as directory, \
            run_nginx(Path(directory) / "nginx", nginx) as server:
        maximum = maximum_rate(server.url, args)
        fixed_rates(server.url, args, maximum)
    stall(args)


if __name__ == "__main__":
    main()
