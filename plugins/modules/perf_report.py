#!/usr/bin/python
# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: perf_report
short_description: Write a performance report (JSON, Markdown, HTML and PNG plots) from load-test results
version_added: 0.1.0
description:
  - Reads load-test result files in fortio's JSON shape (as fortio C(-json) and
    M(meshtune.mesh.load_test) write them), each one run, and writes a report into O(output_dir).
  - C(report.json) holds, per run, the requested and achieved rate, the latency percentiles p50,
    p75, p90, p99 and p99.9 and the maximum in milliseconds, the success rate and the errors by
    status code and kind, the latency added compared with the O(baseline), the differences
    between the runs, the O(checks) and the names of the plots.
  - C(report.md) and C(report.html) show the same as tables (runs side by side, each run compared
    with the first, latency added by the mesh, targets met or missed) with the plots. The HTML
    page is self-contained and links the plots relatively, so the directory can be copied as is.
  - PNG plots, drawn with matplotlib without a display. C(latency-percentiles.png) shows latency
    by percentile for every run and the baseline, with the percentile on the classic 1/(1-p) log
    scale from 0 to 99.99. C(histogram-<n>-<run>.png) shows each run's latency histogram from its
    C(DurationHistogram.Data) buckets. C(series-<n>-<name>.png) shows each of the O(series).
  - The files depend only on the inputs. A file is written only when its bytes differ from the
    file in O(output_dir), so running the same report again reports no change.
  - Everything is checked before anything is written. A missing or unreadable file, a file that is
    not a fortio result, an O(output_dir) that cannot be written or a malformed option fails with
    one message naming each problem's option, such as V(results[1]).
  - Each result file is checked as a whole, the same way M(meshtune.mesh.slo_check) checks it. A
    result no run can produce (a negative latency or count, a percentile outside 0 to 100, a bucket
    that ends before it starts, more C(RetCodes) than calls) fails naming the file and the field
    path.
  - The URL of each run is shown with any password and every query value masked
    (C(http://user:********@host/?token=********)), in the files and in RV(summary).
  - New files get mode 0666 minus the umask, as files Ansible writes do; a replaced file keeps its
    mode.
author:
  - meshtune maintainers (@meshtune)
requirements:
  - matplotlib
options:
  results:
    description:
      - Paths of result files in fortio's JSON shape on the host that runs the module, one per run,
        for example the mesh runs of different profiles or Istio versions.
      - The first run is the one the others are compared with.
      - Runs are named by fortio's C(Labels) when every run (and the baseline) has distinct labels,
        otherwise by their file names without C(.json).
      - Latency percentiles come from C(DurationHistogram.Percentiles) when listed there, otherwise
        from the C(DurationHistogram.Data) buckets the way fortio computes them.
      - Exactly one of O(results) and O(sweeps) is required.
    type: list
    elements: path
  sweeps:
    description:
      - Instead of O(results), paths of sweep files, each a JSON object with C(label) and
        C(points), a list of load points. Each point is C(mode) (V(baseline) without sidecars,
        V(server) with the server's sidecar only, V(both)), C(qps), C(connections),
        C(result_file) (a fortio result, relative to the sweep file or absolute) or C(result)
        (the result itself, as a capacity search's steps hold it) and optionally
        C(proxy) with C(cpu_per_1k_rps) and C(memory_mib) from Prometheus over the point's window.
      - The report then draws the cost curves against the rate, one line per sweep and mode.
        C(sweep-latency.png) shows p50, p90 and p99, C(sweep-added-latency.png) the latency added
        over the same sweep's baseline at the same rate and connections, and
        C(sweep-proxy-cost.png) the proxy CPU per 1000 requests/s and memory. C(report.md) has a
        table per sweep and mode.
      - Several sweeps (before and after a tuning change, two Istio revisions) are drawn in one
        report; their labels must differ. Not with O(baseline), O(checks) or O(series).
    type: list
    elements: path
  baseline:
    description:
      - Path of the result of the same load without sidecars. Each run's added latency is its
        percentile minus the baseline's.
    type: path
  output_dir:
    description:
      - Directory to write the report into. It is created when missing.
      - Files of the report are replaced; other files in it are left alone.
    type: path
    required: true
  title:
    description: Title of the report, a non-empty string.
    type: raw
    default: Performance report
  checks:
    description:
      - The C(checks) list returned by M(meshtune.mesh.slo_check), shown as a table of target,
        measured value, limit, margin and whether it was met.
    type: list
    elements: dict
  series:
    description:
      - Prometheus range-query results by name, each plotted over time (for example the sidecars'
        CPU and memory during the run).
      - Each value is a list of C(metric) (labels) and C(values) (C([timestamp, value]) pairs), as
        the C(result) of M(meshtune.mesh.prometheus_query) for a range query, or a
        M(meshtune.mesh.prometheus_query) result holding such a C(result).
    type: dict
attributes:
  check_mode:
    support: full
    description: Computes the whole report and returns which files would change, without writing.
  diff_mode:
    support: none
    description: The files are reported in RV(changed_files), not as a diff.
seealso:
  - module: meshtune.mesh.load_test
  - module: meshtune.mesh.slo_check
  - module: meshtune.mesh.prometheus_query
"""

EXAMPLES = r"""
- name: Compare two mesh runs with the baseline
  meshtune.mesh.perf_report:
    results:
      - results/balanced.json
      - results/performance.json
    baseline: results/baseline.json
    output_dir: build/report
    title: Istio profiles at 1000 requests/s

- name: Judge a run against its targets
  meshtune.mesh.slo_check:
    result_file: results/balanced.json
    baseline_file: results/baseline.json
    targets:
      p99_ms: 25
      added_p90_ms: 3
  register: slo
  ignore_errors: true

- name: Query sidecar memory over the run
  meshtune.mesh.prometheus_query:
    url: http://prometheus.monitoring:9090
    query: sum by (pod) (container_memory_working_set_bytes{container="istio-proxy"}) / 1048576
    start: "{{ run_start }}"
    end: "{{ run_end }}"
    step: 15s
  register: memory

- name: Report with the targets and the sidecar memory
  meshtune.mesh.perf_report:
    results: [results/balanced.json]
    baseline: results/baseline.json
    checks: "{{ slo.checks }}"
    series:
      proxy memory (MiB): "{{ memory.result }}"
    output_dir: build/report
  register: report

- name: Show where the report is
  ansible.builtin.debug:
    msg: "{{ report.report_files[2] }}"
"""

RETURN = r"""
report_files:
  description:
    - Paths of every file of the report, C(report.json), C(report.md) and C(report.html) first,
      then the plots. Returned in check mode too, although nothing is written then.
  returned: success
  type: list
  elements: str
  sample: [build/report/report.json, build/report/report.md, build/report/report.html,
           build/report/latency-percentiles.png]
changed_files:
  description: Paths of the files that were written (or would be, in check mode) because they differ.
  returned: success
  type: list
  elements: str
  sample: [build/report/report.json]
summary:
  description:
    - One entry per run of O(results), in order, with the figures of C(report.json).
    - C(name), C(file), C(labels), C(start_time), C(url), C(connections), C(duration_s),
      C(requested_qps) (0 for as fast as possible), C(achieved_qps), C(requests), C(p50_ms),
      C(p75_ms), C(p90_ms), C(p99_ms), C(p999_ms) (the 99.9th percentile), C(max_ms),
      C(success_rate) (0 to 1), C(errors), C(error_codes) (non-2xx codes to count), C(error_types)
      (kind to count) and C(added_latency).
    - C(added_latency) is null without O(baseline), otherwise for each latency key C(ms) (run minus
      baseline) and C(percent) (of the baseline).
  returned: success with O(results)
  type: list
  elements: dict
  sample: [{name: balanced, p50_ms: 1.75, p99_ms: 5.0, max_ms: 250.0, success_rate: 1.0,
            added_latency: {p50_ms: {ms: 0.65, percent: 59.09}}}]
baseline:
  description: The figures of the O(baseline) run, shaped as an entry of RV(summary); null without it.
  returned: success with O(results)
  type: dict
deltas:
  description:
    - Each run after the first compared with the first. C(run) and C(versus) name the runs; each
      latency key has C(ms) (difference) and C(percent) (of the first run's value).
    - Empty with a single run.
  returned: success with O(results)
  type: list
  elements: dict
  sample: [{run: performance, versus: balanced, p99_ms: {ms: -0.8, percent: -16.0}}]
checks_passed:
  description: Whether every one of O(checks) was met; null without O(checks).
  returned: success with O(results)
  type: bool
points:
  description:
    - With O(sweeps), every load point with C(sweep), C(mode), C(qps), C(connections), its
      C(summary) (as an entry of RV(summary)), C(added_latency) (ms over the sweep's baseline per
      percentile key, null without one) and C(proxy).
  returned: success with O(sweeps)
  type: list
  elements: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.meshtune.mesh.plugins.module_utils.plots import (
    HAS_MATPLOTLIB,
    MATPLOTLIB_IMPORT_ERROR,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.report import (
    DEFAULT_TITLE,
    checks_passed,
    files_to_write,
    json_safe,
    plan_report,
    render_files,
    write_files,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.sweep_report import (
    plan_sweep_report,
    render_sweep_files,
    sweep_data,
)


def argument_spec():
    return {
        "results": {"type": "list", "elements": "path"},
        "sweeps": {"type": "list", "elements": "path"},
        "baseline": {"type": "path"},
        "output_dir": {"type": "path", "required": True},
        "title": {"type": "raw", "default": DEFAULT_TITLE},
        "checks": {"type": "list", "elements": "dict"},
        "series": {"type": "dict"},
    }


def write(module, report, files):
    """Write the files that differ; (all paths, changed paths)."""
    changed = files_to_write(report.output_dir, files)
    paths = [os.path.join(report.output_dir, name) for name in files]
    changed_paths = [os.path.join(report.output_dir, name) for name in changed]
    if changed and not module.check_mode:
        try:
            write_files(report.output_dir, files, changed)
        except OSError as err:
            module.fail_json(msg=f"output_dir: could not write the report into {report.output_dir}: {err}",
                             report_files=paths)
    return paths, changed_paths


def sweep_main(module):
    """sweeps: the cost curves of one or more saved sweeps."""
    problem, report = plan_sweep_report(module.params)
    if problem:
        module.fail_json(msg=problem)
    paths, changed_paths = write(module, report, render_sweep_files(report))
    module.exit_json(changed=bool(changed_paths), report_files=paths, changed_files=changed_paths,
                     points=sweep_data(report)["points"])


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_one_of=[("results", "sweeps")],
                           mutually_exclusive=[("results", "sweeps"), ("sweeps", "baseline"),
                                               ("sweeps", "checks"), ("sweeps", "series")])
    if not HAS_MATPLOTLIB:
        module.fail_json(msg=missing_required_lib("matplotlib"), exception=MATPLOTLIB_IMPORT_ERROR)
    if module.params["sweeps"]:
        sweep_main(module)
    problem, report = plan_report(module.params)
    if problem:
        module.fail_json(msg=problem)
    paths, changed_paths = write(module, report, render_files(report))
    module.exit_json(
        changed=bool(changed_paths),
        report_files=paths,
        changed_files=changed_paths,
        summary=json_safe([run.summary for run in report.runs]),
        baseline=json_safe(report.baseline.summary) if report.baseline else None,
        deltas=report.deltas,
        checks_passed=checks_passed(report.checks),
    )


if __name__ == "__main__":
    main()
