#!/usr/bin/python
# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The token-bucket options appear at top level, in limits[] and in routes[]; YAML anchors keep
# their documentation in one place.
DOCUMENTATION = r"""
module: rate_limit
short_description: Local (per-proxy) rate limits for Istio workloads and gateways, as EnvoyFilters
version_added: 0.1.0
description:
  - Creates, updates or deletes Istio C(EnvoyFilter) resources (networking.istio.io) that insert
    Envoy's local rate limit HTTP filter (C(envoy.filters.http.local_ratelimit)) into the inbound
    listeners of the selected sidecars, or into a gateway's listeners, as Istio documents local
    rate limiting. As many limits as given in one task, one EnvoyFilter each.
  - Each proxy has its own token bucket, so a workload of N pods accepts up to N times the rate.
    Every request takes a token; a request that finds the bucket empty is answered at once with
    O(status_code) and the header O(response_header), without reaching the application.
  - Give the bucket as a rate (O(requests_per_unit) per O(unit), up to O(burst) at once) or in
    Envoy's terms (O(max_tokens), O(tokens_per_fill) every O(fill_interval)).
  - O(routes) give paths their own bucket by prefix. A request on a route's prefix takes its
    tokens from that route's bucket (from each matching route's, when prefixes overlap) instead
    of the limit's own.
  - The EnvoyFilter CRD keeps Envoy's configuration as free-form data, so the API server accepts a
    misspelt Envoy field and Envoy rejects it later, leaving the proxies on their old
    configuration. The generated Envoy configuration is therefore checked field by field against
    the Envoy API (the C(envoy-data-plane) package, the Envoy data-plane API as Python types)
    before anything is written; a field that does not fit fails the task naming it.
  - Envoy counts the filter's decisions in the statistics C(http_local_rate_limiter.http_local_rate_limit.*)
    (C(enabled), C(enforced), C(rate_limited), C(ok)). The profiles of the C(istio) role include
    them in C(proxyStatsMatcher), and the "Mesh performance" dashboard shows limited requests.
  - Uses C(networking.istio.io/v1alpha3), the version Istio serves EnvoyFilters in; RV(api_version)
    reports it.
author:
  - meshtune maintainers (@meshtune)
options:
  namespace:
    description:
      - Namespace of the EnvoyFilters, and of the workloads they select. An EnvoyFilter without
        O(workload_selector) in Istio's root namespace (C(istio-system)) applies to every proxy of the mesh.
    type: str
    required: true
  name:
    description:
      - Name of the single limit given at top level, a DNS-1123 subdomain.
      - Required unless O(limits) is given. O(limits) and the options of a single limit at top level
        are mutually exclusive (the shared options O(proxy_context), O(status_code), O(response_header)
        and O(enforce_percent) excepted).
    type: str
  workload_selector: &workload_selector
    description:
      - Labels of the workloads (or gateway pods) whose proxies get the limit; unset means every
        workload of O(namespace).
      - Keys are label keys, values label values, checked as Kubernetes checks labels.
    type: dict
  requests_per_unit: &requests_per_unit
    description:
      - Requests each proxy lets through per O(unit) (C(tokens_per_fill), refilled once per unit).
    type: int
  unit: &unit
    description: The unit of O(requests_per_unit). V(second) when unset.
    type: str
    choices: [second, minute, hour]
  burst: &burst
    description:
      - Most requests let through at once after a quiet spell (C(max_tokens)), at least
        O(requests_per_unit). O(requests_per_unit) when unset.
    type: int
  max_tokens: &max_tokens
    description: Size of the token bucket (Envoy's C(max_tokens)), 1 to 4294967295.
    type: int
  tokens_per_fill: &tokens_per_fill
    description: Tokens added every O(fill_interval) (Envoy's C(tokens_per_fill)). Envoy adds 1 when unset.
    type: int
  fill_interval: &fill_interval
    description:
      - How often tokens are added, a duration such as V(1s), V(500ms) or V(1m), at least V(50ms)
        (Envoy's C(fill_interval)). Required with O(max_tokens).
    type: str
  routes: &routes
    description:
      - Paths with their own bucket, each given as a rate or in Envoy's terms like the limit's.
      - A route's refill period must be a whole multiple of the limit's own, as Envoy requires
        (a limit per second and a route per minute, not the other way round).
      - Routes use the filter's own descriptor rules (C(rate_limits) in C(LocalRateLimit)), which
        Envoy has since 1.33 (Istio 1.25).
    type: list
    elements: dict
    suboptions:
      path_prefix:
        description: Requests whose path starts with this, such as V(/api) (a C(:path) prefix match).
        type: str
        required: true
      requests_per_unit: *requests_per_unit
      unit: *unit
      burst: *burst
      max_tokens: *max_tokens
      tokens_per_fill: *tokens_per_fill
      fill_interval: *fill_interval
  proxy_context:
    description:
      - Where the filter goes. V(sidecar_inbound) limits the requests a workload's sidecars receive;
        V(gateway) limits the requests a gateway (selected with O(workload_selector), such as
        C(istio=ingressgateway)) receives.
      - For O(limits), the value for each entry that sets none.
    type: str
    choices: [sidecar_inbound, gateway]
    default: sidecar_inbound
  status_code:
    description:
      - HTTP status of refused requests, 400 or more and known to Envoy (C(envoy.type.v3.StatusCode)).
      - For O(limits), the value for each entry that sets none.
    type: int
    default: 429
  response_header:
    description:
      - Header added to refused responses; in shadow mode (O(enforce_percent=0)) it is added to the
        requests that would have been refused, on their way to the application.
      - For O(limits), the value for each entry that sets none.
    type: dict
    default: {name: x-local-rate-limit, value: "true"}
    suboptions:
      name:
        description: Header name.
        type: str
        required: true
      value:
        description: Header value.
        type: str
        default: "true"
  enforce_percent:
    description:
      - Share of the requests over the limit that are refused, V(0) to V(100). V(0) is shadow mode,
        where they are counted in the statistics but not refused, a way to size a limit on live
        traffic first.
      - For O(limits), the value for each entry that sets none.
    type: int
    default: 100
  limits:
    description:
      - Rate limits to manage, one EnvoyFilter each, all in O(namespace).
      - Mutually exclusive with the options of a single limit at top level.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the EnvoyFilter, a DNS-1123 subdomain.
        type: str
        required: true
      workload_selector: *workload_selector
      requests_per_unit: *requests_per_unit
      unit: *unit
      burst: *burst
      max_tokens: *max_tokens
      tokens_per_fill: *tokens_per_fill
      fill_interval: *fill_interval
      routes: *routes
      proxy_context:
        description: As O(proxy_context); the top-level value when unset.
        type: str
        choices: [sidecar_inbound, gateway]
      status_code:
        description: As O(status_code); the top-level value when unset.
        type: int
      response_header:
        description: As O(response_header); the top-level value when unset.
        type: dict
        suboptions:
          name:
            description: Header name.
            type: str
            required: true
          value:
            description: Header value.
            type: str
            default: "true"
      enforce_percent:
        description: As O(enforce_percent); the top-level value when unset.
        type: int
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshtune.mesh.auth
  - meshtune.mesh.reconcile
  - meshtune.mesh.reconcile.owned
requirements:
  - envoy-data-plane >= 2.2 (Python)
"""

EXAMPLES = r"""
- name: 100 requests/s per reviews pod, bursts of 200; /api/search gets 10 requests/s of its own
  meshtune.mesh.rate_limit:
    namespace: shop
    name: reviews-rate-limit
    workload_selector:
      app: reviews
    requests_per_unit: 100
    unit: second
    burst: 200
    routes:
      - path_prefix: /api/search
        requests_per_unit: 10

- name: Try a limit in shadow mode first (counted, not enforced), with 503 once it is enforced
  meshtune.mesh.rate_limit:
    namespace: shop
    enforce_percent: 0
    status_code: 503
    limits:
      - name: ratings-rate-limit
        workload_selector:
          app: ratings
        requests_per_unit: 600
        unit: minute
      - name: details-rate-limit
        workload_selector:
          app: details
        max_tokens: 50
        tokens_per_fill: 25
        fill_interval: 500ms

- name: Limit what the ingress gateway lets in
  meshtune.mesh.rate_limit:
    namespace: istio-system
    name: ingress-rate-limit
    proxy_context: gateway
    workload_selector:
      istio: ingressgateway
    requests_per_unit: 1000

- name: Remove a limit
  meshtune.mesh.rate_limit:
    namespace: shop
    name: reviews-rate-limit
    state: absent
"""

RETURN = r"""
results:
  description:
    - One entry per EnvoyFilter, with its C(action) (V(created), V(updated),
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
    - {kind: EnvoyFilter, namespace: shop, name: reviews-rate-limit,
       api_version: networking.istio.io/v1alpha3, action: created}
summary:
  description: How many objects were created, updated, unchanged, deleted, skipped or failed.
  returned: always
  type: dict
  sample: {created: 1, updated: 0, unchanged: 0, deleted: 0, skipped: 0, failed: 0, total: 1}
api_version:
  description: The networking.istio.io version used.
  returned: success
  type: str
  sample: networking.istio.io/v1alpha3
retries:
  description: API calls that were retried (conflicts, throttling, server errors).
  returned: success
  type: int
  sample: 0
diff:
  description: Before and after of every changed EnvoyFilter (diff mode).
  returned: diff mode
  type: list
  elements: dict
"""

from ansible_collections.meshtune.mesh.plugins.module_utils.envoy_api import (
    ENVOY_API_IMPORT_ERROR,
    ENVOY_API_LIBRARY,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.istio import (
    NETWORKING_GROUP,
    served_networking_version,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.kube import (
    KubeClient,
    auth_argument_spec,
    validated_module,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.rate_limit import (
    CONTEXTS,
    DEFAULT_RESPONSE_HEADER,
    DEFAULT_STATUS_CODE,
    KIND,
    UNITS,
    check_limit,
    effective,
    envoy_filter_object,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.reconcile import (
    add_option_problems,
    converge_owned,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.reconcile import (
    argument_spec as reconcile_argument_spec,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import Problems, check_name, check_unique

# Top-level options that form one limit when `limits` is not given.
SINGLE_LIMIT_OPTIONS = ("name", "workload_selector", "requests_per_unit", "unit", "burst", "max_tokens",
                        "tokens_per_fill", "fill_interval", "routes")
SHARED = ("proxy_context", "status_code", "response_header", "enforce_percent")
MUTUALLY_EXCLUSIVE = [["limits", option] for option in SINGLE_LIMIT_OPTIONS]
REQUIRED_ONE_OF = [["limits", "name"]]


def bucket_spec():
    """The token-bucket options, the same for a limit and a route (fresh dicts each call)."""
    return {"requests_per_unit": {"type": "int"}, "unit": {"type": "str", "choices": list(UNITS)},
            "burst": {"type": "int"}, "max_tokens": {"type": "int", "no_log": False},
            "tokens_per_fill": {"type": "int", "no_log": False},
            "fill_interval": {"type": "str"}}


def limit_spec():
    """The options of one limit but its name and the shared options."""
    return {"workload_selector": {"type": "dict"}, **bucket_spec(),
            "routes": {"type": "list", "elements": "dict",
                       "options": {"path_prefix": {"type": "str", "required": True}, **bucket_spec()}}}


def header_spec():
    return {"name": {"type": "str", "required": True}, "value": {"type": "str", "default": "true"}}


def argument_spec():
    spec = auth_argument_spec()
    spec.update(reconcile_argument_spec(owned=True))
    spec.update(
        namespace={"type": "str", "required": True},
        name={"type": "str"},
        **limit_spec(),
        proxy_context={"type": "str", "choices": list(CONTEXTS), "default": "sidecar_inbound"},
        status_code={"type": "int", "default": DEFAULT_STATUS_CODE},
        response_header={"type": "dict", "options": header_spec(), "default": dict(DEFAULT_RESPONSE_HEADER)},
        enforce_percent={"type": "int", "default": 100},
        limits={"type": "list", "elements": "dict", "options": {
            "name": {"type": "str", "required": True}, **limit_spec(),
            "proxy_context": {"type": "str", "choices": list(CONTEXTS)}, "status_code": {"type": "int"},
            "response_header": {"type": "dict", "options": header_spec()},
            "enforce_percent": {"type": "int"}}},
    )
    return spec


def limits_of(params):
    """(option path, limit with the shared options filled in) for each limit of the call."""
    shared = {key: params.get(key) for key in SHARED}
    if params.get("limits") is not None:
        return [(f"limits[{index}]", effective(limit, shared))
                for index, limit in enumerate(params["limits"])]
    return [("", effective({key: params.get(key) for key in SINGLE_LIMIT_OPTIONS}, shared))]


def validate(params):
    """Every problem with the options, as one message; None when all is well. The Envoy config of
    each valid limit is checked against the Envoy API here, before the cluster is reached."""
    problems = Problems()
    problems.check(check_name, "namespace", params["namespace"], label=True)
    if params.get("limits") is not None:
        if not params["limits"]:
            problems.add("limits", "at least one limit", [])
        problems.check(check_unique, "limits", params["limits"])
    for path, limit in limits_of(params):
        check_limit(problems, path, limit, params["state"])
    add_option_problems(problems, params)
    return problems.message()


def main():
    module = validated_module(argument_spec(), validate,
                              missing_libraries=((ENVOY_API_LIBRARY, ENVOY_API_IMPORT_ERROR),),
                              mutually_exclusive=MUTUALLY_EXCLUSIVE, required_one_of=REQUIRED_ONE_OF)
    params = module.params
    client = KubeClient.from_module(module)
    version = served_networking_version(module, client, KIND)
    desired = [envoy_filter_object(version, params["namespace"], limit, params["state"])
               for _path, limit in limits_of(params)]
    converge_owned(module, client, desired, params["state"], params["parallelism"],
                   extra={"api_version": f"{NETWORKING_GROUP}/{version}"}, force=params["force"])


if __name__ == "__main__":
    main()
