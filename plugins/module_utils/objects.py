# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Objects that must exist with at least the given fields: created when missing, merge-patched
when a given field differs, and not written at all when the live object already has them.

Unlike `plan_owned` (objects meshtune owns whole), these may be shared: a Namespace keeps the
labels others set, a ConfigMap the keys others added. What a definition leaves out is left alone.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import KubeError
from ansible_collections.meshtune.mesh.plugins.module_utils.reconcile import Change, is_subset
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import (
    DNS1123_SUBDOMAIN_RE,
    InvalidOption,
)

HIDDEN = "(hidden: Secret data)"
IDENTITY = ("apiVersion", "kind")


def check_definition(path, obj):
    """A definition names its apiVersion, kind and metadata.name; InvalidOption otherwise."""
    if not isinstance(obj, dict):
        raise InvalidOption(path, "a Kubernetes object (a mapping)", obj)
    for field in IDENTITY:
        if not isinstance(obj.get(field), str) or not obj[field]:
            raise InvalidOption(f"{path}.{field}", "a non-empty string", obj.get(field))
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not DNS1123_SUBDOMAIN_RE.match(name) or len(name) > 253:
        raise InvalidOption(f"{path}.metadata.name", "a DNS subdomain (lowercase letters, digits, "
                                                     "'-' and '.')", name)
    namespace = meta.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise InvalidOption(f"{path}.metadata.namespace", "a namespace name", namespace)


def merged(live, patch):
    """`live` with `patch` merged in (JSON merge patch semantics: mappings merge, the rest replace)."""
    result = copy.deepcopy(live)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _shown(obj):
    """What a diff may show of an object: a Secret's data values are hidden."""
    if obj.get("kind") != "Secret":
        return obj
    shown = copy.deepcopy(obj)
    for field in ("data", "stringData"):
        if isinstance(shown.get(field), dict):
            shown[field] = dict.fromkeys(shown[field], HIDDEN)
    return shown


def _fields(obj):
    """The fields a definition sets, without its identity (apiVersion and kind)."""
    return {key: value for key, value in obj.items() if key not in IDENTITY}


def plan_present(client, targets):
    """One Change per (resource, namespace, definition): the live object is read once each."""
    changes = []
    for resource, namespace, obj in targets:
        kind, api_version, name = obj["kind"], obj["apiVersion"], obj["metadata"]["name"]
        live = client.get(resource, namespace, name)
        if live is not None and is_subset(_fields(obj), live):
            changes.append(Change(kind, namespace, name, "unchanged", api_version))
            continue
        patch = _fields(obj)
        if live is None:
            write = _creator(client, resource, namespace, obj, patch)
            before, after = {}, _shown(obj)
        else:
            write = _patcher(client, resource, namespace, name, patch)
            before, after = _shown(live), _shown(merged(live, patch))
        changes.append(Change(kind, namespace, name, "created" if live is None else "updated",
                              api_version, before=before, after=after, write=write))
    return changes


def dry_run_rejections(client, targets, changes):
    """What the server rejects of the planned writes, each sent first as a dry run (dryRun=All):
    one "<object>: <reason>" per rejected object, so a batch is validated whole before any write.

    `changes` are plan_present's, one per target in order. Only 400 and 422 answers are
    rejections; other failures raise KubeError, as a real write would.
    """
    rejected = []
    for (resource, namespace, obj), change in zip(targets, changes):
        if change.write is None:
            continue
        try:
            if change.action == "created":
                client.call(resource.create, body=obj, namespace=namespace, dry_run="All",
                            conflict_is_final=True)
            else:
                client.call(resource.patch, body=_fields(obj), name=change.name,
                            namespace=namespace, content_type="application/merge-patch+json",
                            dry_run="All")
        except KubeError as error:
            if error.status == 409:
                continue  # created meanwhile: the real write patches it instead
            if error.status not in (400, 422):
                raise
            rejected.append(f"{change.label}: {error}")
    return rejected


def _creator(client, resource, namespace, obj, patch):
    return lambda: client.create_or_update(resource, namespace, obj,
                                           lambda current: merged(current, patch))


def _patcher(client, resource, namespace, name, patch):
    return lambda: client.merge_patch(resource, namespace, name, patch)
