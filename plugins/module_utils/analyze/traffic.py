# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Rules on DestinationRules: duplicate hosts, subsets that select nothing, outlier detection
that can eject every endpoint."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.base import Finding, rule
from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.inventory import (
    CLUSTER_DOMAIN,
    service_key,
)

MIN_ENDPOINTS_FOR_FULL_EJECTION = 3


def _rules(inventory):
    for _kind, destination_rule in inventory.analyzed_objects("DestinationRule"):
        yield destination_rule["metadata"]["namespace"], destination_rule["metadata"]["name"], \
            destination_rule.get("spec") or {}


def _fqdn(host, namespace):
    key = service_key(host, namespace)
    return f"{key[1]}.{key[0]}.svc.{CLUSTER_DOMAIN}" if key else str(host).lower()


@rule("MT005", "warning", "DestinationRules with the same host in one namespace",
      why="""Istio merges DestinationRules of one host in a namespace in order of age: the later
      rule's traffic policy is dropped where the first sets one, so its connection pool, outlier
      detection or TLS settings silently do not apply, and every extra rule is more
      configuration to push.""",
      fix="""Keep one DestinationRule per host and namespace, with all its subsets and policies
      (meshtune.mesh.destination_rule manages one per host).""")
def duplicate_hosts(inventory, settings):
    groups = {}
    for namespace, name, spec in _rules(inventory):
        selector = json.dumps(spec.get("workloadSelector"), sort_keys=True)
        groups.setdefault((namespace, _fqdn(spec.get("host"), namespace), selector), []).append(name)
    for (namespace, host, _selector), names in sorted(groups.items()):
        by_age = sorted(names, key=lambda name: (_created(inventory, namespace, name), name))
        for name in by_age[1:]:
            yield Finding("MT005", "DestinationRule", namespace, name,
                          f"host {host} is already the host of DestinationRule {namespace}/{by_age[0]}")


def _created(inventory, namespace, name):
    rule_object = next(obj for obj in inventory.of("DestinationRule", namespace)
                       if obj["metadata"]["name"] == name)
    return rule_object["metadata"].get("creationTimestamp") or ""


def _endpoints(inventory, service, labels):
    """Live pods the Service selects that also carry `labels` (a subset's); None for a Service
    without a selector (its endpoints are managed by hand)."""
    selector = (service.get("spec") or {}).get("selector")
    if not selector:
        return None
    return inventory.pods_selected(service["metadata"]["namespace"], {**selector, **labels})


@rule("MT006", "warning", "DestinationRule subset that matches no pod",
      why="""Each subset is an Envoy cluster in every proxy the rule reaches and part of every
      push; a subset that selects no pod costs that memory and push work for nothing, and
      traffic routed to it fails with 503 (no healthy upstream).""",
      fix="""Remove the subset or correct its labels so that it selects the pods meant (with
      meshtune.mesh.destination_rule where meshtune manages the rule).""")
def empty_subsets(inventory, settings):
    for namespace, name, spec in _rules(inventory):
        service = inventory.service_for_host(spec.get("host"), namespace)
        if service is None:
            continue
        empty = []
        for subset in spec.get("subsets") or []:
            pods = _endpoints(inventory, service, subset.get("labels") or {})
            if pods is not None and not pods:
                labels = ",".join(f"{k}={v}" for k, v in sorted((subset.get("labels") or {}).items()))
                empty.append(f"{subset.get('name')} ({labels or 'no labels'})")
        if empty:
            yield Finding("MT006", "DestinationRule", namespace, name,
                          f"subsets matching no pod of Service {service['metadata']['namespace']}/"
                          f"{service['metadata']['name']}: {', '.join(empty)}")


@rule("MT007", "warning", "Outlier detection may eject every endpoint of a small service",
      why=f"""maxEjectionPercent 100 lets outlier detection eject all endpoints at once; with fewer
      than {MIN_ENDPOINTS_FOR_FULL_EJECTION} endpoints one or two failing pods empty the load
      balancing pool, and every request fails fast with 503 until the ejection time ends, instead
      of going to the endpoints that still answer.""",
      fix=f"""Lower maxEjectionPercent (for example to 50) or run at least
      {MIN_ENDPOINTS_FOR_FULL_EJECTION} endpoints (meshtune.mesh.destination_rule option
      outlier_detection.max_ejection_percent where meshtune manages the rule).""")
def full_ejection(inventory, settings):
    for namespace, name, spec in _rules(inventory):
        service = inventory.service_for_host(spec.get("host"), namespace)
        if service is None:
            continue
        policies = [("trafficPolicy", spec.get("trafficPolicy") or {}, {})]
        policies += [(f"subset {subset.get('name')}", subset.get("trafficPolicy") or {},
                      subset.get("labels") or {}) for subset in spec.get("subsets") or []]
        found = []
        for where, policy, labels in policies:
            if (policy.get("outlierDetection") or {}).get("maxEjectionPercent") != 100:
                continue
            pods = _endpoints(inventory, service, labels)
            if pods is not None and len(pods) < MIN_ENDPOINTS_FOR_FULL_EJECTION:
                found.append(f"{where} with {len(pods)} endpoint{'s' if len(pods) != 1 else ''}")
        if found:
            yield Finding("MT007", "DestinationRule", namespace, name,
                          f"maxEjectionPercent 100 on {', '.join(found)}")
