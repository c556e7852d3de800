"""Sidecar rightsizing of 2,000 workloads from a day of data: a fixed set of queries vs. a loop.

A real Prometheus (127.0.0.1) serves TSDB blocks made by promtool from generated series: for
each workload one pod's `container_cpu_usage_seconds_total` and `container_memory_working_set_bytes`
(istio-proxy) every 60 s for a day, and its kube-state-metrics owner series. Both sides run the
same client and answer parsing (module_utils.prometheus) in this process:

- meshtune: sidecar_recommend's queries (module_utils.rightsizing.build_queries: a fixed number,
  subqueries evaluated inside Prometheus) and the recommendation of every workload;
- peer: the one-query-per-workload loop (what a per-workload tool sends): for each workload the
  CPU percentile and the memory maximum of its pods, two queries per workload; once through
  meshtune's own PrometheusClient (the same code path, which pays Ansible's open_url set-up per
  request), once through one keep-alive HTTP session (requests: the best a loop can do). The
  peer asks for less than meshtune does (no leak, history or owner queries), so the ratios are
  conservative. The loop is timed on a sample of workloads
  (`--loop-sample`, default 200) and its per-workload time scaled to all of them; pass
  `--loop-sample 2000` to time all of it.

Both are measured twice: with the CPU percentile as a subquery over the raw counter, and over a
recording rule's per-pod CPU rate series (RECORDED, generated beside the raw series as the rule
would have recorded them while scraping; sidecar_recommend's option cpu_recording_rule), which
the loop then reads too.

Printed: queries sent, wall time and peak Python memory (tracemalloc) of each, and the ratios,
all measured in one run.

    python -m bench.sidecar_recommend [--workloads 2000] [--hours 24] [--namespaces 20] [--loop-sample 200]
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import requests

from ansible_collections.meshtune.mesh.plugins.module_utils.prometheus import PrometheusClient
from ansible_collections.meshtune.mesh.plugins.module_utils.rightsizing import (
    build_queries,
    map_pods,
    owners_from_metrics,
    pod_usage,
    read_usage,
    recommend,
)
from tests.observability.tsdb import Series, aligned_times, build_blocks, counter, serve_blocks

STEP = 60.0
MIB = 1048576
PARAMS = {"window": "24h", "min_history": "12h", "step": "1m", "rate_interval": "5m",
          "cpu_percentile": 95.0, "cpu_headroom": 0.0, "memory_headroom": 0.15, "cpu_limit": "none",
          "memory_limit": 1.0, "min_cpu": "10m", "min_memory": "64Mi", "max_step_down": 0.5,
          "leak_growth": 0.2, "kinds": ["Deployment"], "metric_filter": None}
RECORDED = "meshtune:istio_proxy_cpu_usage:rate5m"
CURRENT = {"cpu_request": "100m", "cpu_limit": "2000m", "memory_request": "128Mi",
           "memory_limit": "1024Mi", "concurrency": 2}


class CountingClient(PrometheusClient):
    """A PrometheusClient that counts the queries it sends."""

    sent = 0

    def _query(self, name, query, path, form):
        self.sent += 1
        return super()._query(name, query, path, form)


def workload_names(count: int, namespaces: int) -> list[tuple[str, str, str]]:
    """(namespace, workload, pod) of every workload."""
    return [(f"team-{index % namespaces:02d}", f"svc-{index:04d}", f"svc-{index:04d}-5d8f7c9b6-{index:05x}")
            for index in range(count)]


def generate(names, times) -> Iterator[Series]:
    rng = random.Random(1)
    owner_times = times[::10]
    for namespace, workload, pod in names:
        labels = {"namespace": namespace, "pod": pod, "container": "istio-proxy"}
        base = rng.uniform(0.005, 0.3)
        rates = [base * (1 + 0.3 * math.sin(i / 90)) for i in range(len(times))]
        yield Series("container_cpu_usage_seconds_total", labels, counter(rates, times))
        yield Series(RECORDED, {"namespace": namespace, "pod": pod}, list(zip(times, rates, strict=True)))
        memory = rng.uniform(40, 200) * MIB
        yield Series("container_memory_working_set_bytes", labels,
                     [(t, memory + (i % 30) * 4096) for i, t in enumerate(times)])
        replicaset = pod.rsplit("-", 1)[0]
        yield Series("kube_pod_owner", {"namespace": namespace, "pod": pod, "owner_kind": "ReplicaSet",
                                        "owner_name": replicaset}, [(t, 1.0) for t in owner_times])
        yield Series("kube_replicaset_owner", {"namespace": namespace, "replicaset": replicaset,
                                               "owner_kind": "Deployment", "owner_name": workload},
                     [(t, 1.0) for t in owner_times])


def deployment(namespace, name):
    return {"metadata": {"namespace": namespace, "name": name}, "spec": {"replicas": 1}}


def meshtune_way(client, params, names):
    queries = build_queries(params)
    answers = read_usage(client, queries, time.time())
    grouped = map_pods(pod_usage(answers), owners_from_metrics(answers), {})
    return [recommend("Deployment", deployment(namespace, name),
                      grouped.get(("Deployment", namespace, name), []), CURRENT, [], params)
            for namespace, name, _pod in names]


def loop_way(url, params, names, keep_alive):
    """Per workload: its CPU percentile and memory maximum, one query each: through meshtune's
    PrometheusClient, or (keep_alive) through one requests session."""
    percentile = params["cpu_percentile"] / 100
    window = params["window"]
    recorded = params.get("cpu_recording_rule")
    results = []
    client = PrometheusClient(url, timeout=600)
    with requests.Session() as session:
        def ask(query):
            if not keep_alive:
                return [s["value"] for s in client.instant("q", query, time.time())[0]["result"]]
            answer = session.post(f"{url}/api/v1/query", data={"query": query, "time": time.time()},
                                  timeout=600).json()
            return [float(sample["value"][1]) for sample in answer["data"]["result"]]

        for namespace, name, _pod in names:
            selector = f'{{container="istio-proxy",namespace="{namespace}",pod=~"{name}-.*"}}'
            usage = f'{recorded}{{namespace="{namespace}",pod=~"{name}-.*"}}[{window}]' if recorded \
                else f"rate(container_cpu_usage_seconds_total{selector}[5m])[{window}:1m]"
            cpu = ask(f"max(quantile_over_time({percentile:g}, {usage}))")
            memory = ask(f"max(max_over_time(container_memory_working_set_bytes{selector}[{window}]))")
            results.append((cpu, memory))
    return results


def measure(function, *args):
    tracemalloc.start()
    started = time.perf_counter()
    outcome = function(*args)
    elapsed = time.perf_counter() - started
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return outcome, elapsed, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workloads", type=int, default=2000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--loop-sample", type=int, default=200)
    options = parser.parse_args()
    names = workload_names(options.workloads, options.namespaces)
    times = aligned_times(options.hours * 3600, STEP, time.time() - 120)
    params = {**PARAMS, "window": f"{options.hours}h", "min_history": f"{options.hours / 2:g}h",
              "namespaces": sorted({n for n, _w, _p in names})}
    sample = names[:: max(1, len(names) // max(1, options.loop_sample))][:options.loop_sample]
    with tempfile.TemporaryDirectory(prefix="bench-rightsize-") as directory:
        started = time.perf_counter()
        data = build_blocks(generate(names, times), Path(directory))
        print(f"data: {options.workloads} workloads x {options.hours} h at {STEP:.0f} s "
              f"({len(times)} samples per series), blocks built in {time.perf_counter() - started:.1f} s")
        with serve_blocks(data) as server:
            for label, extra in (("subquery", {}), ("recording rule", {"cpu_recording_rule": RECORDED})):
                compare(server.url, {**params, **extra}, names, sample, label)


def compare(url, params, names, sample, label):
    ours = CountingClient(url, timeout=600)
    entries, our_time, our_peak = measure(meshtune_way, ours, params, names)
    sized = sum(1 for entry in entries if entry["action"] != "skipped")
    scale = len(names) / len(sample)
    print(f"\nCPU percentile from a {label}; {sized} of {len(entries)} workloads sized")
    print(f"{'':40}{'queries':>9}{'wall s':>9}{'peak MiB':>9}")
    print(f"{'meshtune.mesh.sidecar_recommend':40}{ours.sent:>9}{our_time:>9.2f}{our_peak / MIB:>9.1f}")
    for peer, keep_alive in (("loop, meshtune's client", False), ("loop, keep-alive session", True)):
        _values, sample_time, peer_peak = measure(loop_way, url, params, sample, keep_alive)
        peer_time = sample_time * scale
        timed = f"  ({len(sample)} timed: {sample_time:.2f} s, x{scale:g})" if scale != 1 else ""
        print(f"{peer:40}{2 * len(names):>9}{peer_time:>9.2f}{peer_peak / MIB:>9.1f}{timed}")
        print(f"{'':40}ratio: {2 * len(names) / ours.sent:.0f}x fewer queries, "
              f"{peer_time / our_time:.1f}x faster (peer / meshtune, same run)")


if __name__ == "__main__":
    main()
