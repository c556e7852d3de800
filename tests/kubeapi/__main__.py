"""`python -m tests.kubeapi --kubeconfig PATH [--port N]`: serve until interrupted."""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
from pathlib import Path

from .api import KubeAPI
from .faults import FAULT_KINDS, FaultInjector, FaultPlan
from .server import KubeHTTPServer, write_kubeconfig


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.kubeapi",
                                     description="A local Kubernetes API server for tests.")
    parser.add_argument("--kubeconfig", required=True, type=Path,
                        help="where to write a kubeconfig once the server accepts connections")
    parser.add_argument("--host", default="127.0.0.1",
                        help="loopback address to listen on (any of 127.0.0.0/8)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--fault-rate", type=float, default=0.0,
                        help="share of resource requests that fail (0..1)")
    parser.add_argument("--faults", default=",".join(FAULT_KINDS),
                        help=f"comma-separated fault kinds among {','.join(FAULT_KINDS)}")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault sequence")
    parser.add_argument("--rollout-delay", type=float, default=0.0,
                        help="seconds until a workload's rollout reports ready; negative: never")
    parser.add_argument("--disable", default="",
                        help="comma-separated group/versions not to serve, e.g. autoscaling/v2")
    parser.add_argument("--access-log", type=Path, default=None,
                        help="append one line per request (method, path, code, Content-Type, "
                             "Accept) to this file; '-' for standard error")
    return parser.parse_args(argv)


def _stop(*_args) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    plan = FaultPlan(rate=args.fault_rate, kinds=[f for f in args.faults.split(",") if f],
                     seed=args.seed)
    try:
        faults = FaultInjector(plan)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    api = KubeAPI(rollout_delay=None if args.rollout_delay < 0 else args.rollout_delay,
                  disabled={d.strip() for d in args.disable.split(",") if d.strip()})
    if not ipaddress.ip_address(args.host).is_loopback:
        print(f"error: --host must be a loopback address, not {args.host}", file=sys.stderr)
        return 2
    access_log = None
    if args.access_log is not None:
        access_log = sys.stderr if str(args.access_log) == "-" else \
            open(args.access_log, "a")  # noqa: SIM115 - open while the server runs
    server = KubeHTTPServer((args.host, args.port), api, faults, access_log)
    url = f"http://{args.host}:{server.server_address[1]}"
    signal.signal(signal.SIGTERM, _stop)
    write_kubeconfig(args.kubeconfig, url)
    print(f"kubeapi serving on {url}; kubeconfig written to {args.kubeconfig}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
