#!/usr/bin/python
# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: hpa_policy
short_description: Autoscale workloads with autoscaling/v2 HorizontalPodAutoscalers, many in one task
version_added: 0.1.0
description:
  - Creates, updates or deletes one C(HorizontalPodAutoscaler) (autoscaling/v2) per entry of
    O(policies), all in one namespace.
  - Scaling behavior (O(policies[].scale_up), O(policies[].scale_down)) exists only in
    autoscaling/v2, so the module requires it (Kubernetes 1.23 or newer). On a cluster that serves
    only autoscaling/v1 the task fails before any write, saying so.
  - Every value is checked before the first write; a bad one fails the task with one message
    naming the option path, for example C(policies[1].scale_down.policies[0].period_seconds).
    Integers are int32s, as in the API (at most 2147483647). Names are taken exactly as given;
    one with spaces or a line break around it is refused, not trimmed.
author:
  - meshtune maintainers (@meshtune)
options:
  namespace:
    description: Namespace of the workloads and their HorizontalPodAutoscalers.
    type: str
    required: true
  policies:
    description:
      - One HorizontalPodAutoscaler each.
      - With O(state=absent) only O(policies[].name) (or O(policies[].target.name)) is needed.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the HorizontalPodAutoscaler. Defaults to the name of the target.
        type: str
      target:
        description: The workload to scale (the C(scaleTargetRef)).
        type: dict
        suboptions:
          kind:
            description: Kind of the workload.
            type: str
            default: Deployment
          name:
            description: Name of the workload. Must be given with O(state=present).
            type: str
          api_version:
            description: API version of the workload.
            type: str
            default: apps/v1
      min_replicas:
        description: Fewest replicas to scale down to (at least 1).
        type: int
        default: 1
      max_replicas:
        description:
          - Most replicas to scale up to, at least O(policies[].min_replicas).
          - Must be given with O(state=present).
        type: int
      cpu_utilization:
        description:
          - Target average CPU use, in percent of the pods' CPU requests (a C(Resource) metric of
            target type C(Utilization)).
          - The autoscaling/v1 name C(target_cpu_utilization_percentage) is accepted as an alias.
        type: int
        aliases: [target_cpu_utilization_percentage]
      memory_utilization:
        description:
          - Target average memory use, in percent of the pods' memory requests (a C(Resource)
            metric of target type C(Utilization)).
        type: int
      metrics:
        description:
          - More metrics, as autoscaling/v2 C(MetricSpec) objects (camelCase fields), for example
            C(Pods), C(Object) or C(External) metrics from a metrics adapter.
          - Each needs C(type) (C(Resource), C(Pods), C(Object), C(External) or
            C(ContainerResource)), the matching source (C(resource), C(pods), C(object),
            C(external) or C(containerResource)) and a C(target). They are sent as given
            (quantities in the API server's canonical form) after a check against the
            autoscaling/v2 C(MetricSpec) schema, before the first write, so that the API server
            cannot refuse one HPA after another was written.
          - That check refuses fields C(MetricSpec) does not declare and values of the wrong
            type; requires the fields of the metric's type (C(metric.name), C(describedObject),
            C(container) and a C(target) whose C(type) fits the metric); checks metric and object
            names as the API server does (not C(.) or C(..), no C(/), C(%), spaces or control
            characters), resource names and label selectors (C(matchLabels) keys and values,
            C(matchExpressions) with C(In), C(NotIn), C(Exists) or C(DoesNotExist)); and target
            values (one value field, of the target's type; a positive quantity, or an
            C(averageUtilization) of 1 to 2147483647).
          - At least one of O(policies[].cpu_utilization), O(policies[].memory_utilization) or
            O(policies[].metrics) is needed.
        type: list
        elements: dict
      scale_up:
        description:
          - How fast to scale up (C(behavior.scaleUp)). Unset keeps the Kubernetes default,
            no stabilization and at most 100% or 4 pods more every 15 seconds, whichever is more.
        type: dict
        suboptions: &scaling_rules
          stabilization_window_seconds:
            description:
              - Seconds of past recommendations to consider (0 to 3600). Scaling down uses the
                highest of them, scaling up the lowest, which damps flapping.
            type: int
          select_policy:
            description:
              - Which of the policies wins when several apply. V(Disabled) turns scaling in
                this direction off.
            type: str
            choices: [Max, Min, Disabled]
          policies:
            description: How much may change within a period. At least one when given.
            type: list
            elements: dict
            suboptions:
              type:
                description: V(Pods) counts pods; V(Percent) is a share of the current replicas.
                type: str
                choices: [Pods, Percent]
                required: true
              value:
                description: How many pods, or what percent (greater than 0).
                type: int
                required: true
              period_seconds:
                description: Length of the period the value applies to, 1 to 1800 seconds.
                type: int
                required: true
      scale_down:
        description:
          - How fast to scale down (C(behavior.scaleDown)), with the same options as
            O(policies[].scale_up). Unset keeps the Kubernetes default, a 300 second
            stabilization window and at most 100% fewer every 15 seconds.
        type: dict
        suboptions: *scaling_rules
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshtune.mesh.auth
  - meshtune.mesh.reconcile
  - meshtune.mesh.reconcile.owned
"""

EXAMPLES = r"""
- name: Autoscale the web front end, scaling up fast and down slowly
  meshtune.mesh.hpa_policy:
    namespace: shop
    policies:
      - target:
          name: web
        min_replicas: 3
        max_replicas: 30
        cpu_utilization: 70
        scale_up:
          stabilization_window_seconds: 0
          select_policy: Max
          policies:
            - {type: Percent, value: 100, period_seconds: 15}
            - {type: Pods, value: 4, period_seconds: 15}
        scale_down:
          stabilization_window_seconds: 600
          select_policy: Min
          policies:
            - {type: Percent, value: 10, period_seconds: 60}
            - {type: Pods, value: 2, period_seconds: 60}

- name: Scale the checkout API on CPU, memory and requests per second from a metrics adapter
  meshtune.mesh.hpa_policy:
    namespace: shop
    policies:
      - name: checkout-api
        target:
          kind: Deployment
          name: checkout
        min_replicas: 2
        max_replicas: 12
        target_cpu_utilization_percentage: 75
        memory_utilization: 80
        metrics:
          - type: Pods
            pods:
              metric:
                name: istio_requests_per_second
              target:
                type: AverageValue
                averageValue: "100"

- name: Remove the autoscalers again
  meshtune.mesh.hpa_policy:
    namespace: shop
    state: absent
    policies:
      - name: web
      - name: checkout-api
"""

RETURN = r"""
results:
  description:
    - One entry per HorizontalPodAutoscaler, with its C(action) (V(created), V(updated),
      V(unchanged), V(deleted), V(skipped) or V(failed)) and, where it says more, a C(reason).
    - >-
      C(reason) is C(drift: <fields>) for an object put back after a change by hand,
      C(taken over with force=true ...) for one meshtune did not manage before, C(exists and is not
      managed by meshtune ...) for one left alone (V(skipped)), and C(not attempted ...) for one
      whose write was not tried once the API server stopped answering (V(skipped)).
  returned: always
  type: list
  elements: dict
  sample:
    - {kind: HorizontalPodAutoscaler, namespace: shop, name: web, api_version: autoscaling/v2,
       action: created}
    - {kind: HorizontalPodAutoscaler, namespace: shop, name: web, api_version: autoscaling/v2,
       action: updated, reason: "drift: spec.behavior"}
summary:
  description: How many objects were created, updated, unchanged, deleted, skipped or failed.
  returned: always
  type: dict
  sample: {created: 1, updated: 0, unchanged: 1, deleted: 0, skipped: 0, failed: 0, total: 2}
api_version:
  description: The autoscaling version used.
  returned: success
  type: str
  sample: autoscaling/v2
retries:
  description: API calls that were retried (conflicts, throttling, server errors).
  returned: success
  type: int
  sample: 0
diff:
  description: Before and after of every changed HorizontalPodAutoscaler (diff mode).
  returned: diff mode
  type: list
  elements: dict
"""

from ansible_collections.meshtune.mesh.plugins.module_utils.hpa import (
    AUTOSCALING_GROUP,
    DEFAULT_MIN_REPLICAS,
    DEFAULT_TARGET_API_VERSION,
    DEFAULT_TARGET_KIND,
    SCALING_POLICY_TYPES,
    SELECT_POLICIES,
    check_policies,
    hpa_objects,
    served_hpa_version,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.kube import (
    KubeClient,
    auth_argument_spec,
    validated_module,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.reconcile import (
    add_option_problems,
    converge_owned,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.reconcile import (
    argument_spec as reconcile_argument_spec,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import Problems, check_name


def scaling_rules_spec():
    return {
        "stabilization_window_seconds": {"type": "int"},
        "select_policy": {"type": "str", "choices": list(SELECT_POLICIES)},
        "policies": {"type": "list", "elements": "dict", "options": {
            "type": {"type": "str", "choices": list(SCALING_POLICY_TYPES), "required": True},
            "value": {"type": "int", "required": True},
            "period_seconds": {"type": "int", "required": True},
        }},
    }


def policy_spec():
    return {
        "name": {"type": "str"},
        "target": {"type": "dict", "options": {
            "kind": {"type": "str", "default": DEFAULT_TARGET_KIND},
            "name": {"type": "str"},
            "api_version": {"type": "str", "default": DEFAULT_TARGET_API_VERSION},
        }},
        "min_replicas": {"type": "int", "default": DEFAULT_MIN_REPLICAS},
        "max_replicas": {"type": "int"},
        "cpu_utilization": {"type": "int", "aliases": ["target_cpu_utilization_percentage"]},
        "memory_utilization": {"type": "int"},
        "metrics": {"type": "list", "elements": "dict"},
        "scale_up": {"type": "dict", "options": scaling_rules_spec()},
        "scale_down": {"type": "dict", "options": scaling_rules_spec()},
    }


def argument_spec():
    spec = auth_argument_spec()
    spec.update(reconcile_argument_spec(owned=True))
    spec.update(
        namespace={"type": "str", "required": True},
        policies={"type": "list", "elements": "dict", "required": True, "options": policy_spec()},
    )
    return spec


def validate(params):
    """Every problem with the options, as one message; None when all is well."""
    problems = Problems()
    problems.check(check_name, "namespace", params["namespace"], label=True)
    check_policies(problems, params["policies"], params["state"])
    add_option_problems(problems, params)
    return problems.message()


def main():
    module = validated_module(argument_spec(), validate)
    params = module.params
    client = KubeClient.from_module(module)
    version = served_hpa_version(module, client, params["policies"])
    desired = hpa_objects(version, params["namespace"], params["policies"], params["state"])
    converge_owned(module, client, desired, params["state"], params["parallelism"],
                   extra={"api_version": f"{AUTOSCALING_GROUP}/{version}"}, force=params["force"])


if __name__ == "__main__":
    main()
