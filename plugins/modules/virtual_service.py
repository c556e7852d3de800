#!/usr/bin/python
# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# A route destination and a mirror share their options; a YAML anchor keeps their docs in one place.
DOCUMENTATION = r"""
module: virtual_service
short_description: Tune Istio VirtualServices (request timeouts, retries, weighted routes, mirroring)
version_added: 0.2.0
description:
  - Creates, updates or deletes Istio C(VirtualService) resources (networking.istio.io) in one
    namespace, as many as given in O(services) in one task.
  - Request-level tuning beside the connection-level limits of M(meshtune.mesh.destination_rule).
    A route timeout bounds how long a caller waits. Retries turn a transient failure into a slower
    success, at the price of extra load on the callee. Weighted routes split traffic between
    subsets (canary). Mirroring copies a share of the requests to another service, whose answers
    are discarded.
  - Checked before any write, beyond Istio's own validation. The weights of a route add up to
    100. O(services[].http[].retries.retry_on) holds Envoy's retry conditions or HTTP status
    codes. Durations are whole milliseconds of at least 1ms. Regular expressions are RE2, as Envoy
    compiles them. Every subset a route or mirror names is defined by a DestinationRule for its
    host (the live DestinationRules of the namespaces concerned are read once, before any write).
  - Warns when C(attempts) x C(per_try_timeout) exceeds the route timeout (the last retries are
    cut off) and when a route retries without a timeout.
  - Uses C(networking.istio.io/v1), or the newest version the cluster serves
    (C(v1beta1), C(v1alpha3)); RV(api_version) reports which.
author:
  - meshtune maintainers (@meshtune)
requirements:
  - google-re2 (checks regular expressions as RE2, the syntax Envoy uses)
options:
  namespace:
    description: Namespace of the VirtualServices; short host names are services in it.
    type: str
    required: true
  services:
    description: VirtualServices to manage, one entry each, all in O(namespace).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the VirtualService, a DNS-1123 subdomain.
        type: str
        required: true
      hosts:
        description:
          - Hosts the routes apply to (C(spec.hosts)), such as V(reviews) or
            V(reviews.shop.svc.cluster.local). Required with O(state=present).
          - C(*) only with O(services[].gateways) other than V(mesh).
        type: list
        elements: str
      gateways:
        description:
          - Where the routes apply (C(spec.gateways)). V(mesh) is every sidecar (the default when
            unset); other entries are Gateways as C(name) or C(namespace/name).
        type: list
        elements: str
      export_to:
        description:
          - Namespaces that see the VirtualService (C(exportTo)). V(.) is its own namespace, V(*)
            every namespace (the default when unset).
        type: list
        elements: str
      http:
        description:
          - HTTP routes, tried in order; the first whose O(services[].http[].match) matches takes
            the request. At least one is required with O(state=present).
        type: list
        elements: dict
        suboptions:
          name:
            description: Route name, shown in Envoy's statistics and access logs.
            type: str
          match:
            description:
              - Conditions of the route; a request matching any entry takes it. Within an entry all
                conditions must hold. No match means every request.
            type: list
            elements: dict
            suboptions:
              uri:
                description: The request path, by exactly one of C(exact), C(prefix) or C(regex) (RE2).
                type: dict
                suboptions:
                  exact:
                    description: The whole path.
                    type: str
                  prefix:
                    description: The start of the path, such as V(/api).
                    type: str
                  regex:
                    description: An RE2 regular expression matching the whole path.
                    type: str
              headers:
                description:
                  - Request headers by name, each matched by one of C(exact), C(prefix) or C(regex)
                    (RE2), such as C(end-user) with C(exact) V(jason) (see the examples).
                type: dict
              source_labels:
                description:
                  - Labels the calling workload has, such as C(app) V(reviews) and C(version) V(v2);
                    routes requests by who sends them.
                type: dict
              port:
                description: Port the request was addressed to, 1 to 65535.
                type: int
          route:
            description:
              - Destinations of the matched requests. With more than one, each has a
                O(services[].http[].route[].weight) and the weights add up to 100.
            type: list
            elements: dict
            required: true
            suboptions:
              host: &host
                description:
                  - Service host, such as V(ratings) (a service in O(namespace)) or
                    V(ratings.shop.svc.cluster.local).
                type: str
                required: true
              subset: &subset
                description:
                  - Subset of the host's DestinationRule, a DNS-1123 label. It must exist before the
                    task runs, or the task fails naming the route.
                type: str
              port: &port
                description: Service port, 1 to 65535; needed when the service has several.
                type: int
              weight:
                description: Share of the requests in percent, 0 to 100.
                type: int
          timeout:
            description:
              - Route timeout, such as V(2s), the longest a caller waits for the response, retries
                included. Unset means no timeout. Size it from the measured p99 of the callee, with
                room for the retries you allow.
            type: str
          retries:
            description:
              - Retry policy. Istio retries twice by default (C(connect-failure), C(refused-stream),
                C(unavailable), C(cancelled), C(retriable-status-codes));
                O(services[].http[].retries.attempts=0) turns retries off.
            type: dict
            suboptions:
              attempts:
                description: Retries after the first try.
                type: int
                required: true
              per_try_timeout:
                description: Timeout of each try, such as V(500ms) (C(perTryTimeout)).
                type: str
              retry_on:
                description:
                  - Conditions to retry on (C(retryOn)). Envoy's HTTP conditions V(5xx),
                    V(gateway-error), V(reset), V(reset-before-request), V(connect-failure),
                    V(retriable-4xx), V(refused-stream), V(retriable-status-codes),
                    V(retriable-headers), V(envoy-ratelimited), V(http3-post-connect-failure);
                    its gRPC conditions V(cancelled), V(deadline-exceeded), V(internal),
                    V(resource-exhausted), V(unavailable); or an HTTP status code such as V(503).
                type: list
                elements: str
          mirror:
            description:
              - Copies requests to another service (fire and forget, answers discarded). The copies
                cost the callee's and the proxy's CPU.
            type: dict
            suboptions:
              host: *host
              subset: *subset
              port: *port
              percentage:
                description: Share of the requests copied, 0 to 100 (0, or at least 0.0001); all when unset.
                type: float
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshtune.mesh.auth
  - meshtune.mesh.reconcile
  - meshtune.mesh.reconcile.owned
"""

EXAMPLES = r"""
# The ratings service routed by who calls it (source_labels): reviews v2 gets ratings v2, every
# other caller ratings v1. Both subsets are defined in ratings' DestinationRule.
- name: Route ratings by caller
  meshtune.mesh.virtual_service:
    namespace: bookinfo
    services:
      - name: ratings
        hosts: [ratings]
        http:
          - name: from-reviews-v2
            match:
              - source_labels: {app: reviews, version: v2}
            route:
              - {host: ratings, subset: v2}
          - name: default
            route:
              - {host: ratings, subset: v1}

# Timeouts and retries sized from a measured p99 of 180 ms: each try may take 250 ms (p99 with
# headroom), 2 retries fit in the 1 s route timeout (3 x 250 ms = 750 ms), and only failures that
# never reached the application are retried, so no request is processed twice.
- name: Bound reviews' latency and retry connection failures
  meshtune.mesh.virtual_service:
    namespace: bookinfo
    services:
      - name: reviews
        hosts: [reviews]
        http:
          - name: default
            timeout: 1s
            retries:
              attempts: 2
              per_try_timeout: 250ms
              retry_on: [connect-failure, refused-stream, reset-before-request, "503"]
            route:
              - {host: reviews, subset: v1}

- name: Canary 90/10 with 5 % of the traffic mirrored to a shadow service
  meshtune.mesh.virtual_service:
    namespace: shop
    services:
      - name: checkout
        hosts: [checkout.shop.svc.cluster.local]
        http:
          - name: canary
            match:
              - uri: {prefix: /api}
                headers: {x-canary: {exact: "yes"}}
            route:
              - {host: checkout, subset: stable, weight: 90}
              - {host: checkout, subset: canary, weight: 10}
            mirror: {host: checkout-shadow, percentage: 5}

- name: Remove a VirtualService
  meshtune.mesh.virtual_service:
    namespace: shop
    state: absent
    services:
      - name: checkout
"""

RETURN = r"""
results:
  description:
    - One entry per VirtualService, with its C(action) (V(created), V(updated),
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
    - {kind: VirtualService, namespace: bookinfo, name: ratings,
       api_version: networking.istio.io/v1, action: created}
summary:
  description: How many objects were created, updated, unchanged, deleted, skipped or failed.
  returned: always
  type: dict
  sample: {created: 1, updated: 0, unchanged: 1, deleted: 0, skipped: 0, failed: 0, total: 2}
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
  description: Before and after of every changed VirtualService (diff mode).
  returned: diff mode
  type: list
  elements: dict
"""

from ansible_collections.meshtune.mesh.plugins.module_utils.istio import (
    NETWORKING_GROUP,
    served_networking_version,
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
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import Problems, check_name, check_unique
from ansible_collections.meshtune.mesh.plugins.module_utils.virtual_service import (
    RE2_IMPORT_ERROR,
    check_subsets,
    check_virtual_service,
    route_warnings,
    virtual_service_object,
)


def _dict(**options):
    return {"type": "dict", "options": options}


def _string_match():
    return _dict(exact={"type": "str"}, prefix={"type": "str"}, regex={"type": "str"})


def _destination(**extra):
    return {"host": {"type": "str", "required": True}, "subset": {"type": "str"}, "port": {"type": "int"},
            **extra}


def argument_spec():
    route = {
        "name": {"type": "str"},
        "match": {"type": "list", "elements": "dict", "options": {
            "uri": _string_match(), "headers": {"type": "dict"}, "source_labels": {"type": "dict"},
            "port": {"type": "int"}}},
        "route": {"type": "list", "elements": "dict", "required": True,
                  "options": _destination(weight={"type": "int"})},
        "timeout": {"type": "str"},
        "retries": _dict(attempts={"type": "int", "required": True}, per_try_timeout={"type": "str"},
                         retry_on={"type": "list", "elements": "str"}),
        "mirror": _dict(**_destination(percentage={"type": "float"})),
    }
    spec = auth_argument_spec()
    spec.update(reconcile_argument_spec(owned=True))
    spec.update(
        namespace={"type": "str", "required": True},
        services={"type": "list", "elements": "dict", "required": True, "options": {
            "name": {"type": "str", "required": True},
            "hosts": {"type": "list", "elements": "str"},
            "gateways": {"type": "list", "elements": "str"},
            "export_to": {"type": "list", "elements": "str"},
            "http": {"type": "list", "elements": "dict", "options": route}}},
    )
    return spec


def validate(params):
    """Every problem with the options, as one message; None when all is well."""
    problems = Problems()
    problems.check(check_name, "namespace", params["namespace"], label=True)
    if not params["services"]:
        problems.add("services", "at least one VirtualService", [])
    problems.check(check_unique, "services", params["services"])
    for index, service in enumerate(params["services"]):
        check_virtual_service(problems, f"services[{index}]", service, params["state"])
    add_option_problems(problems, params)
    return problems.message()


def main():
    module = validated_module(argument_spec(), validate,
                              missing_libraries=[("google-re2", RE2_IMPORT_ERROR)])
    params = module.params
    if params["state"] == "present":
        for index, service in enumerate(params["services"]):
            for warning in route_warnings(f"services[{index}]", service):
                module.warn(warning)
    client = KubeClient.from_module(module)
    version = served_networking_version(module, client, "VirtualService")
    if params["state"] == "present":
        check_subsets(module, client, version)
    desired = [virtual_service_object(version, params["namespace"], service)
               for service in params["services"]]
    converge_owned(module, client, desired, params["state"], params["parallelism"],
                   extra={"api_version": f"{NETWORKING_GROUP}/{version}"}, force=params["force"])


if __name__ == "__main__":
    main()
