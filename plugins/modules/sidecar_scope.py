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
  - With O(from_prometheus) the egress hosts come from the traffic the proxies reported to
    Prometheus over a window, per namespace (or per selected workloads), on top of O(egress_hosts)
    and C(<istio_namespace>/*). The task reports calls that left the service registry, fails when an
    observed host would be cut off (unless O(allow_cutting)), and counts the Services each
    namespace's proxies are told about before and after. See C(docs/scoping.md).
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
      - With O(from_prometheus) these hosts are always kept, the observed hosts are added, and an
        empty list is allowed (C(<istio_namespace>/*) is always kept).
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
      - With O(from_prometheus) only the traffic of the Deployments, StatefulSets and DaemonSets
        whose pod template carries all these labels counts.
    type: dict
  from_prometheus:
    description:
      - Derive the egress hosts from observed traffic. Two instant queries, whatever the number
        of namespaces, C(increase()) over O(from_prometheus.window) of
        C(istio_requests_total{reporter="source"}) (HTTP, gRPC) and
        C(istio_tcp_connections_opened_total{reporter="source"}) (TCP), summed by source namespace
        and workload and by C(destination_service_namespace), C(destination_service) and
        C(destination_service_name).
      - Each destination becomes the host C(destination_service_namespace/destination_service)
        unless O(egress_hosts) already admits it. Calls to C(PassthroughCluster) or
        C(BlackHoleCluster) (outside the registry) are reported in RV(outside_registry) and with a
        warning, never turned into hosts.
      - Only with O(state=present).
    type: dict
    suboptions:
      url:
        description: Base URL of the Prometheus server, such as C(http://prometheus.istio-system:9090).
        type: str
        required: true
      window:
        description:
          - How far back to look, a Prometheus duration of at least C(1m) in whole seconds. A host
            called less often than that (a weekly job) is only seen with a long enough window.
        type: str
        default: 7d
      min_requests:
        description:
          - Requests plus TCP connections a host needs in the window to be added. Observed hosts
            below it would be cut off (see O(allow_cutting)).
        type: int
        default: 1
      timeout:
        description: Seconds to wait for each answer, at most 86400. Also Prometheus's evaluation timeout.
        type: float
        default: 30
      bearer_token:
        description: Token sent as C(Authorization) C(Bearer) header. Not with O(from_prometheus.username).
        type: str
      username:
        description: User name for HTTP basic authentication.
        type: str
      password:
        description: Password for HTTP basic authentication.
        type: str
      ca_cert:
        description: Path of a CA certificate bundle to verify the server with (HTTPS).
        type: path
      client_cert:
        description: Path of a client certificate (PEM) for mutual TLS.
        type: path
      client_key:
        description: Path of the key of O(from_prometheus.client_cert).
        type: path
      validate_certs:
        description: Verify the server's TLS certificate.
        type: bool
        default: true
      headers:
        description:
          - Extra HTTP headers. Values of headers whose names suggest credentials are hidden like
            O(from_prometheus.password).
        type: dict
  allow_cutting:
    description:
      - With O(from_prometheus), write the Sidecars even when a host called in the window would be
        cut off, by the Sidecar now in the cluster (of the same name) or by the new one (a host
        below O(from_prometheus.min_requests)). Without it such a task fails, naming every host,
        and writes nothing. RV(would_cut) lists them either way.
    type: bool
    default: false
  istio_namespace:
    description:
      - Namespace of the Istio control plane. With O(from_prometheus), C(<istio_namespace>/*) is
        always kept, and the mesh config (the ConfigMap the istiod chart writes, key C(mesh),
        labelled C(istio.io/rev)) is read there for its C(discoverySelectors) and
        C(defaultServiceExportTo).
    type: str
    default: istio-system
  istio_revision:
    description:
      - The control-plane revision whose mesh config counts (the C(istio.io/rev) label of its
        ConfigMap, V(default) for an install without revision). Needed only when
        O(istio_namespace) holds several; with none, istiod is taken to watch every namespace.
    type: str
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

- name: Scope three namespaces to the hosts they called in the last week
  meshtune.mesh.sidecar_scope:
    namespaces: [shop, payments, catalog]
    egress_hosts: []   # only what was called, plus istio-system/*
    from_prometheus:
      url: http://prometheus.istio-system:9090
      window: 7d
      min_requests: 10
  check_mode: true
  diff: true
  register: scoped

- name: Show each namespace's Services before and after
  ansible.builtin.debug:
    msg: "{{ item.namespace }}: {{ item.services_before }} -> {{ item.services_after }} Services"
  loop: "{{ scoped.scopes }}"

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
scopes:
  description:
    - Per namespace, the derived C(egress_hosts), every C(observed) host with its C(requests) and
      C(connections) in the window, the Sidecar that scopes its proxies now (C(current_sidecar), the
      one of that name, else the namespace's default, else the mesh-wide default of the root
      namespace; null for none), and how many Services its proxies are told about now
      (C(services_before); every one exported to them without a Sidecar) and under the new Sidecar
      (C(services_after)). That is the number of Envoy clusters, which the proxies' memory grows with.
  returned: with from_prometheus
  type: list
  elements: dict
  sample:
    - namespace: shop
      egress_hosts: ["istio-system/*", "payments/charge.payments.svc.cluster.local"]
      observed: [{host: payments/charge.payments.svc.cluster.local, requests: 181234, connections: 0}]
      current_sidecar: null
      services_before: 412
      services_after: 9
outside_registry:
  description: Calls that went to C(PassthroughCluster) or C(BlackHoleCluster), or to a destination
    Istio could not name; C(outbound_traffic_policy=REGISTRY_ONLY) would block them.
  returned: with from_prometheus
  type: list
  elements: dict
  sample:
    - {namespace: payments, workload: charge, destination: fraud.example.net, cluster: PassthroughCluster,
       requests: 3600, connections: 0}
would_cut:
  description: Observed hosts a Sidecar would cut off, with C(sidecar) the namespace/name of the one
    that scopes the proxies now (see RV(scopes)) or V(new) (the one being written).
  returned: with from_prometheus
  type: list
  elements: dict
  sample:
    - {namespace: frontend, host: payments/refund.payments.svc.cluster.local, sidecar: new,
       requests: 3, connections: 0}
prometheus_queries:
  description: How many Prometheus queries were made (2, whatever the number of namespaces).
  returned: with from_prometheus
  type: int
  sample: 2
mesh_config:
  description: The ConfigMap the mesh config was read from (null when none) and its discoverySelectors.
  returned: with from_prometheus
  type: dict
  sample:
    config_map: istio-1-30-3
    discovery_selectors: [{matchLabels: {kubernetes.io/metadata.name: istio-system}}]
"""

from ansible_collections.meshtune.mesh.plugins.module_utils import traffic_scope
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
from ansible_collections.meshtune.mesh.plugins.module_utils.redact import hide_secrets
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
        allow_cutting={"type": "bool", "default": False},
        istio_namespace={"type": "str", "default": "istio-system"},
        istio_revision={"type": "str"},
    )
    spec.update(traffic_scope.argument_spec())
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
    if not params["egress_hosts"] and params["from_prometheus"] is None:
        problems.add("egress_hosts", "at least one host such as ./* (or from_prometheus)", [])
    for index, host in enumerate(params["egress_hosts"]):
        problems.check(check_egress_host, f"egress_hosts[{index}]", host)
    if params["workload_selector"] is not None:
        for key, value in params["workload_selector"].items():
            problems.check(check_label, f"workload_selector.{key}", key, value)
    problems.check(check_name, "istio_namespace", params["istio_namespace"], label=True)
    if params["istio_revision"] is not None:
        problems.check(check_label, "istio_revision", "istio.io/rev", params["istio_revision"])
    traffic_scope.add_problems(problems, params)
    add_option_problems(problems, params)
    return problems.message()


def main():
    module = validated_module(argument_spec(), validate,
                              (("PyYAML", traffic_scope.YAML_IMPORT_ERROR),))
    params = module.params
    if params["from_prometheus"] is not None:
        hide_secrets(module, urls=[params["from_prometheus"]["url"]],
                     headers=params["from_prometheus"]["headers"])
    client = KubeClient.from_module(module)
    version = served_networking_version(module, client, "Sidecar")
    extra = {"api_version": f"{NETWORKING_GROUP}/{version}"}
    live = None
    if params["from_prometheus"] is None:
        desired = sidecar_objects(version, params["namespaces"], params["name"],
                                  params["egress_hosts"], params["outbound_traffic_policy"],
                                  params["workload_selector"])
    else:
        desired, live, derived = traffic_scope.derive(module, client, version)
        extra.update(derived)
    converge_owned(module, client, desired, params["state"], params["parallelism"], extra=extra,
                   force=params["force"], live=live)


if __name__ == "__main__":
    main()
