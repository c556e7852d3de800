#!/usr/bin/python
# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: revision_pods
short_description: List the pods still injected by an Istio revision, and refuse while any run
version_added: 0.1.0
description:
  - Lists every pod, in any namespace, whose sidecar was injected by O(revision) - found by its
    C(istio.io/rev) label or by the revision recorded in its C(sidecar.istio.io/status)
    annotation. Deployment, StatefulSet and DaemonSet pods, Job and CronJob pods, bare pods and
    gateways alike, with one cluster-wide list.
  - With O(fail_on_pods=true) (the default) the task fails with a table of them while any is not
    finished. playbooks/upgrade.yml runs it before it removes the old revision, which would leave
    those proxies without a control plane.
  - Pods that have finished (phase C(Succeeded) or C(Failed)) are listed but do not fail the task -
    they no longer talk to any control plane.
author:
  - meshtune maintainers (@meshtune)
options:
  revision:
    description: The revision, e.g. C(1-29-6).
    type: str
    required: true
  fail_on_pods:
    description: Fail while a pod that has not finished still runs the revision's sidecar.
    type: bool
    default: true
notes:
  - Read-only; check mode runs the same read.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshtune.mesh.auth
"""

EXAMPLES = r"""
- name: Refuse to go on while pods still run the sidecar of 1-29-6
  meshtune.mesh.revision_pods:
    revision: 1-29-6

- name: Only list them
  meshtune.mesh.revision_pods:
    revision: 1-29-6
    fail_on_pods: false
  register: stale
"""

RETURN = r"""
pods:
  description: The pods injected by the revision, sorted by namespace and name.
  returned: always
  type: list
  elements: dict
  contains:
    namespace:
      description: Namespace of the pod.
      type: str
    name:
      description: Name of the pod.
      type: str
    owner:
      description:
        - Kind and name of its controller (e.g. C(ReplicaSet web-5d9c), C(Job backup-2913)), or
          C(bare pod).
      type: str
    phase:
      description: The pod's phase (C(Unknown) when it has none yet).
      type: str
    found_by:
      description: C(label istio.io/rev) or C(annotation sidecar.istio.io/status).
      type: str
    active:
      description: false for pods that have finished.
      type: bool
  sample:
    - {namespace: batch, name: backup-2913-x7k2p, owner: Job backup-2913, phase: Running,
       found_by: annotation sidecar.istio.io/status, active: true}
active:
  description: How many of them have not finished.
  returned: always
  type: int
  sample: 1
table:
  description: The pods as a text table (namespace, pod, owner, phase, found by).
  returned: when pods were found
  type: str
"""

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import (
    KubeClient,
    KubeError,
    auth_argument_spec,
    fail_read,
    validated_module,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.upgrade import pods_table, revision_pods
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import Problems, check_name


def argument_spec():
    spec = auth_argument_spec()
    spec.update(revision={"type": "str", "required": True},
                fail_on_pods={"type": "bool", "default": True})
    return spec


def validate(params):
    problems = Problems()
    problems.check(check_name, "revision", params["revision"], label=True)
    return problems.message()


def main():
    module = validated_module(argument_spec(), validate)
    revision = module.params["revision"]
    client = KubeClient.from_module(module)
    try:
        pods = revision_pods(client.list(client.resource("v1", "Pod")), revision)
    except KubeError as error:
        fail_read(module, error, "the pods")
    active = sum(1 for pod in pods if pod["active"])
    result = {"changed": False, "pods": pods, "active": active}
    if pods:
        result["table"] = pods_table(pods)
    if active and module.params["fail_on_pods"]:
        module.fail_json(msg=f"{active} pod(s) still run the sidecar of revision {revision}; removing it "
                             "would leave them without a control plane. Move their namespaces to the "
                             "new revision and restart them (recreate bare pods, let Jobs finish), or set "
                             f"istio_remove_force: true to remove it anyway:\n{result['table']}", **result)
    if active:
        module.warn(f"{active} pod(s) still run the sidecar of revision {revision}:\n{result['table']}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
