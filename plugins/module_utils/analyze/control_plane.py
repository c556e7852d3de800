# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Rules on the control plane: istiod's CPU, and workloads left on a revision that is gone."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.base import Finding, rule, task
from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.inventory import (
    WORKLOAD_KINDS,
    template_meta,
    template_spec,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.upgrade import (
    INJECTION_LABEL,
    REV_LABEL,
    injected_revision,
)


@rule("MT009", "warning", "istiod with a CPU limit",
      why="""istiod computes and pushes configuration to every proxy in bursts; a CPU limit
      throttles exactly those bursts, so pushes queue up, config convergence slows, and proxies
      run on stale endpoints after each change (istio/istio#25685).""",
      fix="""Remove istiod's CPU limit and keep its CPU request (the istio role's istiod values,
      resources.limits.cpu, through istio_overrides or the profile); scale istiod out with its
      autoscaler instead.""")
def istiod_cpu_limit(inventory, settings):
    for istiod in inventory.istiods:
        containers = template_spec(istiod).get("containers") or []
        for container in containers:
            limit = ((container.get("resources") or {}).get("limits") or {}).get("cpu")
            if limit is not None:
                yield Finding("MT009", "Deployment", istiod["metadata"]["namespace"],
                              istiod["metadata"]["name"],
                              f"container {container.get('name')} has a CPU limit of {limit}")


def _owner(pod):
    """(kind, name) of the workload a pod belongs to: its controller, a ReplicaSet's Deployment
    named by the pod-template-hash, or the pod itself."""
    meta = pod["metadata"]
    owner = next((ref for ref in meta.get("ownerReferences") or [] if ref.get("controller")),
                 (meta.get("ownerReferences") or [None])[0])
    if owner is None:
        return "Pod", meta["name"]
    pod_hash = (meta.get("labels") or {}).get("pod-template-hash")
    if owner.get("kind") == "ReplicaSet" and pod_hash and owner.get("name", "").endswith("-" + pod_hash):
        return "Deployment", owner["name"][:-len(pod_hash) - 1]
    return owner.get("kind"), owner.get("name")


def _target(inventory):
    """The revision or tag to move to when there is exactly one choice (the default tag first)."""
    if inventory.resolve("default"):
        return "default"
    return next(iter(inventory.revisions)) if len(inventory.revisions) == 1 else None


@rule("MT012", "error", "Workloads on an Istio revision that is not installed",
      why="""No istiod serves that revision: running proxies injected by it get no configuration
      updates or certificate rotation (stale routes and endpoints, then failing mTLS), and new pods
      of a namespace or workload labelled for it get no sidecar at all.""",
      fix="""Point the namespace or workload at an installed revision or tag (label istio.io/rev)
      and restart its workloads, or reinstall the revision until they have moved.""")
def stale_revision(inventory, settings):
    if not inventory.istiods:
        return
    installed = ", ".join(sorted(inventory.revisions))
    target = _target(inventory)
    for namespace in inventory.analyzed:
        labels = (inventory.namespaces[namespace].get("metadata") or {}).get("labels") or {}
        revision = labels.get(REV_LABEL)
        if revision and INJECTION_LABEL not in labels and inventory.resolve(revision) is None:
            fix = task("k8s_objects", definitions=[{"apiVersion": "v1", "kind": "Namespace", "metadata": {
                "name": namespace, "labels": {REV_LABEL: target}}}]) if target else None
            yield Finding("MT012", "Namespace", None, namespace,
                          f"labelled {REV_LABEL}={revision}; installed: {installed}", fix)
        for kind in WORKLOAD_KINDS:
            for workload in inventory.of(kind, namespace):
                wanted = (template_meta(workload).get("labels") or {}).get(REV_LABEL)
                if wanted and inventory.resolve(wanted) is None:
                    yield Finding("MT012", kind, namespace, workload["metadata"]["name"],
                                  f"pod template labelled {REV_LABEL}={wanted}; installed: {installed}")
        stale = {}
        for pod in inventory.live_pods(namespace):
            revision, _found_by = injected_revision(pod)
            if revision is not None and inventory.resolve(revision) is None:
                stale.setdefault((_owner(pod), revision), []).append(pod["metadata"]["name"])
        for ((kind, name), revision), pods in sorted(stale.items()):
            yield Finding("MT012", kind, namespace, name,
                          f"{len(pods)} pod{'s' if len(pods) > 1 else ''} running a sidecar of revision "
                          f"{revision}; installed: {installed}")
