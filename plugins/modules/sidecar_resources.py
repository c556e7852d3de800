#!/usr/bin/python
# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: sidecar_resources
short_description: Set the Istio sidecar CPU, memory and concurrency of many workloads at once
version_added: 0.1.0
description:
  - Sets the annotations Istio's sidecar injector reads on the pod templates
    (C(spec.template.metadata.annotations)) of Deployments, StatefulSets and DaemonSets. The
    resource options become C(sidecar.istio.io/proxyCPU), C(sidecar.istio.io/proxyCPULimit),
    C(sidecar.istio.io/proxyMemory) and C(sidecar.istio.io/proxyMemoryLimit); O(concurrency) is
    merged into the C(proxy.istio.io/config) annotation, keeping the other ProxyConfig keys there.
  - Options left out are left as they are on the workloads.
  - Workloads are read with one list call per namespace and kind. Each workload that differs gets
    one JSON merge patch that touches only those annotations; the rest of the workload is never
    rewritten, and workloads that already match are not written at all.
  - Workloads whose pod template turns injection off (label or annotation
    C(sidecar.istio.io/inject) set to C(false)) are skipped and reported as such.
author:
  - meshtune maintainers (@meshtune)
options:
  namespaces:
    description: Namespaces whose workloads to tune.
    type: list
    elements: str
    required: true
  kinds:
    description: Kinds of workloads to tune.
    type: list
    elements: str
    choices: [Deployment, StatefulSet, DaemonSet]
    default: [Deployment, StatefulSet, DaemonSet]
  names:
    description:
      - Tune only the workloads with these names (in any of the namespaces). All workloads when
        left out.
      - With O(state=present), a name that matches no workload fails the task before any write.
    type: list
    elements: str
  label_selector:
    description:
      - Tune only the workloads whose labels match this selector, in the syntax of
        C(kubectl get -l), for example C(app=web,tier in (api,db)).
      - Checked before any request as the API server checks it, the keys as label keys and the
        values as label values.
    type: str
  workloads:
    description:
      - Settings per workload, for example the output of M(meshtune.mesh.sidecar_recommend). Each
        entry names one workload (O(workloads[].kind), O(workloads[].namespace),
        O(workloads[].name)) and its own settings; a setting an entry leaves out is the task's
        (O(cpu_request) and the others), or left as it is when the task has none either.
      - Only the listed workloads are read and written, one merge patch per workload that differs.
        Cannot be combined with O(names) or O(label_selector). With O(state=present) a listed
        workload that does not exist fails the task before any write.
      - With O(state=absent), the settings an entry names are removed from that workload (all
        five when it names none).
    type: list
    elements: dict
    suboptions:
      kind:
        description: Kind of the workload, one of O(kinds).
        type: str
        choices: [Deployment, StatefulSet, DaemonSet]
        required: true
      namespace:
        description: Namespace of the workload, one of O(namespaces).
        type: str
        required: true
      name:
        description: Name of the workload.
        type: str
        required: true
      cpu_request:
        description: CPU request of this workload's sidecar (see O(cpu_request)).
        type: str
      cpu_limit:
        description: CPU limit of this workload's sidecar, not below its CPU request.
        type: str
      memory_request:
        description: Memory request of this workload's sidecar.
        type: str
      memory_limit:
        description: Memory limit of this workload's sidecar, not below its memory request.
        type: str
      concurrency:
        description: Worker threads of this workload's sidecar (0 to 64).
        type: int
  cpu_request:
    description:
      - CPU request of the sidecar, a Kubernetes quantity such as C(100m) or C(0.5).
      - Quantities are written exactly as given, so each must be a quantity and nothing else;
        one with spaces or a line break around it (such as C(128Mi) and a newline, from a YAML
        block scalar) is refused, not trimmed. At most the API server's limit (2^63-1).
    type: str
  cpu_limit:
    description: CPU limit of the sidecar, a quantity not below O(cpu_request).
    type: str
  memory_request:
    description: Memory request of the sidecar, a Kubernetes quantity such as C(128Mi).
    type: str
  memory_limit:
    description: Memory limit of the sidecar, a quantity not below O(memory_request).
    type: str
  concurrency:
    description:
      - Worker threads of the sidecar (0 to 64; 0 uses all cores of the node). Merged into the
        C(proxy.istio.io/config) annotation; the other keys of that ProxyConfig are kept.
      - A workload whose C(proxy.istio.io/config) annotation is not a YAML mapping is reported as
        failed and not written; the other workloads are still tuned.
    type: int
  wait:
    description:
      - Wait until the rollouts of the workloads this task changed have finished, that is until
        all their pods run with the new sidecar settings.
      - When some workloads failed, the updated ones are still waited for; then the task fails
        naming the failed workloads and saying how the rollouts ended. Once the API server stops
        answering, there is no wait, and the message says so.
      - Not done in check mode, where nothing is written.
    type: bool
    default: false
  wait_timeout:
    description:
      - How many seconds to wait for the rollouts with O(wait=true). When the time is up, the task
        fails naming the workloads whose rollout has not finished; their annotations are written
        already and their rollouts go on.
    type: int
    default: 300
  state:
    description:
      - V(present) sets the given settings.
      - V(absent) removes the annotations of the given settings (their values do not matter), or
        all five settings when none is given. For O(concurrency) only the C(concurrency) key is
        removed from C(proxy.istio.io/config); the annotation goes when nothing else is left in it.
        Other annotations are never touched.
notes:
  - B(Changing a pod template restarts the pods of the workload) (a rollout, as
    C(kubectl rollout restart) does), since sidecar settings apply only when a pod is created.
    Run it in a maintenance window or with enough replicas and PodDisruptionBudgets, use
    O(names) or O(label_selector) to go step by step, and check mode with diff mode to preview
    which workloads would restart. Workloads that already match are not touched and do not
    restart.
  - Quantities equal in value (C(500m) and C(0.5)) count as unchanged, so no rollout is started
    for a different spelling.
  - A change that would leave a limit below the request on a workload (for example a new
    O(cpu_limit) below the CPU request already on it) is refused for that workload.
  - With O(wait=true) a Deployment counts as rolled out when all its replicas are updated and
    available, a StatefulSet when all are updated and ready, a DaemonSet when every scheduled pod
    is updated and available (what C(kubectl rollout status) checks). A paused Deployment or one
    past its progress deadline fails the wait at once.
  - Rewriting C(proxy.istio.io/config) drops YAML comments in it; the keys and values stay.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshtune.mesh.auth
  - meshtune.mesh.reconcile
"""

EXAMPLES = r"""
- name: Give every sidecar in three namespaces the same requests, limits and two worker threads
  meshtune.mesh.sidecar_resources:
    namespaces: [shop, payments, catalog]
    cpu_request: 100m
    cpu_limit: "1"
    memory_request: 128Mi
    memory_limit: 512Mi
    concurrency: 2

- name: Preview which workloads would restart
  meshtune.mesh.sidecar_resources:
    namespaces: [shop]
    memory_limit: 1Gi
  check_mode: true
  diff: true

- name: Tune the frontend Deployments only, and wait until their pods have restarted
  meshtune.mesh.sidecar_resources:
    namespaces: [shop]
    kinds: [Deployment]
    label_selector: tier=frontend
    cpu_request: 200m
    wait: true
    wait_timeout: 600

- name: Give two workloads their own values (as sidecar_recommend returns them)
  meshtune.mesh.sidecar_resources:
    namespaces: [shop]
    workloads:
      - {kind: Deployment, namespace: shop, name: cart, cpu_request: 45m, memory_request: 80Mi,
         memory_limit: 80Mi, concurrency: 1}
      - {kind: StatefulSet, namespace: shop, name: db, cpu_request: 210m, memory_request: 150Mi,
         memory_limit: 150Mi, concurrency: 1}
    wait: true

- name: Remove only the concurrency setting from two workloads
  meshtune.mesh.sidecar_resources:
    namespaces: [shop]
    names: [cart, checkout]
    concurrency: 0
    state: absent

- name: Remove every sidecar setting meshtune manages
  meshtune.mesh.sidecar_resources:
    namespaces: [shop, payments, catalog]
    state: absent
"""

RETURN = r"""
results:
  description:
    - One entry per selected workload. RV(results[].action) is V(updated) when annotations were
      set or removed, V(unchanged), V(skipped) (with RV(results[].reason)) or V(failed).
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
    action:
      description: What was done.
      type: str
    reason:
      description: Why the workload was skipped or failed.
      type: str
      returned: when skipped or failed
    error:
      description: What went wrong.
      type: str
      returned: when failed
    rollout:
      description:
        - V(complete), V(pending) (not finished in time), V(stalled) or V(gone), for the updated
          workloads when O(wait=true).
      type: str
      returned: with O(wait=true)
  sample:
    - {kind: Deployment, namespace: shop, name: cart, action: updated, rollout: complete}
    - {kind: Deployment, namespace: shop, name: legacy, action: skipped,
       reason: "sidecar injection is off (pod template label sidecar.istio.io/inject=false)"}
summary:
  description: How many workloads were updated, unchanged, skipped or failed.
  returned: always
  type: dict
  sample: {created: 0, updated: 1, unchanged: 2, deleted: 0, skipped: 1, failed: 0, total: 4}
retries:
  description: API calls that were retried (throttling, server errors, dropped connections).
  returned: after the cluster was read
  type: int
  sample: 0
pending_rollouts:
  description: The updated workloads whose rollout had not finished when the wait ended.
  returned: when O(wait=true) and a rollout did not finish
  type: list
  elements: str
  sample: ["Deployment shop/cart"]
diff:
  description: Pod template annotations before and after, for every workload that changes (diff mode).
  returned: diff mode
  type: list
  elements: dict
"""

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import (
    KubeClient,
    auth_argument_spec,
    validated_module,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.reconcile import (
    apply_changes,
    batch_failure,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.reconcile import (
    argument_spec as reconcile_argument_spec,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.workloads import (
    KINDS,
    YAML_IMPORT_ERROR,
    plan_changes,
    read_selected,
    validate,
    wait_for_updated,
    wanted_settings,
)

SETTINGS = {
    "cpu_request": {"type": "str"},
    "cpu_limit": {"type": "str"},
    "memory_request": {"type": "str"},
    "memory_limit": {"type": "str"},
    "concurrency": {"type": "int"},
}


def argument_spec():
    spec = auth_argument_spec()
    spec.update(reconcile_argument_spec())
    spec.update(
        namespaces={"type": "list", "elements": "str", "required": True},
        kinds={"type": "list", "elements": "str", "choices": list(KINDS), "default": list(KINDS)},
        names={"type": "list", "elements": "str"},
        label_selector={"type": "str"},
        workloads={"type": "list", "elements": "dict", "options": {
            "kind": {"type": "str", "choices": list(KINDS), "required": True},
            "namespace": {"type": "str", "required": True},
            "name": {"type": "str", "required": True},
            **SETTINGS,
        }},
        wait={"type": "bool", "default": False},
        wait_timeout={"type": "int", "default": 300},
        **SETTINGS,
    )
    return spec


def main():
    module = validated_module(argument_spec(), validate,
                              missing_libraries=[("PyYAML", YAML_IMPORT_ERROR)])
    params = module.params
    client = KubeClient.from_module(module)
    resources, workloads = read_selected(module, client, params)
    changes = plan_changes(client, resources, workloads, wanted_settings(params))
    result = apply_changes(module, client, changes, params["parallelism"], fail=False)
    failure = batch_failure(module, client, changes)
    if params["wait"] and not module.check_mode:
        wait_for_updated(module, client, resources, changes, result, failure)
    if failure:
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
