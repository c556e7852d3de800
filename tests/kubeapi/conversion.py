"""Conversion between the versions one kind is served at; storage keeps one version per kind."""

from __future__ import annotations

import copy
import json

from .catalog import ResourceType

HPA_BEHAVIOR_ANNOTATION = "autoscaling.alpha.kubernetes.io/behavior"


def storage_version(rtype: ResourceType) -> str:
    if rtype.kind == "HorizontalPodAutoscaler":
        return "v2"
    return rtype.storage_version or rtype.version


def to_storage(rtype: ResourceType, obj: dict) -> dict:
    """The object as stored, whatever version the client wrote."""
    obj = copy.deepcopy(obj)
    if rtype.kind == "HorizontalPodAutoscaler" and rtype.version == "v1":
        obj = _hpa_v1_to_v2(obj)
    obj["apiVersion"] = f"{rtype.group}/{storage_version(rtype)}" if rtype.group else "v1"
    return obj


def from_storage(rtype: ResourceType, obj: dict) -> dict:
    """The stored object as the client's requested version shows it."""
    if rtype.kind == "HorizontalPodAutoscaler" and rtype.version == "v1":
        obj = _hpa_v2_to_v1(obj)
    if obj.get("apiVersion") != rtype.group_version:
        obj = {**obj, "apiVersion": rtype.group_version}
    return obj


def _hpa_v1_to_v2(obj: dict) -> dict:
    spec = obj.get("spec") or {}
    target = spec.pop("targetCPUUtilizationPercentage", None)
    if target is not None:
        spec["metrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}}]
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    behavior = annotations.pop(HPA_BEHAVIOR_ANNOTATION, None)
    if behavior:
        spec["behavior"] = json.loads(behavior)
    return obj


def _hpa_v2_to_v1(obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    spec = obj.get("spec") or {}
    metrics = spec.pop("metrics", None) or []
    for metric in metrics:
        resource = metric.get("resource") or {}
        if metric.get("type") == "Resource" and resource.get("name") == "cpu":
            spec["targetCPUUtilizationPercentage"] = resource.get("target", {}).get(
                "averageUtilization")
    behavior = spec.pop("behavior", None)
    if behavior:
        obj.setdefault("metadata", {}).setdefault("annotations", {})[HPA_BEHAVIOR_ANNOTATION] = \
            json.dumps(behavior, separators=(",", ":"))
    status = obj.get("status") or {}
    status.pop("conditions", None)
    status.pop("currentMetrics", None)
    return obj
