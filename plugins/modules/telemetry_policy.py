#!/usr/bin/python
# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: telemetry_policy
short_description: Tune what Istio's proxies log, trace and measure, with Telemetry resources
version_added: 0.2.0
description:
  - Creates, updates or deletes Istio C(Telemetry) resources (telemetry.istio.io) in one
    namespace, as many as given in O(policies) in one task.
  - A policy without O(policies[].workload_selector) covers its whole namespace; in the root
    namespace (C(istio-system) unless the mesh says otherwise) it covers the whole mesh. One with a
    selector covers the selected workloads. A namespace policy overrides the mesh-wide one, and a
    workload policy the namespace one.
  - Telemetry is paid on every request. Access logs cost proxy CPU and log storage per request;
    each sampled trace costs a span to build and send; every metric tag multiplies the series
    Prometheus stores. Logging only errors, sampling 1 % and removing tags nobody queries are the
    cheapest large savings in a busy mesh.
  - Checked against the Telemetry schema before any write. That covers its enums, a sampling
    percentage of 0 to 100, durations, labels, and the access-log filter, a CEL expression parsed
    as istiod parses it. Only one policy per namespace may go without a workload selector.
  - Uses C(telemetry.istio.io/v1), or C(v1alpha1) where the cluster serves only that;
    RV(api_version) reports which.
author:
  - meshtune maintainers (@meshtune)
requirements:
  - cel-python (parses access-log filters as istiod does)
options:
  namespace:
    description: Namespace of the Telemetry resources; the root namespace makes them mesh-wide.
    type: str
    required: true
  policies:
    description: Telemetry resources to manage, one entry each, all in O(namespace).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the Telemetry, a DNS-1123 subdomain.
        type: str
        required: true
      workload_selector:
        description:
          - Labels of the workloads the policy applies to (C(selector.matchLabels)); unset covers
            the namespace. Keys and values are checked as Kubernetes checks labels.
        type: dict
      access_logging:
        description:
          - Access logs (C(accessLogging)). On, off (O(policies[].access_logging.enabled=false)), or
            only the requests a filter selects.
        type: dict
        suboptions:
          enabled:
            description: V(false) turns access logging off (C(disabled)).
            type: bool
            default: true
          filter:
            description:
              - A CEL expression selecting the requests to log, such as V(response.code >= 400)
                (errors only).
            type: str
          providers:
            description:
              - Access-log providers, such as V(envoy) (Istio's built-in provider, the proxy's
                standard output). Unset uses the mesh's default providers
                (C(meshConfig.defaultProviders.accessLogging)), which log nothing unless set.
            type: list
            elements: str
          mode: &mode
            description: Which side of a call the setting applies to (C(match.mode)); both when unset.
            type: str
            choices: [CLIENT_AND_SERVER, CLIENT, SERVER]
      tracing:
        description: Tracing (C(tracing)).
        type: dict
        suboptions:
          sampling:
            description:
              - Percentage of requests traced, 0 to 100, such as V(1) or V(0.5)
                (C(randomSamplingPercentage)). A request that arrives with a sampling decision keeps it.
            type: float
          disable_span_reporting:
            description: Stop reporting spans; the trace context is still passed on (C(disableSpanReporting)).
            type: bool
          providers:
            description:
              - Tracing providers defined in the mesh config (C(meshConfig.extensionProviders)), such
                as V(zipkin). Unset uses the mesh's default tracing provider.
            type: list
            elements: str
          mode: *mode
      metrics:
        description: Metrics (C(metrics)).
        type: dict
        suboptions:
          providers:
            description: Metrics providers, such as V(prometheus) (the default when unset).
            type: list
            elements: str
          reporting_interval:
            description: How often TCP metrics are reported, such as V(15s) (C(reportingInterval)).
            type: str
          overrides:
            description:
              - Changes to the standard metrics (C(overrides)). Each either turns metrics off
                (O(policies[].metrics.overrides[].disabled=true)) or removes tags from them.
              - Turning off C(ALL_METRICS) in C(CLIENT) mode halves the series of a mesh in which
                both sides report every call; the server side still reports it.
            type: list
            elements: dict
            suboptions:
              metric:
                description: The standard metric to change; all of them when unset.
                type: str
                choices: [ALL_METRICS, REQUEST_COUNT, REQUEST_DURATION, REQUEST_SIZE, RESPONSE_SIZE,
                          TCP_OPENED_CONNECTIONS, TCP_CLOSED_CONNECTIONS, TCP_SENT_BYTES, TCP_RECEIVED_BYTES,
                          GRPC_REQUEST_MESSAGES, GRPC_RESPONSE_MESSAGES]
              mode: *mode
              disabled:
                description: Stop reporting the metric.
                type: bool
              remove_tags:
                description:
                  - Tags (Prometheus labels) to remove from the metric, such as V(request_protocol)
                    or V(destination_canonical_revision); each removed tag merges series.
                type: list
                elements: str
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshtune.mesh.auth
  - meshtune.mesh.reconcile
  - meshtune.mesh.reconcile.owned
"""

EXAMPLES = r"""
- name: Mesh-wide, log errors only and trace 1 % of requests
  meshtune.mesh.telemetry_policy:
    namespace: istio-system
    policies:
      - name: mesh-default
        access_logging:
          providers: [envoy]
          filter: response.code >= 400
        tracing:
          sampling: 1

- name: Cut metric cardinality in a busy namespace, and drop client-side metrics
  meshtune.mesh.telemetry_policy:
    namespace: shop
    policies:
      - name: shop-metrics
        metrics:
          overrides:
            - remove_tags: [request_protocol, destination_canonical_revision, source_canonical_revision]
            - mode: CLIENT
              disabled: true

- name: No access logs at all for the load generator
  meshtune.mesh.telemetry_policy:
    namespace: loadtest
    policies:
      - name: fortio-quiet
        workload_selector: {app: fortio}
        access_logging:
          enabled: false

- name: Remove a policy
  meshtune.mesh.telemetry_policy:
    namespace: shop
    state: absent
    policies:
      - name: shop-metrics
"""

RETURN = r"""
results:
  description:
    - One entry per Telemetry, with its C(action) (V(created), V(updated),
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
    - {kind: Telemetry, namespace: istio-system, name: mesh-default,
       api_version: telemetry.istio.io/v1, action: created}
summary:
  description: How many objects were created, updated, unchanged, deleted, skipped or failed.
  returned: always
  type: dict
  sample: {created: 1, updated: 0, unchanged: 0, deleted: 0, skipped: 0, failed: 0, total: 1}
api_version:
  description: The telemetry.istio.io version used.
  returned: success
  type: str
  sample: telemetry.istio.io/v1
retries:
  description: API calls that were retried (conflicts, throttling, server errors).
  returned: success
  type: int
  sample: 0
diff:
  description: Before and after of every changed Telemetry (diff mode).
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
    add_option_problems,
    converge_owned,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.reconcile import (
    argument_spec as reconcile_argument_spec,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.telemetry import (
    CEL_IMPORT_ERROR,
    METRICS,
    MODES,
    TELEMETRY_GROUP,
    check_namespace_defaults,
    check_policy,
    served_telemetry_version,
    telemetry_object,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import Problems, check_name, check_unique


def _mode():
    return {"type": "str", "choices": list(MODES)}


def _providers():
    return {"type": "list", "elements": "str"}


def argument_spec():
    policy = {
        "name": {"type": "str", "required": True},
        "workload_selector": {"type": "dict"},
        "access_logging": {"type": "dict", "options": {
            "enabled": {"type": "bool", "default": True}, "filter": {"type": "str"},
            "providers": _providers(), "mode": _mode()}},
        "tracing": {"type": "dict", "options": {
            "sampling": {"type": "float"}, "disable_span_reporting": {"type": "bool"},
            "providers": _providers(), "mode": _mode()}},
        "metrics": {"type": "dict", "options": {
            "providers": _providers(), "reporting_interval": {"type": "str"},
            "overrides": {"type": "list", "elements": "dict", "options": {
                "metric": {"type": "str", "choices": list(METRICS)}, "mode": _mode(),
                "disabled": {"type": "bool"}, "remove_tags": {"type": "list", "elements": "str"}}}}},
    }
    spec = auth_argument_spec()
    spec.update(reconcile_argument_spec(owned=True))
    spec.update(namespace={"type": "str", "required": True},
                policies={"type": "list", "elements": "dict", "required": True, "options": policy})
    return spec


def validate(params):
    """Every problem with the options, as one message; None when all is well."""
    problems = Problems()
    problems.check(check_name, "namespace", params["namespace"], label=True)
    if not params["policies"]:
        problems.add("policies", "at least one Telemetry policy", [])
    problems.check(check_unique, "policies", params["policies"])
    for index, policy in enumerate(params["policies"]):
        check_policy(problems, f"policies[{index}]", policy, params["state"])
    if params["state"] == "present":
        check_namespace_defaults(problems, "policies", params["policies"])
    add_option_problems(problems, params)
    return problems.message()


def main():
    module = validated_module(argument_spec(), validate,
                              missing_libraries=[("cel-python", CEL_IMPORT_ERROR)])
    params = module.params
    client = KubeClient.from_module(module)
    version = served_telemetry_version(module, client)
    desired = [telemetry_object(version, params["namespace"], policy) for policy in params["policies"]]
    converge_owned(module, client, desired, params["state"], params["parallelism"],
                   extra={"api_version": f"{TELEMETRY_GROUP}/{version}"}, force=params["force"])


if __name__ == "__main__":
    main()
