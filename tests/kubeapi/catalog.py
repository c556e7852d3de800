"""The resource types the test server serves: built-in kinds, Istio kinds, and CRD-defined kinds."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

ISTIO_INDEX = Path(__file__).parent / "schemas" / "istio" / "index.json"

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class ResourceType:
    """One served resource: a kind at one group/version, with its URL plural and scope."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    custom: bool = False  # CRD-backed: no strategic merge patch
    schema_path: str | None = None  # JSON schema of `spec` for Istio/CRD kinds
    crd_schema: dict | None = field(default=None, compare=False, hash=False)
    storage_version: str = ""

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def store_key(self) -> tuple[str, str]:
        """Objects of one group+plural share storage across the versions that serve them."""
        return (self.group, self.plural)

    @property
    def qualified(self) -> str:
        """`Kind.group` as Kubernetes names the type in error messages."""
        return f"{self.kind}.{self.group}" if self.group else self.kind


def _builtin(group, version, kind, plural, namespaced, short=(), sub=()):
    return ResourceType(group, version, kind, plural, namespaced, kind.lower(), tuple(short), tuple(sub))


BUILTIN_TYPES = [
    _builtin("", "v1", "Namespace", "namespaces", False, ("ns",), ("status", "finalize")),
    _builtin("", "v1", "Pod", "pods", True, ("po",), ("status", "log")),
    _builtin("", "v1", "Service", "services", True, ("svc",), ("status",)),
    _builtin("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    _builtin("", "v1", "Secret", "secrets", True),
    _builtin("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",)),
    _builtin("", "v1", "Endpoints", "endpoints", True, ("ep",)),
    _builtin("", "v1", "Event", "events", True, ("ev",)),
    _builtin("", "v1", "Node", "nodes", False, ("no",), ("status",)),
    _builtin("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ("pvc",),
             ("status",)),
    _builtin("", "v1", "PersistentVolume", "persistentvolumes", False, ("pv",), ("status",)),
    _builtin("", "v1", "LimitRange", "limitranges", True, ("limits",)),
    _builtin("apps", "v1", "Deployment", "deployments", True, ("deploy",), ("status", "scale")),
    _builtin("apps", "v1", "StatefulSet", "statefulsets", True, ("sts",), ("status", "scale")),
    _builtin("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), ("status",)),
    _builtin("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), ("status", "scale")),
    _builtin("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True,
             ("hpa",), ("status",)),
    _builtin("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True,
             ("hpa",), ("status",)),
    _builtin("batch", "v1", "Job", "jobs", True, (), ("status",)),
    _builtin("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    _builtin("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    _builtin("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    _builtin("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    _builtin("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions",
             False, ("crd", "crds"), ("status",)),
    _builtin("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",),
             ("status",)),
    _builtin("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
             "validatingwebhookconfigurations", False),
    _builtin("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration",
             "mutatingwebhookconfigurations", False),
    _builtin("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy",
             "validatingadmissionpolicies", False, (), ("status",)),
    _builtin("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding",
             "validatingadmissionpolicybindings", False),
    _builtin("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ("netpol",)),
    _builtin("networking.k8s.io", "v1", "Ingress", "ingresses", True, ("ing",), ("status",)),
    _builtin("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
    _builtin("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, ("sc",)),
]

# Group versions in the order a real server lists them (preferred first).
PREFERRED_FIRST = {"autoscaling": ["v2", "v1"]}


def _istio_types() -> list[ResourceType]:
    entries = json.loads(ISTIO_INDEX.read_text())
    types = []
    for entry in entries:
        for version in entry["versions"]:
            types.append(ResourceType(
                group=entry["group"], version=version, kind=entry["kind"], plural=entry["plural"],
                namespaced=True, singular=entry.get("singular", entry["kind"].lower()),
                short_names=tuple(entry.get("shortNames", [])), subresources=("status",),
                custom=True, schema_path=str(ISTIO_INDEX.parent / entry["schema"]),
                storage_version=entry.get("storage_version", entry["versions"][0]),
            ))
    return types


def crd_types(crd: dict) -> list[ResourceType]:
    """The resource types a CustomResourceDefinition object asks the server to serve."""
    spec = crd["spec"]
    names = spec["names"]
    storage = next((v["name"] for v in spec.get("versions", []) if v.get("storage")), "")
    types = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        subresources = tuple(sorted((version.get("subresources") or {}).keys()))
        types.append(ResourceType(
            group=spec["group"], version=version["name"], kind=names["kind"],
            plural=names["plural"], namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            singular=names.get("singular", names["kind"].lower()),
            short_names=tuple(names.get("shortNames", [])), subresources=subresources,
            custom=True, crd_schema=(version.get("schema") or {}).get("openAPIV3Schema"),
            storage_version=storage,
        ))
    return types


class Catalog:
    """Lookup of served types by group/version/plural; CRDs add and remove types at run time.

    A CRD for a group and plural the server already serves (the Istio kinds, from the schemas in
    `schemas/istio/`) takes them over: while it exists, only its versions are served, validated
    by its own schema. Deleting it brings the server's own types back, so a cluster never loses
    an API it started with.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_gvp: dict[tuple[str, str, str], ResourceType] = {}
        self._crd_types: dict[str, list[ResourceType]] = {}
        self._own: dict[tuple[str, str], list[ResourceType]] = {}
        for rtype in BUILTIN_TYPES + _istio_types():
            self._by_gvp[(rtype.group, rtype.version, rtype.plural)] = rtype
            self._own.setdefault(rtype.store_key, []).append(rtype)

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_gvp.get((group, version, plural))

    def types(self) -> list[ResourceType]:
        with self._lock:
            return list(self._by_gvp.values())

    def group_versions(self) -> dict[str, list[str]]:
        """Group name -> served versions, preferred version first."""
        groups: dict[str, list[str]] = {}
        for rtype in self.types():
            versions = groups.setdefault(rtype.group, [])
            if rtype.version not in versions:
                versions.append(rtype.version)
        for group, versions in groups.items():
            order = PREFERRED_FIRST.get(group)
            versions.sort(key=lambda v, o=order: (o.index(v) if o and v in o else 99, _rank(v)))
        return groups

    def resources_in(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self.types() if t.group == group and t.version == version]

    def register_crd(self, crd: dict) -> None:
        with self._lock:
            self._drop(crd["metadata"]["name"])
            types = crd_types(crd)
            self._crd_types[crd["metadata"]["name"]] = types
            for own in self._own.get(types[0].store_key, []) if types else []:
                self._by_gvp.pop((own.group, own.version, own.plural), None)
            for rtype in types:
                self._by_gvp[(rtype.group, rtype.version, rtype.plural)] = rtype

    def unregister_crd(self, name: str) -> None:
        with self._lock:
            self._drop(name)

    def _drop(self, crd_name: str) -> None:
        for rtype in self._crd_types.pop(crd_name, []):
            self._by_gvp.pop((rtype.group, rtype.version, rtype.plural), None)
            for own in self._own.get(rtype.store_key, []):
                self._by_gvp[(own.group, own.version, own.plural)] = own


def _rank(version: str) -> tuple[int, int, int]:
    """Kubernetes version priority: GA > beta > alpha, higher numbers first."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not match:
        return (9, 0, 0)
    major, stage, minor = match.groups()
    stage_rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (stage_rank, -int(major), -int(minor or 0))
