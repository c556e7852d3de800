"""mesh_analyze over 5,000 objects in 50 namespaces: one list call per kind (and page), counted by
the test API server, never one call per object."""

from __future__ import annotations

import json
import math
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.inventory import NAMESPACED_KINDS
from ansible_collections.meshtune.mesh.plugins.module_utils.kube import LIST_PAGE
from ansible_collections.meshtune.mesh.plugins.module_utils.reconcile import CLUSTER_WIDE_LIST_FROM
from ansible_collections.meshtune.mesh.plugins.modules import mesh_analyze
from tests.functional.test_mesh_analyze import (
    ISTIO_NAMESPACE,
    apply,
    control_plane,
    cpu_metric,
    deployment,
    destination_rule,
    hpa,
    injected,
    pod,
    service,
    sidecar,
)
from tests.support.module_harness import call_module

NAMESPACES = [f"team-{index:02d}" for index in range(50)]
WORKLOADS = 20  # Deployments and Services per namespace
PODS = 49
HPAS = 5
RULES = 4
# Per namespace: 20 + 20 + 49 + 5 + 4 + 1 Sidecar + 1 PodDisruptionBudget = 100 objects.
PLURALS = {"Service": "api/v1/namespaces/{}/services", "Pod": "api/v1/namespaces/{}/pods",
           "Deployment": "apis/apps/v1/namespaces/{}/deployments",
           "HorizontalPodAutoscaler": "apis/autoscaling/v2/namespaces/{}/horizontalpodautoscalers",
           "PodDisruptionBudget": "apis/policy/v1/namespaces/{}/poddisruptionbudgets",
           "DestinationRule": "apis/networking.istio.io/v1/namespaces/{}/destinationrules",
           "Sidecar": "apis/networking.istio.io/v1/namespaces/{}/sidecars"}


def team_objects(ns: str) -> list[dict]:
    """A namespace where MT001 (one unnamed port) and MT004 (one HPA on pod CPU) fire once each."""
    objects = [deployment(ns, f"svc-{index}", replicas=2) for index in range(WORKLOADS)]
    objects += [service(ns, f"svc-{index}", [{"port": 80} if index == 0 else {"name": "http", "port": 80}])
                for index in range(WORKLOADS)]
    objects += [pod(ns, f"svc-{index % WORKLOADS}-{index}",
                    {"app": f"svc-{index % WORKLOADS}", "version": "v1"}) for index in range(PODS)]
    container_cpu = {"type": "ContainerResource", "containerResource": {
        "name": "cpu", "container": "app", "target": {"type": "Utilization", "averageUtilization": 70}}}
    objects += [hpa(ns, f"svc-{index}", f"svc-{index}", [cpu_metric(70) if index == 0 else container_cpu])
                for index in range(HPAS)]
    objects += [destination_rule(ns, f"svc-{index}", f"svc-{index}", subsets=[
        {"name": "v1", "labels": {"version": "v1"}}]) for index in range(RULES)]
    objects.append(sidecar(ns))
    objects.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                    "metadata": {"name": "apps", "namespace": ns},
                    "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"tier": "none"}}}})
    return objects


def create(server, obj: dict) -> None:
    path = PLURALS[obj["kind"]].format(obj["metadata"]["namespace"])
    request = urllib.request.Request(f"{server.url}/{path}", data=json.dumps(obj).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201


@pytest.fixture(scope="module")
def big_mesh(kubeapi):
    apply(kubeapi, *control_plane(ISTIO_NAMESPACE), *[injected(ns) for ns in NAMESPACES])
    objects = [obj for ns in NAMESPACES for obj in team_objects(ns)]
    assert len(objects) == 5000
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda obj: create(kubeapi, obj), objects))
    return kubeapi


def live_counts(server) -> dict[str, int]:
    """Objects of each analyzed kind in the whole cluster, as kubectl lists them."""
    counts = {}
    for kind, version in NAMESPACED_KINDS:
        group = "networking.istio.io" if version is None else version.rpartition("/")[0]
        name = f"{kind.lower()}s.{group}" if group else f"{kind.lower()}s"
        if kind == "HorizontalPodAutoscaler":
            name = "horizontalpodautoscalers.autoscaling"
        output = server.kubectl("get", name, "-A", "-o", "json").stdout
        counts[kind] = len(json.loads(output)["items"])
    return counts


def pages(count: int) -> int:
    return max(1, math.ceil(count / LIST_PAGE))


def test_5000_objects_in_50_namespaces_take_one_list_per_kind_and_page(big_mesh):
    counts = live_counts(big_mesh)
    assert len(NAMESPACES) >= CLUSTER_WIDE_LIST_FROM
    big_mesh.reset_stats()
    result = call_module(mesh_analyze.main, {"kubeconfig": str(big_mesh.kubeconfig)})
    assert result.get("failed") is not True, result.get("msg")
    stats = big_mesh.stats()["requests"]
    # Namespaces, each kind cluster-wide (paged), istiod's ConfigMaps, the revision-tag webhooks.
    expected = 1 + sum(pages(count) for count in counts.values()) + 1 + 1
    assert stats["by_verb"] == {"list": expected}, stats
    assert stats["total"] == expected
    assert result["objects"] == counts
    per_code = {code: len(NAMESPACES) for code in ("MT001", "MT004")}
    assert result["summary"]["by_code"] == per_code
    assert {f["object"] for f in result["findings"] if f["code"] == "MT001"} == \
        {f"Service {ns}/svc-0" for ns in NAMESPACES}


def test_a_few_namespaces_are_read_one_list_per_kind_and_namespace(big_mesh):
    chosen = NAMESPACES[:3]
    big_mesh.reset_stats()
    result = call_module(mesh_analyze.main, {"kubeconfig": str(big_mesh.kubeconfig), "namespaces": chosen})
    assert result.get("failed") is not True, result.get("msg")
    stats = big_mesh.stats()["requests"]
    read = len(chosen) + 1  # the istiod namespace too; each namespace's lists fit one page
    expected = 1 + len(NAMESPACED_KINDS) * read + 1 + 1
    assert stats["by_verb"] == {"list": expected}, stats
    assert result["summary"]["by_code"] == {"MT001": len(chosen), "MT004": len(chosen)}
