# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What the analyzer reads, and what the rules derive from it.

Every kind is read with reconcile.live_objects: one list call per kind and namespace, or one
cluster-wide list per kind from reconcile.CLUSTER_WIDE_LIST_FROM namespaces on (paged). Besides
the analyzed namespaces, the istiod namespace is read too (istiod, its ConfigMaps with the mesh
defaults), and the revision-tag webhooks with one cluster-wide list. Nothing is read per object.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
from collections import namedtuple

from ansible_collections.meshtune.mesh.plugins.module_utils.istio import (
    NETWORKING_GROUP,
    served_networking_version,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.kube import (
    KubeError,
    fail_read,
    lookup_served_version,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.reconcile import live_objects
from ansible_collections.meshtune.mesh.plugins.module_utils.upgrade import (
    FINISHED_PHASES,
    INJECTION_LABEL,
    REV_LABEL,
    TAG_LABEL,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption, parse_quantity
from ansible_collections.meshtune.mesh.plugins.module_utils.workloads import (
    PROXY_CONFIG,
    RESOURCE_ANNOTATIONS,
    InvalidProxyConfig,
    injector_resources,
    load_proxy_config,
    mesh_concurrency,
    opt_out_reason,
    template_annotations,
)

INJECT = "sidecar.istio.io/inject"
PROXY_CONTAINER = "istio-proxy"
DEFAULT_REVISION = "default"
CLUSTER_DOMAIN = "cluster.local"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
# (kind, API version; None: the newest networking.istio.io version served), read per namespace.
NAMESPACED_KINDS = (
    ("Service", "v1"), ("Pod", "v1"), ("Deployment", "apps/v1"), ("StatefulSet", "apps/v1"),
    ("DaemonSet", "apps/v1"), ("HorizontalPodAutoscaler", "autoscaling/v2"),
    ("PodDisruptionBudget", "policy/v1"), ("LimitRange", "v1"), ("DestinationRule", None),
    ("Sidecar", None),
)
# Kinds a cluster may not serve: without them their rules find nothing (and a note says so).
OPTIONAL_KINDS = {"HorizontalPodAutoscaler": ("autoscaling", "v2"), "PodDisruptionBudget": ("policy", "v1")}

# A revision's defaults for every sidecar it injects: resources ({"requests": {...}, "limits":
# {...}}, from the injector's global.proxy.resources) and concurrency (meshConfig.defaultConfig).
ProxyDefaults = namedtuple("ProxyDefaults", "resources concurrency")


def resolve_resources(module, client):
    """kind -> API resource for every kind read (None for an optional kind the cluster lacks).
    Fails the task when Istio's networking API is not served or the cluster cannot be asked."""
    resources = {}
    try:
        for kind, api_version in NAMESPACED_KINDS:
            if api_version is None:
                version = served_networking_version(module, client, kind)
                resources[kind] = client.resource(f"{NETWORKING_GROUP}/{version}", kind)
            elif kind in OPTIONAL_KINDS:
                group, version = OPTIONAL_KINDS[kind]
                served = lookup_served_version(module, client, group, kind, (version,))
                resources[kind] = client.resource(api_version, kind) if served else None
            else:
                resources[kind] = client.resource(api_version, kind)
        for kind, api_version in (("Namespace", "v1"), ("ConfigMap", "v1"),
                                  ("MutatingWebhookConfiguration", "admissionregistration.k8s.io/v1")):
            resources[kind] = client.resource(api_version, kind)
    except KubeError as error:
        fail_read(module, error, "the cluster's API discovery")
    return resources


def read_namespaces(client, resources):
    """name -> Namespace, with one list call."""
    return {ns["metadata"]["name"]: ns for ns in client.list(resources["Namespace"])}


def read_inventory(client, resources, namespaces, analyzed, istio_namespace):
    """Everything the rules judge, for the `analyzed` namespace names (all of them exist)."""
    read = set(analyzed) | ({istio_namespace} & set(namespaces))
    objects = {}
    for kind, _version in NAMESPACED_KINDS:
        resource = resources[kind]
        live = live_objects(client, resource, read) if resource is not None and read else {}
        objects[kind] = [live[key] for key in sorted(live)]
    configmaps = client.list(resources["ConfigMap"], namespace=istio_namespace) \
        if istio_namespace in namespaces else []
    try:
        webhooks = client.list(resources["MutatingWebhookConfiguration"], label_selector=TAG_LABEL)
    except KubeError as error:
        if error.status != 403:
            raise
        webhooks = None
    return Inventory(namespaces, analyzed, objects, configmaps, webhooks, istio_namespace,
                     [kind for kind in OPTIONAL_KINDS if resources[kind] is None])


def _meta(obj):
    return obj.get("metadata") or {}


def _labels(obj):
    return _meta(obj).get("labels") or {}


def template_meta(workload):
    return ((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}


def template_spec(workload):
    return ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}


def quantity(value):
    """A quantity as a Decimal, or None when unset or malformed (the API server refuses those)."""
    if value is None:
        return None
    try:
        return parse_quantity("quantity", value)
    except InvalidOption:
        return None


def cores(value):
    """A CPU quantity as whole worker threads: at least 1, rounded up."""
    return max(1, math.ceil(value))


class Inventory:
    """The objects read, indexed for the rules, with the mesh facts derived from them."""

    def __init__(self, namespaces, analyzed, objects, configmaps, webhooks, istio_namespace,
                 unserved=()):
        self.namespaces = namespaces
        self.analyzed = list(analyzed)
        self.objects = objects
        self.istio_namespace = istio_namespace
        self.unserved = list(unserved)
        self._by_namespace = {}
        for kind, items in objects.items():
            for obj in items:
                self._by_namespace.setdefault((kind, _meta(obj).get("namespace")), []).append(obj)
        self.configmaps = {_meta(cm)["name"]: cm for cm in configmaps}
        self.istiods = [d for d in self.of("Deployment", istio_namespace)
                        if _labels(d).get("app") == "istiod" or
                        (template_meta(d).get("labels") or {}).get("app") == "istiod"]
        self.revisions = {_labels(d).get(REV_LABEL) or DEFAULT_REVISION for d in self.istiods}
        self.tags = {_labels(w)[TAG_LABEL]: _labels(w).get(REV_LABEL) or DEFAULT_REVISION
                     for w in webhooks or [] if _labels(w).get(TAG_LABEL)}
        self.tags_read = webhooks is not None
        self._defaults = {}

    def of(self, kind, namespace):
        return self._by_namespace.get((kind, namespace), [])

    def analyzed_objects(self, *kinds):
        """(kind, object) of the analyzed namespaces, by namespace, kind (in the given order), name."""
        for namespace in self.analyzed:
            for kind in kinds:
                for obj in self.of(kind, namespace):
                    yield kind, obj

    def counts(self):
        """Objects read per kind (the istiod namespace included)."""
        return {kind: len(items) for kind, items in self.objects.items()}

    # ---- revisions and injection -----------------------------------------------------------

    def resolve(self, revision):
        """The installed revision a revision name or tag stands for, or None when none is installed."""
        if revision in self.revisions:
            return revision
        target = self.tags.get(revision)
        return target if target in self.revisions else None

    def namespace_revision(self, namespace):
        """The revision that injects new pods of a namespace by its labels, or None.

        `istio-injection` wins over `istio.io/rev`, as in Istio's webhooks: `enabled` selects the
        default revision, `disabled` turns injection off.
        """
        labels = _labels(self.namespaces.get(namespace) or {})
        if INJECTION_LABEL in labels:
            return DEFAULT_REVISION if labels[INJECTION_LABEL] == "enabled" else None
        return labels.get(REV_LABEL) or None

    def template_revision(self, workload):
        """The revision that injects this workload's pods, or None when they get no sidecar.

        The namespace's labels first; in a namespace without them, the pod template's
        `istio.io/rev` label, or `sidecar.istio.io/inject: "true"` for the default revision.
        """
        if opt_out_reason(workload):
            return None
        namespace = _meta(workload).get("namespace")
        labels = _labels(self.namespaces.get(namespace) or {})
        if INJECTION_LABEL in labels or labels.get(REV_LABEL):
            return self.namespace_revision(namespace)
        template_labels = template_meta(workload).get("labels") or {}
        if template_labels.get(REV_LABEL):
            return template_labels[REV_LABEL]
        return DEFAULT_REVISION if str(template_labels.get(INJECT, "")).lower() == "true" else None

    def injected_workloads(self):
        """(kind, workload, revision) of the analyzed namespaces' injected workloads."""
        for kind, workload in self.analyzed_objects(*WORKLOAD_KINDS):
            revision = self.template_revision(workload)
            if revision is not None:
                yield kind, workload, revision

    # ---- sidecar settings ------------------------------------------------------------------

    def proxy_defaults(self, revision):
        """The sidecar defaults of a revision (or tag), from its istiod's ConfigMaps in the istiod
        namespace: `istio-sidecar-injector[-<rev>]` (values) and `istio[-<rev>]` (mesh)."""
        installed = self.resolve(revision) or revision
        if installed not in self._defaults:
            suffix = "" if installed == DEFAULT_REVISION else f"-{installed}"
            self._defaults[installed] = ProxyDefaults(
                injector_resources(self.configmaps.get(f"istio-sidecar-injector{suffix}")),
                mesh_concurrency(self.configmaps.get(f"istio{suffix}")))
        return self._defaults[installed]

    def sidecar_resources(self, workload, revision):
        """The sidecar's requests and limits ({"requests": {...}, "limits": {...}}, quantities as
        written) before any LimitRange: the resource annotations when any of them is set (the
        injector then uses those alone), else the revision's default."""
        annotations = template_annotations(workload)
        if any(annotation in annotations for _option, annotation in RESOURCE_ANNOTATIONS):
            resources = {"requests": {}, "limits": {}}
            for option, annotation in RESOURCE_ANNOTATIONS:
                if annotation in annotations:
                    resource, _sep, which = option.partition("_")
                    resources["requests" if which == "request" else "limits"][resource] = \
                        str(annotations[annotation])
            return resources
        return self.proxy_defaults(revision).resources

    def concurrency(self, workload, revision):
        """The sidecar's worker threads as configured: proxy.istio.io/config, else the revision's
        meshConfig default; None when neither sets it (or the annotation cannot be read)."""
        try:
            config = load_proxy_config(template_annotations(workload).get(PROXY_CONFIG))
        except InvalidProxyConfig:
            return None
        value = config.get("concurrency")
        return value if _is_count(value) else self.proxy_defaults(revision).concurrency

    def container_limit_ranges(self, namespace):
        """(LimitRange name, its `type: Container` item) of a namespace."""
        return [(_meta(lr)["name"], item) for lr in self.of("LimitRange", namespace)
                for item in (lr.get("spec") or {}).get("limits") or [] if item.get("type") == "Container"]

    # ---- services and pods -----------------------------------------------------------------

    def live_pods(self, namespace):
        return [pod for pod in self.of("Pod", namespace)
                if (pod.get("status") or {}).get("phase") not in FINISHED_PHASES
                and not _meta(pod).get("deletionTimestamp")]

    def pods_selected(self, namespace, labels):
        """Live pods of a namespace carrying every one of `labels`."""
        return [pod for pod in self.live_pods(namespace)
                if all(_labels(pod).get(key) == value for key, value in labels.items())]

    def service_for_host(self, host, namespace):
        """The Service a DestinationRule host in `namespace` stands for, or None (wildcards,
        hosts outside the cluster or outside the namespaces read)."""
        key = service_key(host, namespace)
        if key is None:
            return None
        return next((svc for svc in self.of("Service", key[0]) if _meta(svc)["name"] == key[1]), None)


def service_key(host, namespace):
    """(namespace, name) of a Kubernetes Service host: a short name (taken in `namespace`, as
    Istio does) or `<name>.<namespace>.svc.cluster.local`; None for anything else."""
    if not isinstance(host, str) or "*" in host:
        return None
    parts = host.lower().split(".")
    if len(parts) == 1:
        return namespace, parts[0]
    if len(parts) > 3 and parts[2] == "svc" and ".".join(parts[3:]) == CLUSTER_DOMAIN:
        return parts[1], parts[0]
    return None


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
