"""What the cluster's controllers write back once they have acted on an object.

The server runs no kube-controller-manager, apiextensions controller, volume provisioner or cloud
load balancer. These functions compute what those report on a healthy cluster, so readiness checks
(kstatus behind Helm's `--wait=watcher`, Helm's legacy wait, `kubectl rollout status`) see objects
settle. api.py decides when to write them.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def workload_status(kind: str, obj: dict) -> dict:
    """A Deployment, StatefulSet, DaemonSet or ReplicaSet with every pod updated and ready."""
    generation = obj["metadata"]["generation"]
    if kind == "DaemonSet":
        return {"currentNumberScheduled": 1, "desiredNumberScheduled": 1, "numberAvailable": 1,
                "numberReady": 1, "numberMisscheduled": 0, "updatedNumberScheduled": 1,
                "observedGeneration": generation}
    replicas = obj["spec"].get("replicas", 1)
    status = {"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
              "readyReplicas": replicas, "availableReplicas": replicas}
    if kind == "Deployment":
        status["conditions"] = [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
             "lastUpdateTime": now(), "lastTransitionTime": now()},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
             "lastUpdateTime": now(), "lastTransitionTime": now()}]
    if kind == "StatefulSet":
        revision = f"{obj['metadata']['name']}-{generation}"
        status.update(currentRevision=revision, updateRevision=revision, currentReplicas=replicas)
    return status


def crd_status(crd: dict) -> dict:
    """A CustomResourceDefinition whose names were accepted and whose API is served, as the
    apiextensions controllers report it (kstatus waits for `Established`)."""
    spec = crd["spec"]
    names = spec["names"]
    accepted = {key: names[key] for key in ("plural", "singular", "kind", "listKind",
                                            "shortNames", "categories") if key in names}
    previous = crd.get("status") or {}
    stored = list(previous.get("storedVersions") or [])
    stored += [v["name"] for v in spec.get("versions", []) if v.get("storage") and
               v["name"] not in stored]
    since = {c["type"]: c.get("lastTransitionTime") for c in previous.get("conditions") or []
             if c.get("status") == "True"}
    conditions = [
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
         "message": "no conflicts found"},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
         "message": "the initial names have been accepted"},
    ]
    for condition in conditions:
        condition["lastTransitionTime"] = since.get(condition["type"]) or now()
    return {"acceptedNames": accepted, "conditions": conditions, "storedVersions": stored}


def provisioned_volume(claim: dict, storage_class: dict) -> dict:
    """The PersistentVolume a dynamic provisioner creates for a claim, already bound to it."""
    meta = claim["metadata"]
    spec = claim["spec"]
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"pvc-{meta['uid']}", "annotations": {
            "pv.kubernetes.io/provisioned-by": storage_class["provisioner"]}},
        "spec": {
            "capacity": {"storage": ((spec.get("resources") or {}).get("requests") or {})
                         .get("storage", "1Gi")},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy", "Delete"),
            "storageClassName": storage_class["metadata"]["name"],
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "hostPath": {"path": f"/var/lib/kubeapi/volumes/pvc-{meta['uid']}"},
            "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                         "namespace": meta["namespace"], "name": meta["name"],
                         "uid": meta["uid"]},
        },
        "status": {"phase": "Bound"},
    }


def bound_claim_status(volume: dict) -> dict:
    """A claim's status once bound to `volume` (kstatus calls a claim Current when Bound)."""
    return {"phase": "Bound", "accessModes": volume["spec"]["accessModes"],
            "capacity": volume["spec"]["capacity"]}


def load_balancer_status(service: dict) -> dict:
    """The address a load balancer controller publishes: Helm's legacy wait needs one. A host
    name, as some clouds give, since no address here is ever reachable."""
    meta = service["metadata"]
    return {"loadBalancer": {"ingress": [
        {"hostname": f"{meta['name']}.{meta['namespace']}.lb.kubeapi.test"}]}}
