"""OpenAPI v3 documents, so kubectl finds the schemas and the `fieldValidation` parameter.

With them kubectl leaves validation to the server (`fieldValidation=Strict`) and computes
strategic merge patches from the same schemas the server uses.
"""

from __future__ import annotations

import functools
import hashlib
import json

from . import builtin_schemas, patching
from .catalog import ResourceType

QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def _rewrite_refs(node):
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out[key] = "#/components/schemas/" + value.rsplit("/", 1)[-1]
            else:
                out[key] = _rewrite_refs(value)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


@functools.cache
def _builtin_components() -> dict:
    return _rewrite_refs(builtin_schemas.definitions()["$defs"])


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def patch_types(rtype: ResourceType) -> list[str]:
    """The PATCH media types a kind accepts: no strategic merge for custom resources."""
    types = [patching.JSON, patching.MERGE, patching.APPLY]
    return types if rtype.custom else [*types, patching.STRATEGIC]


def resource_paths(rtype: ResourceType) -> dict[str, dict[str, str]]:
    """A kind's URL templates, each with its HTTP methods and the Kubernetes action they run
    (the `x-kubernetes-action` of both OpenAPI versions)."""
    base = "/" + gv_path(rtype.group, rtype.version)
    if rtype.namespaced:
        base += "/namespaces/{namespace}"
    collection = f"{base}/{rtype.plural}"
    return {collection: {"get": "list", "post": "post"},
            collection + "/{name}": {"get": "get", "put": "put", "patch": "patch",
                                     "delete": "delete"}}


def operation_gvk(rtype: ResourceType) -> dict:
    return {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}


def _operation(rtype: ResourceType, action: str) -> dict:
    operation = {
        "operationId": f"{action}{rtype.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": operation_gvk(rtype),
        "parameters": [{"name": p, "in": "query", "schema": {"type": "string"}}
                       for p in QUERY_PARAMS],
        "responses": {"200": {"description": "OK"}},
    }
    if action == "patch":
        body = {"schema": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}}
        operation["requestBody"] = {"content": dict.fromkeys(patch_types(rtype), body)}
    return operation


def _paths(rtype: ResourceType) -> dict:
    return {path: {method: _operation(rtype, action) for method, action in methods.items()}
            for path, methods in resource_paths(rtype).items()}


def custom_definition_name(rtype: ResourceType) -> str:
    """A custom kind's schema name as the API server forms it: reversed group, version, kind
    (`io.istio.networking.v1.DestinationRule`)."""
    return ".".join([*reversed(rtype.group.split(".")), rtype.version, rtype.kind])


def _custom_schema(rtype: ResourceType) -> dict:
    return {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
            "x-kubernetes-group-version-kind": [operation_gvk(rtype)]}


def group_version_document(types: list[ResourceType]) -> dict:
    """The OpenAPI v3 document of one group/version."""
    paths, schemas = {}, {}
    for rtype in types:
        paths.update(_paths(rtype))
        if rtype.custom:
            schemas[custom_definition_name(rtype)] = _custom_schema(rtype)
    components = {**_builtin_components(), **schemas} if any(not t.custom for t in types) \
        else schemas
    return {"openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": f"v{builtin_schemas.KUBERNETES_VERSION}.0"},
            "paths": paths, "components": {"schemas": components}}


def index(group_versions: dict[str, list[str]]) -> dict:
    """`/openapi/v3`: where each group/version's document lives, with a content hash."""
    paths = {}
    for group, versions in group_versions.items():
        for version in versions:
            path = gv_path(group, version)
            digest = hashlib.sha256(json.dumps([path, version]).encode()).hexdigest()[:16].upper()
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}
