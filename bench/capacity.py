"""The capacity search beside a linear scan: load-seconds to find a known capacity.

Target: tests/support/capacity_server.py, a server on 127.0.0.1 that admits 400 requests/s (token
bucket) and answers 2 ms after admission, queueing what is beyond: a knee that does not depend on
this machine's speed. Both methods run the same local-engine steps (load_test's evaluator, the
same warm-up and step duration) against a fresh server each, with targets p99 <= 50 ms and
success rate >= 99 %.

Peer: a linear scan at the same resolution, from start_qps up by resolution x start_qps per step
(the step a linear scan needs so that the bracket is within the resolution at every rate it can
meet) until a target is missed. Its load-seconds are measured in the same run. For reference,
the scan's cost had it known the answer's scale beforehand (steps of resolution x capacity) is
computed, not run. Target: the search costs at most 1/3 of the scan's load-seconds.

    python -m bench.capacity [--step 0.5] [--warmup 0.25] [--start 100] [--resolution 0.05]
"""

from __future__ import annotations

import argparse
import math
import time

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.capacity import (
    SearchSettings,
    local_evaluator,
    run_search,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.engine import LoadSpec
from tests.support.capacity_server import running

RATE = 400.0
TARGETS = {"p99_ms": 50.0, "success_rate": 0.99}


def settings(args):
    return SearchSettings(TARGETS, args.start, args.max, args.resolution, args.step, 0.0,
                          args.confirm, 2.0)


def evaluator(url, args):
    spec = LoadSpec(url, qps=args.start, connections=64, duration=args.step, warmup=args.warmup,
                    timeout=2.0)
    return local_evaluator(spec, settings(args))


def search(args):
    with running(RATE, 0.002) as url:
        began = time.monotonic()
        outcome = run_search(evaluator(url, args), settings(args))
        return outcome.capacity_qps, outcome.missed_qps, len(outcome.steps), time.monotonic() - began


def linear_scan(args):
    step_qps = args.resolution * args.start
    with running(RATE, 0.002) as url:
        evaluate = evaluator(url, args)
        began = time.monotonic()
        rate, held, steps = args.start, None, 0
        while rate <= args.max:
            steps += 1
            if not evaluate(rate, "scan").holds:
                break
            held, rate = rate, round(rate + step_qps, 6)
        return held, rate, steps, time.monotonic() - began


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=float, default=0.5, help="measured seconds per step")
    parser.add_argument("--warmup", type=float, default=0.25, help="warm-up seconds per step")
    parser.add_argument("--start", type=float, default=100.0)
    parser.add_argument("--max", type=float, default=3200.0)
    parser.add_argument("--resolution", type=float, default=0.05)
    parser.add_argument("--confirm", type=int, default=2)
    args = parser.parse_args(argv)
    per_step = args.step + args.warmup
    found, missed, search_steps, search_wall = search(args)
    held, scan_missed, scan_steps, scan_wall = linear_scan(args)
    print(f"server: {RATE:g} requests/s admitted, 2 ms service; targets {TARGETS}")
    print(f"steps of {args.step:g} s after {args.warmup:g} s warm-up; resolution "
          f"{args.resolution:.0%}; start {args.start:g} qps; search confirms {args.confirm}x")
    print(f"search:      capacity {found} qps (missed {missed}), {search_steps} steps, "
          f"{search_steps * per_step:.1f} load-seconds ({search_wall:.1f} s wall)")
    print(f"linear scan: capacity {held} qps (missed {scan_missed}), {scan_steps} steps, "
          f"{scan_steps * per_step:.1f} load-seconds ({scan_wall:.1f} s wall)")
    ratio = search_steps / scan_steps
    print(f"ratio search / linear scan (load-seconds): {ratio:.2f} (target <= 0.33: "
          f"{'met' if ratio <= 1 / 3 else 'MISSED'})")
    if found:
        oracle = math.ceil((found - args.start) / (args.resolution * found)) + 1
        print(f"reference, a scan that knew the scale (steps of {args.resolution * found:g} qps): "
              f"{oracle} steps, ratio {search_steps / oracle:.2f} (computed, not run)")


if __name__ == "__main__":
    main()
