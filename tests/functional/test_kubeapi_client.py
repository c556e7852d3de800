"""The official kubernetes client (typed and DynamicClient) against the test API server."""

from __future__ import annotations

import threading

import pytest
from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException


@pytest.fixture(scope="module")
def api_client(kubeapi):
    return config.new_client_from_config(config_file=str(kubeapi.kubeconfig))


@pytest.fixture(scope="module")
def dyn(api_client):
    return dynamic.DynamicClient(api_client)


def deployment(name: str, namespace: str = "default", replicas=1) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}}


def hpa_v2(name: str, **spec) -> dict:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": name},
                     "minReplicas": 1, "maxReplicas": 5, **spec}}


def destination_rule(name: str, **traffic_policy) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"host": f"{name}.default.svc.cluster.local",
                     "trafficPolicy": traffic_policy}}


def test_dynamic_client_round_trip(dyn):
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    created = deployments.create(body=deployment("round-trip"), namespace="default")
    meta = created.metadata
    assert meta.uid and meta.creationTimestamp and meta.generation == 1
    assert int(meta.resourceVersion) > 0

    fetched = deployments.get(name="round-trip", namespace="default")
    assert fetched.metadata.uid == meta.uid
    listed = deployments.get(namespace="default", label_selector="app=round-trip")
    assert listed.kind == "DeploymentList"
    assert [item.metadata.name for item in listed.items] == ["round-trip"]
    assert int(listed.metadata.resourceVersion) >= int(meta.resourceVersion)

    patched = deployments.patch(name="round-trip", namespace="default",
                                body={"spec": {"replicas": 3}},
                                content_type="application/merge-patch+json")
    assert patched.spec.replicas == 3
    assert patched.metadata.generation == 2

    # The simulated deployment controller has since written status: read the latest version.
    body = deployments.get(name="round-trip", namespace="default").to_dict()
    body["metadata"]["labels"]["tier"] = "web"
    replaced = deployments.replace(body=body, namespace="default")
    assert replaced.metadata.labels["tier"] == "web"
    assert replaced.metadata.generation == 2, "a metadata-only change keeps the generation"

    deployments.delete(name="round-trip", namespace="default")
    with pytest.raises(dynamic.exceptions.NotFoundError):
        deployments.get(name="round-trip", namespace="default")


def test_typed_client_and_selectors(api_client):
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": "selectors"}})
    for name, tier in (("a", "web"), ("b", "db"), ("c", "web")):
        core.create_namespaced_config_map("selectors", {
            "metadata": {"name": name, "labels": {"tier": tier}}, "data": {"k": name}})

    def names(**selectors) -> list[str]:
        return [i.metadata.name for i in core.list_namespaced_config_map("selectors", **selectors).items]

    assert names(label_selector="tier=web") == ["a", "c"]
    assert names(label_selector="tier!=web") == ["b"]
    assert names(label_selector="tier in (db,cache)") == ["b"]
    assert names(field_selector="metadata.name=c") == ["c"]
    first = core.list_namespaced_config_map("selectors", limit=2)
    assert len(first.items) == 2 and first.metadata._continue
    rest = core.list_namespaced_config_map("selectors", limit=2, _continue=first.metadata._continue)
    assert [i.metadata.name for i in rest.items] == ["c"]

    with pytest.raises(ApiException) as missing_ns:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert missing_ns.value.status == 404

    core.delete_namespace("selectors")
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("a", "selectors")
    assert gone.value.status == 404


def test_workload_specs_get_the_apps_v1_defaults(dyn):
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    created = deployments.create(body=deployment("defaults"), namespace="default").to_dict()
    assert created["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert (created["spec"]["revisionHistoryLimit"], created["spec"]["progressDeadlineSeconds"]) == (10, 600)

    statefulsets = dyn.resources.get(api_version="apps/v1", kind="StatefulSet")
    body = deployment("db")
    body.update(kind="StatefulSet")
    body["spec"]["serviceName"] = "db"
    stored = statefulsets.create(body=body, namespace="default").to_dict()
    assert stored["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert stored["spec"]["podManagementPolicy"] == "OrderedReady"
    # A replace that leaves a defaulted field out gets it again; one that sets it keeps its value.
    body["spec"]["updateStrategy"] = {"type": "OnDelete"}
    current = statefulsets.get(name="db", namespace="default")
    body["metadata"]["resourceVersion"] = current.metadata.resourceVersion
    replaced = statefulsets.replace(body=body, namespace="default").to_dict()
    assert replaced["spec"]["updateStrategy"] == {"type": "OnDelete"}
    assert replaced["spec"]["revisionHistoryLimit"] == 10


def test_create_conflict_and_stale_resource_version(dyn):
    configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cas"},
            "data": {"v": "1"}}
    first = configmaps.create(body=body, namespace="default")
    with pytest.raises(dynamic.exceptions.ConflictError) as exists:
        configmaps.create(body=body, namespace="default")
    assert exists.value.status == 409 and "already exists" in exists.value.body.decode()

    stale = first.to_dict()
    fresh = first.to_dict()
    fresh["data"]["v"] = "2"
    configmaps.replace(body=fresh, namespace="default")
    stale["data"]["v"] = "3"
    with pytest.raises(dynamic.exceptions.ConflictError) as conflict:
        configmaps.replace(body=stale, namespace="default")
    assert conflict.value.status == 409
    assert "the object has been modified" in conflict.value.body.decode()
    assert configmaps.get(name="cas", namespace="default").data["v"] == "2"


def test_dry_run_stores_nothing(dyn, kubeapi):
    configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    before = kubeapi.stats()["objects"]
    result = configmaps.create(body={"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "dry"}, "data": {"a": "b"}},
                               namespace="default", query_params=[("dryRun", "All")])
    assert result.metadata.name == "dry"
    with pytest.raises(dynamic.exceptions.NotFoundError):
        configmaps.get(name="dry", namespace="default")
    assert kubeapi.stats()["objects"] == before, "dry run must not bump the resourceVersion"

    configmaps.create(body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept"},
                            "data": {"a": "b"}}, namespace="default")
    configmaps.patch(name="kept", namespace="default", body={"data": {"a": "changed"}},
                     content_type="application/merge-patch+json",
                     query_params=[("dryRun", "All")])
    configmaps.delete(name="kept", namespace="default", query_params=[("dryRun", "All")])
    assert configmaps.get(name="kept", namespace="default").to_dict()["data"] == {"a": "b"}


@pytest.mark.parametrize(("body", "field"), [
    (hpa_v2("strmin", minReplicas="2"), "spec.minReplicas"),
    (hpa_v2("minmax", minReplicas=6, maxReplicas=2), "spec.maxReplicas"),
    (hpa_v2("window", behavior={"scaleDown": {"stabilizationWindowSeconds": 7200}}),
     "spec.behavior.scaleDown.stabilizationWindowSeconds"),
    (hpa_v2("policy", behavior={"scaleUp": {"policies": [
        {"type": "Pods", "value": 0, "periodSeconds": 15}]}}),
     "spec.behavior.scaleUp.policies[0].value"),
    ({**hpa_v2("v1behavior", behavior={"scaleUp": {"stabilizationWindowSeconds": 0}}),
      "apiVersion": "autoscaling/v1"}, "spec.behavior"),
    (destination_rule("unknown", connectionPool={"tcp": {"maxConnectionz": 1}}),
     "spec.trafficPolicy.connectionPool.tcp.maxConnectionz"),
    (destination_rule("enum", loadBalancer={"simple": "FASTEST"}),
     "spec.trafficPolicy.loadBalancer.simple"),
    (destination_rule("duration", outlierDetection={"interval": "10 seconds"}),
     "spec.trafficPolicy.outlierDetection.interval"),
    (destination_rule("legacy", outlierDetection={"consecutiveErrors": "five"}),
     "spec.trafficPolicy.outlierDetection.consecutiveErrors"),
    ({**deployment("quantity"), "spec": {**deployment("quantity")["spec"], "template": {
        "metadata": {"labels": {"app": "quantity"}}, "spec": {"containers": [{
            "name": "app", "image": "app:1", "resources": {"limits": {"cpu": "one"}}}]}}}},
     "spec.template.spec.containers[0].resources.limits.cpu"),
])
def test_invalid_objects_are_rejected_with_422(dyn, body, field):
    resource = dyn.resources.get(api_version=body["apiVersion"], kind=body["kind"])
    with pytest.raises(dynamic.exceptions.DynamicApiError) as err:
        resource.create(body=body, namespace="default")
    assert err.value.status == 422
    status = err.value.summary() if hasattr(err.value, "summary") else ""
    payload = err.value.body.decode()
    assert '"reason":"Invalid"' in payload.replace(" ", "")
    assert field in payload, (field, payload, status)
    with pytest.raises(dynamic.exceptions.NotFoundError):
        resource.get(name=body["metadata"]["name"], namespace="default")


def test_hpa_v2_behavior_and_v1_view(dyn):
    v2 = dyn.resources.get(api_version="autoscaling/v2", kind="HorizontalPodAutoscaler")
    body = hpa_v2("web", metrics=[{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
        behavior={"scaleDown": {"stabilizationWindowSeconds": 120, "policies": [
            {"type": "Percent", "value": 50, "periodSeconds": 60}]}})
    v2.create(body=body, namespace="default")
    v1 = dyn.resources.get(api_version="autoscaling/v1", kind="HorizontalPodAutoscaler")
    seen = v1.get(name="web", namespace="default")
    assert seen.spec.targetCPUUtilizationPercentage == 70
    assert seen.apiVersion == "autoscaling/v1"
    back = v2.get(name="web", namespace="default")
    assert back.spec.behavior.scaleDown.stabilizationWindowSeconds == 120


def test_json_patch_test_failure_is_422(dyn):
    configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    configmaps.create(body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "jp"},
                            "data": {"a": "1"}}, namespace="default")
    patched = configmaps.patch(name="jp", namespace="default", body=[
        {"op": "test", "path": "/data/a", "value": "1"},
        {"op": "replace", "path": "/data/a", "value": "2"}],
        content_type="application/json-patch+json")
    assert patched.data["a"] == "2"
    with pytest.raises(dynamic.exceptions.DynamicApiError) as err:
        configmaps.patch(name="jp", namespace="default", body=[
            {"op": "test", "path": "/data/a", "value": "1"},
            {"op": "replace", "path": "/data/a", "value": "3"}],
            content_type="application/json-patch+json")
    assert err.value.status == 422
    assert configmaps.get(name="jp", namespace="default").data["a"] == "2"


def test_strategic_merge_is_refused_for_custom_resources(dyn):
    rules = dyn.resources.get(api_version="networking.istio.io/v1", kind="DestinationRule")
    rules.create(body=destination_rule("smp", loadBalancer={"simple": "RANDOM"}),
                 namespace="default")
    with pytest.raises(dynamic.exceptions.DynamicApiError) as err:
        rules.patch(name="smp", namespace="default", body={"spec": {"host": "x"}},
                    content_type="application/strategic-merge-patch+json")
    assert err.value.status == 415
    older = dyn.resources.get(api_version="networking.istio.io/v1beta1", kind="DestinationRule")
    assert older.get(name="smp", namespace="default").apiVersion == "networking.istio.io/v1beta1"


def test_server_side_apply_creates_then_merges(dyn):
    services = dyn.resources.get(api_version="v1", kind="Service")
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ssa"},
            "spec": {"ports": [{"name": "http", "port": 80}], "selector": {"app": "ssa"}}}
    created = services.server_side_apply(body=body, namespace="default", field_manager="meshtune")
    assert created.spec.ports[0].port == 80
    body["spec"]["ports"].append({"name": "grpc", "port": 9090})
    merged = services.server_side_apply(body=body, namespace="default", field_manager="meshtune")
    assert [p.name for p in merged.spec.ports] == ["http", "grpc"]


def test_finalizers_delay_deletion(dyn):
    configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    configmaps.create(body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "held", "finalizers": ["meshtune.io/test"]}}, namespace="default")
    configmaps.delete(name="held", namespace="default")
    held = configmaps.get(name="held", namespace="default")
    assert held.metadata.deletionTimestamp
    configmaps.patch(name="held", namespace="default", body={"metadata": {"finalizers": None}},
                     content_type="application/merge-patch+json")
    with pytest.raises(dynamic.exceptions.NotFoundError):
        configmaps.get(name="held", namespace="default")


def test_watch_streams_changes_and_times_out(api_client):
    core = client.CoreV1Api(api_client)
    initial = core.list_namespaced_config_map("default")
    seen = []

    def consume():
        stream = watch.Watch().stream(core.list_namespaced_config_map, "default",
                                      resource_version=initial.metadata.resource_version,
                                      timeout_seconds=3)
        seen.extend((event["type"], event["object"].metadata.name) for event in stream)

    reader = threading.Thread(target=consume)
    reader.start()
    core.create_namespaced_config_map("default", {"metadata": {"name": "watched"}})
    core.patch_namespaced_config_map("watched", "default", {"data": {"x": "y"}})
    core.delete_namespaced_config_map("watched", "default")
    reader.join(timeout=10)
    assert not reader.is_alive(), "the watch must end at timeoutSeconds"
    assert seen == [("ADDED", "watched"), ("MODIFIED", "watched"), ("DELETED", "watched")]


def test_custom_resource_definition_serves_its_kind(dyn):
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1",
                             kind="CustomResourceDefinition")
    crds.create(body={
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                     "openAPIV3Schema": {"type": "object", "properties": {"spec": {
                         "type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}})
    dyn.resources.invalidate_cache()
    widgets = dyn.resources.get(api_version="example.com/v1", kind="Widget")
    widgets.create(body={"apiVersion": "example.com/v1", "kind": "Widget",
                         "metadata": {"name": "w"}, "spec": {"size": 3}}, namespace="default")
    with pytest.raises(dynamic.exceptions.DynamicApiError) as err:
        widgets.create(body={"apiVersion": "example.com/v1", "kind": "Widget",
                             "metadata": {"name": "bad"}, "spec": {"size": "big"}},
                       namespace="default")
    assert err.value.status == 422
