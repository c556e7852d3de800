"""Tuning 2,000 Deployments: meshtune.mesh.sidecar_resources in one task vs. a kubernetes.core loop.

Peer: the same change made the usual way, a `kubernetes.core.k8s` task looped over the
Deployments (one patch each), measured in the same run on the same test API server. The loop is
timed on a sample (`--loop-sample`, default 100) and its per-Deployment time is scaled to the
full count; pass `--loop-sample 2000` to time all of it (about half an hour).

    python -m bench.batch_tuning [--deployments 2000] [--namespaces 20] [--loop-sample 100]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubernetes import client, config

from tests.kubeapi.harness import start_server
from tests.support.ansible_runner import run_playbook

WRITE_VERBS = ("create", "update", "patch", "delete")

MODULE_PLAY = """
- name: Tune every Deployment in one task
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Set sidecar resources
      meshtune.mesh.sidecar_resources:
        kubeconfig: "{{ kubeconfig }}"
        namespaces: "{{ namespaces }}"
        kinds: [Deployment]
        cpu_request: 100m
        cpu_limit: "1"
        memory_request: 128Mi
        memory_limit: 512Mi
        concurrency: 2
"""

LOOP_PLAY = """
- name: Tune Deployments one by one
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Patch one Deployment
      kubernetes.core.k8s:
        kubeconfig: "{{ kubeconfig }}"
        state: patched
        merge_type: merge
        kind: Deployment
        api_version: apps/v1
        namespace: "{{ item.namespace }}"
        name: "{{ item.name }}"
        definition:
          spec:
            template:
              metadata:
                annotations:
                  sidecar.istio.io/proxyCPU: 100m
                  sidecar.istio.io/proxyCPULimit: "1"
                  sidecar.istio.io/proxyMemory: 128Mi
                  sidecar.istio.io/proxyMemoryLimit: 512Mi
                  proxy.istio.io/config: "concurrency: 2\\n"
      loop: "{{ targets }}"
"""


def deployment(name: str) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}}


def populate(kubeconfig: Path, namespaces: list[str], per_namespace: int) -> list[dict]:
    api_client = config.new_client_from_config(str(kubeconfig))
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    targets = []
    for namespace in namespaces:
        core.create_namespace({"metadata": {"name": namespace}})
        targets += [{"namespace": namespace, "name": f"app-{i:04d}"} for i in range(per_namespace)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda t: apps.create_namespaced_deployment(t["namespace"], deployment(t["name"])),
                      targets))
    return targets


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


def writes(requests: dict) -> int:
    return sum(requests["by_verb"].get(verb, 0) for verb in WRITE_VERBS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=2000)
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--loop-sample", type=int, default=100)
    args = parser.parse_args()
    namespaces = [f"team-{i:02d}" for i in range(args.namespaces)]
    per_namespace = args.deployments // args.namespaces
    total = per_namespace * args.namespaces
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        module_server = start_server(tmp / "module-kubeconfig")
        loop_server = start_server(tmp / "loop-kubeconfig")
        try:
            populate(module_server.kubeconfig, namespaces, per_namespace)
            targets = populate(loop_server.kubeconfig, namespaces, per_namespace)
            module_time, module_requests = timed_play(module_server, tmp, MODULE_PLAY,
                                                      {"namespaces": namespaces})
            rerun_time, rerun_requests = timed_play(module_server, tmp, MODULE_PLAY,
                                                    {"namespaces": namespaces})
            sample = targets[:: max(1, total // args.loop_sample)][: args.loop_sample]
            loop_time, loop_requests = timed_play(loop_server, tmp, LOOP_PLAY, {"targets": sample})
        finally:
            module_server.stop()
            loop_server.stop()
    loop_full = loop_time / len(sample) * total
    print(f"{total} Deployments in {args.namespaces} namespaces (test API server on 127.0.0.1)")
    print(f"{'run':<44} {'wall s':>9} {'requests':>9} {'writes':>7}")
    print(f"{'sidecar_resources, one task':<44} {module_time:>9.1f} {module_requests['total']:>9} "
          f"{writes(module_requests):>7}")
    print(f"{'sidecar_resources, idempotent re-run':<44} {rerun_time:>9.1f} {rerun_requests['total']:>9} "
          f"{writes(rerun_requests):>7}")
    print(f"{f'kubernetes.core.k8s loop, {len(sample)} Deployments':<44} {loop_time:>9.1f} "
          f"{loop_requests['total']:>9} {writes(loop_requests):>7}")
    print(f"{f'kubernetes.core.k8s loop, scaled to {total}':<44} {loop_full:>9.1f} "
          f"{loop_requests['total'] * total // len(sample):>9} "
          f"{writes(loop_requests) * total // len(sample):>7}")
    print(f"speed-up of one task over the loop: {loop_full / module_time:.1f}x "
          f"(target >= 30x); requests allowed by the target: <= {args.namespaces + total} "
          f"(namespaces + changed objects, plus retries)")
    print(json.dumps({"module_s": round(module_time, 2), "rerun_s": round(rerun_time, 2),
                      "loop_per_object_s": round(loop_time / len(sample), 3),
                      "ratio": round(loop_full / module_time, 1)}))


if __name__ == "__main__":
    main()
