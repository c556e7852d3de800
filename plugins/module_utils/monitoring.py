# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""meshtune's monitoring content for a Prometheus Operator stack (meshtune_monitoring: operator).

The rule files the prometheus role loads into its own Prometheus become PrometheusRule objects
here, group for group, so both modes evaluate the same rules from one source. Which namespace
and labels the existing Prometheus selects are read from its Prometheus resource, and the stack's
own ServiceMonitors and ScrapeConfigs tell whether it already scrapes the kubelets' cAdvisor.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.meshtune.mesh.plugins.module_utils.label_selectors import selector_matches
from ansible_collections.meshtune.mesh.plugins.module_utils.reconcile import is_subset
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import DNS1123_SUBDOMAIN_RE

OPERATOR_GROUP = "monitoring.coreos.com"
RULE_FILE_ANNOTATION = "meshtune.io/rule-file"
CADVISOR_PATH = "/metrics/cadvisor"
# The Prometheus resource's selectors of the objects meshtune writes, and their namespace selectors.
SELECTORS = {"podMonitorSelector": "podMonitorNamespaceSelector",
             "serviceMonitorSelector": "serviceMonitorNamespaceSelector",
             "ruleSelector": "ruleNamespaceSelector"}


class MonitoringError(Exception):
    """Input that cannot be turned into operator objects, with a message naming the fix."""


def rule_object_name(file_name):
    """PrometheusRule name of a rule file: its stem, prefixed with meshtune- unless it has it."""
    stem = re.sub(r"\.ya?ml$", "", file_name).lower().replace("_", "-").replace(".", "-")
    name = stem if stem.startswith("meshtune") else f"meshtune-{stem}"
    if not DNS1123_SUBDOMAIN_RE.match(name):
        raise MonitoringError(f"rule file {file_name!r} gives no valid object name ({name!r})")
    return name


def prometheus_rules(rule_files, namespace, labels):
    """One PrometheusRule per rule file (name -> parsed content), holding its groups as they are."""
    objects = []
    for file_name, content in rule_files.items():
        if not isinstance(content, dict) or not isinstance(content.get("groups"), list):
            raise MonitoringError(f"rule file {file_name!r} holds no 'groups' list")
        objects.append({
            "apiVersion": f"{OPERATOR_GROUP}/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": rule_object_name(file_name), "namespace": namespace,
                         "labels": dict(labels),
                         "annotations": {RULE_FILE_ANNOTATION: file_name}},
            "spec": {"groups": content["groups"]},
        })
    return objects


def _labels_for(selector):
    """Labels that satisfy a selector where it says exactly what they are: matchLabels and
    single-valued In expressions."""
    labels = dict(selector.get("matchLabels") or {})
    for expression in selector.get("matchExpressions") or []:
        if expression.get("operator") == "In" and len(expression.get("values") or []) == 1:
            labels.setdefault(expression["key"], expression["values"][0])
    return labels


def _name(obj):
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def _pick(prometheuses, wanted):
    """The Prometheus resource to deliver to: the one named `wanted` (namespace/name), else the
    only one; None when there is none."""
    if wanted:
        chosen = [p for p in prometheuses if _name(p) == wanted]
        if not chosen:
            raise MonitoringError(
                f"prometheus_operator_prometheus: no Prometheus resource {wanted} in the cluster "
                f"(found: {', '.join(map(_name, prometheuses)) or 'none'})")
        return chosen[0]
    if len(prometheuses) > 1:
        raise MonitoringError(
            f"found {len(prometheuses)} Prometheus resources ({', '.join(map(_name, prometheuses))}): "
            "set prometheus_operator_prometheus to the namespace/name of the one that monitors the mesh")
    return prometheuses[0] if prometheuses else None


def operator_selection(prometheuses, namespace="", labels=None, prometheus="", fallback_namespace=""):
    """Namespace and labels for meshtune's PodMonitor, ServiceMonitor and PrometheusRules.

    Explicit values (`namespace`, `labels`) win; what they leave out comes from the Prometheus
    resource (its namespace; the labels its podMonitor/serviceMonitor/rule selectors require).
    The result is checked against that resource: each selector must select objects with these
    labels in that namespace. Without any Prometheus resource the explicit values, or
    `fallback_namespace` and no labels, are used unchecked.
    """
    labels = dict(labels or {})
    chosen = _pick(list(prometheuses), prometheus)
    if chosen is None:
        return {"namespace": namespace or fallback_namespace, "labels": labels, "prometheus": "",
                "notes": ["no Prometheus resource found: namespace and labels are the inventory's"]}
    spec, own_namespace = chosen.get("spec") or {}, chosen["metadata"]["namespace"]
    if not labels:
        for field in SELECTORS:
            for key, value in _labels_for(spec.get(field) or {}).items():
                if labels.setdefault(key, value) != value:
                    raise MonitoringError(
                        f"Prometheus {_name(chosen)} selects different values of the label {key} "
                        f"({labels[key]} and {value}): set prometheus_operator_selector")
    namespace = namespace or own_namespace
    problems, notes = [], []
    for field, namespace_field in SELECTORS.items():
        if spec.get(field) is None:
            problems.append(f"spec.{field} is unset, so it selects none")
        elif not selector_matches(spec[field], labels):
            problems.append(f"spec.{field} {spec[field]} does not select the labels {labels}")
        namespace_selector = spec.get(namespace_field)
        if namespace_selector is None and namespace != own_namespace:
            problems.append(f"spec.{namespace_field} is unset, so it reads only its own namespace "
                            f"{own_namespace}, not {namespace}")
        elif namespace_selector:
            notes.append(f"spec.{namespace_field} is {namespace_selector}: namespace {namespace} "
                         "must carry those labels")
    if problems:
        raise MonitoringError(
            f"Prometheus {_name(chosen)} would not load meshtune's objects (namespace {namespace}, "
            f"labels {labels}): {'; '.join(problems)}. Set prometheus_operator_selector and "
            "prometheus_operator_namespace to what it selects, or change the Prometheus resource")
    return {"namespace": namespace, "labels": labels, "prometheus": _name(chosen), "notes": notes}


RELABEL_FIELDS = {"source_labels": "sourceLabels", "separator": "separator",
                  "target_label": "targetLabel", "regex": "regex", "modulus": "modulus",
                  "replacement": "replacement", "action": "action"}


def operator_relabelings(relabel_configs):
    """Prometheus relabel_configs as the Prometheus Operator writes them (camelCase fields)."""
    converted = []
    for rule in relabel_configs:
        unknown = sorted(set(rule) - set(RELABEL_FIELDS))
        if unknown:
            raise MonitoringError(f"relabel config {rule} has fields the operator does not take: "
                                  f"{', '.join(unknown)}")
        converted.append({RELABEL_FIELDS[key]: value for key, value in rule.items()})
    return converted


def _relabel_drops(relabelings, metric):
    """Whether metric relabelings drop every series of `metric` by its name."""
    for rule in relabelings or []:
        action = (rule.get("action") or "replace").lower()
        if action not in ("keep", "drop") or rule.get("sourceLabels") != ["__name__"]:
            continue
        matches = re.fullmatch(rule.get("regex") or "(.*)", metric) is not None
        if matches == (action == "drop"):
            return True
    return False


def cadvisor_scrapes(service_monitors, scrape_configs, metrics):
    """The stack's objects that scrape the kubelets' cAdvisor, each with the `metrics` its metric
    relabelings drop: [{"object": "ServiceMonitor ns/name", "dropped": [...]}]."""
    found = []
    for monitor in service_monitors:
        for endpoint in (monitor.get("spec") or {}).get("endpoints") or []:
            if endpoint.get("path") == CADVISOR_PATH:
                found.append({"object": f"ServiceMonitor {_name(monitor)}", "dropped": [
                    m for m in metrics if _relabel_drops(endpoint.get("metricRelabelings"), m)]})
    for config in scrape_configs:
        spec = config.get("spec") or {}
        if spec.get("metricsPath") == CADVISOR_PATH:
            found.append({"object": f"ScrapeConfig {_name(config)}", "dropped": [
                m for m in metrics if _relabel_drops(spec.get("metricRelabelings"), m)]})
    return found


def outdated_dashboards(reads, folder_uid):
    """The dashboards Grafana lacks, holds otherwise, or files in another folder than `folder_uid`.

    `reads` are the answers to GET /api/dashboards/uid/<uid>, each with the wanted dashboard as
    `item`, the HTTP `status` and, for 200, the `json` body ({dashboard, meta}).
    """
    outdated = []
    for read in reads:
        body = read.get("json") or {}
        live, meta = body.get("dashboard"), body.get("meta") or {}
        if read.get("status") != 200 or not is_subset(read["item"], live) or \
                (meta.get("folderUid") or "") != folder_uid:
            outdated.append(read["item"])
    return outdated
