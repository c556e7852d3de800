"""API discovery documents: the per-group lists and the aggregated `apidiscovery.k8s.io/v2` form.

client-go (Helm, kubectl) asks `/api` and `/apis` for the aggregated form first; a server that
answers it saves them one request per group/version. Older clients, and the Python client, ask
for the per-group documents. Both are built from the same served types.
"""

from __future__ import annotations

from .catalog import ALL_VERBS, ResourceType
from .defaults import WORKLOAD_KINDS

AGGREGATED_MEDIA_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
_SUBRESOURCE_VERBS = {"log": ["get"], "finalize": ["update"]}
_DEFAULT_SUBRESOURCE_VERBS = ["get", "patch", "update"]


def wants_aggregated(accept: str) -> bool:
    """Whether the Accept header asks for the aggregated documents (before any plain JSON)."""
    for clause in accept.split(","):
        params = {p.strip() for p in clause.split(";")[1:]}
        if {"g=apidiscovery.k8s.io", "v=v2", "as=APIGroupDiscoveryList"} <= params:
            return True
        if clause.split(";")[0].strip() in ("application/json", "*/*"):
            return False
    return False


def _categories(rtype: ResourceType) -> list[str]:
    return ["all"] if rtype.kind in WORKLOAD_KINDS or rtype.kind in ("Pod", "Service", "Job") \
        else []


def _subresource_kind(rtype: ResourceType, sub: str) -> dict:
    if sub == "scale":
        return {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    return {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}


def resource_list(group: str, version: str, types: list[ResourceType]) -> dict:
    """`/apis/{group}/{version}` (or `/api/v1`): an APIResourceList."""
    resources = []
    for rtype in sorted(types, key=lambda t: t.plural):
        entry = {"name": rtype.plural, "singularName": rtype.singular,
                 "namespaced": rtype.namespaced, "kind": rtype.kind, "verbs": ALL_VERBS}
        if rtype.short_names:
            entry["shortNames"] = list(rtype.short_names)
        if _categories(rtype):
            entry["categories"] = _categories(rtype)
        resources.append(entry)
        for sub in rtype.subresources:
            sub_kind = _subresource_kind(rtype, sub)
            sub_entry = {"name": f"{rtype.plural}/{sub}", "singularName": "",
                         "namespaced": rtype.namespaced, "kind": sub_kind["kind"],
                         "verbs": _SUBRESOURCE_VERBS.get(sub, _DEFAULT_SUBRESOURCE_VERBS)}
            if sub_kind["group"] != rtype.group:
                sub_entry.update(group=sub_kind["group"], version=sub_kind["version"])
            resources.append(sub_entry)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": resources}


def _aggregated_resource(rtype: ResourceType) -> dict:
    entry = {"resource": rtype.plural,
             "responseKind": {"group": rtype.group, "version": rtype.version, "kind": rtype.kind},
             "scope": "Namespaced" if rtype.namespaced else "Cluster",
             "singularResource": rtype.singular, "verbs": ALL_VERBS}
    if rtype.short_names:
        entry["shortNames"] = list(rtype.short_names)
    if _categories(rtype):
        entry["categories"] = _categories(rtype)
    if rtype.subresources:
        entry["subresources"] = [
            {"subresource": sub, "responseKind": _subresource_kind(rtype, sub),
             "verbs": _SUBRESOURCE_VERBS.get(sub, _DEFAULT_SUBRESOURCE_VERBS)}
            for sub in rtype.subresources]
    return entry


def aggregated(groups: dict[str, list[str]], types: list[ResourceType], core: bool) -> dict:
    """`/api` (core) or `/apis` as an APIGroupDiscoveryList: every group, its versions (preferred
    first) and their resources in one document."""
    items = []
    for group, versions in sorted(groups.items()):
        if (group == "") != core:
            continue
        items.append({"metadata": {"name": group}, "versions": [
            {"version": version, "freshness": "Current", "resources": [
                _aggregated_resource(t) for t in sorted(types, key=lambda t: t.plural)
                if t.group == group and t.version == version]}
            for version in versions]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": items}
