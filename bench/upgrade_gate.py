"""The upgrade gate over 1,000 workloads in 20 namespaces: meshtune.mesh.rollout_status (one
task) vs. the per-workload gate it replaced (one kubernetes.core.k8s_info wait per workload).

Peer: the old gate, measured in the same run on the same test API server: a k8s_info listing per
namespace and kind, then one k8s_info wait per workload, each a fresh module process. It is timed
on one namespace's 50 workloads and scaled by the number of namespaces (its listings and its waits
both grow with them).

    python -m bench.upgrade_gate [--namespaces 20] [--per-namespace 50]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tests.kubeapi.harness import start_server
from tests.support import workload_fleet
from tests.support.ansible_runner import run_playbook

KINDS = ["Deployment", "StatefulSet", "DaemonSet"]

BATCHED_PLAY = """
- name: Gate in one task
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Wait until every workload is rolled out and ready
      meshtune.mesh.rollout_status:
        kubeconfig: "{{ kubeconfig }}"
        namespaces: "{{ namespaces }}"
        timeout: 300
"""

# The gate of roles/istio/tasks/gate.yml before rollout_status.
PER_WORKLOAD_PLAY = """
- name: Gate workload by workload
  hosts: localhost
  gather_facts: false
  tasks:
    - name: List the workloads of the gate namespaces
      kubernetes.core.k8s_info:
        kubeconfig: "{{ kubeconfig }}"
        api_version: apps/v1
        kind: "{{ item.1 }}"
        namespace: "{{ item.0 }}"
      loop: "{{ namespaces | product(kinds) | list }}"
      register: listings

    - name: Wait for each of them to be rolled out and ready
      kubernetes.core.k8s_info:
        kubeconfig: "{{ kubeconfig }}"
        api_version: apps/v1
        kind: "{{ item.0.item.1 }}"
        namespace: "{{ item.1.metadata.namespace }}"
        name: "{{ item.1.metadata.name }}"
        wait: true
        wait_timeout: 300
      loop: "{{ listings.results | subelements('resources') }}"
"""


def timed_play(server, tmp: Path, text: str, extra: dict) -> tuple[float, dict]:
    play = tmp / "play.yml"
    play.write_text(text)
    server.reset_stats()
    started = time.perf_counter()
    result = run_playbook(play, {"kubeconfig": str(server.kubeconfig), **extra})
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"playbook failed:\n{result.stdout[-3000:]}")
    return elapsed, server.stats()["requests"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--per-namespace", type=int, default=50)
    args = parser.parse_args()
    mix = {"Deployment": args.per_namespace * 4 // 5, "StatefulSet": args.per_namespace // 10}
    mix["DaemonSet"] = args.per_namespace - sum(mix.values())
    workloads = workload_fleet.plan(args.namespaces, mix)
    namespaces = sorted({w["metadata"]["namespace"] for w in workloads})
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        server = start_server(tmp / "kubeconfig")
        try:
            workload_fleet.create(server, workloads)
            batched_time, batched = timed_play(server, tmp, BATCHED_PLAY, {"namespaces": namespaces})
            old_time, old = timed_play(server, tmp, PER_WORKLOAD_PLAY,
                                       {"namespaces": namespaces[:1], "kinds": KINDS})
        finally:
            server.stop()
    scale = args.namespaces
    old_full, old_requests = old_time * scale, old["total"] * scale
    total = len(workloads)
    print(f"Upgrade gate over {total} workloads in {args.namespaces} namespaces "
          "(test API server on 127.0.0.1, all ready)")
    print(f"{'run':<48} {'wall s':>9} {'requests':>9}")
    print(f"{'rollout_status, one task':<48} {batched_time:>9.1f} {batched['total']:>9}")
    sample = f"per-workload k8s_info gate, {total // scale} workloads"
    print(f"{sample:<48} {old_time:>9.1f} {old['total']:>9}")
    print(f"{f'per-workload k8s_info gate, scaled to {total}':<48} {old_full:>9.1f} {old_requests:>9}")
    allowed = args.namespaces * len(KINDS) + 1
    print(f"speed-up of the batched gate: {old_full / batched_time:.1f}x (target >= 50x); requests "
          f"{batched['total']} (allowed: <= namespaces x kinds + rounds = {allowed})")
    print(json.dumps({"batched_s": round(batched_time, 2), "batched_requests": batched["total"],
                      "per_workload_s": round(old_time / (total // scale), 3),
                      "per_workload_requests_scaled": old_requests,
                      "ratio": round(old_full / batched_time, 1)}))


if __name__ == "__main__":
    main()
