"""Maximum request rate of the local load engine against nginx, next to wrk's.

Peer: wrk (-t2 -c50), a C load generator, against the same nginx on 127.0.0.1 serving 612 bytes,
for the same time. The engine runs closed loop (qps 0) over the same 50 keep-alive connections.
A ratio of 0.3 means the engine sends 30 % of what wrk sends; it is one Python process on one
core, so the ratio says how much load one controller can offer before more hosts are needed.
Also shows how precisely the engine holds a fixed rate near that maximum.

    python -m bench.load_engine [--duration 10] [--connections 50]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.engine import LoadSpec, run_load
from tests.local_nginx import nginx_program, run_nginx

WRK_RATE_RE = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.MULTILINE)


def wrk_rate(url: str, duration: int, connections: int) -> float:
    output = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", url],
                            check=True, capture_output=True, text=True).stdout
    match = WRK_RATE_RE.search(output)
    if not match:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{output}")
    return float(match.group(1))


def engine_run(url: str, qps: float, duration: int, connections: int):
    return run_load(LoadSpec(url, qps=qps, connections=connections, duration=float(duration),
                             warmup=1.0, timeout=5.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    nginx = nginx_program()
    missing = [name for name, path in (("nginx", nginx), ("wrk", shutil.which("wrk"))) if not path]
    if missing:
        sys.exit(f"needs {' and '.join(missing)} (.ci/run installs them)")
    with tempfile.TemporaryDirectory(prefix="bench-load-") as directory, \
            run_nginx(Path(directory) / "nginx", nginx) as server:
        engine = engine_run(server.url, 0, args.duration, args.connections)
        peer = wrk_rate(server.url, args.duration, args.connections)
        print(f"nginx on 127.0.0.1, 612-byte responses, {args.connections} connections, "
              f"{args.duration} s each")
        print(f"  local engine (qps 0): {engine.achieved_qps:10.0f} requests/s   "
              f"p50 {engine.histogram.percentile(50) * 1e3:.3f} ms  "
              f"p99 {engine.histogram.percentile(99) * 1e3:.3f} ms  "
              f"codes {engine.codes}")
        print(f"  wrk -t2 -c{args.connections}:       {peer:10.0f} requests/s")
        print(f"  ratio engine / wrk:   {engine.achieved_qps / peer:10.3f}")
        # How well a fixed rate holds at half the engine's maximum.
        target = round(engine.achieved_qps / 2, -2)
        fixed = engine_run(server.url, target, args.duration, args.connections)
        print(f"  fixed rate {target:.0f}/s: achieved {fixed.achieved_qps:.1f}/s "
              f"({(fixed.achieved_qps / target - 1) * 100:+.2f} %), "
              f"p50 {fixed.histogram.percentile(50) * 1e3:.3f} ms, "
              f"p99 {fixed.histogram.percentile(99) * 1e3:.3f} ms, "
              f"not sent {fixed.not_sent}")


if __name__ == "__main__":
    main()
