"""The fields a real API server fills in on write: defaulting and allocation.

Clients read them back and wait on them: kstatus calls a LoadBalancer Service InProgress until it
has a cluster IP, kubernetes.core's rollout wait reads a Deployment's strategy, Helm's three-way
diffs see the defaulted spec. Per-server state (allocated cluster IPs and node ports) lives in
`Defaulter`.
"""

from __future__ import annotations

import copy
import ipaddress
import itertools

from .catalog import ResourceType

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}
# What apps/v1 defaulting adds to a workload's spec when the client leaves it out (clients such as
# kubernetes.core's rollout wait read these fields).
WORKLOAD_SPEC_DEFAULTS = {
    "Deployment": {"strategy": {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                   "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
    "StatefulSet": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                    "podManagementPolicy": "OrderedReady", "revisionHistoryLimit": 10},
    "DaemonSet": {"updateStrategy": {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                  "revisionHistoryLimit": 10},
}
# The service CIDR kubeadm and kind use; .1 is the `kubernetes` Service of a real cluster.
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
NODE_PORTS = range(30000, 32768)
# The StorageClass every server starts with, marked default like the one kind or minikube ships.
DEFAULT_STORAGE_CLASS = {
    "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
    "metadata": {"name": "standard",
                 "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
    "provisioner": "kubeapi.meshtune.test/local", "reclaimPolicy": "Delete",
    "volumeBindingMode": "Immediate",
}


class Defaulter:
    """Fills in server-owned fields; remembers the cluster IPs and node ports it handed out."""

    def __init__(self) -> None:
        self._addresses = itertools.islice(SERVICE_CIDR.hosts(), 10, None)
        self._node_ports = iter(NODE_PORTS)

    def apply(self, rtype: ResourceType, obj: dict, current: dict | None,
              default_storage_class: str | None) -> None:
        """Default `obj` in place; `current` is the stored object an update replaces."""
        if rtype.custom:
            return
        kind = rtype.kind
        if kind == "Namespace":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = \
                obj["metadata"]["name"]
        elif kind in WORKLOAD_KINDS:
            spec = obj.setdefault("spec", {})
            if kind != "DaemonSet":
                spec.setdefault("replicas", 1)
            for field, value in WORKLOAD_SPEC_DEFAULTS.get(kind, {}).items():
                spec.setdefault(field, copy.deepcopy(value))
        elif kind == "Service":
            self._service(obj.setdefault("spec", {}), (current or {}).get("spec") or {})
        elif kind == "PersistentVolumeClaim":
            spec = obj.setdefault("spec", {})
            spec.setdefault("volumeMode", "Filesystem")
            for field in ("volumeName", "storageClassName"):  # set once, kept by updates
                if field not in spec and field in ((current or {}).get("spec") or {}):
                    spec[field] = current["spec"][field]
            if "storageClassName" not in spec and default_storage_class:
                spec["storageClassName"] = default_storage_class
        elif kind == "CustomResourceDefinition":
            spec = obj.setdefault("spec", {})
            names = spec.setdefault("names", {})
            if "kind" in names:
                names.setdefault("singular", names["kind"].lower())
                names.setdefault("listKind", names["kind"] + "List")
            spec.setdefault("conversion", {"strategy": "None"})

    def _service(self, spec: dict, old: dict) -> None:
        """ClusterIP allocation and the defaults of core/v1 Service (kept across updates, as a
        real server keeps an allocated IP and node ports when an update leaves them out)."""
        service_type = spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if service_type == "ExternalName":
            return
        if not spec.get("clusterIP"):
            spec["clusterIP"] = old.get("clusterIP") or str(next(self._addresses))
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        external = service_type in ("NodePort", "LoadBalancer")
        if external:
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if service_type == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p for p in old.get("ports") or []}
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
            if external and "nodePort" not in port:
                previous = old_ports.get((port.get("port"), port["protocol"]), {})
                port["nodePort"] = previous.get("nodePort") or next(self._node_ports)
