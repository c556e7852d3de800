"""Per-request cost of the test API server with 10,000 objects stored vs. with 10.

Peer: the same server holding 10 objects, measured in the same run. A ratio near 1.0 means
lookups do not scan: get, a name-pinned list and an update cost the same at both sizes.

    python -m bench.kubeapi_scaling [--objects 10000] [--samples 300]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from kubernetes import client, config

from tests.kubeapi.harness import start_server

SMALL = 10


def fill(core: client.CoreV1Api, namespace: str, count: int) -> None:
    core.create_namespace({"metadata": {"name": namespace}})
    for index in range(count):
        core.create_namespaced_config_map(namespace, {
            "metadata": {"name": f"cm-{index}", "labels": {"shard": str(index % 10)}},
            "data": {"index": str(index)}})


def median_ms(operation, samples: int) -> float:
    durations = []
    for _sample in range(samples):
        start = time.perf_counter()
        operation()
        durations.append(time.perf_counter() - start)
    return statistics.median(durations) * 1000


def measure(core: client.CoreV1Api, namespace: str, count: int, samples: int) -> dict[str, float]:
    rng = random.Random(1)

    def name() -> str:
        return f"cm-{rng.randrange(count)}"

    return {
        "get": median_ms(lambda: core.read_namespaced_config_map(name(), namespace), samples),
        "list by name": median_ms(lambda: core.list_namespaced_config_map(
            namespace, field_selector=f"metadata.name={name()}"), samples),
        "patch": median_ms(lambda: core.patch_namespaced_config_map(
            name(), namespace, {"data": {"touched": str(rng.random())}}), samples),
        "create": median_ms(lambda: core.create_namespaced_config_map(namespace, {
            "metadata": {"generateName": "new-"}}), samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "kubeconfig")
        try:
            core = client.CoreV1Api(config.new_client_from_config(str(server.kubeconfig)))
            fill(core, "small", SMALL)
            started = time.perf_counter()
            fill(core, "large", args.objects)
            filled = time.perf_counter() - started
            small = measure(core, "small", SMALL, args.samples)
            large = measure(core, "large", args.objects, args.samples)
        finally:
            server.stop()
    print(f"stored {args.objects} objects in {filled:.1f} s "
          f"({args.objects / filled:.0f} creates/s, sequential client)")
    print(f"{'operation':<14} {'10 objects':>12} {f'{args.objects} objects':>16} {'ratio':>7}")
    for operation, small_ms in small.items():
        large_ms = large[operation]
        print(f"{operation:<14} {small_ms:>10.2f}ms {large_ms:>14.2f}ms {large_ms / small_ms:>7.2f}")


if __name__ == "__main__":
    main()
