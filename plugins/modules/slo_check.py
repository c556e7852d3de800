#!/usr/bin/python
# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: slo_check
short_description: Judge a load-test result against latency, error-rate and resource targets
version_added: 0.1.0
description:
  - Reads a load-test result in fortio's JSON shape, optionally the result of the same load
    without sidecars (the baseline) and figures about the proxies, and checks each of the
    O(targets).
  - Latency, CPU, memory, memory growth and push latency targets are upper bounds;
    V(success_rate) and V(min_qps_ratio) are lower bounds.
  - Every check has a margin, positive when the target is met (the headroom) and negative when
    it is missed (by how much). A miss fails the task with a table of every check.
  - All inputs are checked before anything is judged. An unknown target name, a target whose
    baseline or proxy figure was not given, or a result without the needed data fails with one
    message naming each problem.
  - Each result (and baseline) is checked as a whole first, the same way M(meshtune.mesh.perf_report)
    checks it. A result no run can produce fails naming the file and the field path, such as
    C(DurationHistogram.Data[2].End), instead of being judged. That is a negative latency or
    count, a percentile outside 0 to 100, a bucket that ends before it starts, buckets out of
    order or not adding up to C(Count), more C(RetCodes) or errors than calls, or a file whose
    JSON is nested too deeply.
author:
  - meshtune maintainers (@meshtune)
options:
  result:
    description:
      - The load-test result, in fortio's JSON shape (as fortio C(-json) writes it).
      - Latency percentiles come from C(DurationHistogram.Percentiles). When a percentile is not
        listed there it is computed from the histogram buckets C(DurationHistogram.Data) the way
        fortio computes it (linear interpolation inside the bucket).
      - Exactly one of O(result) and O(result_file) is required.
    type: dict
  result_file:
    description:
      - Path of a fortio JSON result file on the host that runs the module, instead of O(result).
    type: path
  baseline:
    description:
      - The result of the same load without sidecars, in the same shape. Needed by the
        V(added_p50_ms), V(added_p90_ms) and V(added_p99_ms) targets.
    type: dict
  baseline_file:
    description: Path of the baseline result file, instead of O(baseline).
    type: path
  proxy:
    description:
      - Figures about the sidecars and istiod for the run, typically computed from
        M(meshtune.mesh.prometheus_query) results.
      - C(cpu_per_1k_rps) is the sidecar CPU in vCPU per 1000 requests/s, C(memory_mib) the sidecar
        memory in MiB, C(memory_growth_mib_per_min) the sidecar memory growth in MiB per minute over
        the run and C(push_latency_p99_ms) the p99 istiod push latency in milliseconds.
      - Values may be numbers or numeric strings. NaN (a query without data) makes its check fail.
    type: dict
  capacity:
    description:
      - The capacities found by M(meshtune.mesh.load_test)'s O(meshtune.mesh.load_test#module:search)
        through the mesh (C(mesh_qps)) and without it (C(baseline_qps)), for the
        V(min_capacity_ratio) target. A null capacity (the search's start rate already missed)
        makes the check fail.
    type: dict
  targets:
    description:
      - Target name to limit.
      - V(p50_ms), V(p90_ms), V(p99_ms), V(p999_ms) are the latency percentiles (p999 is the 99.9th)
        in milliseconds, over all calls, errors included.
      - V(success_rate) is the lowest share of 2xx responses among all calls (0 to 1). Socket
        errors (code -1 or C(ErrorsDurationHistogram)) count as failures.
      - V(min_qps_ratio) is the lowest achieved rate over requested rate (C(ActualQPS) divided by
        C(RequestedQPS)). It needs a run at a fixed rate.
      - V(added_p50_ms), V(added_p90_ms), V(added_p99_ms) are the most latency the mesh may add
        (result percentile minus baseline percentile), in milliseconds.
      - V(proxy_cpu_per_1k_rps) (vCPU), V(proxy_memory_mib) (MiB),
        V(proxy_memory_growth_mib_per_min) (MiB per minute) and V(push_latency_p99_ms) (ms) are
        upper bounds for the matching O(proxy) figures.
      - V(min_capacity_ratio) is the lowest capacity through the mesh over capacity without it
        (O(capacity)), such as V(0.8) when the mesh may cost at most a fifth of the capacity.
    type: dict
    required: true
attributes:
  check_mode:
    support: full
    description: Reads only; judges the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is no diff.
"""

EXAMPLES = r"""
- name: Fail the play when the mesh run misses its targets
  meshtune.mesh.slo_check:
    result_file: /tmp/meshtune/mesh.json
    baseline_file: /tmp/meshtune/baseline.json
    targets:
      p99_ms: 25
      added_p90_ms: 3
      success_rate: 0.999
      min_qps_ratio: 0.95

- name: Judge sidecar cost too, from an earlier prometheus_query task registered as cost
  meshtune.mesh.slo_check:
    result: "{{ lookup('ansible.builtin.file', 'results/mesh.json') | from_json }}"
    proxy:
      cpu_per_1k_rps: "{{ cost.query_results.cpu.value / (cost.query_results.rps.value / 1000) }}"
      memory_mib: "{{ cost.query_results.memory.value / 1048576 }}"
      memory_growth_mib_per_min: "{{ cost.query_results.growth.value / 1048576 }}"
    targets:
      p99_ms: 25
      proxy_cpu_per_1k_rps: 0.5
      proxy_memory_mib: 60
      proxy_memory_growth_mib_per_min: 1
  register: slo
  ignore_errors: true

- name: Show the table
  ansible.builtin.debug:
    msg: "{{ slo.table }}"
"""

RETURN = r"""
checks:
  description: One entry per target, in a fixed order (latency, success, rate, added latency, proxy).
  returned: success or when targets were missed
  type: list
  elements: dict
  contains:
    target:
      description: The target name.
      type: str
      sample: p99_ms
    measured:
      description: The measured value, in O(targets)'s unit.
      type: float
      sample: 12.3
    limit:
      description: The limit from O(targets).
      type: float
      sample: 25.0
    margin:
      description:
        - Limit minus measured for upper bounds, measured minus limit for lower bounds.
          Positive or zero when met.
      type: float
      sample: 12.7
    ok:
      description: Whether the target was met.
      type: bool
      sample: true
    unit:
      description: V(ms), V(ratio), V(vCPU), V(MiB) or V(MiB/min).
      type: str
      sample: ms
    bound:
      description: V(max) for upper bounds, V(min) for lower bounds.
      type: str
      sample: max
passed:
  description: Whether every target was met.
  returned: success or when targets were missed
  type: bool
  sample: true
table:
  description: The checks as a plain-text table (target, measured, limit, margin, ok).
  returned: success or when targets were missed
  type: str
  sample: |-
    target | measured | limit    | margin   | ok
    -------+----------+----------+----------+---
    p99_ms | 12.3 ms  | <= 25 ms | +12.7 ms | ok
msg:
  description: A one-line verdict naming any missed targets, then the table.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.meshtune.mesh.plugins.module_utils.slo import checks_result, plan_checks


def argument_spec():
    return {
        "result": {"type": "dict"},
        "result_file": {"type": "path"},
        "baseline": {"type": "dict"},
        "baseline_file": {"type": "path"},
        "proxy": {"type": "dict"},
        "capacity": {"type": "dict"},
        "targets": {"type": "dict", "required": True},
    }


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("result", "result_file"), ("baseline", "baseline_file")],
        required_one_of=[("result", "result_file")],
        supports_check_mode=True,
    )
    problem, checks = plan_checks(module.params)
    if problem:
        module.fail_json(msg=problem)
    outcome = checks_result(checks)
    if not outcome["passed"]:
        module.fail_json(changed=False, **outcome)
    module.exit_json(changed=False, **outcome)


if __name__ == "__main__":
    main()
