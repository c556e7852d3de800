"""meshtune.mesh.k8s_objects against the test API server: create, leave alone, merge-patch."""

from __future__ import annotations

import json

import pytest

from tests.support.ansible_runner import run_module

MODULE = "meshtune.mesh.k8s_objects"
WRITE_VERBS = ("create", "update", "patch", "delete")
NAMESPACES = """
---
apiVersion: v1
kind: Namespace
metadata:
  name: edge
---
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    istio.io/rev: 1-30-3
"""
SECRET = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
          "metadata": {"name": "admin", "namespace": "shop"},
          "data": {"password": "czNjcmV0"}}


def writes(server) -> int:
    verbs = server.stats()["requests"]["by_verb"]
    return sum(verbs.get(verb, 0) for verb in WRITE_VERBS)


def labels(server, namespace: str) -> dict:
    return json.loads(server.kubectl("get", "namespace", namespace, "-o", "json").stdout)[
        "metadata"].get("labels", {})


@pytest.fixture
def apply(kubeapi, tmp_path):
    def run(definitions, *flags: str) -> dict:
        return run_module(tmp_path, MODULE, {"kubeconfig": str(kubeapi.kubeconfig),
                                             "definitions": definitions}, *flags)
    return run


def test_creates_then_leaves_alone_with_no_write(kubeapi, apply):
    first = apply(NAMESPACES)
    assert first["changed"] is True and first["summary"]["created"] == 2, first
    assert labels(kubeapi, "shop")["istio.io/rev"] == "1-30-3"
    kubeapi.reset_stats()
    second = apply(NAMESPACES)
    assert second["changed"] is False and second["summary"]["unchanged"] == 2, second
    assert writes(kubeapi) == 0


def test_patches_only_the_given_fields_and_keeps_the_others(kubeapi, apply):
    kubeapi.kubectl("label", "namespace", "shop", "team=checkout")
    moved = NAMESPACES.replace("1-30-3", "canary")
    planned = apply(moved, "--check", "--diff")
    assert planned["changed"] is True and planned["summary"]["updated"] == 1, planned
    assert labels(kubeapi, "shop")["istio.io/rev"] == "1-30-3"  # check mode wrote nothing
    assert planned["diff"][0]["after"]["metadata"]["labels"]["istio.io/rev"] == "canary"
    result = apply(moved)
    assert result["summary"] == {"created": 0, "updated": 1, "unchanged": 1, "deleted": 0,
                                 "skipped": 0, "failed": 0, "total": 2}
    live = labels(kubeapi, "shop")
    assert (live["istio.io/rev"], live["team"]) == ("canary", "checkout")


def test_secret_data_never_shows_in_a_diff(kubeapi, apply):
    result = apply([SECRET], "--diff")
    assert result["changed"] is True
    assert "czNjcmV0" not in json.dumps(result)
    assert result["diff"][0]["after"]["data"] == {"password": "(hidden: Secret data)"}


@pytest.mark.parametrize(("definitions", "expected"), [
    ([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Bad_Name"}}],
     "definitions[0].metadata.name: expected a DNS subdomain"),
    ([{"kind": "Namespace", "metadata": {"name": "x"}}],
     "definitions[0].apiVersion: expected a non-empty string"),
    ("a: [unclosed", "definitions: expected YAML documents"),
    (42, "definitions: expected a list of Kubernetes objects"),
])
def test_bad_definitions_fail_before_any_request(kubeapi, apply, definitions, expected):
    kubeapi.reset_stats()
    result = apply(definitions)
    assert result.get("failed") is True and expected in result["msg"], result
    assert kubeapi.stats()["requests"]["total"] == 0


def test_a_namespaced_object_without_namespace_writes_nothing(kubeapi, apply):
    kubeapi.reset_stats()
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "loose"}}
    result = apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "first"}},
                    config_map])
    assert result.get("failed") is True
    assert result["msg"].startswith("definitions[1].metadata.namespace: expected the namespace")
    assert writes(kubeapi) == 0
