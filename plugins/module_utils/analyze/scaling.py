# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Rules on scaling and disruption: HPAs that count the sidecar, gateways without a
PodDisruptionBudget."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.base import Finding, rule, task
from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.inventory import (
    PROXY_CONTAINER,
    template_meta,
    template_spec,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.label_selectors import selector_matches
from ansible_collections.meshtune.mesh.plugins.module_utils.reconcile import is_managed

GATEWAY_ISTIO_LABELS = ("ingressgateway", "egressgateway")
GATEWAY_NAME_LABELS = ("gateway.networking.k8s.io/gateway-name", "istio.io/gateway-name")
GATEWAY_TEMPLATES = "inject.istio.io/templates"


def _snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _snake_keys(value):
    """autoscaling/v2 behavior fields as hpa_policy's options (stabilizationWindowSeconds ->
    stabilization_window_seconds)."""
    if isinstance(value, dict):
        return {_snake(key): _snake_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_snake_keys(item) for item in value]
    return value


def _is_pod_cpu_utilization(metric):
    resource = metric.get("resource") or {}
    return metric.get("type") == "Resource" and resource.get("name") == "cpu" and \
        (resource.get("target") or {}).get("type") == "Utilization"


def _container_policy(hpa, workload, utilization):
    """hpa_policy arguments that keep the HPA and measure the application container's CPU only."""
    spec = hpa.get("spec") or {}
    target = spec.get("scaleTargetRef") or {}
    containers = template_spec(workload).get("containers") or []
    app = next((c.get("name") for c in containers if c.get("name") != PROXY_CONTAINER), None)
    target_utilization = {"type": "Utilization", "averageUtilization": utilization}
    metrics = [{"type": "ContainerResource",
                "containerResource": {"name": "cpu", "container": app, "target": target_utilization}}]
    metrics += [metric for metric in spec.get("metrics") or [] if not _is_pod_cpu_utilization(metric)]
    policy = {"name": hpa["metadata"]["name"],
              "target": {"kind": target.get("kind"), "name": target.get("name"),
                         "api_version": target.get("apiVersion", "apps/v1")},
              "min_replicas": spec.get("minReplicas", 1), "max_replicas": spec.get("maxReplicas"),
              "metrics": metrics}
    for direction, field in (("scale_up", "scaleUp"), ("scale_down", "scaleDown")):
        behavior = (spec.get("behavior") or {}).get(field)
        if behavior:
            policy[direction] = _snake_keys(behavior)
    taken_over = {} if is_managed(hpa) else {"force": True}  # hpa_policy leaves others' HPAs alone
    return task("hpa_policy", namespace=hpa["metadata"]["namespace"], policies=[policy], **taken_over)


@rule("MT004", "warning", "HPA on an injected workload scales on pod CPU utilization",
      why="""A Resource metric averages the CPU of the whole pod against the pod's requests, the
      sidecar's included: proxy CPU (which follows traffic, TLS and telemetry, not the
      application's load) moves the scaling decision, so the workload scales out too early or
      too late.""",
      fix="""Scale on the application container's CPU with a ContainerResource metric
      (meshtune.mesh.hpa_policy; the task has force=true for an HPA meshtune does not manage yet,
      which it then takes over).""")
def hpa_pod_cpu(inventory, settings):
    for _kind, hpa in inventory.analyzed_objects("HorizontalPodAutoscaler"):
        spec = hpa.get("spec") or {}
        target = spec.get("scaleTargetRef") or {}
        namespace = hpa["metadata"]["namespace"]
        workload = next((w for w in inventory.of(target.get("kind"), namespace)
                         if w["metadata"]["name"] == target.get("name")), None)
        if workload is None or inventory.template_revision(workload) is None:
            continue
        metric = next((m for m in spec.get("metrics") or [] if _is_pod_cpu_utilization(m)), None)
        if metric is None:
            continue
        utilization = metric["resource"]["target"].get("averageUtilization")
        yield Finding("MT004", "HorizontalPodAutoscaler", namespace, hpa["metadata"]["name"],
                      f"scales {target.get('kind')} {target.get('name')} on pod CPU utilization "
                      f"({utilization} % of the pod's requests, sidecar included)",
                      _container_policy(hpa, workload, utilization))


def is_gateway(workload):
    """An Istio gateway Deployment: the gateway chart's, the legacy ingress/egress gateways', or
    one deployed for a Kubernetes Gateway."""
    meta = template_meta(workload)
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    return labels.get("istio") in GATEWAY_ISTIO_LABELS or \
        any(label in labels for label in GATEWAY_NAME_LABELS) or \
        "gateway" in str(annotations.get(GATEWAY_TEMPLATES, "")).split(",")


def _hpa_specs(inventory, namespace, deployment):
    """Specs of the HPAs that scale a Deployment."""
    specs = [hpa.get("spec") or {} for hpa in inventory.of("HorizontalPodAutoscaler", namespace)]
    return [spec for spec in specs if (spec.get("scaleTargetRef") or {}).get("kind") == "Deployment"
            and (spec.get("scaleTargetRef") or {}).get("name") == deployment]


def _selects(budget, labels):
    """Whether a PodDisruptionBudget selects pods with `labels` (no selector selects none)."""
    selector = (budget.get("spec") or {}).get("selector")
    return selector_matches(selector, labels)


@rule("MT008", "warning", "Gateway with several replicas and no PodDisruptionBudget",
      why="""Nothing stops a node drain or cluster upgrade from evicting all gateway pods at once:
      every connection through the gateway drops and new ones fail until replacements are ready,
      the outage the replicas were meant to prevent.""",
      fix="""Add a PodDisruptionBudget for the gateway pods (maxUnavailable: 1), for example with
      meshtune.mesh.k8s_objects.""")
def gateway_without_budget(inventory, settings):
    for _kind, workload in inventory.analyzed_objects("Deployment"):
        if not is_gateway(workload):
            continue
        namespace, name = workload["metadata"]["namespace"], workload["metadata"]["name"]
        replicas = max([(workload.get("spec") or {}).get("replicas", 1)] +
                       [spec.get("minReplicas", 1) for spec in _hpa_specs(inventory, namespace, name)])
        labels = template_meta(workload).get("labels") or {}
        budgets = inventory.of("PodDisruptionBudget", namespace)
        if replicas < 2 or any(_selects(budget, labels) for budget in budgets):
            continue
        selector = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or labels
        budget = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                  "metadata": {"name": name, "namespace": namespace},
                  "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(selector)}}}
        yield Finding("MT008", "Deployment", namespace, name,
                      f"{replicas} replicas and no PodDisruptionBudget selecting its pods",
                      task("k8s_objects", definitions=[budget]))
