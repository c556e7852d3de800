"""API discovery of the test API server: the per-group documents and the aggregated
`apidiscovery.k8s.io/v2` form client-go asks for first."""

from __future__ import annotations

import pytest

from tests.kubeapi import discovery
from tests.kubeapi.api import KubeAPI, Request

CLIENT_GO_ACCEPT = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
                    "application/json")


@pytest.fixture(scope="module")
def api() -> KubeAPI:
    return KubeAPI(disabled={"autoscaling/v1"})


@pytest.mark.parametrize(("accept", "aggregated"), [
    (CLIENT_GO_ACCEPT, True), ("application/json", False), ("", False),
    ("application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
     False)])
def test_aggregated_only_when_asked_first(accept, aggregated):
    assert discovery.wants_aggregated(accept) is aggregated


def test_apis_aggregated_lists_groups_versions_and_resources(api):
    response = api.handle(Request("GET", "/apis", {}, accept=CLIENT_GO_ACCEPT))
    assert response.headers["Content-Type"] == discovery.AGGREGATED_MEDIA_TYPE
    groups = {item["metadata"]["name"]: item for item in response.body["items"]}
    assert "" not in groups
    assert [v["version"] for v in groups["autoscaling"]["versions"]] == ["v2"], \
        "a disabled group/version is left out"
    apps = {r["resource"]: r for r in groups["apps"]["versions"][0]["resources"]}
    deployments = apps["deployments"]
    assert deployments["responseKind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert deployments["scope"] == "Namespaced" and deployments["categories"] == ["all"]
    assert {s["subresource"]: s["responseKind"]["kind"] for s in deployments["subresources"]} == {
        "status": "Deployment", "scale": "Scale"}
    hooks = {r["resource"]: r for r in
             groups["admissionregistration.k8s.io"]["versions"][0]["resources"]}
    assert hooks["validatingwebhookconfigurations"]["scope"] == "Cluster"


def test_api_aggregated_is_the_core_group(api):
    body = api.handle(Request("GET", "/api", {}, accept=CLIENT_GO_ACCEPT)).body
    assert [item["metadata"]["name"] for item in body["items"]] == [""]
    resources = {r["resource"] for r in body["items"][0]["versions"][0]["resources"]}
    assert {"secrets", "namespaces", "persistentvolumeclaims"} <= resources


def test_plain_clients_get_the_per_group_documents(api):
    assert api.handle(Request("GET", "/apis", {}, accept="application/json")).body["kind"] == \
        "APIGroupList"
    pods = api.handle(Request("GET", "/api/v1", {})).body
    log = next(r for r in pods["resources"] if r["name"] == "pods/log")
    assert log["verbs"] == ["get"]
