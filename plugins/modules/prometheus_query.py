#!/usr/bin/python
# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: prometheus_query
short_description: Run PromQL instant or range queries against a Prometheus server
version_added: 0.1.0
description:
  - Sends one PromQL query (O(query)) or several named ones (O(queries)) to the HTTP API of a
    Prometheus server (C(/api/v1/query) for instant queries, C(/api/v1/query_range) when
    O(start) is set) and returns the results with numbers as floats.
  - Sample values that Prometheus sends as strings become floats, including C(NaN), C(+Inf)
    and C(-Inf).
  - Several queries of one task are evaluated at the same instant (or over the same range), so
    figures computed from them fit together.
  - Options are checked before the first request. A query Prometheus refuses fails with
    Prometheus's error text and the query; an unreachable server fails with one line naming the
    URL and the reason. An answer that is not what Prometheus's HTTP API sends (a proxy's page,
    a result of the wrong shape) fails naming the part that is wrong, such as
    C(data.result[0].values).
  - Credentials never appear in the output. A password in O(url) is masked wherever the URL is
    shown, and its value, O(password), O(bearer_token) and the values of O(headers) named like
    credentials are hidden from the task's result, also at C(-vvv).
author:
  - meshtune maintainers (@meshtune)
extends_documentation_fragment:
  - meshtune.mesh.prometheus
options:
  url:
    description:
      - Base URL of the Prometheus server, for example C(http://prometheus.istio-system:9090).
        A path prefix (C(https://example.com/prometheus)) is kept.
      - Credentials in the URL (C(https://user:password@host)) are sent as HTTP basic
        authentication, unless O(username), O(bearer_token) or an C(Authorization) header is
        given, and shown masked (C(user:********@host)). Prefer O(username) and O(password).
    type: str
    required: true
  query:
    description:
      - One PromQL expression. Its result is returned in RV(result_type), RV(result) and RV(value).
      - Exactly one of O(query) and O(queries) is required.
    type: str
  queries:
    description:
      - Several PromQL expressions by name, evaluated at the same time. The results are returned
        in RV(query_results) under the same names.
    type: dict
  time:
    description:
      - Evaluation time of an instant query, as RFC3339 (C(2024-05-01T12:00:00Z)), unix seconds,
        C(now), or relative to now (C(-10m)).
      - Defaults to the current time of the host that runs the module.
    type: str
  start:
    description:
      - Start of a range query. Setting it makes the queries range queries.
      - Same forms as O(time), for example C(-30m).
    type: str
  end:
    description:
      - End of a range query, in the same forms as O(time). Defaults to now.
    type: str
  step:
    description:
      - Resolution of a range query, as a duration (C(30s), C(1m)) or a number of seconds.
        Required with O(start).
    type: str
attributes:
  check_mode:
    support: full
    description: Queries change nothing, so they run in check mode too.
  diff_mode:
    support: none
    description: Changes nothing, so there is no diff.
"""

EXAMPLES = r"""
- name: Request rate through the mesh right now
  meshtune.mesh.prometheus_query:
    url: http://prometheus.istio-system:9090
    query: sum(rate(istio_requests_total{reporter="destination"}[1m]))
  register: rate

- name: Sidecar cost over the load test, evaluated at the same instant
  meshtune.mesh.prometheus_query:
    url: http://prometheus.istio-system:9090
    time: "{{ load_end }}"
    queries:
      rps: sum(rate(istio_requests_total{reporter="destination",destination_workload="reviews-v1"}[5m]))
      cpu: sum(rate(container_cpu_usage_seconds_total{container="istio-proxy",pod=~"reviews-v1-.*"}[5m]))
      memory: max(container_memory_working_set_bytes{container="istio-proxy",pod=~"reviews-v1-.*"})
      growth: max(deriv(container_memory_working_set_bytes{container="istio-proxy"}[10m])) * 60
  register: cost

- name: Memory of every sidecar over the last 30 minutes, one point per 30 s
  meshtune.mesh.prometheus_query:
    url: https://prometheus.example.com
    bearer_token: "{{ prometheus_token }}"
    ca_cert: /etc/ssl/certs/internal-ca.pem
    query: container_memory_working_set_bytes{container="istio-proxy"}
    start: -30m
    step: 30s
  register: memory

- name: Use a figure
  ansible.builtin.debug:
    msg: "Sidecars use {{ cost.query_results.cpu.value }} vCPU at {{ rate.value }} requests/s"
"""

RETURN = r"""
result_type:
  description: Type of the O(query) result, V(vector), V(matrix), V(scalar) or V(string).
  returned: when O(query) is set
  type: str
  sample: vector
result:
  description:
    - The O(query) result. For a vector, a list of C(metric) (labels), C(value) (float) and
      C(timestamp) (unix seconds). For a matrix, a list of C(metric) and C(values), a list of
      C([timestamp, value]) pairs. For a scalar or string, C(timestamp) and C(value).
    - Native histogram samples carry C(histogram) (C(count), C(sum), C(buckets)) instead of
      C(value), or C(histograms) beside C(values).
  returned: when O(query) is set
  type: raw
  sample: [{metric: {pod: productpage-v1-7d4d8f9c5b-xkq2p}, value: 41943040.0, timestamp: 1714564800.0}]
value:
  description:
    - The single number of a scalar result or of a vector with exactly one sample; null otherwise.
  returned: when O(query) is set
  type: float
  sample: 0.35
query_results:
  description:
    - Results of O(queries) by name. Each has C(query), C(result_type), C(result) and C(value),
      shaped as for O(query).
  returned: when O(queries) is set
  type: dict
  sample: {cpu: {query: "sum(rate(x[5m]))", result_type: vector, value: 0.35,
                 result: [{metric: {}, value: 0.35, timestamp: 1714564800.0}]}}
time:
  description: Evaluation time of the instant queries, in unix seconds.
  returned: for instant queries
  type: float
  sample: 1714564800.0
start:
  description: Start of the range, in unix seconds.
  returned: for range queries
  type: float
  sample: 1714563000.0
end:
  description: End of the range, in unix seconds.
  returned: for range queries
  type: float
  sample: 1714564800.0
step:
  description: Step of the range, in seconds.
  returned: for range queries
  type: float
  sample: 30.0
"""

import time

from ansible_collections.meshtune.mesh.plugins.module_utils.prometheus import (
    CONNECTION_MODULE_OPTIONS,
    PrometheusError,
    client_from_params,
    connection_argument_spec,
    plan_queries,
    run_queries,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.redact import SecretHidingModule


def argument_spec():
    spec = connection_argument_spec("url")
    spec.update(
        query={"type": "str"},
        queries={"type": "dict"},
        time={"type": "str"},
        start={"type": "str"},
        end={"type": "str"},
        step={"type": "str"},
    )
    return spec


def main():
    module = SecretHidingModule(
        argument_spec=argument_spec(), url_options=["url"], header_options=["headers"],
        mutually_exclusive=[("query", "queries")] + CONNECTION_MODULE_OPTIONS["mutually_exclusive"],
        required_one_of=[("query", "queries")],
        required_together=CONNECTION_MODULE_OPTIONS["required_together"],
        supports_check_mode=True,
    )
    params = module.params
    problem, plan = plan_queries(params, time.time())
    if problem:
        module.fail_json(msg=problem)
    client = client_from_params(params)
    try:
        results, warnings = run_queries(client, plan)
    except PrometheusError as err:
        module.fail_json(msg=str(err))
    for warning in warnings:
        module.warn(warning)
    if plan.kind == "range":
        outcome = {"start": plan.start, "end": plan.end, "step": plan.step}
    else:
        outcome = {"time": plan.time}
    if params["query"] is not None:
        single = results["query"]
        outcome.update(result_type=single["result_type"], result=single["result"], value=single["value"])
    else:
        outcome["query_results"] = dict(results)
    module.exit_json(changed=False, **outcome)


if __name__ == "__main__":
    main()
