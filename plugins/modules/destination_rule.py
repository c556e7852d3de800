#!/usr/bin/python
# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The traffic-policy options appear at top level, in rules[] and in subsets[] with the same
# suboptions; YAML anchors keep their documentation in one place.
DOCUMENTATION = r"""
module: destination_rule
short_description: Tune Istio DestinationRules (circuit breaking, outlier detection, load balancing, TLS)
version_added: 0.1.0
description:
  - Creates, updates or deletes Istio C(DestinationRule) resources (networking.istio.io) in one
    namespace, as many as given in one task.
  - Give several rules in O(rules), or a single rule with its options at top level (O(name),
    O(destination_host), O(connection_pool), ...).
  - Connection pool limits are Envoy's circuit breaker. Requests beyond them fail at once with
    HTTP 503 instead of queueing, so an overloaded service sheds load instead of dragging its
    callers down. Outlier detection takes hosts that keep failing out of the load-balancing pool
    for a while.
  - Options are Istio's fields in snake_case, so O(connection_pool.http.http2_max_requests) is
    C(http2MaxRequests). Options that are not set are left out of the object and Istio's defaults
    apply.
  - Deprecated Istio settings are translated with a warning and never sent as they are.
    O(outlier_detection.consecutive_errors) is sent as C(consecutive5xxErrors), and the
    O(load_balancer.simple) value V(LEAST_CONN) as V(LEAST_REQUEST).
  - Uses C(networking.istio.io/v1), or the newest version the cluster serves
    (C(v1beta1), C(v1alpha3)); RV(api_version) reports which.
author:
  - meshtune maintainers (@meshtune)
options:
  namespace:
    description: Namespace of the DestinationRules.
    type: str
    required: true
  name:
    description:
      - Name of the single rule given at top level, a DNS-1123 subdomain.
      - Required unless O(rules) is given. O(rules) and the options of a single rule at top level
        are mutually exclusive.
    type: str
  destination_host:
    description:
      - Service host of the single rule given at top level (C(spec.host)), see O(rules[].host).
        Required with O(state=present).
      - It has its own name because O(host) is the Kubernetes API server.
    type: str
  connection_pool: &connection_pool
    description:
      - Connection pool limits per upstream host (Istio C(connectionPool)), the circuit breaker.
      - Istio takes a limit of V(0) for unset, which means no limit, so limits are at least V(1).
        Integers are at most the API's int32 (2147483647), or uint32 (4294967295) where Istio
        takes one.
      - Durations are Go durations with a unit, such as V(250ms), V(10s), V(5m) or V(1h30m), at
        most 2562047h47m16.854775807s (the limit of Go durations, which Istio's CRDs check them
        as). They are taken exactly as given; one with spaces or a line break around it is
        refused, not trimmed.
    type: dict
    suboptions:
      tcp:
        description: Settings for TCP and HTTP connections (C(tcp)).
        type: dict
        suboptions:
          max_connections:
            description: Most HTTP/1.1 or TCP connections to one host (C(maxConnections)).
            type: int
          connect_timeout:
            description: TCP connect timeout, such as V(250ms) (C(connectTimeout)).
            type: str
          tcp_keepalive:
            description: TCP keepalive probes on the connections to the host (C(tcpKeepalive)).
            type: dict
            suboptions:
              probes:
                description: Unanswered probes after which the connection is dropped (C(probes)).
                type: int
              time:
                description: Idle time before the first probe, in whole seconds such as V(300s) (C(time)).
                type: str
              interval:
                description: Time between probes, in whole seconds such as V(75s) (C(interval)).
                type: str
      http:
        description: Settings for HTTP/1.1, HTTP/2 and gRPC connections (C(http)).
        type: dict
        suboptions:
          http1_max_pending_requests:
            description:
              - Most requests queued while waiting for a connection (C(http1MaxPendingRequests)).
            type: int
          http2_max_requests:
            description:
              - Most requests in flight to the service, for HTTP/1.1 too (C(http2MaxRequests)).
            type: int
          max_requests_per_connection:
            description:
              - Requests per connection before it is closed (C(maxRequestsPerConnection)).
                V(1) turns keep-alive off, V(0) is unlimited.
            type: int
          max_retries:
            description: Most retries outstanding to the service at once (C(maxRetries)).
            type: int
          idle_timeout:
            description: Time after which an idle connection is closed, such as V(1h) (C(idleTimeout)).
            type: str
          h2_upgrade_policy:
            description: Whether HTTP/1.1 connections are upgraded to HTTP/2 (C(h2UpgradePolicy)).
            type: str
            choices: [DEFAULT, DO_NOT_UPGRADE, UPGRADE]
  outlier_detection: &outlier_detection
    description:
      - Takes hosts that keep failing out of the load-balancing pool for a while (Istio
        C(outlierDetection)). An empty dict turns it on with Envoy's defaults.
    type: dict
    suboptions:
      consecutive_5xx_errors:
        description:
          - 5xx responses in a row that eject a host (C(consecutive5xxErrors)); V(0) turns this off.
        type: int
      consecutive_gateway_errors:
        description: 502, 503 and 504 responses in a row that eject a host (C(consecutiveGatewayErrors)).
        type: int
      consecutive_errors:
        description:
          - Deprecated in Istio. Sent as C(consecutive5xxErrors), with a warning; not together with
            O(outlier_detection.consecutive_5xx_errors).
          - Istio used to count only 502, 503 and 504 for it, which
            O(outlier_detection.consecutive_gateway_errors) does.
        type: int
      interval:
        description: Time between ejection sweeps, such as V(10s) (C(interval)).
        type: str
      base_ejection_time:
        description:
          - Minimum ejection time, such as V(30s) (C(baseEjectionTime)). A host ejected again stays
            out longer each time.
        type: str
      max_ejection_percent:
        description:
          - Most hosts ejected at once, in percent of the pool, V(0) to V(100) (C(maxEjectionPercent)).
        type: int
      min_health_percent:
        description:
          - Ejection stops while fewer hosts than this percentage are healthy, V(0) to V(100)
            (C(minHealthPercent)).
        type: int
  load_balancer: &load_balancer
    description:
      - How requests are spread over the hosts (Istio C(loadBalancer)). Set either
        O(load_balancer.simple) or O(load_balancer.consistent_hash).
    type: dict
    suboptions:
      simple:
        description: A load-balancing algorithm. V(LEAST_CONN) is deprecated and sent as V(LEAST_REQUEST).
        type: str
        choices: [RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST, LEAST_CONN]
      consistent_hash:
        description:
          - Sticky sessions (C(consistentHash)). Requests with the same key go to the same host while
            it is up. Set exactly one key.
        type: dict
        suboptions:
          http_header_name:
            description:
              - Hash on this request header (C(httpHeaderName)), an HTTP header name (letters,
                digits and C(!#$%&'*+-.^_`|~), no spaces).
            type: str
          http_cookie:
            description: Hash on this cookie, which Envoy sets when a request has none (C(httpCookie)).
            type: dict
            suboptions:
              name:
                description: Cookie name.
                type: str
                required: true
              path:
                description: Cookie path.
                type: str
              ttl:
                description: Cookie lifetime, such as V(1h). V(0s) makes a session cookie.
                type: str
                required: true
          use_source_ip:
            description: Hash on the client IP address (C(useSourceIp)).
            type: bool
          http_query_parameter_name:
            description: Hash on this query parameter (C(httpQueryParameterName)).
            type: str
  tls: &tls
    description: TLS settings for connections to the hosts (Istio C(tls)).
    type: dict
    suboptions:
      mode:
        description:
          - V(ISTIO_MUTUAL) uses the mesh's own certificates. V(SIMPLE) and V(MUTUAL) originate TLS
            to hosts outside the mesh. V(DISABLE) sends plain text.
        type: str
        required: true
        choices: [DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL]
      sni:
        description: Server name sent in the TLS handshake (C(sni)).
        type: str
      credential_name:
        description:
          - Secret with the client certificate, key and CA certificate (C(credentialName)).
            Required with V(MUTUAL); only allowed with V(SIMPLE) or V(MUTUAL).
        type: str
      subject_alt_names:
        description: Names one of which the server certificate must have (C(subjectAltNames)).
        type: list
        elements: str
      insecure_skip_verify:
        description: Do not verify the server certificate; for tests only (C(insecureSkipVerify)).
        type: bool
  subsets: &subsets
    description:
      - Named groups of the service's endpoints, chosen by label, for routing by VirtualServices.
      - A subset's traffic policy options override the rule's for the endpoints of that subset.
    type: list
    elements: dict
    suboptions:
      name:
        description: Subset name, a DNS-1123 label such as V(v1).
        type: str
        required: true
      labels:
        description:
          - Labels the endpoints of the subset have, with string values; keys and values are
            checked as Kubernetes checks labels.
        type: dict
      connection_pool: *connection_pool
      outlier_detection: *outlier_detection
      load_balancer: *load_balancer
      tls: *tls
  export_to: &export_to
    description:
      - Namespaces that see the rule (C(exportTo)). V(.) is its own namespace, V(*) every namespace
        (the default when unset); other entries are namespace names.
    type: list
    elements: str
  rules:
    description:
      - DestinationRules to manage, one entry each, all in O(namespace).
      - Mutually exclusive with the options of a single rule at top level.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the DestinationRule, a DNS-1123 subdomain.
        type: str
        required: true
      host:
        description:
          - Service the rule applies to (C(spec.host)), such as V(reviews),
            V(reviews.shop.svc.cluster.local) or V(*.example.com). A short name is a service in
            O(namespace). Required with O(state=present).
          - C(*), C(*.) followed by a DNS name, or a DNS name, as istiod checks hosts; labels of at
            most 63 letters, digits or C(-), at most 253 characters in all, and a name of several
            labels does not end in an all-digit one (no IP addresses).
        type: str
      connection_pool: *connection_pool
      outlier_detection: *outlier_detection
      load_balancer: *load_balancer
      tls: *tls
      subsets: *subsets
      export_to: *export_to
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshtune.mesh.auth
  - meshtune.mesh.reconcile
  - meshtune.mesh.reconcile.owned
"""

EXAMPLES = r"""
- name: Circuit breaker and outlier detection for two services (limits sized from load tests)
  meshtune.mesh.destination_rule:
    namespace: shop
    rules:
      - name: reviews
        host: reviews.shop.svc.cluster.local
        connection_pool:
          tcp:
            max_connections: 100
            connect_timeout: 250ms
          http:
            http1_max_pending_requests: 50
            http2_max_requests: 1000
            max_requests_per_connection: 100
            max_retries: 3
            idle_timeout: 60s
        outlier_detection:
          consecutive_5xx_errors: 5
          interval: 10s
          base_ejection_time: 30s
          max_ejection_percent: 50
        load_balancer:
          simple: LEAST_REQUEST
      - name: ratings
        host: ratings.shop.svc.cluster.local
        connection_pool:
          http:
            http2_max_requests: 500
        outlier_detection:
          consecutive_gateway_errors: 3
          interval: 5s
          base_ejection_time: 1m

- name: Subsets for a canary, with a tighter limit on the new version
  meshtune.mesh.destination_rule:
    namespace: shop
    name: checkout
    destination_host: checkout
    subsets:
      - name: stable
        labels:
          version: v1
      - name: canary
        labels:
          version: v2
        connection_pool:
          http:
            http2_max_requests: 100

- name: Sticky sessions by cookie, and TLS to an external payment API
  meshtune.mesh.destination_rule:
    namespace: shop
    rules:
      - name: cart
        host: cart
        load_balancer:
          consistent_hash:
            http_cookie:
              name: cart-session
              ttl: 1h
      - name: payments-api
        host: api.payments.example.com
        tls:
          mode: SIMPLE
          sni: api.payments.example.com
        export_to: ["."]

- name: Remove two rules
  meshtune.mesh.destination_rule:
    namespace: shop
    state: absent
    rules:
      - name: reviews
      - name: ratings

- name: Take over a rule that was created by hand (its spec is replaced by this one)
  meshtune.mesh.destination_rule:
    namespace: shop
    name: legacy
    destination_host: legacy
    outlier_detection:
      consecutive_5xx_errors: 5
    force: true
"""

RETURN = r"""
results:
  description:
    - One entry per DestinationRule, with its C(action) (V(created), V(updated),
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
    - {kind: DestinationRule, namespace: shop, name: reviews,
       api_version: networking.istio.io/v1, action: created}
    - {kind: DestinationRule, namespace: shop, name: reviews, api_version: networking.istio.io/v1,
       action: updated, reason: "drift: spec.trafficPolicy.tls"}
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
  description: Before and after of every changed DestinationRule (diff mode).
  returned: diff mode
  type: list
  elements: dict
"""

from ansible_collections.meshtune.mesh.plugins.module_utils.istio import (
    H2_UPGRADE_POLICIES,
    NETWORKING_GROUP,
    SIMPLE_LOAD_BALANCERS,
    TLS_MODES,
    check_destination_rule,
    destination_rule_object,
    destination_rule_warnings,
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

# Top-level options that form one rule when `rules` is not given, and their key in a rule.
# `host` is taken by the Kubernetes API server (kubernetes.core's auth options).
SINGLE_RULE_OPTIONS = {"name": "name", "destination_host": "host", "connection_pool": "connection_pool",
                       "outlier_detection": "outlier_detection", "load_balancer": "load_balancer",
                       "tls": "tls", "subsets": "subsets", "export_to": "export_to"}
MUTUALLY_EXCLUSIVE = [["rules", option] for option in SINGLE_RULE_OPTIONS]
REQUIRED_ONE_OF = [["rules", "name"]]


def _dict(**options):
    return {"type": "dict", "options": options}


def _int():
    return {"type": "int"}


def _str():
    return {"type": "str"}


def _choice(values, required=False):
    return {"type": "str", "choices": list(values), "required": required}


def traffic_policy_spec():
    """The options of a traffic policy, the same for a rule and a subset (fresh dicts each call)."""
    return {
        "connection_pool": _dict(
            tcp=_dict(max_connections=_int(), connect_timeout=_str(),
                      tcp_keepalive=_dict(probes=_int(), time=_str(), interval=_str())),
            http=_dict(http1_max_pending_requests=_int(), http2_max_requests=_int(),
                       max_requests_per_connection=_int(), max_retries=_int(), idle_timeout=_str(),
                       h2_upgrade_policy=_choice(H2_UPGRADE_POLICIES))),
        "outlier_detection": _dict(
            consecutive_5xx_errors=_int(), consecutive_gateway_errors=_int(), consecutive_errors=_int(),
            interval=_str(), base_ejection_time=_str(), max_ejection_percent=_int(),
            min_health_percent=_int()),
        "load_balancer": _dict(
            simple=_choice(SIMPLE_LOAD_BALANCERS),
            consistent_hash=_dict(
                http_header_name=_str(),
                http_cookie=_dict(name={"type": "str", "required": True}, path=_str(),
                                  ttl={"type": "str", "required": True}),
                use_source_ip={"type": "bool"}, http_query_parameter_name=_str())),
        "tls": _dict(mode=_choice(TLS_MODES, required=True), sni=_str(), credential_name=_str(),
                     subject_alt_names={"type": "list", "elements": "str"},
                     insecure_skip_verify={"type": "bool"}),
    }


def rule_spec(name_required):
    """The options of one rule, without its host (named differently at top level)."""
    return {
        "name": {"type": "str", "required": name_required},
        **traffic_policy_spec(),
        "subsets": {"type": "list", "elements": "dict",
                    "options": {"name": {"type": "str", "required": True}, "labels": {"type": "dict"},
                                **traffic_policy_spec()}},
        "export_to": {"type": "list", "elements": "str"},
    }


def argument_spec():
    spec = auth_argument_spec()
    spec.update(reconcile_argument_spec(owned=True))
    spec.update(
        namespace={"type": "str", "required": True},
        rules={"type": "list", "elements": "dict",
               "options": {**rule_spec(name_required=True), "host": {"type": "str"}}},
        destination_host={"type": "str"},
    )
    spec.update(rule_spec(name_required=False))
    return spec


def rules_of(params):
    """(option path, rule, name of its host option) for each rule of the call."""
    if params.get("rules") is not None:
        return [(f"rules[{index}]", rule, "host") for index, rule in enumerate(params["rules"])]
    rule = {key: params.get(option) for option, key in SINGLE_RULE_OPTIONS.items()}
    return [("", rule, "destination_host")]


def validate(params):
    """Every problem with the options, as one message; None when all is well."""
    problems = Problems()
    problems.check(check_name, "namespace", params["namespace"], label=True)
    if params.get("rules") is not None:
        if not params["rules"]:
            problems.add("rules", "at least one rule", [])
        problems.check(check_unique, "rules", params["rules"])
    for path, rule, host_option in rules_of(params):
        check_destination_rule(problems, path, rule, params["state"], host_option)
    add_option_problems(problems, params)
    return problems.message()


def main():
    module = validated_module(argument_spec(), validate, mutually_exclusive=MUTUALLY_EXCLUSIVE,
                              required_one_of=REQUIRED_ONE_OF)
    params = module.params
    rules = rules_of(params)
    if params["state"] == "present":
        for path, rule, _host_option in rules:
            for warning in destination_rule_warnings(path, rule):
                module.warn(warning)
    client = KubeClient.from_module(module)
    version = served_networking_version(module, client, "DestinationRule")
    desired = [destination_rule_object(version, params["namespace"], rule) for _path, rule, _host in rules]
    converge_owned(module, client, desired, params["state"], params["parallelism"],
                   extra={"api_version": f"{NETWORKING_GROUP}/{version}"}, force=params["force"])


if __name__ == "__main__":
    main()
