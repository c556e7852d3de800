# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Builders and validators for autoscaling/v2 HorizontalPodAutoscalers: options in, objects out.

Options use Ansible's snake_case names (`scale_down.policies[0].period_seconds`); the objects use
the Kubernetes camelCase fields (`behavior.scaleDown.policies[0].periodSeconds`). Only
autoscaling/v2 is built: `behavior` does not exist in autoscaling/v1, and v2 is served by every
supported Kubernetes (GA since 1.23).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import lookup_served_version
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import (
    INT32_MAX,
    InvalidOption,
    canonical_quantity,
    check_known_fields,
    check_label_key,
    check_label_selector_object,
    check_name,
    check_range,
    check_visible_text,
    parse_quantity,
)

AUTOSCALING_GROUP = "autoscaling"
HPA_KIND = "HorizontalPodAutoscaler"
# The only version built: the first (and only) one the cluster must serve.
HPA_VERSIONS = ("v2",)
DEFAULT_TARGET_KIND = "Deployment"
DEFAULT_TARGET_API_VERSION = "apps/v1"
DEFAULT_MIN_REPLICAS = 1

# Metric type -> the field holding its source, as in the autoscaling/v2 MetricSpec.
METRIC_SOURCES = {
    "Resource": "resource",
    "Pods": "pods",
    "Object": "object",
    "External": "external",
    "ContainerResource": "containerResource",
}
METRIC_TYPES = tuple(METRIC_SOURCES)
# Target types Kubernetes accepts per metric type, and the field that carries each target value.
TARGET_TYPES_BY_METRIC = {
    "Resource": ("Utilization", "AverageValue"),
    "ContainerResource": ("Utilization", "AverageValue"),
    "Pods": ("AverageValue",),
    "Object": ("Value", "AverageValue"),
    "External": ("Value", "AverageValue"),
}
TARGET_VALUE_FIELDS = {"Utilization": "averageUtilization", "AverageValue": "averageValue",
                       "Value": "value"}
# The utilization options and the Resource metric each one sets.
UTILIZATION_OPTIONS = (("cpu_utilization", "cpu"), ("memory_utilization", "memory"))

SELECT_POLICIES = ("Max", "Min", "Disabled")
SCALING_POLICY_TYPES = ("Pods", "Percent")
MAX_STABILIZATION_WINDOW_SECONDS = 3600
MAX_PERIOD_SECONDS = 1800
SCALING_DIRECTIONS = (("scale_up", "scaleUp"), ("scale_down", "scaleDown"))

KIND_RE = re.compile(r"\A[A-Z][A-Za-z0-9]*\Z")
API_VERSION_RE = re.compile(r"\A(?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+(?:(?:alpha|beta)[0-9]+)?\Z")
# The fields of each part of an autoscaling/v2 MetricSpec: the API server refuses any other.
SOURCE_FIELDS = {
    "Resource": ("name", "target"),
    "ContainerResource": ("name", "container", "target"),
    "Pods": ("metric", "target"),
    "Object": ("describedObject", "metric", "target"),
    "External": ("metric", "target"),
}
METRIC_IDENTIFIER_FIELDS = ("name", "selector")
METRIC_TARGET_FIELDS = ("type", "value", "averageValue", "averageUtilization")
OBJECT_REFERENCE_FIELDS = ("apiVersion", "kind", "name")
# Resource names a ContainerResource metric takes without a prefix (and hugepages-<size>).
STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
HUGEPAGES_PREFIX = "hugepages-"


def hpa_name(policy):
    """The HPA's name: `name` when given, else the name of the workload it scales."""
    return policy.get("name") or (policy.get("target") or {}).get("name")


# --------------------------------------------------------------------------- validation


def check_policies(problems, policies, state="present"):
    """Add every problem with `policies` to `problems` (a validate.Problems).

    With state=absent only the names matter, so only they are checked.
    """
    if not policies:
        problems.add("policies", "at least one policy", policies)
        return
    for index, policy in enumerate(policies):
        _check_policy(problems, f"policies[{index}]", policy, state)
    first_index = {}
    for index, policy in enumerate(policies):
        name = hpa_name(policy)
        if name is None:
            continue
        if name in first_index:
            problems.add(f"policies[{index}].name",
                         f"an HPA name not used twice in one task (policies[{first_index[name]}] has it)",
                         name)
        else:
            first_index[name] = index


def _check_policy(problems, path, policy, state):
    target = policy.get("target") or {}
    if policy.get("name") is not None:
        problems.check(check_name, f"{path}.name", policy["name"])
    if target.get("name") is not None:
        problems.check(check_name, f"{path}.target.name", target["name"])
    elif state == "present" or policy.get("name") is None:
        problems.add(f"{path}.target.name", "the name of the workload to scale", None)
    if state == "absent":
        return
    kind = target.get("kind")
    if kind is not None and not (isinstance(kind, str) and KIND_RE.match(kind)):
        problems.add(f"{path}.target.kind", "a kind such as Deployment or StatefulSet", kind)
    api_version = target.get("api_version")
    if api_version is not None and not (isinstance(api_version, str) and API_VERSION_RE.match(api_version)):
        problems.add(f"{path}.target.api_version", "an API version such as apps/v1", api_version)
    _check_replicas(problems, path, policy)
    _check_metrics(problems, path, policy)
    for option, _field in SCALING_DIRECTIONS:
        _check_scaling_rules(problems, f"{path}.{option}", policy.get(option))


def _check_replicas(problems, path, policy):
    minimum = policy.get("min_replicas")
    minimum = DEFAULT_MIN_REPLICAS if minimum is None else minimum
    minimum_ok = problems.check(check_range, f"{path}.min_replicas", minimum, 1) is not None
    maximum = policy.get("max_replicas")
    if maximum is None:
        problems.add(f"{path}.max_replicas", "an integer at least 1: the most replicas to scale to", None)
    elif problems.check(check_range, f"{path}.max_replicas", maximum, 1) is not None and \
            minimum_ok and maximum < minimum:
        problems.add(f"{path}.max_replicas", f"an integer at least min_replicas ({minimum})", maximum)


def _check_metrics(problems, path, policy):
    reserved = {}
    for option, resource in UTILIZATION_OPTIONS:
        if policy.get(option) is not None:
            problems.check(check_range, f"{path}.{option}", policy[option], 1)
            reserved[resource] = option
    metrics = policy.get("metrics")
    if not reserved and not metrics:
        problems.add(f"{path}.metrics",
                     "at least one metric: cpu_utilization, memory_utilization or metrics", metrics)
    for index, metric in enumerate(metrics or []):
        problems.check(check_metric, f"{path}.metrics[{index}]", metric, reserved)


def check_metric(path, metric, reserved=None):
    """A raw autoscaling/v2 MetricSpec, checked the way the API server checks it before storing.

    Only the fields MetricSpec declares (the server refuses others), the right types, the required
    fields of the metric's type, metric names and object references it accepts, label selectors,
    target values (positive quantities up to the server's limit, or an int32 utilization), so that
    no HPA of the task can be refused after another was written.

    `reserved` maps resource names already set by the utilization options (cpu, memory) to the
    option that sets them, so the same resource is not given twice.
    """
    if not isinstance(metric, dict):
        raise InvalidOption(path, "a metric spec (a dict with type and its source)", metric)
    metric_type = metric.get("type")
    if metric_type not in METRIC_SOURCES:
        raise InvalidOption(f"{path}.type", f"one of {', '.join(METRIC_TYPES)}", metric_type)
    key = METRIC_SOURCES[metric_type]
    extra = sorted(str(field) for field in set(metric) - {"type", key})
    if extra:
        raise InvalidOption(f"{path}.{extra[0]}", f"only type and {key} in a {metric_type} metric",
                            metric.get(extra[0]))
    source = metric.get(key)
    if not isinstance(source, dict):
        raise InvalidOption(f"{path}.{key}", f"the {metric_type} metric source (a dict)", source)
    check_known_fields(f"{path}.{key}", source, SOURCE_FIELDS[metric_type])
    if metric_type in ("Resource", "ContainerResource"):
        _check_resource_source(f"{path}.{key}", metric_type, source, reserved or {})
    else:
        _check_metric_identifier(f"{path}.{key}.metric", source.get("metric"))
        if metric_type == "Object":
            _check_described_object(f"{path}.{key}.describedObject", source.get("describedObject"))
    _check_target(f"{path}.{key}.target", metric_type, source.get("target"))
    return metric


def _check_resource_source(path, metric_type, source, reserved):
    name = source.get("name")
    if name is None or name == "":
        raise InvalidOption(f"{path}.name", "a resource name such as cpu or memory", name)
    check_label_key(f"{path}.name", name)
    if metric_type == "Resource" and name in reserved:
        raise InvalidOption(f"{path}.name", f"a resource other than {name}, which {reserved[name]} "
                            "already targets", name)
    if metric_type != "ContainerResource":
        return
    if "/" not in name and name not in STANDARD_CONTAINER_RESOURCES and \
            not name.startswith(HUGEPAGES_PREFIX):
        raise InvalidOption(f"{path}.name", "a container resource: "
                            f"{', '.join(STANDARD_CONTAINER_RESOURCES)}, {HUGEPAGES_PREFIX}<size> "
                            "or an extended resource such as example.com/gpu", name)
    container = source.get("container")
    if container is None or container == "":
        raise InvalidOption(f"{path}.container", "the name of the container to measure", container)
    check_name(f"{path}.container", container, label=True)


def _check_metric_identifier(path, identifier):
    """A MetricIdentifier: a name the API server takes as a path segment, and a label selector."""
    if identifier is None:
        raise InvalidOption(f"{path}.name", "the name of the metric", None)
    if not isinstance(identifier, dict):
        raise InvalidOption(path, "the metric: a dict with its name and, optionally, a selector",
                            identifier)
    check_known_fields(path, identifier, METRIC_IDENTIFIER_FIELDS)
    _check_path_segment(f"{path}.name", identifier.get("name"), "the name of the metric")
    if identifier.get("selector") is not None:
        check_label_selector_object(f"{path}.selector", identifier["selector"])


def _check_path_segment(path, value, expected):
    """A name the API server puts into a URL path: not `.` or `..`, no `/` or `%`; and, as every
    name here, no spaces or control characters."""
    check_visible_text(path, value, expected)
    if value in (".", "..") or "/" in value or "%" in value:
        raise InvalidOption(path, f"{expected}, not '.' or '..' and without '/' or '%'", value)


def _check_described_object(path, described):
    if not isinstance(described, dict):
        raise InvalidOption(path, "the object the metric describes (kind, name, apiVersion)", described)
    check_known_fields(path, described, OBJECT_REFERENCE_FIELDS)
    kind = described.get("kind")
    if not isinstance(kind, str) or not KIND_RE.match(kind):
        raise InvalidOption(f"{path}.kind", "the kind of the described object, such as Ingress", kind)
    _check_path_segment(f"{path}.name", described.get("name"), "the name of the described object")
    api_version = described.get("apiVersion")
    if api_version is not None and not (isinstance(api_version, str) and API_VERSION_RE.match(api_version)):
        raise InvalidOption(f"{path}.apiVersion", "an API version such as networking.k8s.io/v1",
                            api_version)


def _check_target(path, metric_type, target):
    allowed = TARGET_TYPES_BY_METRIC[metric_type]
    if not isinstance(target, dict):
        raise InvalidOption(path, f"a target with type {' or '.join(allowed)} and its value", target)
    check_known_fields(path, target, METRIC_TARGET_FIELDS)
    target_type = target.get("type")
    if target_type not in allowed:
        raise InvalidOption(f"{path}.type", f"{' or '.join(allowed)} for a {metric_type} metric",
                            target_type)
    field = TARGET_VALUE_FIELDS[target_type]
    others = [other for other in TARGET_VALUE_FIELDS.values() if other != field and other in target]
    if others:
        raise InvalidOption(f"{path}.{others[0]}", f"only {field} in a {target_type} target",
                            target[others[0]])
    value = target.get(field)
    if target_type == "Utilization":
        if value is None:
            raise InvalidOption(f"{path}.{field}", "an integer at least 1 (percent of the request)", value)
        check_range(f"{path}.{field}", value, 1)
    elif parse_quantity(f"{path}.{field}", value) <= 0:
        raise InvalidOption(f"{path}.{field}", "a positive quantity", value)


def _check_scaling_rules(problems, path, rules):
    if rules is None:
        return
    problems.check(check_range, f"{path}.stabilization_window_seconds",
                   rules.get("stabilization_window_seconds"), 0, MAX_STABILIZATION_WINDOW_SECONDS)
    select_policy = rules.get("select_policy")
    if select_policy is not None and select_policy not in SELECT_POLICIES:
        problems.add(f"{path}.select_policy", f"one of {', '.join(SELECT_POLICIES)}", select_policy)
    policies = rules.get("policies")
    if policies is not None and not policies:
        problems.add(f"{path}.policies", "at least one policy (leave policies out for the Kubernetes "
                     "defaults)", policies)
    for index, policy in enumerate(policies or []):
        policy_path = f"{path}.policies[{index}]"
        if policy.get("type") not in SCALING_POLICY_TYPES:
            problems.add(f"{policy_path}.type", f"one of {', '.join(SCALING_POLICY_TYPES)}",
                         policy.get("type"))
        _check_required_range(problems, f"{policy_path}.value", policy.get("value"), 1)
        _check_required_range(problems, f"{policy_path}.period_seconds", policy.get("period_seconds"),
                              1, MAX_PERIOD_SECONDS)


def _check_required_range(problems, path, value, minimum, maximum=INT32_MAX):
    if value is None:
        problems.add(path, f"an integer {minimum} to {maximum}", value)
    else:
        problems.check(check_range, path, value, minimum, maximum)


def v2_required_message(policies, serves_v1):
    """Why a cluster without autoscaling/v2 cannot take these policies: one line for fail_json."""
    served = "serves only autoscaling/v1" if serves_v1 else \
        "serves no autoscaling API for HorizontalPodAutoscalers"
    asked = [f"policies[{index}].{option}" for index, policy in enumerate(policies or [])
             for option, _field in SCALING_DIRECTIONS if policy.get(option)]
    if asked:
        return (f"Scaling behavior ({', '.join(asked)}) needs autoscaling/v2 HorizontalPodAutoscalers "
                f"(Kubernetes 1.23 or newer), but the cluster {served}. autoscaling/v1 has no behavior "
                "field, so it cannot be set there (nothing was changed).")
    return (f"meshtune.mesh.hpa_policy needs autoscaling/v2 HorizontalPodAutoscalers (Kubernetes 1.23 "
            f"or newer), but the cluster {served} (nothing was changed).")


def served_hpa_version(module, client, policies):
    """The autoscaling version to build (v2); fails the task when discovery says the cluster does
    not serve it (v2_required_message), and with the unreachable message when the cluster could not
    be asked, which must never read as an old Kubernetes."""
    version = lookup_served_version(module, client, AUTOSCALING_GROUP, HPA_KIND, HPA_VERSIONS)
    if version is None:
        serves_v1 = lookup_served_version(module, client, AUTOSCALING_GROUP, HPA_KIND,
                                          ("v1",)) is not None
        module.fail_json(msg=v2_required_message(policies, serves_v1))
    return version


# --------------------------------------------------------------------------- builders


def metric_spec(metric):
    """A raw metric as sent: a copy, with quantities in the canonical form the API server stores
    (so a re-run compares equal)."""
    metric = copy.deepcopy(metric)
    source = metric.get(METRIC_SOURCES.get(metric.get("type"), ""))
    target = source.get("target") if isinstance(source, dict) else None
    if isinstance(target, dict):
        for field in ("value", "averageValue"):
            if target.get(field) is not None:
                target[field] = canonical_quantity(target[field])
    return metric


def utilization_metric(resource, percent):
    """A Resource metric that targets an average utilization (percent of the pods' requests)."""
    return {"type": "Resource", "resource": {
        "name": resource, "target": {"type": "Utilization", "averageUtilization": percent}}}


def metrics_of(policy):
    """The v2 `metrics` list: cpu, then memory utilization, then the raw metrics in order."""
    metrics = [utilization_metric(resource, policy[option])
               for option, resource in UTILIZATION_OPTIONS if policy.get(option) is not None]
    return metrics + [metric_spec(metric) for metric in policy.get("metrics") or []]


def scaling_rules(rules):
    """One direction of `behavior` (HPAScalingRules) from its options; {} when nothing is set."""
    built = {}
    if rules.get("stabilization_window_seconds") is not None:
        built["stabilizationWindowSeconds"] = rules["stabilization_window_seconds"]
    if rules.get("select_policy") is not None:
        built["selectPolicy"] = rules["select_policy"]
    if rules.get("policies"):
        built["policies"] = [{"type": policy["type"], "value": policy["value"],
                              "periodSeconds": policy["period_seconds"]}
                             for policy in rules["policies"]]
    return built


def behavior_of(policy):
    """The v2 `behavior`, with only the directions and fields that were asked for."""
    behavior = {}
    for option, field in SCALING_DIRECTIONS:
        rules = scaling_rules(policy.get(option) or {})
        if rules:
            behavior[field] = rules
    return behavior


def hpa_spec(policy):
    target = policy["target"]
    minimum = policy.get("min_replicas")
    spec = {
        "scaleTargetRef": {"apiVersion": target.get("api_version") or DEFAULT_TARGET_API_VERSION,
                           "kind": target.get("kind") or DEFAULT_TARGET_KIND,
                           "name": target["name"]},
        "minReplicas": DEFAULT_MIN_REPLICAS if minimum is None else minimum,
        "maxReplicas": policy["max_replicas"],
        "metrics": metrics_of(policy),
    }
    behavior = behavior_of(policy)
    if behavior:
        spec["behavior"] = behavior
    return spec


def hpa_objects(api_version, namespace, policies, state="present"):
    """One HorizontalPodAutoscaler per policy; with state=absent only names (nothing else is read)."""
    objects = []
    for policy in policies:
        obj = {"apiVersion": f"{AUTOSCALING_GROUP}/{api_version}", "kind": HPA_KIND,
               "metadata": {"name": hpa_name(policy), "namespace": namespace}}
        if state == "present":
            obj["spec"] = hpa_spec(policy)
        objects.append(obj)
    return objects
