"""meshtune.mesh.sidecar_resources with per-workload values (option workloads) on the test API server."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.support.ansible_runner import run_module

MODULE = "meshtune.mesh.sidecar_resources"
CPU = "sidecar.istio.io/proxyCPU"
CPU_LIMIT = "sidecar.istio.io/proxyCPULimit"
MEMORY = "sidecar.istio.io/proxyMemory"
MEMORY_LIMIT = "sidecar.istio.io/proxyMemoryLimit"
PROXY_CONFIG = "proxy.istio.io/config"


def workload(kind, namespace, name, annotations=None):
    selector = {"app": name}
    template = {"metadata": {"labels": selector},
                "spec": {"containers": [{"name": name, "image": "nginx:1.27"}]}}
    if annotations:
        template["metadata"]["annotations"] = annotations
    spec = {"selector": {"matchLabels": selector}, "template": template}
    if kind != "DaemonSet":
        spec["replicas"] = 1
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "labels": selector}, "spec": spec}


OBJECTS = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pay"}},
    workload("Deployment", "shop", "web"),
    workload("Deployment", "shop", "cart", {CPU: "500m", CPU_LIMIT: "1"}),
    workload("StatefulSet", "pay", "ledger"),
    workload("Deployment", "pay", "web"),          # same name as shop/web, other namespace
]
ENTRIES = [
    {"kind": "Deployment", "namespace": "shop", "name": "web", "cpu_request": "45m",
     "memory_request": "80Mi", "memory_limit": "80Mi", "concurrency": 1},
    {"kind": "Deployment", "namespace": "shop", "name": "cart", "cpu_request": "250m"},
    {"kind": "StatefulSet", "namespace": "pay", "name": "ledger", "cpu_request": "210m",
     "memory_request": "150Mi"},
]


@pytest.fixture(scope="module")
def cluster(kubeapi):
    kubeapi.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(OBJECTS))
    return kubeapi


def writes(server):
    verbs = server.stats()["requests"]["by_verb"]
    return sum(verbs.get(v, 0) for v in ("create", "update", "patch", "delete"))


def annotations(server, kind, namespace, name):
    live = json.loads(server.kubectl("get", kind.lower(), name, "-n", namespace, "-o", "json").stdout)
    return live["spec"]["template"]["metadata"].get("annotations") or {}


def args(server, **extra):
    return {"kubeconfig": str(server.kubeconfig), "namespaces": ["shop", "pay"], **extra}


def test_each_workload_gets_its_own_values_and_the_task_defaults(cluster, tmp_path):
    cluster.reset_stats()
    result = run_module(tmp_path, MODULE, args(cluster, workloads=ENTRIES, memory_limit="300Mi"))
    assert result["changed"] is True, result
    assert sorted((r["namespace"], r["name"], r["action"]) for r in result["results"]) == [
        ("pay", "ledger", "updated"), ("shop", "cart", "updated"), ("shop", "web", "updated")]
    assert writes(cluster) == len(ENTRIES)
    assert annotations(cluster, "Deployment", "shop", "web") == {
        CPU: "45m", MEMORY: "80Mi", MEMORY_LIMIT: "80Mi", PROXY_CONFIG: "concurrency: 1\n"}
    assert annotations(cluster, "Deployment", "shop", "cart") == {
        CPU: "250m", CPU_LIMIT: "1", MEMORY_LIMIT: "300Mi"}
    assert annotations(cluster, "StatefulSet", "pay", "ledger") == {
        CPU: "210m", MEMORY: "150Mi", MEMORY_LIMIT: "300Mi"}
    assert annotations(cluster, "Deployment", "pay", "web") == {}, "not listed: not touched"

    cluster.reset_stats()
    again = run_module(tmp_path, MODULE, args(cluster, workloads=ENTRIES, memory_limit="300Mi"))
    assert again["changed"] is False and writes(cluster) == 0


def test_check_mode_and_diff(cluster, tmp_path):
    cluster.reset_stats()
    entries = [{**ENTRIES[0], "cpu_request": "60m"}]
    planned = run_module(tmp_path, MODULE, args(cluster, workloads=entries), "--check", "--diff")
    assert planned["changed"] is True and writes(cluster) == 0
    (diff,) = planned["diff"]
    assert diff["after"]["spec"]["template"]["metadata"]["annotations"][CPU] == "60m"


def test_absent_removes_what_each_entry_names(cluster, tmp_path):
    run_module(tmp_path, MODULE, args(cluster, workloads=ENTRIES[:1]))
    entries = [{"kind": "Deployment", "namespace": "shop", "name": "web", "concurrency": 0,
                "memory_limit": "1Mi"}]
    result = run_module(tmp_path, MODULE, args(cluster, workloads=entries, state="absent"))
    assert result["changed"] is True
    assert annotations(cluster, "Deployment", "shop", "web") == {CPU: "45m", MEMORY: "80Mi"}


@pytest.mark.parametrize(("extra", "words"), [
    ({"workloads": [{**ENTRIES[0], "name": "nosuch"}]}, "Deployment shop/nosuch"),
    ({"workloads": [{**ENTRIES[0], "namespace": "other"}]}, "workloads[0].namespace"),
    ({"workloads": [{**ENTRIES[0], "cpu_limit": "10m"}]}, "workloads[0].cpu_limit"),
    ({"workloads": [ENTRIES[0], ENTRIES[0]]}, "each workload once"),
    ({"workloads": [{"kind": "Deployment", "namespace": "shop", "name": "web"}]}, "workloads[0]"),
    ({"workloads": ENTRIES, "names": ["web"]}, "no names or label_selector"),
    ({"workloads": [{**ENTRIES[2]}], "kinds": ["Deployment"]}, "workloads[0].kind"),
])
def test_bad_entries_fail_before_any_write(cluster, tmp_path, extra, words):
    cluster.reset_stats()
    result = run_module(tmp_path, MODULE, args(cluster, **extra))
    assert result["failed"] is True
    assert words in result["msg"], result["msg"]
    assert writes(cluster) == 0
