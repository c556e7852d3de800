"""The Kubernetes REST semantics: routing, discovery, CRUD, patch, watch and status handling.

Transport-free: `KubeAPI.handle` takes a parsed request and returns a `Response`, so the HTTP
layer (server.py) stays a thin shell and the semantics can be exercised directly.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import yaml

from . import (
    builtin_schemas,
    controllers,
    conversion,
    discovery,
    openapi,
    openapi_v2,
    patching,
    protobuf,
    quantities,
)
from .catalog import Catalog, ResourceType
from .controllers import now
from .defaults import DEFAULT_STORAGE_CLASS, WORKLOAD_KINDS, Defaulter
from .errors import ApiError, already_exists, conflict, invalid, not_found
from .selectors import (
    SelectorError,
    field_selected_name,
    parse_field_selector,
    parse_label_selector,
)
from .store import Store
from .validation import validate

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
SERVER_VERSION = {
    "major": "1", "minor": builtin_schemas.KUBERNETES_VERSION.split(".")[1],
    "gitVersion": f"v{builtin_schemas.KUBERNETES_VERSION}.0", "gitCommit": "meshtune-kubeapi",
    "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25",
    "compiler": "gc", "platform": "linux/amd64",
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    content_type: str = "application/json"
    body: bytes = b""
    accept: str = ""


@dataclass
class Response:
    code: int
    body: object = None  # JSON-serialisable, str for text, or bytes sent as they are
    headers: dict = field(default_factory=dict)
    stream: Iterator[dict] | None = None  # watch events, sent as they come


@dataclass(frozen=True)
class Target:
    """What a resource URL names."""

    rtype: ResourceType
    namespace: str | None  # None: all namespaces (collection) or cluster-scoped
    name: str | None
    subresource: str | None

    @property
    def verb_resource(self) -> str:
        return f"{self.rtype.plural}/{self.subresource}" if self.subresource else self.rtype.plural


def flag(query: dict, name: str) -> bool:
    """A boolean query parameter, parsed like Go's strconv.ParseBool."""
    return query.get(name, "").lower() in ("1", "t", "true")


class KubeAPI:
    """One simulated cluster: a catalog of types, a store, and the simulated controllers."""

    def __init__(self, rollout_delay: float | None = 0.0, disabled: set[str] | None = None) -> None:
        self.catalog = Catalog()
        self.store = Store()
        self.rollout_delay = rollout_delay  # None: workloads never become ready
        self.disabled = disabled or set()  # group/versions not served, e.g. {"autoscaling/v2"}
        self.pod_logs: dict[tuple[str, str], str] = {}
        self.defaulter = Defaulter()
        ns_type = self.catalog.find("", "v1", "namespaces")
        with self.store.lock:
            for name in DEFAULT_NAMESPACES:
                self._create(ns_type, None, {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": name}}, dry_run=False)
            self._create(self.catalog.find("storage.k8s.io", "v1", "storageclasses"), None,
                         copy.deepcopy(DEFAULT_STORAGE_CLASS), dry_run=False)

    # ---- routing -------------------------------------------------------------------------

    def served(self, rtype: ResourceType | None) -> ResourceType | None:
        if rtype is None or rtype.group_version in self.disabled:
            return None
        return rtype

    def resolve(self, path: str) -> Target | dict | None:
        """A discovery document for discovery paths, a Target for resource paths, else None."""
        parts = [p for p in path.split("/") if p]
        if parts == ["version"]:
            return SERVER_VERSION
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
        if parts == ["apis"]:
            return self._group_list()
        if parts[:2] == ["openapi", "v3"]:
            return self._openapi(parts[2:])
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) == 2:
            return self._group(parts[1])
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        if f"{group}/{version}".lstrip("/") in self.disabled:
            return None
        if not rest:
            return self._resource_list(group, version)
        return self._target(group, version, rest)

    def _target(self, group: str, version: str, rest: list[str]) -> Target | None:
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            candidate = self.served(self.catalog.find(group, version, rest[2]))
            if candidate and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        rtype = self.served(self.catalog.find(group, version, rest[0]))
        if rtype is None or len(rest) > 3:
            return None
        if namespace is None and rtype.namespaced and len(rest) > 1:
            return None
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub and sub not in rtype.subresources:
            return None
        return Target(rtype, namespace, name, sub)

    # ---- discovery -----------------------------------------------------------------------

    def _openapi(self, gv_parts: list[str]) -> dict | None:
        if not gv_parts:
            return openapi.index(self._served_versions())
        group, version = (gv_parts[1], gv_parts[2]) if gv_parts[0] == "apis" and \
            len(gv_parts) == 3 else ("", gv_parts[-1])
        types = [t for t in self.catalog.resources_in(group, version) if self.served(t)]
        return openapi.group_version_document(types) if types else None

    def _openapi_v2(self, request: Request) -> Response:
        if request.method != "GET":
            raise ApiError(405, f"the server does not allow this method: {request.method}")
        types = tuple(t for t in self.catalog.types() if self.served(t))
        wanted = openapi_v2.negotiate(request.accept)
        if wanted == "protobuf":
            return Response(200, openapi_v2.protobuf_document(types),
                            headers={"Content-Type": openapi_v2.PROTOBUF_MEDIA_TYPE})
        if wanted == "json":
            return Response(200, openapi_v2.document(list(types)))
        raise ApiError(406, f"none of the accepted media types can be served: {request.accept}")

    def _group_entry(self, group: str, versions: list[str]) -> dict:
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}

    def _served_versions(self) -> dict[str, list[str]]:
        groups = {}
        for group, versions in self.catalog.group_versions().items():
            kept = [v for v in versions if f"{group}/{v}".lstrip("/") not in self.disabled]
            if kept:
                groups[group] = kept
        return groups

    def _group_list(self) -> dict:
        groups = [self._group_entry(g, vs) for g, vs in sorted(self._served_versions().items()) if g]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _group(self, group: str) -> dict | None:
        versions = self._served_versions().get(group)
        if not versions:
            return None
        return {"kind": "APIGroup", "apiVersion": "v1", **self._group_entry(group, versions)}

    def _resource_list(self, group: str, version: str) -> dict | None:
        types = [t for t in self.catalog.resources_in(group, version) if self.served(t)]
        return discovery.resource_list(group, version, types) if types else None

    # ---- request handling ----------------------------------------------------------------

    @staticmethod
    def verb(method: str, target: Target, query: dict) -> str:
        """The Kubernetes verb for a request, as audit logs and RBAC name it."""
        if method == "GET":
            if target.name:
                return "get"
            return "watch" if flag(query, "watch") else "list"
        if method == "DELETE":
            return "delete" if target.name else "deletecollection"
        return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())

    def handle(self, request: Request) -> Response:
        if request.path.rstrip("/") == "/openapi/v2":
            return self._openapi_v2(request)
        if request.path.rstrip("/") in ("/api", "/apis") and request.method == "GET" and \
                discovery.wants_aggregated(request.accept):
            types = [t for t in self.catalog.types() if self.served(t)]
            return Response(200, discovery.aggregated(self._served_versions(), types,
                                                      core=request.path.rstrip("/") == "/api"),
                            headers={"Content-Type": discovery.AGGREGATED_MEDIA_TYPE})
        resolved = self.resolve(request.path)
        if resolved is None:
            raise ApiError(404, "the server could not find the requested resource")
        if isinstance(resolved, dict):
            if request.method != "GET":
                raise ApiError(405, f"the server does not allow this method: {request.method}")
            return Response(200, resolved)
        target = resolved
        verb = self.verb(request.method, target, request.query)
        if target.subresource:
            return self._subresource(verb, target, request)
        handler = {
            "get": self._get, "list": self._list, "watch": self._watch, "create": self._post,
            "update": self._put, "patch": self._patch, "delete": self._delete,
            "deletecollection": self._delete_collection,
        }.get(verb)
        if handler is None:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        return handler(target, request)

    def _ns(self, target: Target) -> str:
        return target.namespace if target.rtype.namespaced else ""

    def _require_namespace(self, namespace: str) -> None:
        if not self.store.get(("", "namespaces"), "", namespace):
            raise ApiError(404, f'namespaces "{namespace}" not found',
                           details={"name": namespace, "kind": "namespaces"})

    def _current(self, target: Target) -> dict:
        obj = self.store.get(target.rtype.store_key, self._ns(target), target.name)
        if obj is None:
            raise not_found(target.rtype, target.name)
        return obj

    def _out(self, rtype: ResourceType, obj: dict) -> dict:
        return conversion.from_storage(rtype, obj)

    # GET / LIST / WATCH

    def _get(self, target: Target, request: Request) -> Response:
        with self.store.lock:
            return Response(200, self._out(target.rtype, self._current(target)))

    def _selected(self, target: Target, query: dict) -> list[dict]:
        try:
            by_label = parse_label_selector(query.get("labelSelector"))
            by_field = parse_field_selector(query.get("fieldSelector"))
        except SelectorError as err:
            raise ApiError(400, str(err)) from err
        pinned = field_selected_name(query.get("fieldSelector"))
        if (pinned is not None and target.namespace is not None) or \
                (pinned is not None and not target.rtype.namespaced):
            found = self.store.get(target.rtype.store_key, self._ns(target), pinned)
            candidates = [found] if found else []
        else:
            namespace = target.namespace if target.rtype.namespaced else ""
            candidates = self.store.items(target.rtype.store_key, namespace)
        return [obj for obj in candidates if by_label(obj) and by_field(obj)]

    def _list(self, target: Target, request: Request) -> Response:
        query = request.query
        with self.store.lock:
            items = self._selected(target, query)
            revision = str(self.store.revision)
        start = 0
        if query.get("continue"):
            try:
                token = json.loads(base64.urlsafe_b64decode(query["continue"]))
                start = int(token["start"])
            except (ValueError, KeyError) as err:
                raise ApiError(400, "invalid continue token") from err
        limit = int(query.get("limit") or 0)
        page = items[start:start + limit] if limit > 0 else items[start:]
        meta = {"resourceVersion": revision}
        if limit > 0 and start + limit < len(items):
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps({"start": start + limit, "rv": revision}).encode()).decode()
            meta["remainingItemCount"] = len(items) - start - limit
        rtype = target.rtype
        return Response(200, {"kind": f"{rtype.kind}List", "apiVersion": rtype.group_version,
                              "metadata": meta, "items": [self._out(rtype, o) for o in page]})

    def _watch(self, target: Target, request: Request) -> Response:
        query = request.query
        timeout = float(query.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        try:
            by_label = parse_label_selector(query.get("labelSelector"))
            by_field = parse_field_selector(query.get("fieldSelector"))
        except SelectorError as err:
            raise ApiError(400, str(err)) from err
        rtype, key = target.rtype, target.rtype.store_key
        namespace = target.namespace if rtype.namespaced else None

        def wanted(event_ns: str, obj: dict) -> bool:
            return (namespace is None or event_ns == namespace) and by_label(obj) and by_field(obj)

        with self.store.lock:
            since = query.get("resourceVersion")
            send_initial = flag(query, "sendInitialEvents")
            if since in (None, "", "0") or send_initial:
                initial = [("ADDED", o) for o in self._selected(target, query)]
                cursor = self.store.revision
            else:
                initial, cursor = [], int(since)
                if self.store.events_after(cursor) is None:
                    initial = None

        def events() -> Iterator[dict]:
            nonlocal cursor
            if initial is None:
                yield {"type": "ERROR", "object": ApiError(
                    410, f"too old resource version: {since} ({self.store.revision})",
                    reason="Expired").status()}
                return
            for kind, obj in initial:
                yield {"type": kind, "object": self._out(rtype, obj)}
            if send_initial:
                yield {"type": "BOOKMARK", "object": {
                    "kind": rtype.kind, "apiVersion": rtype.group_version, "metadata": {
                        "resourceVersion": str(cursor),
                        "annotations": {"k8s.io/initial-events-end": "true"}}}}
            while (remaining := deadline - time.monotonic()) > 0:
                with self.store.changed:
                    seen = cursor
                    self.store.changed.wait_for(lambda seen=seen: self.store.revision > seen,
                                                timeout=min(remaining, 1.0))
                    batch = self.store.events_after(cursor) or []
                    cursor = self.store.revision
                for event in batch:
                    if event.key == key and wanted(event.namespace, event.object):
                        yield {"type": event.type, "object": self._out(rtype, event.object)}

        return Response(200, stream=events())

    # CREATE

    def _parse_body(self, request: Request) -> dict:
        if request.content_type.startswith(protobuf.MEDIA_TYPE):
            return protobuf.decode(request.body)
        if not request.content_type.startswith(("application/json", "application/yaml", "*/*")) \
                and not request.content_type.startswith("application/apply-patch"):
            raise ApiError(415, f"the body of the request was in an unknown format - accepted "
                                f"media types include: application/json, application/yaml, "
                                f"{protobuf.MEDIA_TYPE} (got {request.content_type})")
        try:
            body = _json_or_yaml(request.body)
        except yaml.YAMLError as err:
            raise ApiError(400, f"the body of the request was in an unknown format: {err}") from err
        if not isinstance(body, dict):
            raise ApiError(400, "the body of the request must be a JSON object")
        return body

    def _check_identity(self, target: Target, body: dict) -> None:
        rtype = target.rtype
        if body.get("kind") not in (None, rtype.kind) or \
                body.get("apiVersion") not in (None, rtype.group_version):
            raise ApiError(400, f"the API version in the data ({body.get('apiVersion')}) does not "
                                f"match the expected API version ({rtype.group_version})"
                           if body.get("kind") in (None, rtype.kind) else
                           f"{body.get('kind')} in version \"{rtype.version}\" cannot be handled "
                           f"as a {rtype.kind}: the kind does not match")
        meta = body.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise ApiError(400, "metadata must be an object")
        body_ns = (meta or {}).get("namespace")
        if rtype.namespaced and body_ns and target.namespace and body_ns != target.namespace:
            raise ApiError(400, "the namespace of the provided object does not match the namespace "
                                "sent on the request")
        if target.name and (meta or {}).get("name") not in (None, target.name):
            raise ApiError(400, "the name of the object "
                                f"({meta.get('name')}) does not match the name on the URL "
                                f"({target.name})")

    def _post(self, target: Target, request: Request) -> Response:
        if target.rtype.namespaced and target.namespace is None:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        body = self._parse_body(request)
        self._check_identity(target, body)
        with self.store.lock:
            created = self._create(target.rtype, target.namespace, body,
                                   dry_run=request.query.get("dryRun") == "All")
        return Response(201, self._out(target.rtype, created))

    def _create(self, rtype: ResourceType, namespace: str | None, body: dict,
                dry_run: bool) -> dict:
        obj = conversion.to_storage(rtype, body)
        obj["kind"] = rtype.kind
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name") or ""
        ns = namespace if rtype.namespaced else ""
        if rtype.namespaced:
            meta["namespace"] = ns
            self._require_namespace(ns)
        else:
            meta.pop("namespace", None)
        causes = validate(rtype, {**body, "metadata": {**(body.get("metadata") or {}), "name": name}})
        if causes:
            raise invalid(rtype, name, causes)
        if self.store.get(rtype.store_key, ns, name) is not None:
            raise already_exists(rtype, name)
        if "status" in rtype.subresources:
            obj.pop("status", None)
        obj = self._canonical(rtype, obj)
        meta = obj["metadata"]
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        for transient in ("resourceVersion", "deletionTimestamp", "selfLink"):
            meta.pop(transient, None)
        self._defaults(rtype, obj)
        if dry_run:
            meta["resourceVersion"] = str(self.store.revision)
            return obj
        meta["resourceVersion"] = str(self.store.next_revision())
        self.store.save(rtype.store_key, ns, obj, "ADDED")
        self._after_write(rtype, obj)
        return obj

    @staticmethod
    def _canonical(rtype: ResourceType, obj: dict) -> dict:
        """Quantities as a real server stores them ("0.5" becomes "500m")."""
        if rtype.custom:
            return obj
        schema = builtin_schemas.root_schema(rtype.kind, rtype.group, conversion.storage_version(rtype))
        return quantities.canonicalize(obj, schema)

    def _defaults(self, rtype: ResourceType, obj: dict, current: dict | None = None) -> None:
        self.defaulter.apply(rtype, obj, current, self._default_storage_class())

    def _default_storage_class(self) -> str | None:
        for storage_class in self.store.items(("storage.k8s.io", "storageclasses"), ""):
            annotations = storage_class["metadata"].get("annotations") or {}
            if annotations.get("storageclass.kubernetes.io/is-default-class") == "true":
                return storage_class["metadata"]["name"]
        return None

    # UPDATE / PATCH

    def _put(self, target: Target, request: Request) -> Response:
        body = self._parse_body(request)
        self._check_identity(target, body)
        with self.store.lock:
            current = self._current(target)
            updated = self._replace(target, current, body, request.query,
                                    require_version=target.rtype.custom)
        return Response(200, self._out(target.rtype, updated))

    def _replace(self, target: Target, current: dict, desired: dict, query: dict,
                 require_version: bool, only_status: bool = False) -> dict:
        """Store `desired` in place of `current`, keeping the fields the server owns."""
        rtype = target.rtype
        meta = desired.setdefault("metadata", {})
        sent_version = meta.get("resourceVersion")
        if sent_version and sent_version != current["metadata"]["resourceVersion"]:
            raise conflict(rtype, target.name, "the object has been modified; please apply your "
                                               "changes to the latest version and try again")
        if not sent_version and require_version:
            raise invalid(rtype, target.name, [_missing_version_cause()])
        obj = conversion.to_storage(rtype, desired)
        obj["kind"] = rtype.kind
        meta = obj["metadata"]
        old_meta = current["metadata"]
        for owned in ("uid", "creationTimestamp", "generation", "deletionTimestamp", "namespace"):
            if owned in old_meta:
                meta[owned] = old_meta[owned]
            else:
                meta.pop(owned, None)
        meta["name"] = old_meta["name"]
        if only_status:
            obj = {**copy.deepcopy(current), "status": obj.get("status")}
            meta = obj["metadata"]
        elif "status" in rtype.subresources:
            obj.pop("status", None)
            if "status" in current:
                obj["status"] = current["status"]
        if rtype.kind == "Namespace":
            obj["status"] = current.get("status")
        else:
            self._defaults(rtype, obj, current)
        causes = validate(rtype, {**desired, "metadata": {**meta, "name": target.name}})
        if causes:
            raise invalid(rtype, target.name, causes)
        obj = self._canonical(rtype, obj)
        meta = obj["metadata"]
        if _content(obj) == _content(current) and obj.get("status") == current.get("status") and \
                _meta_content(obj) == _meta_content(current):
            return current  # no-op writes keep the resourceVersion, as a real server does
        if _content(obj) != _content(current):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if query.get("dryRun") == "All":
            meta["resourceVersion"] = old_meta["resourceVersion"]
            return obj
        meta["resourceVersion"] = str(self.store.next_revision())
        ns = self._ns(target)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self.store.remove(rtype.store_key, ns, obj)
            return obj
        self.store.save(rtype.store_key, ns, obj, "MODIFIED")
        self._after_write(rtype, obj)
        return obj

    def _patch(self, target: Target, request: Request, only_status: bool = False) -> Response:
        content_type = request.content_type.split(";")[0].strip()
        rtype = target.rtype
        if content_type in (patching.APPLY, patching.APPLY_CBOR):
            return self._apply(target, request)
        try:
            patch = json.loads(request.body or b"null")
        except ValueError as err:
            raise ApiError(400, f"error decoding patch: {err}") from err
        with self.store.lock:
            current = self._current(target)
            live = self._out(rtype, current)
            try:
                if content_type == patching.MERGE:
                    patched = patching.merge_patch(live, patch)
                elif content_type == patching.JSON:
                    patched = patching.json_patch(live, patch)
                elif content_type == patching.STRATEGIC:
                    if rtype.custom:
                        raise ApiError(415, f"the body of the request was in an unknown format - "
                                            f"accepted media types include: {patching.JSON}, "
                                            f"{patching.MERGE}, {patching.APPLY}")
                    patched = patching.strategic_merge_patch(
                        live, patch, builtin_schemas.root_schema(rtype.kind, rtype.group,
                                                                 rtype.version))
                else:
                    raise ApiError(415, f"the body of the request was in an unknown format - "
                                        f"accepted media types include: {patching.JSON}, "
                                        f"{patching.MERGE}, {patching.APPLY}")
            except patching.PatchError as err:
                raise ApiError(422 if err.test_failed else 400, str(err)) from err
            if not isinstance(patched, dict):
                raise ApiError(422, "the patch must produce an object")
            self._check_identity(target, patched)
            sent = (patch.get("metadata") or {}).get("resourceVersion") \
                if isinstance(patch, dict) else None
            if not sent:
                patched.setdefault("metadata", {})["resourceVersion"] = \
                    current["metadata"]["resourceVersion"]
            updated = self._replace(target, current, patched, request.query,
                                    require_version=False, only_status=only_status)
        return Response(200, self._out(rtype, updated))

    def _apply(self, target: Target, request: Request) -> Response:
        manager = request.query.get("fieldManager")
        if not manager:
            raise ApiError(400, "PATCH, application/apply-patch+yaml requires fieldManager to be set")
        try:
            applied = _json_or_yaml(request.body)
        except yaml.YAMLError as err:
            raise ApiError(400, f"error decoding YAML: {err}") from err
        if not isinstance(applied, dict):
            raise ApiError(400, "the applied configuration must be an object")
        self._check_identity(target, applied)
        rtype = target.rtype
        ns = self._ns(target)
        dry_run = request.query.get("dryRun") == "All"
        with self.store.lock:
            current = self.store.get(rtype.store_key, ns, target.name)
            if current is None:
                created = self._create(rtype, target.namespace, copy.deepcopy(applied), dry_run)
                if not dry_run:
                    self.store.remember_applied(rtype.store_key, ns, target.name, manager, applied)
                return Response(201, self._out(rtype, created))
            previous = self.store.applied_config(rtype.store_key, ns, target.name, manager)
            schema = None if rtype.custom else builtin_schemas.root_schema(
                rtype.kind, rtype.group, rtype.version)
            merged = patching.server_side_apply(self._out(rtype, current), applied, previous, schema)
            merged.setdefault("metadata", {})["resourceVersion"] = \
                current["metadata"]["resourceVersion"]
            updated = self._replace(target, current, merged, request.query, require_version=False)
            if not dry_run:
                self.store.remember_applied(rtype.store_key, ns, target.name, manager, applied)
        return Response(200, self._out(rtype, updated))

    # DELETE

    def _delete(self, target: Target, request: Request) -> Response:
        dry_run = request.query.get("dryRun") == "All"
        if not dry_run and request.body:
            dry_run = "All" in (self._parse_body(request).get("dryRun") or [])
        with self.store.lock:
            current = self._current(target)
            self._remove(target.rtype, self._ns(target), current, dry_run)
        rtype = target.rtype
        return Response(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Success", "details": {
                                  "name": target.name, "group": rtype.group, "kind": rtype.plural,
                                  "uid": current["metadata"]["uid"]}})

    def _remove(self, rtype: ResourceType, ns: str, obj: dict, dry_run: bool) -> None:
        if dry_run:
            return
        if obj["metadata"].get("finalizers") and rtype.kind != "Namespace":
            if not obj["metadata"].get("deletionTimestamp"):
                marked = copy.deepcopy(obj)
                marked["metadata"]["deletionTimestamp"] = now()
                marked["metadata"]["resourceVersion"] = str(self.store.next_revision())
                self.store.save(rtype.store_key, ns, marked, "MODIFIED")
            return
        if rtype.kind == "Namespace":
            name = obj["metadata"]["name"]
            for key in self.store.namespaced_keys(name):
                for child in self.store.items(key, name):
                    self._drop(key, name, child)
        self._drop(rtype.store_key, ns, obj)
        if rtype.kind == "CustomResourceDefinition":
            # The objects go with their definition, as the apiextensions cleanup finalizer does.
            key = (obj["spec"]["group"], obj["spec"]["names"]["plural"])
            for custom in self.store.items(key):
                self._drop(key, custom["metadata"].get("namespace", ""), custom)
            self.catalog.unregister_crd(obj["metadata"]["name"])

    def _drop(self, key: tuple[str, str], ns: str, obj: dict) -> None:
        """Remove an object for good; a claim takes its volume along when the volume's reclaim
        policy is Delete, as the volume controller does."""
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(self.store.next_revision())
        self.store.remove(key, ns, gone)
        volume_name = (obj.get("spec") or {}).get("volumeName") \
            if key == ("", "persistentvolumeclaims") else None
        volume = self.store.get(("", "persistentvolumes"), "", volume_name) if volume_name else None
        if volume and volume["spec"].get("persistentVolumeReclaimPolicy") == "Delete":
            self._drop(("", "persistentvolumes"), "", volume)

    def _delete_collection(self, target: Target, request: Request) -> Response:
        dry_run = request.query.get("dryRun") == "All"
        with self.store.lock:
            for obj in self._selected(target, request.query):
                self._remove(target.rtype, obj["metadata"].get("namespace", ""), obj, dry_run)
        return Response(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Success"})

    # SUBRESOURCES

    def _subresource(self, verb: str, target: Target, request: Request) -> Response:
        sub = target.subresource
        if sub == "log":
            if verb != "get":
                raise ApiError(405, "the server does not allow this method on pods/log")
            with self.store.lock:
                self._current(target)
            return Response(200, self.pod_logs.get((target.namespace, target.name), ""),
                            headers={"Content-Type": "text/plain"})
        if sub == "scale":
            return self._scale(verb, target, request)
        if verb == "get":
            return self._get(target, request)
        if verb == "update":
            body = self._parse_body(request)
            self._check_identity(target, body)
            with self.store.lock:
                current = self._current(target)
                if sub == "finalize":
                    merged = {**copy.deepcopy(current), "spec": body.get("spec")}
                    merged["metadata"]["resourceVersion"] = body.get("metadata", {}).get(
                        "resourceVersion")
                    updated = self._replace(target, current, merged, request.query, False)
                else:
                    updated = self._replace(target, current, body, request.query, False,
                                            only_status=True)
            return Response(200, self._out(target.rtype, updated))
        if verb == "patch":
            return self._patch(target, request, only_status=True)
        raise ApiError(405, f"the server does not allow this method on {target.verb_resource}")

    def _scale(self, verb: str, target: Target, request: Request) -> Response:
        rtype = target.rtype
        with self.store.lock:
            current = self._current(target)
            if verb in ("update", "patch"):
                scale = self._scale_object(current)
                if verb == "update":
                    desired = self._parse_body(request)
                else:
                    desired = patching.merge_patch(scale, json.loads(request.body or b"{}"))
                replicas = (desired.get("spec") or {}).get("replicas")
                if not isinstance(replicas, int) or replicas < 0:
                    raise ApiError(422, f'Scale.autoscaling "{target.name}" is invalid: '
                                        f"spec.replicas: Invalid value: {replicas}: must be greater "
                                        "than or equal to 0")
                changed = copy.deepcopy(self._out(rtype, current))
                changed["spec"]["replicas"] = replicas
                current = self._replace(target, current, changed, request.query, False)
        return Response(200, self._scale_object(current))

    @staticmethod
    def _scale_object(obj: dict) -> dict:
        meta = obj["metadata"]
        selector = (obj.get("spec") or {}).get("selector", {}).get("matchLabels") or {}
        return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {
            "name": meta["name"], "namespace": meta.get("namespace"), "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"]},
            "spec": {"replicas": obj["spec"].get("replicas", 1)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                       "selector": ",".join(f"{k}={v}" for k, v in selector.items())}}

    # ---- simulated controllers -----------------------------------------------------------

    def _after_write(self, rtype: ResourceType, obj: dict) -> None:
        kind = rtype.kind
        if kind == "CustomResourceDefinition":
            self.catalog.register_crd(obj)
            self._update_status(rtype, obj, controllers.crd_status(obj))
        elif kind in WORKLOAD_KINDS and self.rollout_delay is not None:
            meta = obj["metadata"]
            status = obj.get("status") or {}
            if status.get("observedGeneration") == meta.get("generation"):
                return
            args = (rtype, meta.get("namespace", ""), meta["name"], meta["generation"])
            if self.rollout_delay:
                timer = threading.Timer(self.rollout_delay, self._complete_rollout, args)
                timer.daemon = True
                timer.start()
            else:
                self._complete_rollout(*args)
        elif kind == "PersistentVolumeClaim" and not obj["spec"].get("volumeName"):
            self._provision(rtype, obj)
        elif kind == "Service" and obj["spec"].get("type") == "LoadBalancer" and \
                not ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
            self._update_status(rtype, obj, controllers.load_balancer_status(obj))

    def _controller_write(self, rtype: ResourceType, obj: dict,
                          change: Callable[[dict], None]) -> None:
        """Store a controller's change to the current `obj` as a new revision."""
        ns = obj["metadata"].get("namespace", "")
        with self.store.lock:
            current = self.store.get(rtype.store_key, ns, obj["metadata"]["name"])
            if current is None or current["metadata"]["uid"] != obj["metadata"]["uid"]:
                return
            changed = copy.deepcopy(current)
            change(changed)
            changed["metadata"]["resourceVersion"] = str(self.store.next_revision())
            self.store.save(rtype.store_key, ns, changed, "MODIFIED")

    def _update_status(self, rtype: ResourceType, obj: dict, status: dict) -> None:
        if obj.get("status") != status:
            self._controller_write(rtype, obj, lambda o: o.update(status=status))

    def _complete_rollout(self, rtype: ResourceType, ns: str, name: str, generation: int) -> None:
        """Report a workload's rollout as finished, like its controller once all pods are ready."""
        with self.store.lock:
            current = self.store.get(rtype.store_key, ns, name)
            if current is None or current["metadata"].get("generation") != generation:
                return
            self._update_status(rtype, current, controllers.workload_status(rtype.kind, current))

    def _provision(self, rtype: ResourceType, claim: dict) -> None:
        """Bind a claim of an existing storage class to a new volume, as a provisioner does; a
        claim of a missing class stays Pending, as on a real cluster."""
        class_name = claim["spec"].get("storageClassName")
        storage_class = self.store.get(("storage.k8s.io", "storageclasses"), "", class_name or "")
        if storage_class is None:
            return
        volume = controllers.provisioned_volume(claim, storage_class)
        volume_type = self.catalog.find("", "v1", "persistentvolumes")
        volume["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=now(),
                                  resourceVersion=str(self.store.next_revision()))
        self.store.save(volume_type.store_key, "", volume, "ADDED")

        def bind(obj: dict) -> None:
            obj["spec"]["volumeName"] = volume["metadata"]["name"]
            obj["status"] = controllers.bound_claim_status(volume)
            obj["metadata"].setdefault("annotations", {}).update({
                "pv.kubernetes.io/bind-completed": "yes",
                "pv.kubernetes.io/bound-by-controller": "yes"})

        self._controller_write(rtype, claim, bind)


def _json_or_yaml(body: bytes) -> object:
    """A JSON or YAML body. client-go sends JSON even as `application/apply-patch+yaml`; parsing
    that as JSON is what keeps a large CRD apply fast (pure-Python YAML takes seconds)."""
    try:
        return json.loads(body or b"null")
    except ValueError:
        return yaml.load(body, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _content(obj: dict) -> dict:
    """What a generation counts: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _meta_content(obj: dict) -> dict:
    return {k: v for k, v in obj["metadata"].items() if k not in ("resourceVersion",)}


def _missing_version_cause():
    from .validation import Cause

    return Cause("metadata.resourceVersion", "FieldValueInvalid",
                 "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update")
