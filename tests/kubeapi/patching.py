"""The four PATCH flavours of the Kubernetes API: JSON merge, JSON patch, strategic merge, apply."""

from __future__ import annotations

import copy

import jsonpatch
import jsonpointer

from . import builtin_schemas as schemas

MERGE = "application/merge-patch+json"
JSON = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
APPLY_CBOR = "application/apply-patch+cbor"


# Schema defaults of list-map key fields (ServicePort, ContainerPort): an applied item without
# `protocol` names the same entry as the stored, defaulted one. kubernetes-validate's schemas
# carry no defaults, so the one that matters is stated here.
LIST_KEY_DEFAULTS = {"protocol": "TCP"}


class PatchError(ValueError):
    """A patch that cannot be applied; `test_failed` marks a failed JSON-patch `test` op."""

    def __init__(self, message: str, test_failed: bool = False) -> None:
        super().__init__(message)
        self.test_failed = test_failed


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch: maps merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: dict, operations) -> dict:
    """RFC 6902 JSON patch; a failed `test` operation is reported as such."""
    if not isinstance(operations, list):
        raise PatchError("json patch must be a list of operations")
    try:
        return jsonpatch.apply_patch(target, operations)
    except jsonpatch.JsonPatchTestFailed as err:
        raise PatchError(f"the server rejected our request due to an error in our request: {err}",
                         test_failed=True) from err
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError) as err:
        raise PatchError(f"the server rejected our request due to an error in our request: {err}") from err


def strategic_merge_patch(target: dict, patch: dict, schema: dict | None) -> dict:
    """Kubernetes strategic merge patch, driven by the kind's `x-kubernetes-patch-*` metadata."""
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    return _smp_map(target, patch, schema)


def _strip_directives(value):
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items()
                if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value
                if not (isinstance(v, dict) and v.get("$patch") == "replace" and len(v) == 1)]
    return value


def _smp_map(original, patch: dict, schema: dict | None) -> dict:
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip_directives(patch)
    if directive == "delete":
        return {}
    result = dict(original) if isinstance(original, dict) else {}
    orders = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            drop = set(map(_hashable, value or []))
            result[field] = [v for v in result.get(field) or [] if _hashable(v) not in drop]
            continue
        prop = schemas.property_schema(schema, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                result[key] = _smp_map(result.get(key), value, prop)
        elif isinstance(value, list):
            result[key] = _smp_list(result.get(key), value, prop)
        else:
            result[key] = value
    if "$retainKeys" in patch:
        keep = set(patch["$retainKeys"] or [])
        result = {k: v for k, v in result.items() if k in keep}
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            field_schema = schemas.property_schema(schema, field) or {}
            result[field] = _reorder(result[field], order,
                                     field_schema.get("x-kubernetes-patch-merge-key"))
    return result


def _smp_list(original, patch: list, prop: dict | None) -> list:
    prop = prop or {}
    strategy = prop.get("x-kubernetes-patch-strategy", "").split(",")
    if "merge" not in strategy:
        return _strip_directives(patch)
    if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
        return _strip_directives(patch)
    result = list(original) if isinstance(original, list) else []
    merge_key = prop.get("x-kubernetes-patch-merge-key")
    if not merge_key:
        seen = {_hashable(v) for v in result}
        for value in patch:
            if _hashable(value) not in seen:
                result.append(value)
                seen.add(_hashable(value))
        return result
    item_schema = schemas.items_schema(prop)
    for element in patch:
        if not isinstance(element, dict) or merge_key not in element:
            raise PatchError(f"map: {element!r} does not contain declared merge key: {merge_key}")
        index = next((i for i, cur in enumerate(result)
                      if isinstance(cur, dict) and cur.get(merge_key) == element[merge_key]), None)
        if element.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append(_strip_directives(element))
        else:
            result[index] = _smp_map(result[index], element, item_schema)
    return result


def _reorder(values: list, order: list, merge_key: str | None) -> list:
    def ident(v):
        return _hashable(v.get(merge_key) if merge_key and isinstance(v, dict) else v)

    rank = {ident(v): i for i, v in enumerate(order)}
    return sorted(values, key=lambda v: rank.get(ident(v), len(rank)))


def _hashable(value):
    return repr(value)


def server_side_apply(live: dict | None, applied: dict, previous: dict | None,
                      schema: dict | None) -> dict:
    """Merge an applied configuration into the live object.

    Fields the same field manager applied before and no longer applies are removed; lists with
    `x-kubernetes-list-type: map` merge by their keys, `set` lists by value, others are atomic.
    Ownership conflicts between managers are not modelled: the last applier wins.
    """
    return _apply_map(live or {}, applied, previous or {}, schema)


def _apply_map(live: dict, applied: dict, previous: dict, schema: dict | None) -> dict:
    result = dict(live)
    for key in previous:
        if key not in applied:
            result.pop(key, None)
    for key, value in applied.items():
        prop = schemas.property_schema(schema, key)
        resolved = schemas.resolve(prop) or {}
        before = previous.get(key)
        if (isinstance(value, dict) and isinstance(result.get(key), dict)
                and resolved.get("x-kubernetes-map-type") != "atomic"):
            result[key] = _apply_map(result[key], value, before if isinstance(before, dict) else {},
                                     prop)
        elif isinstance(value, list) and isinstance(result.get(key), list) and prop:
            result[key] = _apply_list(result[key], value, before if isinstance(before, list) else [],
                                      prop)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _apply_list(live: list, applied: list, previous: list, prop: dict) -> list:
    list_type = prop.get("x-kubernetes-list-type")
    if list_type == "set":
        dropped = {_hashable(v) for v in previous} - {_hashable(v) for v in applied}
        kept = [v for v in live if _hashable(v) not in dropped]
        present = {_hashable(v) for v in kept}
        return kept + [v for v in applied if _hashable(v) not in present]
    keys = prop.get("x-kubernetes-list-map-keys")
    if list_type != "map" or not keys:
        return copy.deepcopy(applied)

    def ident(item):
        return tuple(item.get(k, LIST_KEY_DEFAULTS.get(k)) for k in keys) \
            if isinstance(item, dict) else None

    applied_ids = {ident(v) for v in applied}
    dropped = {ident(v) for v in previous} - applied_ids
    previous_by_id = {ident(v): v for v in previous}
    result = [v for v in live if ident(v) not in dropped]
    item_schema = schemas.items_schema(prop)
    for item in applied:
        index = next((i for i, cur in enumerate(result) if ident(cur) == ident(item)), None)
        if index is None:
            result.append(copy.deepcopy(item))
        else:
            result[index] = _apply_map(result[index], item,
                                       previous_by_id.get(ident(item)) or {}, item_schema)
    return result
