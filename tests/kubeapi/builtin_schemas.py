"""Kubernetes' own OpenAPI schemas (as shipped by kubernetes-validate): validation and patch metadata."""

from __future__ import annotations

import functools
import json
from importlib import resources

import jsonschema
from referencing import Registry, Resource

KUBERNETES_VERSION = "1.37"
_SCHEMA_DIR = f"kubernetes-json-schema/v{KUBERNETES_VERSION}.0-local-strict"
_DEFS_PREFIXES = ("/api/_definitions.json#/$defs/", "#/$defs/",
                  "https://kubernetes.io/api/_definitions.json#/$defs/")


def _schema_file(name: str) -> dict | None:
    path = resources.files("kubernetes_validate").joinpath(f"{_SCHEMA_DIR}/{name}")
    if not path.is_file():
        return None
    return json.loads(path.read_text())


@functools.cache
def definitions() -> dict:
    """The `$defs` document every kind schema refers to."""
    return _schema_file("_definitions.json")


@functools.cache
def _registry() -> Registry:
    return Resource.from_contents(definitions()) @ Registry()


@functools.cache
def validator_for(kind: str, group: str, version: str) -> jsonschema.Validator | None:
    """A strict validator for one built-in kind, compiled once; None when no schema exists."""
    api = f"{group.split('.')[0]}-{version}" if group else version
    schema = _schema_file(f"{kind.lower()}-{api}.json")
    if schema is None:
        return None
    return jsonschema.Draft202012Validator(schema, registry=_registry())


@functools.cache
def _defs_by_gvk() -> dict[tuple[str, str, str], str]:
    index = {}
    for name, node in definitions()["$defs"].items():
        for gvk in node.get("x-kubernetes-group-version-kind", []):
            index[(gvk["group"], gvk["version"], gvk["kind"])] = name
    return index


def definition_name(kind: str, group: str, version: str) -> str | None:
    """The name Kubernetes gives a kind's schema, e.g. `io.k8s.api.core.v1.Secret`."""
    return _defs_by_gvk().get((group, version, kind))


def root_schema(kind: str, group: str, version: str) -> dict | None:
    """The schema node of a kind's top-level object, for walking patch metadata."""
    name = definition_name(kind, group, version)
    return definitions()["$defs"][name] if name else None


def resolve(node: dict | None) -> dict | None:
    """Follow `$ref` to the definition it names."""
    while node and "$ref" in node:
        ref = node["$ref"]
        for prefix in _DEFS_PREFIXES:
            if ref.startswith(prefix):
                node = definitions()["$defs"].get(ref[len(prefix):])
                break
        else:
            return None
    return node


def property_schema(node: dict | None, key: str) -> dict | None:
    """Schema of `key` inside the object schema `node` (unresolved: it carries list extensions)."""
    node = resolve(node)
    if not node:
        return None
    props = node.get("properties") or {}
    if key in props:
        return props[key]
    extra = node.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def items_schema(node: dict | None) -> dict | None:
    node = resolve(node)
    return node.get("items") if node else None


def is_quantity(node: dict | None) -> bool:
    return bool(node) and node.get("$ref", "").endswith("io.k8s.apimachinery.pkg.api.resource.Quantity")
