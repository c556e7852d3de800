"""Many workloads on a test API server, fast: namespaces, Deployments/StatefulSets/DaemonSets and
(on a server started with `--rollout-delay -1`, where no rollout ever finishes by itself) the
status of a finished rollout for all but the chosen few. Plain HTTP from a few threads, each with
its own keep-alive connection; used by the upgrade gate test and bench/upgrade_gate.py."""

from __future__ import annotations

import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from tests.kubeapi import controllers

PLURALS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}


def workload(kind: str, namespace: str, name: str) -> dict:
    labels = {"app": name}
    spec = {"selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}
    if kind != "DaemonSet":
        spec["replicas"] = 2
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def plan(namespaces: int, per_namespace: dict[str, int]) -> list[dict]:
    """Workloads named <kind>-<i> in namespaces team-00, team-01, ..."""
    return [workload(kind, f"team-{n:02d}", f"{kind.lower()}-{i}")
            for n in range(namespaces) for kind, count in per_namespace.items() for i in range(count)]


class _Sender:
    """One keep-alive connection per thread to the server."""

    def __init__(self, url: str):
        self.address = urlsplit(url).netloc
        self.local = threading.local()

    def send(self, method: str, path: str, body: dict, content_type: str = "application/json") -> dict:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = http.client.HTTPConnection(self.address, timeout=30)
        connection.request(method, path, json.dumps(body), {"Content-Type": content_type})
        response = connection.getresponse()
        answer = json.loads(response.read())
        if response.status >= 300:
            raise AssertionError(f"{method} {path}: {response.status} {answer.get('message')}")
        return answer


def create(server, workloads: list[dict], not_ready: set[tuple[str, str, str]] = frozenset(),
           threads: int = 8) -> None:
    """Create the namespaces and `workloads`; on a `--rollout-delay -1` server, write a finished
    rollout's status to every workload except those keyed (kind, namespace, name) in `not_ready`."""
    sender = _Sender(server.url)
    for namespace in sorted({w["metadata"]["namespace"] for w in workloads}):
        sender.send("POST", "/api/v1/namespaces",
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})

    def one(item: dict) -> None:
        kind, meta = item["kind"], item["metadata"]
        collection = f"/apis/apps/v1/namespaces/{meta['namespace']}/{PLURALS[kind]}"
        stored = sender.send("POST", collection, item)
        if (kind, meta["namespace"], meta["name"]) not in not_ready:
            sender.send("PATCH", f"{collection}/{meta['name']}/status",
                        {"status": controllers.workload_status(kind, stored)},
                        "application/merge-patch+json")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, workloads))
