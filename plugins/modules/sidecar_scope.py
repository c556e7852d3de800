#!/usr/bin/python
# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: sidecar_scope
short_description: Limit what Istio tells each sidecar about, with one Sidecar per namespace
version_added: 0.1.0
description:
  - Creates, updates or deletes the Istio C(Sidecar) resource (networking.istio.io) of each given
    namespace. Without O(workload_selector) it is the namespace's default scope.
  - Scoping is the main lever against sidecar memory in large meshes. A proxy that is told only
    about the hosts it may reach holds less configuration and receives fewer pushes.
  - Uses C(networking.istio.io/v1), or the newest version the cluster serves
    (C(v1beta1), C(v1alpha3)); RV(api_version) reports which.
author:
  - meshtune maintainers (@meshtune)
options:
  namespaces:
    description: Namespaces to give a Sidecar.
    type: list
    elements: str
    required: true
  name:
    description: Name of the Sidecar object in each namespace.
    type: str
    default: default
  egress_hosts:
    description:
      - Hosts the proxies may reach, in C(namespace/dnsName) form. C(./*) is the own namespace.
      - The namespace is C(.) (the Sidecar's own), C(*) (any), C(~) (none; C(~/*) gives the proxies
        no outbound configuration) or a namespace name.
      - The dnsName is C(*) (every host of the namespace), C(*.) followed by a DNS name
        (C(*.example.com)) or a fully qualified DNS name (C(reviews.shop.svc.cluster.local));
        short names such as C(reviews) are refused, as Istio refuses them. DNS labels have at most
        63 characters, whole names at most 253.
    type: list
    elements: str
    default: ["./*", "istio-system/*"]
  outbound_traffic_policy:
    description:
      - V(REGISTRY_ONLY) blocks traffic to hosts outside the service registry; V(ALLOW_ANY) lets
        it pass. Unset leaves the mesh-wide default.
    type: str
    choices: [ALLOW_ANY, REGISTRY_ONLY]
  workload_selector:
    description:
      - Labels of the workloads the Sidecar applies to; unset makes it the default.
      - Keys are label keys (C(app), C(example.com/tier)), values label values (strings of at most
        63 letters, digits, C(-), C(_) or C(.)), checked as Kubernetes checks labels.
    type: dict
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshtune.mesh.auth
  - meshtune.mesh.reconcile
  - meshtune.mesh.reconcile.owned
"""

EXAMPLES = r"""
- name: Scope the proxies of three namespaces to their own namespace and istio-system
  meshtune.mesh.sidecar_scope:
    namespaces: [shop, payments, catalog]

- name: Also allow the shared observability namespace, and block unknown hosts
  meshtune.mesh.sidecar_scope:
    namespaces: [shop]
    egress_hosts: ["./*", "istio-system/*", "observability/*"]
    outbound_traffic_policy: REGISTRY_ONLY

- name: Remove the scopes again
  meshtune.mesh.sidecar_scope:
    namespaces: [shop, payments, catalog]
    state: absent
"""

RETURN = r"""
results:
  description:
    - One entry per Sidecar, with its C(action) (V(created), V(updated),
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
    - {kind: Sidecar, namespace: shop, name: default, api_version: networking.istio.io/v1,
       action: created}
    - {kind: Sidecar, namespace: shop, name: default, api_version: networking.istio.io/v1,
       action: updated, reason: "drift: spec.outboundTrafficPolicy"}
summary:
  description: How many objects were created, updated, unchanged, deleted, skipped or failed.
  returned: always
  type: dict
  sample: {created: 1, updated: 0, unchanged: 2, deleted: 0, skipped: 0, failed: 0, total: 3}
api_version:
  description: The networking.istio.io version used.
  returned: success
  type: str
  sample: networking.istio.io/v1
retries:
  description: API calls that were retried (conflicts, throttling, server errors).
  returned: success
  type: int
  sample: 0
diff:
  description: Before and after of every changed Sidecar (diff mode).
  returned: diff mode
  type: list
  elements: dict
"""

from ansible_collections.meshtune.mesh.plugins.module_utils.istio import (
    DEFAULT_EGRESS_HOSTS,
    NETWORKING_GROUP,
    OUTBOUND_POLICIES,
    check_egress_host,
    served_networking_version,
    sidecar_objects,
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
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import (
    Problems,
    check_label,
    check_name,
)


def argument_spec():
    spec = auth_argument_spec()
    spec.update(reconcile_argument_spec(owned=True))
    spec.update(
        namespaces={"type": "list", "elements": "str", "required": True},
        name={"type": "str", "default": "default"},
        egress_hosts={"type": "list", "elements": "str", "default": list(DEFAULT_EGRESS_HOSTS)},
        outbound_traffic_policy={"type": "str", "choices": list(OUTBOUND_POLICIES)},
        workload_selector={"type": "dict"},
    )
    return spec


def validate(params):
    """Every problem with the options, as one message; None when all is well."""
    problems = Problems()
    if not params["namespaces"]:
        problems.add("namespaces", "at least one namespace", [])
    for index, namespace in enumerate(params["namespaces"]):
        problems.check(check_name, f"namespaces[{index}]", namespace, label=True)
    if len(set(params["namespaces"])) != len(params["namespaces"]):
        problems.add("namespaces", "each namespace once", params["namespaces"])
    problems.check(check_name, "name", params["name"])
    if not params["egress_hosts"]:
        problems.add("egress_hosts", "at least one host such as ./*", [])
    for index, host in enumerate(params["egress_hosts"]):
        problems.check(check_egress_host, f"egress_hosts[{index}]", host)
    if params["workload_selector"] is not None:
        for key, value in params["workload_selector"].items():
            problems.check(check_label, f"workload_selector.{key}", key, value)
    add_option_problems(problems, params)
    return problems.message()


def main():
    module = validated_module(argument_spec(), validate)
    params = module.params
    client = KubeClient.from_module(module)
    version = served_networking_version(module, client, "Sidecar")
    desired = sidecar_objects(version, params["namespaces"], params["name"],
                              params["egress_hosts"], params["outbound_traffic_policy"],
                              params["workload_selector"])
    converge_owned(module, client, desired, params["state"], params["parallelism"],
                   extra={"api_version": f"{NETWORKING_GROUP}/{version}"}, force=params["force"])


if __name__ == "__main__":
    main()
