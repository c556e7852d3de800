"""What the test API server fills in and reports back like a cluster's defaulting and controllers:
Service addresses, claim binding, CRD conditions. Readiness checks (kstatus, Helm's waits) read
exactly these fields."""

from __future__ import annotations

import json

import pytest

from tests.kubeapi.api import KubeAPI, Request


@pytest.fixture
def api() -> KubeAPI:
    return KubeAPI()


def call(api: KubeAPI, method: str, path: str, body: dict | None = None) -> dict:
    response = api.handle(Request(method, path, {}, "application/json",
                                  json.dumps(body).encode() if body is not None else b""))
    assert response.code < 300, response.body
    return response.body


SERVICES = "/api/v1/namespaces/default/services"


def test_service_gets_a_cluster_ip_and_node_ports_that_updates_keep(api):
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gw"},
               "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80}]}}
    created = call(api, "POST", SERVICES, service)
    spec = created["spec"]
    assert spec["clusterIP"].startswith("10.96.") and spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["sessionAffinity"] == "None"
    port = spec["ports"][0]
    assert port["protocol"] == "TCP" and port["targetPort"] == 80 and port["nodePort"] >= 30000

    live = call(api, "GET", f"{SERVICES}/gw")
    assert live["status"]["loadBalancer"]["ingress"], "a load balancer controller answered"

    replaced = call(api, "PUT", f"{SERVICES}/gw", service)
    assert replaced["spec"]["clusterIP"] == spec["clusterIP"]
    assert replaced["spec"]["ports"][0]["nodePort"] == port["nodePort"]
    other = call(api, "POST", SERVICES, {**service, "metadata": {"name": "other"}})
    assert other["spec"]["clusterIP"] != spec["clusterIP"]


def test_headless_service_keeps_none(api):
    created = call(api, "POST", SERVICES, {"apiVersion": "v1", "kind": "Service",
                                           "metadata": {"name": "db"},
                                           "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}})
    assert created["spec"]["clusterIPs"] == ["None"]


def claim(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "8Gi"}}, **spec}}


CLAIMS = "/api/v1/namespaces/default/persistentvolumeclaims"


def test_claim_of_the_default_class_is_bound_to_a_new_volume(api):
    call(api, "POST", CLAIMS, claim("data"))
    bound = call(api, "GET", f"{CLAIMS}/data")
    assert bound["spec"]["storageClassName"] == "standard"
    assert bound["status"] == {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                               "capacity": {"storage": "8Gi"}}
    volume = call(api, "GET", f"/api/v1/persistentvolumes/{bound['spec']['volumeName']}")
    assert volume["spec"]["claimRef"]["uid"] == bound["metadata"]["uid"]

    call(api, "DELETE", f"{CLAIMS}/data")
    assert call(api, "GET", "/api/v1/persistentvolumes")["items"] == [], \
        "the Delete reclaim policy removes the volume with its claim"


def test_claim_of_a_missing_class_stays_pending(api):
    call(api, "POST", CLAIMS, claim("fast", storageClassName="fast-ssd"))
    assert "status" not in call(api, "GET", f"{CLAIMS}/fast")


def test_crd_is_established_with_accepted_names(api):
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                        "openAPIV3Schema": {"type": "object"}}}]}}
    call(api, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    status = call(api, "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                              "widgets.example.com")["status"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "NamesAccepted": "True", "Established": "True"}
    assert status["acceptedNames"] == {"plural": "widgets", "singular": "widget", "kind": "Widget",
                                       "listKind": "WidgetList"}
    assert status["storedVersions"] == ["v1"]
