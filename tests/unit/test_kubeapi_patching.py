"""Patch semantics of the test API server, checked against Kubernetes' documented behaviour."""

from __future__ import annotations

import pytest

from tests.kubeapi import builtin_schemas
from tests.kubeapi.patching import (
    PatchError,
    json_patch,
    merge_patch,
    server_side_apply,
    strategic_merge_patch,
)

DEPLOYMENT_SCHEMA = builtin_schemas.root_schema("Deployment", "apps", "v1")


def deployment(containers, **spec) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": containers}}, **spec}}


def containers_of(obj) -> list:
    return obj["spec"]["template"]["spec"]["containers"]


def test_merge_patch_follows_rfc_7386():
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "list": [3]}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "list": [3]}
    assert target["c"] == {"d": "e", "f": "g"}, "the input is not modified"


def test_strategic_merge_merges_containers_by_name():
    live = deployment([{"name": "app", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
                       {"name": "sidecar", "image": "s:1"}])
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "a:2", "env": [{"name": "Y", "value": "2"}]}]}}}}
    result = containers_of(strategic_merge_patch(live, patch, DEPLOYMENT_SCHEMA))
    assert [c["name"] for c in result] == ["app", "sidecar"]
    assert result[0]["image"] == "a:2"
    assert result[0]["env"] == [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]


def test_strategic_merge_directives():
    live = deployment([{"name": "app", "image": "a:1", "args": ["--x"]},
                       {"name": "old", "image": "o:1"}])
    delete = {"spec": {"template": {"spec": {"containers": [{"name": "old", "$patch": "delete"}]}}}}
    assert [c["name"] for c in containers_of(
        strategic_merge_patch(live, delete, DEPLOYMENT_SCHEMA))] == ["app"]

    replace = {"spec": {"template": {"spec": {"containers": [
        {"name": "new", "image": "n:1"}, {"$patch": "replace"}]}}}}
    assert containers_of(strategic_merge_patch(live, replace, DEPLOYMENT_SCHEMA)) == [
        {"name": "new", "image": "n:1"}]

    order = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "old"}, {"name": "app"}],
        "containers": [{"name": "app", "image": "a:3"}]}}}}
    result = containers_of(strategic_merge_patch(live, order, DEPLOYMENT_SCHEMA))
    assert [c["name"] for c in result] == ["old", "app"]
    assert "$setElementOrder/containers" not in str(result)


def test_strategic_merge_replaces_lists_without_merge_strategy():
    live = deployment([{"name": "app", "image": "a:1", "args": ["--x", "--y"]}])
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "args": ["--z"]}]}}}}
    assert containers_of(strategic_merge_patch(live, patch, DEPLOYMENT_SCHEMA))[0]["args"] == \
        ["--z"]


def test_strategic_merge_requires_the_merge_key():
    live = deployment([{"name": "app", "image": "a:1"}])
    patch = {"spec": {"template": {"spec": {"containers": [{"image": "nameless"}]}}}}
    with pytest.raises(PatchError, match="merge key"):
        strategic_merge_patch(live, patch, DEPLOYMENT_SCHEMA)


def test_json_patch_failed_test_is_flagged():
    with pytest.raises(PatchError) as err:
        json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
    assert err.value.test_failed
    with pytest.raises(PatchError) as err:
        json_patch({"a": 1}, [{"op": "remove", "path": "/missing"}])
    assert not err.value.test_failed
    assert json_patch({"a": 1}, [{"op": "add", "path": "/b", "value": 2}]) == {"a": 1, "b": 2}


def test_server_side_apply_removes_fields_the_manager_dropped():
    first = deployment([{"name": "app", "image": "a:1"}, {"name": "extra", "image": "e:1"}],
                       replicas=2)
    live = server_side_apply(None, first, None, DEPLOYMENT_SCHEMA)
    live["metadata"]["labels"] = {"owner": "someone-else"}
    second = deployment([{"name": "app", "image": "a:2"}])
    result = server_side_apply(live, second, first, DEPLOYMENT_SCHEMA)
    assert containers_of(result) == [{"name": "app", "image": "a:2"}]
    assert "replicas" not in result["spec"], "dropped by the manager that set it"
    assert result["metadata"]["labels"] == {"owner": "someone-else"}, "other managers' fields stay"
