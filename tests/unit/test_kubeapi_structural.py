"""CRD-defined kinds in the test API server: structural schema checks, and a CRD taking over a kind
the server serves from its own Istio schemas."""

from __future__ import annotations

import json

import pytest

from tests.kubeapi import structural
from tests.kubeapi.api import KubeAPI, Request
from tests.kubeapi.errors import ApiError

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {"type": "object", "properties": {
            "port": {"x-kubernetes-int-or-string": True},
            "weight": {"type": "integer", "nullable": True, "minimum": 0},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                         "properties": {"spec": {"type": "object"}}},
            "a": {"type": "string"}, "b": {"type": "string"},
        }, "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
            "x-kubernetes-validations": [{"rule": "self.a != 'cel'", "message": "not checked"}]},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def errors(obj: dict) -> list[str]:
    return sorted(err.message for err in structural.validator(SCHEMA).iter_errors(obj))


def test_valid_object_passes():
    assert errors({"apiVersion": "example.com/v1", "kind": "W", "spec": {
        "a": "cel", "port": "http", "weight": None, "labels": {"x": "y"},
        "extra": {"anything": [1]}, "template": {"apiVersion": "v1", "kind": "Pod",
                                                 "metadata": {"name": "p"}, "spec": {}}}}) == []


@pytest.mark.parametrize("spec", [
    {"a": "x", "unknown": 1},        # closed object
    {"a": "x", "port": 1.5},         # int-or-string
    {"a": "x", "weight": -1},        # minimum
    {"a": "x", "labels": {"k": 1}},  # additionalProperties schema
    {"a": "x", "b": "y"},            # oneOf value rule
])
def test_violations_are_reported(spec):
    assert errors({"spec": spec})


def test_unknown_top_level_field_is_reported():
    assert errors({"spec": {"a": "x"}, "extra": True})


def destination_rule_crd(**validation) -> dict:
    spec_schema = {"type": "object", "properties": {"host": {"type": "string"}}, **validation}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "destinationrules.networking.istio.io"},
            "spec": {"group": "networking.istio.io", "scope": "Namespaced",
                     "names": {"plural": "destinationrules", "kind": "DestinationRule"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "subresources": {"status": {}},
                                   "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                       "spec": spec_schema}}}}]}}


def call(api: KubeAPI, method: str, path: str, body: dict | None = None):
    return api.handle(Request(method, path, {}, "application/json",
                              json.dumps(body).encode() if body is not None else b""))


RULES = "/apis/networking.istio.io/{}/namespaces/default/destinationrules"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def rule(name: str, **spec) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": name}, "spec": {"host": "web", **spec}}


def test_a_crd_takes_over_an_own_kind_and_gives_it_back():
    api = KubeAPI()
    assert api.catalog.find("networking.istio.io", "v1alpha3", "destinationrules")
    call(api, "POST", CRDS, destination_rule_crd())

    assert api.catalog.find("networking.istio.io", "v1alpha3", "destinationrules") is None, \
        "only the CRD's versions are served"
    with pytest.raises(ApiError) as err:
        call(api, "POST", RULES.format("v1"), rule("tls", trafficPolicy={}))
    assert err.value.code == 422 and "spec.trafficPolicy" in err.value.message, \
        "the CRD's schema, not the server's own, judges the object"
    assert call(api, "POST", RULES.format("v1"), rule("plain")).code == 201

    call(api, "DELETE", f"{CRDS}/destinationrules.networking.istio.io")
    assert call(api, "GET", RULES.format("v1alpha3")).body["items"] == [], \
        "the objects went with their definition; the server's own kind is served again"
    assert call(api, "POST", RULES.format("v1"), rule("tls", trafficPolicy={})).code == 201
