"""meshtune.mesh.mesh_analyze against the test API server: every rule firing and quiet."""

from __future__ import annotations

import json

import pytest
import yaml

from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.rules import RULES_BY_CODE
from ansible_collections.meshtune.mesh.plugins.modules import mesh_analyze
from tests.support.module_harness import call_module

ISTIO_NAMESPACE = "istio-system"
SIDECAR_DEFAULTS = {"requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "2000m", "memory": "1024Mi"}}
MESH_CONCURRENCY = 2
STATUS = "sidecar.istio.io/status"


# ---- objects -----------------------------------------------------------------------------------

def namespace(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def injected(name: str) -> dict:
    return namespace(name, **{"istio-injection": "enabled"})


def deployment(ns: str, name: str, replicas: int = 1, labels: dict | None = None,
               annotations: dict | None = None, containers: list | None = None) -> dict:
    selector = {"app": name}
    meta = {"labels": {**selector, **(labels or {})}}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": selector},
            "spec": {"replicas": replicas, "selector": {"matchLabels": selector},
                     "template": {"metadata": meta, "spec": {"containers": containers or [
                         {"name": "app", "image": "nginx:1.27"}]}}}}


def service(ns: str, name: str, ports: list[dict], selector: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": selector if selector is not None else {"app": name}, "ports": ports}}


def pod(ns: str, name: str, labels: dict, annotations: dict | None = None,
        owner: dict | None = None) -> dict:
    meta = {"name": name, "namespace": ns, "labels": labels}
    if annotations:
        meta["annotations"] = annotations
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "controller": True,
                                    "uid": "00000000-0000-0000-0000-000000000001", **owner}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}


def destination_rule(ns: str, name: str, host: str, **spec) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": name, "namespace": ns}, "spec": {"host": host, **spec}}


def sidecar(ns: str, name: str = "default", selector: dict | None = None) -> dict:
    spec = {"egress": [{"hosts": ["./*", "istio-system/*"]}]}
    if selector:
        spec["workloadSelector"] = {"labels": selector}
    return {"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def hpa(ns: str, name: str, target: str, metrics: list[dict], min_replicas: int = 1) -> dict:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                     "minReplicas": min_replicas, "maxReplicas": 10, "metrics": metrics}}


def cpu_metric(utilization: int) -> dict:
    return {"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": utilization}}}


def limit_range(ns: str, name: str, **item) -> dict:
    return {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": name, "namespace": ns},
            "spec": {"limits": [{"type": "Container", **item}]}}


def control_plane(ns: str, revision: str = "default", cpu_limit: str | None = None,
                  defaults: bool = True, root_sidecar: bool = False) -> list[dict]:
    """An istiod Deployment (and, with `defaults`, its sidecar-injector and mesh ConfigMaps)."""
    resources = {"requests": {"cpu": "500m", "memory": "2Gi"}}
    if cpu_limit:
        resources["limits"] = {"cpu": cpu_limit}
    istiod = deployment(ns, "istiod" if revision == "default" else f"istiod-{revision}",
                        labels={"istio.io/rev": revision},
                        containers=[{"name": "discovery", "image": "istio/pilot:1.30.3",
                                     "resources": resources}])
    istiod["metadata"]["labels"] = {"app": "istiod", "istio.io/rev": revision}
    istiod["spec"]["template"]["metadata"]["labels"]["app"] = "istiod"
    istiod["spec"]["selector"]["matchLabels"] = {"app": "istiod"}
    objects = [namespace(ns), istiod]
    if defaults:
        suffix = "" if revision == "default" else f"-{revision}"
        objects += [
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": f"istio-sidecar-injector{suffix}", "namespace": ns},
             "data": {"values": json.dumps({"global": {"proxy": {"resources": SIDECAR_DEFAULTS}}})}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"istio{suffix}", "namespace": ns},
             "data": {"mesh": yaml.safe_dump({"defaultConfig": {"concurrency": MESH_CONCURRENCY}})}},
        ]
    if root_sidecar:
        objects.append(sidecar(ns))
    return objects


def apply(server, *objects: dict) -> None:
    server.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))


@pytest.fixture(scope="module")
def mesh(kubeapi):
    apply(kubeapi, *control_plane(ISTIO_NAMESPACE))
    return kubeapi


def analyze(server, namespaces: list[str], **options) -> dict:
    result = call_module(mesh_analyze.main, {"kubeconfig": str(server.kubeconfig),
                                             "namespaces": namespaces, **options})
    assert result.get("failed") is not True, result.get("msg")
    return result


def found(result: dict, code: str) -> list[tuple]:
    return [(f["object"], f["message"]) for f in result["findings"] if f["code"] == code]


def tasks(result: dict, code: str) -> list:
    return [f["fix_task"] for f in result["findings"] if f["code"] == code]


# ---- MT001 -------------------------------------------------------------------------------------

def test_mt001_ports_without_protocol(mesh):
    mixed = [{"name": "web", "port": 8080}, {"name": "http-api", "port": 80}]
    unnamed = [{"port": 5000}]
    declared = [{"name": "metrics", "port": 9090, "appProtocol": "http"}, {"name": "grpc", "port": 9000},
                {"name": "dns", "port": 53, "protocol": "UDP"}]
    apply(mesh, injected("mt001"), namespace("mt001-plain"),
          service("mt001", "mixed", mixed), service("mt001", "unnamed", unnamed),
          service("mt001", "declared", declared),
          service("mt001-plain", "unnamed", unnamed))
    result = analyze(mesh, ["mt001", "mt001-plain"])
    assert found(result, "MT001") == [
        ("Service mt001/mixed",
         f"ports without a declared protocol: {mixed[0]['port']} ('{mixed[0]['name']}')"),
        ("Service mt001/unnamed", f"ports without a declared protocol: {unnamed[0]['port']} (unnamed)"),
    ]
    assert tasks(result, "MT001") == [None, None]
    first = next(f for f in result["findings"] if f["code"] == "MT001")
    assert first["severity"] == RULES_BY_CODE["MT001"].severity
    assert first["why"] == RULES_BY_CODE["MT001"].why


# ---- MT002 -------------------------------------------------------------------------------------

def test_mt002_unscoped_namespaces_in_a_big_mesh(mesh):
    namespaces = ["mt002-bare", "mt002-scoped", "mt002-selected", "mt002-plain"]
    apply(mesh, injected("mt002-bare"), injected("mt002-scoped"), injected("mt002-selected"),
          namespace("mt002-plain"), sidecar("mt002-scoped"), sidecar("mt002-selected", "web", {"app": "web"}),
          *[service(ns, f"svc-{index}", [{"name": "http", "port": 80}])
            for index, ns in enumerate(namespaces)])
    services = len(namespaces)
    fired = analyze(mesh, namespaces, min_services_for_scope=services - 1)
    assert found(fired, "MT002") == [
        (f"Namespace {ns}", f"injected (revision default) with no Sidecar scope, in a mesh of {services} "
                            f"Services (more than {services - 1})")
        for ns in ("mt002-bare", "mt002-selected")]
    assert tasks(fired, "MT002") == [{"module": "meshtune.mesh.sidecar_scope", "args": {"namespaces": [ns]}}
                                     for ns in ("mt002-bare", "mt002-selected")]
    quiet = analyze(mesh, namespaces, min_services_for_scope=services)
    assert found(quiet, "MT002") == []


def test_mt002_a_root_sidecar_scopes_the_whole_mesh(mesh):
    apply(mesh, *control_plane("mt002-root", root_sidecar=True), injected("mt002-rooted"),
          service("mt002-rooted", "a", [{"name": "http", "port": 80}]),
          service("mt002-rooted", "b", [{"name": "http", "port": 80}]))
    assert found(analyze(mesh, ["mt002-rooted"], min_services_for_scope=1), "MT002") == [
        ("Namespace mt002-rooted", "injected (revision default) with no Sidecar scope, in a mesh of 2 "
                                   "Services (more than 1)")]
    rooted = analyze(mesh, ["mt002-rooted"], min_services_for_scope=1, istio_namespace="mt002-root")
    assert found(rooted, "MT002") == []


# ---- MT003 -------------------------------------------------------------------------------------

def test_mt003_worker_threads_beyond_cpu(mesh):
    cpu_limit = SIDECAR_DEFAULTS["limits"]["cpu"]
    limit_cores = int(cpu_limit.rstrip("m")) // 1000
    apply(mesh, injected("mt003"),
          deployment("mt003", "too-many",
                     annotations={"proxy.istio.io/config": f"concurrency: {limit_cores + 2}"}),
          deployment("mt003", "all-cores", annotations={"proxy.istio.io/config": "concurrency: 0"}),
          deployment("mt003", "fits", annotations={"proxy.istio.io/config": f"concurrency: {limit_cores}"}),
          deployment("mt003", "mesh-default"),
          deployment("mt003", "small", annotations={"sidecar.istio.io/proxyCPULimit": "500m",
                                                    "proxy.istio.io/config": "concurrency: 1"}),
          deployment("mt003", "no-sidecar", labels={"sidecar.istio.io/inject": "false"},
                     annotations={"proxy.istio.io/config": "concurrency: 0"}))
    result = analyze(mesh, ["mt003"])
    assert found(result, "MT003") == [
        ("Deployment mt003/all-cores", "concurrency 0: one worker thread per node core"),
        ("Deployment mt003/too-many", f"concurrency {limit_cores + 2} above the CPU limit of {cpu_limit} "
                                      f"({limit_cores} cores)"),
    ]
    assert tasks(result, "MT003") == [
        {"module": "meshtune.mesh.sidecar_resources",
         "args": {"namespaces": ["mt003"], "kinds": ["Deployment"], "names": [name],
                  "concurrency": limit_cores}}
        for name in ("all-cores", "too-many")]


def test_mt003_unset_concurrency_without_cpu_limit(mesh):
    """Without the mesh defaults (no injector ConfigMaps), nothing caps the worker threads."""
    apply(mesh, *control_plane("mt003-bare", defaults=False), injected("mt003-unset"),
          deployment("mt003-unset", "unset"),
          deployment("mt003-unset", "limited", annotations={"sidecar.istio.io/proxyCPULimit": "1"}))
    result = analyze(mesh, ["mt003-unset"], istio_namespace="mt003-bare")
    assert found(result, "MT003") == [
        ("Deployment mt003-unset/unset",
         "concurrency unset and no CPU limit: one worker thread per node core")]
    assert tasks(result, "MT003")[0]["args"]["concurrency"] == 2
    # With the mesh defaults, the mesh-wide concurrency applies to both, and exceeds the 1-core limit.
    assert found(analyze(mesh, ["mt003-unset"]), "MT003") == [
        ("Deployment mt003-unset/limited",
         f"concurrency {MESH_CONCURRENCY} above the CPU limit of 1 (1 core)")]


# ---- MT004 -------------------------------------------------------------------------------------

def test_mt004_hpa_on_pod_cpu_of_an_injected_workload(mesh):
    utilization = 75
    container_metric = {"type": "ContainerResource", "containerResource": {
        "name": "cpu", "container": "app", "target": {"type": "Utilization", "averageUtilization": 60}}}
    memory_metric = {"type": "Resource", "resource": {
        "name": "memory", "target": {"type": "Utilization", "averageUtilization": 80}}}
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 120,
                              "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
    pod_cpu = hpa("mt004", "web", "web", [cpu_metric(utilization), memory_metric], min_replicas=2)
    pod_cpu["spec"]["behavior"] = behavior
    apply(mesh, injected("mt004"), namespace("mt004-plain"),
          deployment("mt004", "web"), deployment("mt004", "api"), deployment("mt004-plain", "web"),
          pod_cpu, hpa("mt004", "api", "api", [container_metric]),
          hpa("mt004-plain", "web", "web", [cpu_metric(utilization)]))
    result = analyze(mesh, ["mt004", "mt004-plain"])
    assert found(result, "MT004") == [
        ("HorizontalPodAutoscaler mt004/web",
         f"scales Deployment web on pod CPU utilization ({utilization} % of the pod's requests, "
         "sidecar included)")]
    assert tasks(result, "MT004") == [{"module": "meshtune.mesh.hpa_policy", "args": {
        "namespace": "mt004", "policies": [{
            "name": "web", "target": {"kind": "Deployment", "name": "web", "api_version": "apps/v1"},
            "min_replicas": 2, "max_replicas": 10,
            "metrics": [{"type": "ContainerResource", "containerResource": {
                "name": "cpu", "container": "app",
                "target": {"type": "Utilization", "averageUtilization": utilization}}}, memory_metric],
            "scale_down": {"stabilization_window_seconds": 120,
                           "policies": [{"type": "Pods", "value": 1, "period_seconds": 60}]}}],
        "force": True}}]


# ---- MT005 -------------------------------------------------------------------------------------

def test_mt005_duplicate_hosts(mesh):
    fqdn = "reviews.mt005.svc.cluster.local"
    apply(mesh, namespace("mt005"),
          destination_rule("mt005", "reviews-a", "reviews"),
          destination_rule("mt005", "reviews-b", fqdn),
          destination_rule("mt005", "reviews-web", "reviews",
                           workloadSelector={"matchLabels": {"app": "web"}}),
          destination_rule("mt005", "ratings", "ratings"))
    live = json.loads(mesh.kubectl("get", "destinationrules.networking.istio.io", "-n", "mt005",
                                   "-o", "json").stdout)["items"]
    first, later = [name for _created, name in sorted(
        (item["metadata"]["creationTimestamp"], item["metadata"]["name"]) for item in live
        if item["metadata"]["name"] in ("reviews-a", "reviews-b"))]
    assert found(analyze(mesh, ["mt005"]), "MT005") == [
        (f"DestinationRule mt005/{later}",
         f"host {fqdn} is already the host of DestinationRule mt005/{first}")]
    mesh.kubectl("delete", "destinationrules.networking.istio.io", later, "-n", "mt005")
    assert found(analyze(mesh, ["mt005"]), "MT005") == []


# ---- MT006 and MT007 ---------------------------------------------------------------------------

def test_mt006_subsets_matching_no_pod(mesh):
    pods = [pod("mt006", f"reviews-v1-{index}", {"app": "reviews", "version": "v1"}) for index in range(2)]
    subsets = [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}},
               {"name": "v3", "labels": {"version": "v3", "track": "canary"}}]
    apply(mesh, namespace("mt006"), service("mt006", "reviews", [{"name": "http", "port": 80}]), *pods,
          destination_rule("mt006", "reviews", "reviews", subsets=subsets),
          destination_rule("mt006", "external", "api.example.com", subsets=subsets[1:]),
          destination_rule("mt006", "fine", "reviews.mt006.svc.cluster.local", subsets=subsets[:1]))
    assert found(analyze(mesh, ["mt006"]), "MT006") == [
        ("DestinationRule mt006/reviews", "subsets matching no pod of Service mt006/reviews: "
                                          "v2 (version=v2), v3 (track=canary,version=v3)")]


def test_mt007_full_ejection_on_few_endpoints(mesh):
    def ejecting(percent):
        return {"outlierDetection": {"consecutive5xxErrors": 5, "maxEjectionPercent": percent}}

    apply(mesh, namespace("mt007"),
          service("mt007", "small", [{"name": "http", "port": 80}]),
          service("mt007", "large", [{"name": "http", "port": 80}]),
          *[pod("mt007", f"small-{index}", {"app": "small", "track": "stable"}) for index in range(2)],
          *[pod("mt007", f"large-{index}", {"app": "large"}) for index in range(3)],
          destination_rule("mt007", "small", "small", trafficPolicy=ejecting(100), subsets=[
              {"name": "stable", "labels": {"track": "stable"}, "trafficPolicy": ejecting(100)},
              {"name": "gentle", "labels": {"track": "stable"}, "trafficPolicy": ejecting(50)}]),
          destination_rule("mt007", "large", "large", trafficPolicy=ejecting(100)))
    assert found(analyze(mesh, ["mt007"]), "MT007") == [
        ("DestinationRule mt007/small",
         "maxEjectionPercent 100 on trafficPolicy with 2 endpoints, subset stable with 2 endpoints")]


# ---- MT008 -------------------------------------------------------------------------------------

def test_mt008_gateway_replicas_without_budget(mesh):
    gateway_labels = {"istio": "ingressgateway"}
    budget = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
              "metadata": {"name": "covered", "namespace": "mt008"},
              "spec": {"minAvailable": 1, "selector": {"matchExpressions": [
                  {"key": "app", "operator": "In", "values": ["covered"]}]}}}
    apply(mesh, namespace("mt008"),
          deployment("mt008", "exposed", replicas=3, labels=gateway_labels),
          deployment("mt008", "scaled", replicas=1, annotations={"inject.istio.io/templates": "gateway"}),
          hpa("mt008", "scaled", "scaled", [cpu_metric(80)], min_replicas=2),
          deployment("mt008", "covered", replicas=3, labels=gateway_labels), budget,
          deployment("mt008", "single", replicas=1, labels=gateway_labels),
          deployment("mt008", "app", replicas=5))
    result = analyze(mesh, ["mt008"])
    assert found(result, "MT008") == [
        ("Deployment mt008/exposed", "3 replicas and no PodDisruptionBudget selecting its pods"),
        ("Deployment mt008/scaled", "2 replicas and no PodDisruptionBudget selecting its pods")]
    fix = tasks(result, "MT008")[0]
    assert fix["module"] == "meshtune.mesh.k8s_objects"
    apply(mesh, *fix["args"]["definitions"])
    remaining = found(analyze(mesh, ["mt008"]), "MT008")
    assert [name for name, _message in remaining] == ["Deployment mt008/scaled"]


# ---- MT009 -------------------------------------------------------------------------------------

def test_mt009_istiod_cpu_limit(mesh):
    apply(mesh, *control_plane("mt009", cpu_limit="2"))
    assert found(analyze(mesh, ["mt009"], istio_namespace="mt009"), "MT009") == [
        ("Deployment mt009/istiod", "container discovery has a CPU limit of 2")]
    assert found(analyze(mesh, ["mt009"]), "MT009") == []


# ---- MT010 and MT011 ---------------------------------------------------------------------------

def test_mt010_sidecar_memory_limit_from_a_limit_range(mesh):
    default_memory = "256Mi"
    apply(mesh, injected("mt010"), limit_range("mt010", "containers", default={"memory": default_memory}),
          deployment("mt010", "cpu-only", annotations={"sidecar.istio.io/proxyCPU": "100m"}),
          deployment("mt010", "mesh-defaults"),
          deployment("mt010", "explicit", annotations={"sidecar.istio.io/proxyMemoryLimit": "512Mi"}),
          injected("mt010-free"), deployment("mt010-free", "cpu-only",
                                             annotations={"sidecar.istio.io/proxyCPU": "100m"}))
    result = analyze(mesh, ["mt010", "mt010-free"])
    assert found(result, "MT010") == [
        ("Deployment mt010/cpu-only",
         f"no sidecar memory limit: LimitRange containers gives it {default_memory}")]
    assert tasks(result, "MT010") == [{"module": "meshtune.mesh.sidecar_resources", "args": {
        "namespaces": ["mt010"], "kinds": ["Deployment"], "names": ["cpu-only"], "memory_limit": "1Gi"}}]


def test_mt011_sidecar_resources_the_api_server_refuses(mesh):
    maximum = "512Mi"
    apply(mesh, injected("mt011"), limit_range("mt011", "bounds", max={"memory": maximum}),
          deployment("mt011", "mesh-defaults"),
          deployment("mt011", "inverted", annotations={"sidecar.istio.io/proxyCPU": "500m",
                                                       "sidecar.istio.io/proxyCPULimit": "200m",
                                                       "sidecar.istio.io/proxyMemoryLimit": "256Mi"}),
          deployment("mt011", "fits", annotations={"sidecar.istio.io/proxyMemory": "128Mi",
                                                   "sidecar.istio.io/proxyMemoryLimit": maximum}))
    result = analyze(mesh, ["mt011"])
    mesh_limit = SIDECAR_DEFAULTS["limits"]["memory"]
    assert found(result, "MT011") == [
        ("Deployment mt011/inverted", "cpu request 500m above its limit 200m"),
        ("Deployment mt011/mesh-defaults",
         f"memory limit {mesh_limit} above the maximum {maximum} of LimitRange bounds")]
    assert {f["severity"] for f in result["findings"] if f["code"] == "MT011"} == {"error"}


# ---- MT012 -------------------------------------------------------------------------------------

def test_mt012_workloads_on_a_revision_that_is_gone(mesh):
    tag = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
           "metadata": {"name": "istio-revision-tag-stable",
                        "labels": {"istio.io/tag": "stable", "istio.io/rev": "default"}}, "webhooks": []}
    old_status = json.dumps({"revision": "1-20-0", "containers": ["istio-proxy"]})
    current_status = json.dumps({"revision": "default", "containers": ["istio-proxy"]})
    owner = {"kind": "ReplicaSet", "name": "web-5d4f8"}
    apply(mesh, tag, namespace("mt012-old", **{"istio.io/rev": "1-20-0"}),
          namespace("mt012-tagged", **{"istio.io/rev": "stable"}), namespace("mt012"),
          deployment("mt012", "pinned", labels={"istio.io/rev": "1-20-0"}),
          deployment("mt012", "current", labels={"istio.io/rev": "stable"}),
          *[pod("mt012", f"web-5d4f8-{index}", {"app": "web", "pod-template-hash": "5d4f8"},
                {STATUS: old_status}, owner) for index in range(3)],
          pod("mt012", "debug", {"run": "debug"}, {STATUS: old_status}),
          pod("mt012", "fresh", {"app": "fresh"}, {STATUS: current_status}))
    result = analyze(mesh, ["mt012", "mt012-old", "mt012-tagged"])
    installed = "installed: default"
    assert found(result, "MT012") == [
        ("Deployment mt012/pinned", f"pod template labelled istio.io/rev=1-20-0; {installed}"),
        ("Deployment mt012/web", f"3 pods running a sidecar of revision 1-20-0; {installed}"),
        ("Pod mt012/debug", f"1 pod running a sidecar of revision 1-20-0; {installed}"),
        ("Namespace mt012-old", f"labelled istio.io/rev=1-20-0; {installed}"),
    ]
    namespace_fix = [f["fix_task"] for f in result["findings"] if f["object"] == "Namespace mt012-old"]
    assert namespace_fix == [{"module": "meshtune.mesh.k8s_objects", "args": {"definitions": [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": "mt012-old", "labels": {"istio.io/rev": "default"}}}]}}]


def test_mt012_is_quiet_without_istiod(mesh):
    stale = json.dumps({"revision": "1-20-0"})
    apply(mesh, namespace("mt012-alone", **{"istio.io/rev": "1-20-0"}),
          pod("mt012-alone", "old", {"app": "old"}, {STATUS: stale}))
    assert [name for name, _message in found(analyze(mesh, ["mt012-alone"]), "MT012")] == [
        "Namespace mt012-alone", "Pod mt012-alone/old"]
    result = analyze(mesh, ["mt012-alone"], istio_namespace="nowhere")
    assert found(result, "MT012") == []
    assert any("no istiod Deployment" in note for note in result["notes"])
