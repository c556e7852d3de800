"""Installing every release through real Helm (the Go SDK in-process) and re-running it.

playbooks/install.yml with the balanced profile installs istio-base, istiod, Prometheus and
Grafana from the chart mirror (MESHTUNE_CHART_MIRROR) on a fresh test API server, then runs again
unchanged. Printed for both runs: wall time, API requests by verb, and the requests on Secrets
(where Helm keeps its release records). Peer: the first install, measured in the same run; the
re-run should cost a small fraction of it, write nothing and read each release's records with a
constant number of requests (the history list and the deployed revision's get).

    MESHTUNE_CHART_MIRROR=/path/to/mirror python -m bench.helm_install
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tests.kubeapi.harness import start_server
from tests.support.ansible_runner import REPO_ROOT, run_playbook

WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
RELEASES = ("istio-base", "istiod-1-30-3", "prometheus", "grafana")


def measure(inventory: Path, server) -> dict:
    server.reset_stats()
    started = time.perf_counter()
    result = run_playbook(REPO_ROOT / "playbooks" / "install.yml", inventory=str(inventory))
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"install.yml failed:\n{result.stdout[-3000:]}")
    requests = server.stats()["requests"]
    return {"seconds": seconds, "by_verb": requests["by_verb"], "total": requests["total"],
            "secrets": requests["by_resource"].get("secrets", {})}


def describe(name: str, run: dict) -> str:
    verbs = ", ".join(f"{verb} {count}" for verb, count in sorted(run["by_verb"].items()))
    writes = sum(run["by_verb"].get(verb, 0) for verb in WRITE_VERBS)
    return (f"{name:<8} {run['seconds']:6.1f} s  {run['total']:4d} requests ({verbs}); "
            f"writes {writes}; on Secrets: {json.dumps(run['secrets'])}")


def main() -> None:
    mirror = os.environ.get("MESHTUNE_CHART_MIRROR")
    if not mirror:
        sys.exit("set MESHTUNE_CHART_MIRROR to a chart mirror (the pinned packages and index.yaml)")
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "kubeconfig")
        try:
            inventory = Path(tmp) / "hosts.yml"
            inventory.write_text(yaml.safe_dump({"all": {"hosts": {"bench": {
                "ansible_connection": "local", "meshtune_kubeconfig": str(server.kubeconfig),
                "meshtune_chart_mirror": mirror, "meshtune_profile": "balanced",
                "meshtune_render_dir": f"{tmp}/rendered",
                "grafana_admin_password": "bench-only-password"}}}}))
            install = measure(inventory, server)
            rerun = measure(inventory, server)
        finally:
            server.stop()
    print(f"install.yml, {len(RELEASES)} releases ({', '.join(RELEASES)}), balanced profile")
    print(describe("install", install))
    print(describe("re-run", rerun))
    secret_reads = sum(rerun["secrets"].get(verb, 0) for verb in ("list", "get"))
    print(f"re-run / install: time {rerun['seconds'] / install['seconds']:.2f}, "
          f"requests {rerun['total'] / install['total']:.2f}; Secret reads per release on the "
          f"re-run: {secret_reads / len(RELEASES):.2f} (Helm's history list and the deployed "
          "revision's values; the Grafana admin Secret's read is among them)")


if __name__ == "__main__":
    main()
