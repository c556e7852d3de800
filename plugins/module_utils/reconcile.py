# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Desired vs. live for many objects in one task: plan per object, write only what differs.

A module lists the live objects once per namespace, builds one `Change` per object it manages,
and hands the list to `run`, which performs the writes (none in check mode), in parallel up to a
bound, and reports per object what was done, a summary, and diffs in diff mode. Once the API
server stops answering, the writes not yet started are not attempted (reported `skipped`, reason
NOT_ATTEMPTED): each would otherwise spend its own retries on a server that is gone.

Objects meshtune owns (`plan_owned`) carry the label app.kubernetes.io/managed-by=meshtune. Their
managed fields (`spec`) are converged whole: a field changed, added or removed by hand is drift,
put back and reported as `updated` with the reason "drift: <fields>". An object of the same name
without the label belongs to someone else: it is neither changed nor deleted (`skipped`) unless
the module is told to take it over (`force`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import copy
import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import (
    KubeError,
    fail_read,
    failure_reason,
    unreachable_message,
)

ACTIONS = ("created", "updated", "unchanged", "deleted", "skipped", "failed")
WRITING_ACTIONS = ("created", "updated", "deleted")
APPLIED_HASH = "meshtune.io/applied-hash"
# The digest of the managed fields as the server stored them, kept only when that differs from
# what was sent (defaults it filled in, values it normalised): drift is measured against it.
STORED_HASH = "meshtune.io/stored-hash"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = {MANAGED_BY_LABEL: "meshtune"}
NOT_ATTEMPTED = "not attempted: the API server stopped answering"
DRIFT_PATHS_SHOWN = 10


def argument_spec(owned=False):
    """The batch options (doc fragment meshtune.mesh.reconcile, and .owned with owned=True), to
    merge into a module's argument spec."""
    spec = {
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "parallelism": {"type": "int", "default": 8},
    }
    if owned:
        spec["force"] = {"type": "bool", "default": False}
    return spec


def add_option_problems(problems, params):
    """Add to validate.Problems what is wrong with the batch options."""
    if params["parallelism"] < 1:
        problems.add("parallelism", "an integer of at least 1", params["parallelism"])


class Change:
    """What to do to one object: the action, the before/after for diffs, and the write itself."""

    def __init__(self, kind, namespace, name, action, api_version=None, before=None, after=None,
                 reason=None, write=None):
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.action = action
        self.api_version = api_version
        self.before = before
        self.after = after
        self.reason = reason
        self.write = write  # callable(): performs the write; None when nothing is written
        self.error = None
        self.unreachable = False  # failed because the API server did not answer
        self.attempted = True  # False when the batch stopped before this object's write
        self.foreign = False  # the live object is not meshtune's (no managed-by label)

    @property
    def label(self):
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else \
            f"{self.kind} {self.name}"

    def result(self):
        entry = {"kind": self.kind, "namespace": self.namespace, "name": self.name,
                 "action": self.action}
        if self.api_version:
            entry["api_version"] = self.api_version
        if self.reason:
            entry["reason"] = self.reason
        if self.error:
            entry["error"] = self.error
        return entry

    def diff(self):
        return {"before_header": self.label, "after_header": self.label,
                "before": self.before or {}, "after": self.after or {}}


def spec_hash(value):
    """A short, stable digest of what meshtune asked for, kept on the object to spot drift."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def is_subset(wanted, actual):
    """Every field in `wanted` has the same value in `actual` (extra fields in `actual` allowed)."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            key in actual and is_subset(value, actual[key]) for key, value in wanted.items())
    if isinstance(wanted, list):
        return isinstance(actual, list) and len(wanted) == len(actual) and all(
            is_subset(w, a) for w, a in zip(wanted, actual))
    return wanted == actual


def _view(obj, fields):
    """The managed fields of an object (those it has)."""
    return {field: obj[field] for field in fields if field in obj}


def _managed_view(obj, fields):
    """The parts of an object meshtune owns: labels, annotations and the given top-level fields."""
    meta = obj.get("metadata") or {}
    view = {"metadata": {k: meta[k] for k in ("labels", "annotations") if meta.get(k)}}
    view.update(_view(obj, fields))
    return view


def is_managed(obj):
    """Whether an object carries meshtune's label, i.e. meshtune created it or was told to own it."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY[MANAGED_BY_LABEL]


def differing_paths(wanted, actual, path=""):
    """Dotted paths (`spec.trafficPolicy.tls`, `spec.subsets[1]`) where `actual` differs from
    `wanted`: changed, added or removed fields, for a person to read."""
    if isinstance(wanted, dict) and isinstance(actual, dict):
        paths = []
        for key in sorted(set(wanted) | set(actual), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key in wanted and key in actual:
                paths.extend(differing_paths(wanted[key], actual[key], where))
            else:
                paths.append(where)
        return paths
    if isinstance(wanted, list) and isinstance(actual, list) and len(wanted) == len(actual):
        return [p for index, (w, a) in enumerate(zip(wanted, actual))
                for p in differing_paths(w, a, f"{path}[{index}]")]
    return [] if wanted == actual else [path]


def _drift_reason(stamped, live, fields, fields_as_written):
    paths = [] if fields_as_written else differing_paths(_view(stamped, fields), _view(live, fields))
    live_labels = (live.get("metadata") or {}).get("labels") or {}
    paths += [f"metadata.labels.{key}" for key, value in stamped["metadata"]["labels"].items()
              if live_labels.get(key) != value]
    shown = ", ".join(paths[:DRIFT_PATHS_SHOWN])
    more = f" (and {len(paths) - DRIFT_PATHS_SHOWN} more)" if len(paths) > DRIFT_PATHS_SHOWN else ""
    return f"drift: {shown}{more}" if paths else "drift"


def _not_managed(action):
    return (f"exists and is not managed by meshtune (no label {MANAGED_BY_LABEL}=meshtune): not "
            f"{action}; force=true takes it over")


def plan_owned(client, resource, desired, live_by_key, state, fields=("spec",), force=False):
    """Changes that make objects meshtune owns (DestinationRule, Sidecar, HPA...) match `desired`.

    `desired` holds complete objects; `live_by_key` maps (namespace, name) to live objects, read in
    batches by the caller. An object is unchanged when the digest of what was last applied matches
    and its managed fields are as meshtune wrote them: equal to the request, or to what the server
    stored for it (STORED_HASH), so server defaults never cause endless updates. Anything else in
    those fields is drift, put back and reported. A live object without meshtune's label is left
    alone (skipped) unless `force`, then taken over (replaced, or deleted with state absent).
    """
    changes = []
    for obj in desired:
        meta = obj["metadata"]
        namespace, name = meta.get("namespace"), meta["name"]
        live = live_by_key.get((namespace, name))
        kind, api_version = obj["kind"], obj["apiVersion"]
        foreign = live is not None and not is_managed(live)
        if foreign and not force:
            changes.append(Change(kind, namespace, name, "skipped", api_version,
                                  reason=_not_managed("deleted" if state == "absent" else "changed")))
            changes[-1].foreign = True
            continue
        taken_over = "taken over with force=true: it had no label " \
                     f"{MANAGED_BY_LABEL}=meshtune" if foreign else None
        if state == "absent":
            if live is None:
                changes.append(Change(kind, namespace, name, "unchanged", api_version,
                                      reason="already absent"))
            else:
                changes.append(Change(kind, namespace, name, "deleted", api_version,
                                      before=_managed_view(live, fields), after={},
                                      reason=taken_over,
                                      write=_deleter(client, resource, namespace, name)))
                changes[-1].foreign = foreign
            continue
        stamped = _stamp(obj, fields)
        if live is None:
            changes.append(Change(kind, namespace, name, "created", api_version, before={},
                                  after=_managed_view(stamped, fields),
                                  write=_creator(client, resource, namespace, stamped, fields)))
            continue
        annotations = (live.get("metadata") or {}).get("annotations") or {}
        same_request = annotations.get(APPLIED_HASH) == stamped["metadata"]["annotations"][APPLIED_HASH]
        live_fields = _view(live, fields)
        as_written = live_fields == _view(stamped, fields) or \
            annotations.get(STORED_HASH) == spec_hash(live_fields)
        labelled = is_subset(_labels_only(stamped), live)
        if same_request and as_written and labelled and not foreign:
            changes.append(Change(kind, namespace, name, "unchanged", api_version))
            continue
        reason = taken_over or \
            (_drift_reason(stamped, live, fields, as_written) if same_request else None)
        after = _merged(live, stamped, fields)
        changes.append(Change(kind, namespace, name, "updated", api_version,
                              before=_managed_view(live, fields), after=_managed_view(after, fields),
                              reason=reason,
                              write=_updater(client, resource, namespace, name, stamped, fields, live)))
        changes[-1].foreign = foreign
    return changes


def _labels_only(obj):
    return {"metadata": {"labels": obj["metadata"].get("labels") or {}}}


def _stamp(obj, fields):
    stamped = copy.deepcopy(obj)
    meta = stamped["metadata"]
    meta["labels"] = {**(meta.get("labels") or {}), **MANAGED_BY}
    annotations = meta.setdefault("annotations", {})
    annotations[APPLIED_HASH] = spec_hash({f: stamped.get(f) for f in fields})
    return stamped


def _merged(live, stamped, fields):
    """`live` with meshtune's fields replaced by `stamped`'s and its labels/annotations merged in."""
    merged = copy.deepcopy(live)
    for field in fields:
        if field in stamped:
            merged[field] = copy.deepcopy(stamped[field])
        else:
            merged.pop(field, None)
    meta = merged.setdefault("metadata", {})
    for key in ("labels", "annotations"):
        meta[key] = {**(meta.get(key) or {}), **(stamped["metadata"].get(key) or {})}
    meta["annotations"].pop(STORED_HASH, None)  # describes the fields being replaced
    return merged


def _remember_stored(client, resource, namespace, stored, stamped, fields):
    """When the server stored the managed fields otherwise than they were sent (defaults it
    filled in, values it normalised), note the digest of what it stored, so that the next run
    tells that from a change by hand. Best effort: without it the next run rewrites the object."""
    if not isinstance(stored, dict):
        return
    view = _view(stored, fields)
    meta = stored.get("metadata") or {}
    digest = spec_hash(view)
    if view == _view(stamped, fields) or (meta.get("annotations") or {}).get(STORED_HASH) == digest:
        return
    patch = {"metadata": {"resourceVersion": meta.get("resourceVersion"),
                          "annotations": {STORED_HASH: digest}}}
    with contextlib.suppress(KubeError):
        client.merge_patch(resource, namespace, meta.get("name"), patch)


def _creator(client, resource, namespace, body, fields):
    def write():
        stored = client.create_or_update(resource, namespace, body,
                                         lambda current: _merged(current, body, fields))
        _remember_stored(client, resource, namespace, stored, body, fields)
    return write


def _deleter(client, resource, namespace, name):
    return lambda: client.delete(resource, namespace, name)


def _updater(client, resource, namespace, name, stamped, fields, live):
    def write():
        stored = client.update(resource, namespace, name,
                               lambda current: _merged(current, stamped, fields), live=live)
        _remember_stored(client, resource, namespace, stored, stamped, fields)
    return write


def run(changes, check_mode=False, parallelism=8):
    """Perform the writes of `changes` (none in check mode); mark those that failed for good.

    Once a write finds the API server gone (no answer after its retries), the writes not started
    yet are not attempted: they are reported `skipped` with the reason NOT_ATTEMPTED.
    """
    pending = [c for c in changes if c.write is not None]
    if check_mode or not pending:
        return changes
    server_gone = threading.Event()

    def perform(change):
        if server_gone.is_set():
            change.reason = f"{NOT_ATTEMPTED} (it would have been {change.action})"
            change.action = "skipped"
            change.attempted = False
            return
        try:
            change.write()
        except KubeError as error:
            change.error = str(error)
            change.reason = f"{change.action} failed"
            change.action = "failed"
            if error.unreachable:
                change.unreachable = True
                server_gone.set()

    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(pending)))) as pool:
        list(pool.map(perform, pending))
    return changes


def batch_result(changes, diff_mode=False, **extra):
    """The module result: changed, results (one per object), summary, diff (in diff mode)."""
    summary = dict.fromkeys(ACTIONS, 0)
    for change in changes:
        summary[change.action] += 1
    summary["total"] = len(changes)
    result = {"changed": any(c.action in WRITING_ACTIONS for c in changes),
              "results": [c.result() for c in changes], "summary": summary, **extra}
    if diff_mode:
        result["diff"] = [c.diff() for c in changes if c.action in WRITING_ACTIONS]
    return result


def _labels(changes, limit):
    labels = [c.label for c in changes]
    return ", ".join(labels[:limit]) + (" ..." if len(labels) > limit else "") if labels else "none"


def failure_message(changes):
    """One message naming the objects that failed, those not attempted and those that did change,
    for fail_json."""
    failed = [c for c in changes if c.action == "failed"]
    skipped = [c for c in changes if not c.attempted]
    written = [c for c in changes if c.action in WRITING_ACTIONS]
    details = "; ".join(f"{c.label}: {c.error}" for c in failed[:20])
    more = f" (and {len(failed) - 20} more)" if len(failed) > 20 else ""
    message = f"{len(failed)} of {len(changes)} objects failed: {details}{more}. "
    if skipped:
        message += (f"{len(skipped)} not attempted, because the API server stopped answering: "
                    f"{_labels(skipped, 50)}. ")
    return (message + f"Changed before the failure: {_labels(written, 50)}. "
            "Every object's outcome is in 'results'.")


def batch_failure(module, client, changes):
    """The fail_json message for a batch with failed objects, or None when none failed. When the
    API server stopped answering, it starts with the server, the reason and how to point elsewhere."""
    if not any(c.action == "failed" for c in changes):
        return None
    message = failure_message(changes)
    gone = getattr(client, "unreachable", None)
    if gone is not None and any(c.unreachable for c in changes):
        message = f"{unreachable_message(module.params, failure_reason(gone))} {message}"
    return message


def apply_changes(module, client, changes, parallelism, fail=True, **extra):
    """Perform the writes of `changes` and return the module result; fail the module, naming
    what changed, what failed and what was not attempted, when some object failed for good
    (unless not `fail`: the caller then ends the task with `batch_failure`)."""
    run(changes, module.check_mode, parallelism)
    result = batch_result(changes, module._diff, retries=client.retries, **extra)
    message = batch_failure(module, client, changes) if fail else None
    if message:
        module.fail_json(msg=message, **result)
    return result


# From this many namespaces on, one cluster-wide list is cheaper than one list per namespace.
CLUSTER_WIDE_LIST_FROM = 10


def live_objects(client, resource, namespaces, label_selector=None):
    """Live objects of one type in the given namespaces, keyed by (namespace, name).

    One list call per namespace, or a single cluster-wide list for many namespaces (falling back
    to per-namespace lists where RBAC forbids the cluster-wide one): never one call per object.
    """
    wanted = set(namespaces)
    if len(wanted) >= CLUSTER_WIDE_LIST_FROM:
        try:
            items = client.list(resource, label_selector=label_selector)
        except KubeError as error:
            if error.status != 403:
                raise
        else:
            return {(obj["metadata"]["namespace"], obj["metadata"]["name"]): obj for obj in items
                    if obj["metadata"].get("namespace") in wanted}
    live = {}
    for namespace in sorted(wanted):
        for obj in client.list(resource, namespace=namespace, label_selector=label_selector):
            live[(namespace, obj["metadata"]["name"])] = obj
    return live


def missing_namespaces(client, namespaces):
    """Which of `namespaces` do not exist (one list call)."""
    existing = {ns["metadata"]["name"] for ns in client.list(client.resource("v1", "Namespace"))}
    return sorted(set(namespaces) - existing)


def converge_owned(module, client, desired, state, parallelism, fields=("spec",), extra=None,
                   force=False, live=None):
    """Read, plan, write and report for objects meshtune owns; ends the module either way.

    Objects of the same name that meshtune does not manage are skipped, or with `force` taken
    over; either way a warning names them. `live` (as live_objects returns it) is for a caller
    that read the objects already, and checked that their namespaces exist.
    """
    extra = extra or {}
    if not desired:
        module.exit_json(**batch_result([], module._diff, **extra))
    api_version, kind = desired[0]["apiVersion"], desired[0]["kind"]
    namespaces = {obj["metadata"]["namespace"] for obj in desired}
    try:
        resource = client.resource(api_version, kind)
        if live is None and state == "present":
            missing = missing_namespaces(client, namespaces)
            if missing:
                module.fail_json(msg=f"Namespaces not found (nothing was changed): {', '.join(missing)}",
                                 **batch_result([], module._diff, **extra))
        if live is None:
            live = live_objects(client, resource, namespaces)
    except KubeError as error:
        fail_read(module, error, f"{kind} objects")
    changes = plan_owned(client, resource, desired, live, state, fields, force)
    foreign = [c for c in changes if c.foreign]
    if foreign and force:
        module.warn(f"Taking over {len(foreign)} object(s) not managed by meshtune (force=true): "
                    f"{_labels(foreign, 20)}")
    elif foreign:
        module.warn(f"Left alone {len(foreign)} object(s) of the same name that meshtune does not "
                    f"manage (no label {MANAGED_BY_LABEL}=meshtune; force=true takes them over): "
                    f"{_labels(foreign, 20)}")
    module.exit_json(**apply_changes(module, client, changes, parallelism, **extra))
