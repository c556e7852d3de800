#!/usr/bin/python
# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: rollout_status
short_description: Wait until every workload of some namespaces is rolled out and ready
version_added: 0.1.0
description:
  - Waits, with one timeout for all of them, until every Deployment, StatefulSet and DaemonSet
    of O(namespaces) has finished its rollout, judged as C(kubectl rollout status) judges it - a
    Deployment when all replicas are updated and available, a StatefulSet when all are updated
    and ready, a DaemonSet when every scheduled pod is updated and available.
  - The first round reads each kind with one list call per namespace (one cluster-wide list from
    10 namespaces on); later rounds list again only the namespaces and kinds that still hold
    unfinished workloads. A thousand workloads cost a few requests per round, not one wait each.
  - When time is up the task fails with a table of the workloads that are not ready and why. A
    paused Deployment or one past its progress deadline is reported at once, not waited for.
  - The upgrade gate of playbooks/upgrade.yml (role meshtune.mesh.istio, C(tasks_from=gate)).
author:
  - meshtune maintainers (@meshtune)
options:
  namespaces:
    description: Namespaces whose workloads must be ready.
    type: list
    elements: str
    required: true
  kinds:
    description: Kinds of workloads to wait for.
    type: list
    elements: str
    choices: [Deployment, StatefulSet, DaemonSet]
    default: [Deployment, StatefulSet, DaemonSet]
  label_selector:
    description: Only the workloads whose labels match this selector (C(kubectl get -l) syntax).
    type: str
  timeout:
    description:
      - Seconds to wait for all of them together, 0 to 86400. V(0) reads once and judges.
    type: int
    default: 300
notes:
  - Read-only. In check mode the workloads are read once and judged, without waiting.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshtune.mesh.auth
"""

EXAMPLES = r"""
- name: Gate on the canary namespaces
  meshtune.mesh.rollout_status:
    namespaces: [shop, payments]
    timeout: 600

- name: Only the frontends, right now
  meshtune.mesh.rollout_status:
    namespaces: [shop]
    kinds: [Deployment]
    label_selector: tier=frontend
    timeout: 0
"""

RETURN = r"""
workloads:
  description: How many workloads were found.
  returned: always
  type: int
  sample: 1000
ready:
  description: How many of them finished their rollout.
  returned: always
  type: int
  sample: 997
not_ready:
  description: The workloads whose rollout had not finished when the wait ended.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: Deployment, StatefulSet or DaemonSet.
      type: str
    namespace:
      description: Namespace of the workload.
      type: str
    name:
      description: Name of the workload.
      type: str
    state:
      description: V(pending) (not finished in time) or V(stalled) (paused, progress deadline exceeded).
      type: str
    reason:
      description: What is missing, e.g. C(1 of 3 replicas updated, 0 available).
      type: str
  sample:
    - {kind: Deployment, namespace: shop, name: cart, state: pending,
       reason: "the controller has not seen the change yet"}
table:
  description: The not-ready workloads as a text table (namespace, kind, name, state, reason).
  returned: when a workload is not ready
  type: str
rounds:
  description: How many times the unfinished workloads were read.
  returned: always
  type: int
  sample: 3
retries:
  description: API calls that were retried (throttling, server errors, dropped connections).
  returned: always
  type: int
  sample: 0
"""

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import (
    KubeClient,
    KubeError,
    auth_argument_spec,
    fail_read,
    validated_module,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.rollout import (
    not_ready,
    not_ready_table,
    wait_until_ready,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import Problems, check_name
from ansible_collections.meshtune.mesh.plugins.module_utils.workloads import (
    API_VERSION,
    KINDS,
    check_label_selector,
)

MAX_TIMEOUT = 86400


def argument_spec():
    spec = auth_argument_spec()
    spec.update(
        namespaces={"type": "list", "elements": "str", "required": True},
        kinds={"type": "list", "elements": "str", "choices": list(KINDS), "default": list(KINDS)},
        label_selector={"type": "str"},
        timeout={"type": "int", "default": 300},
    )
    return spec


def validate(params):
    problems = Problems()
    if not params["namespaces"]:
        problems.add("namespaces", "at least one namespace", params["namespaces"])
    for index, namespace in enumerate(params["namespaces"]):
        problems.check(check_name, f"namespaces[{index}]", namespace, label=True)
    if not params["kinds"] or len(set(params["kinds"])) != len(params["kinds"]):
        problems.add("kinds", f"each of {', '.join(KINDS)} at most once, at least one", params["kinds"])
    if params["label_selector"]:
        problems.check(check_label_selector, "label_selector", params["label_selector"])
    if not 0 <= params["timeout"] <= MAX_TIMEOUT:
        problems.add("timeout", f"a number of seconds from 0 to {MAX_TIMEOUT}", params["timeout"])
    return problems.message()


def main():
    module = validated_module(argument_spec(), validate)
    params = module.params
    client = KubeClient.from_module(module)
    timeout = 0 if module.check_mode else params["timeout"]
    try:
        resources = {kind: client.resource(API_VERSION, kind) for kind in params["kinds"]}
        outcome, rounds = wait_until_ready(client, resources, params["namespaces"], timeout,
                                           params["label_selector"])
    except KubeError as error:
        fail_read(module, error, "the workloads")
    entries = not_ready(outcome)
    result = {"changed": False, "workloads": len(outcome), "ready": len(outcome) - len(entries),
              "not_ready": entries, "rounds": rounds, "retries": client.retries}
    if not outcome:
        module.warn(f"No {'/'.join(params['kinds'])} in {', '.join(params['namespaces'])}: "
                    "nothing to wait for")
    if entries:
        result["table"] = not_ready_table(entries)
        waited = "without waiting (check mode)" if module.check_mode else f"after {timeout} s"
        message = (f"{len(entries)} of {len(outcome)} workloads in {', '.join(params['namespaces'])} "
                   f"not ready {waited}:\n{result['table']}")
        if not module.check_mode:
            module.fail_json(msg=message, **result)
        module.warn(message)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
