#!/usr/bin/python
# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: sidecar_recommend
short_description: Recommend (and apply) per-workload Istio sidecar resources from what the proxies used
version_added: 0.2.0
description:
  - Reads the C(istio-proxy) containers' CPU and memory use over a window from Prometheus
    (C(container_cpu_usage_seconds_total), C(container_memory_working_set_bytes)) and recommends
    per-workload sidecar requests, limits and concurrency for Deployments, StatefulSets and
    DaemonSets, with the reason for each value.
  - B(CPU request) is the O(cpu_percentile) of each pod's usage rate over the window (the busiest
    pod of the workload) times 1 + O(cpu_headroom), rounded up to 5m, at least O(min_cpu).
    B(Memory request) is the largest working set of any of its pods times 1 + O(memory_headroom),
    rounded up to 1Mi, at least O(min_memory). A cut is at most O(max_step_down) of the current
    request per run. B(Concurrency) is the request in whole cores rounded up, never above the CPU
    limit in whole cores, and at least 1.
  - A workload whose sidecar memory grows steadily over the window is flagged as a B(leak
    suspect) and its memory is left at its current value. A workload with less data than
    O(min_history) is skipped, with the reason.
  - Pods are mapped to their workload through kube-state-metrics (C(kube_pod_owner),
    C(kube_replicaset_owner)), else through the API (pod owners, the ReplicaSets of every kept
    generation, the pod names controllers give). Pods of every ReplicaSet generation in the
    window count, so a rolling restart does not split a workload.
  - Current values come from the pod template's sidecar annotations, else from the injector's
    defaults (ConfigMap O(injector_configmap)) and the mesh's default concurrency (ConfigMap
    O(mesh_configmap)), read from the cluster.
  - B(Cost) is fixed, eight instant queries for any number of workloads, whose subqueries and
    range functions evaluate the window inside Prometheus, never one query per workload. No
    recording rule is needed; one for the CPU rate (O(cpu_recording_rule)) makes the costliest
    query a plain range function.
  - Reports only, unless O(apply=true); then it writes the resized workloads' annotations
    through the same engine as M(meshtune.mesh.sidecar_resources), one merge patch per changed
    workload, check and diff mode, and O(wait).
author:
  - meshtune maintainers (@meshtune)
options:
  prometheus_url:
    description:
      - Base URL of the Prometheus server that scrapes the kubelets' cAdvisor (and, best,
        kube-state-metrics), for example C(http://prometheus-server.monitoring).
      - Credentials in the URL are sent as basic authentication and shown masked.
      - The other options that reach it are named C(prometheus_*) (O(prometheus_ca_cert),
        O(prometheus_bearer_token)...), as kubernetes.core's C(ca_cert), C(validate_certs),
        C(username) and C(password) reach the Kubernetes API server.
    type: str
    required: true
  namespaces:
    description: Namespaces whose workloads to size.
    type: list
    elements: str
    required: true
  kinds:
    description: Kinds of workloads to size.
    type: list
    elements: str
    choices: [Deployment, StatefulSet, DaemonSet]
    default: [Deployment, StatefulSet, DaemonSet]
  label_selector:
    description: Size only the workloads whose labels match this selector (C(kubectl get -l) syntax).
    type: str
  metric_filter:
    description:
      - Extra PromQL label matchers for the cAdvisor series, for example C(cluster="eu-1") when
        one Prometheus holds several clusters.
    type: str
  cpu_recording_rule:
    description:
      - Name of a recorded series of the per-pod istio-proxy CPU usage rate (labels C(namespace)
        and C(pod)), for example C(meshtune:istio_proxy_cpu_usage:rate5m) recorded by
        C(max by (namespace, pod) (rate(container_cpu_usage_seconds_total{container="istio-proxy"}[5m]))).
      - The CPU percentile then reads the recorded samples instead of evaluating a subquery over
        the window, the costliest query by far. Without it, a subquery at O(step) is used.
    type: str
  window:
    description: How far back to look, a Prometheus duration.
    type: str
    default: 7d
  min_history:
    description: Workloads with less data than this (across all their pods) are skipped.
    type: str
    default: 24h
  step:
    description: Resolution of the CPU percentile's subquery (and of the history's ends).
    type: str
    default: 1m
  rate_interval:
    description: Range of the CPU usage C(rate()); at least two scrape intervals.
    type: str
    default: 5m
  cpu_percentile:
    description: Percentile of the per-pod CPU usage rate, from 1 to 100.
    type: float
    default: 95
  cpu_headroom:
    description: Share added to the CPU percentile (0.1 is 10 %).
    type: float
    default: 0
  memory_headroom:
    description: Share added to the largest working set (0.15 is 15 %).
    type: float
    default: 0.15
  cpu_limit:
    description:
      - V(none) leaves the CPU limit as it is (raised to the request when it would be below it),
        as CPU throttling costs latency; or a ratio of the request of at least 1, such as V(2).
    type: str
    default: none
  memory_limit:
    description: The memory limit as a ratio of the memory request, at least 1.
    type: float
    default: 1
  min_cpu:
    description: The smallest CPU request recommended.
    type: str
    default: 10m
  min_memory:
    description: The smallest memory request recommended.
    type: str
    default: 64Mi
  max_step_down:
    description:
      - The largest share a request may be cut by in one run (0.5 halves at most; 0 never cuts;
        1 cuts to the recommendation at once). Raises are never capped.
    type: float
    default: 0.5
  leak_growth:
    description:
      - A pod whose working set rose over its time in the window by at least this share of its
        largest working set, and still rises over the window's last half, makes its workload a
        leak suspect.
    type: float
    default: 0.2
  istio_namespace:
    description: Namespace of the injector's and the mesh's ConfigMaps.
    type: str
    default: istio-system
  injector_configmap:
    description:
      - ConfigMap of the sidecar injector, whose C(values) hold the default sidecar resources
        (C(istio-sidecar-injector-<revision>) for a revisioned control plane). Istio's chart
        defaults are assumed when it is missing.
    type: str
    default: istio-sidecar-injector
  mesh_configmap:
    description: ConfigMap of the mesh config, whose C(defaultConfig.concurrency) is the default concurrency.
    type: str
    default: istio
  output_dir:
    description:
      - Directory to write the report to, as C(rightsize.json), C(rightsize.md) and
        C(rightsize.html). Files whose content is unchanged are not rewritten. Nothing is written
        in check mode.
    type: path
  title:
    description: Title of the report.
    type: str
    default: Sidecar rightsizing
  apply:
    description:
      - Write the recommended values of the workloads to resize as pod-template annotations
        (this restarts their pods, see M(meshtune.mesh.sidecar_resources)).
    type: bool
    default: false
  wait:
    description: With O(apply=true), wait until the rollouts of the changed workloads have finished.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for the rollouts with O(wait=true).
    type: int
    default: 300
  parallelism:
    description: How many writes run at once with O(apply=true).
    type: int
    default: 8
notes:
  - Every option is validated before the first request; a Prometheus that cannot be reached or
    refuses a query fails the task naming the option, before anything is written.
  - docs/rightsizing.md explains the numbers, the report and how to roll back (RV(rollback)).
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshtune.mesh.auth
  - meshtune.mesh.prometheus.PREFIXED
attributes:
  check_mode:
    support: full
    description: Reads Prometheus and the cluster and reports; writes neither workloads nor report files.
  diff_mode:
    support: full
    description: With O(apply=true), the annotations before and after of every workload that changes.
"""

EXAMPLES = r"""
- name: Recommend sidecar resources for three namespaces and write the report
  meshtune.mesh.sidecar_recommend:
    prometheus_url: http://prometheus-server.monitoring
    namespaces: [shop, payments, catalog]
    output_dir: build/reports/rightsize
  register: rightsize

- name: Hand the recommendations to the tune role as they are
  ansible.builtin.include_role:
    name: meshtune.mesh.tune
  vars:
    tune_sidecars: "{{ rightsize.tune_sidecars }}"

- name: Apply with a CPU limit of twice the request and 20 % memory headroom, a quarter cut at most
  meshtune.mesh.sidecar_recommend:
    prometheus_url: http://prometheus-server.monitoring
    namespaces: [shop]
    cpu_limit: "2"
    memory_headroom: 0.2
    max_step_down: 0.25
    apply: true
    wait: true
"""

RETURN = r"""
recommendations:
  description:
    - One entry per selected workload, with C(kind), C(namespace), C(name), C(pods) (pods seen in
      the window, every generation), C(replicas), C(history_hours), C(usage) (C(cpu_cores) at the
      percentile, C(memory_bytes) at most), C(current) and C(recommended) (C(cpu_request),
      C(cpu_limit), C(memory_request), C(memory_limit), C(concurrency)), C(current_source),
      C(action) (V(resize), V(keep) or V(skipped)), C(reason) (when skipped), C(reasons) (one
      per value) and C(leak_suspect).
  returned: always
  type: list
  elements: dict
totals:
  description:
    - Requested CPU (cores) and memory (bytes) of the selected workloads' sidecars, request x
      replicas, before and after; counts of workloads resized, skipped and leak suspects.
  returned: always
  type: dict
  sample: {cpu_request_cores_before: 2.4, cpu_request_cores_after: 0.63,
           memory_request_bytes_before: 3221225472, memory_request_bytes_after: 1312817152,
           workloads: 12, resized: 9, skipped: 2, leak_suspects: 1}
tune_sidecars:
  description:
    - The resizes as C(tune_sidecars) entries (M(meshtune.mesh.sidecar_resources) options with
      per-workload values), for the tune role as they are. Empty when nothing is to be resized.
  returned: always
  type: list
  elements: dict
rollback:
  description:
    - C(tune_sidecars) entries that put the resized workloads back as they were (their own old
      annotation values, and the removal of the annotations they did not have).
  returned: always
  type: list
  elements: dict
queries:
  description: The PromQL of every query sent, by name (always the same number of queries).
  returned: always
  type: dict
mesh_defaults:
  description: The sidecar values a workload without annotations runs with, and where they were read.
  returned: always
  type: dict
unmapped_pods:
  description: Pods with istio-proxy series that belong to none of the selected workloads.
  returned: always
  type: int
report_files:
  description: Paths of the report files.
  returned: with O(output_dir)
  type: list
  elements: str
results:
  description:
    - With O(apply=true), one entry per resized workload, as M(meshtune.mesh.sidecar_resources)
      returns them.
  returned: with O(apply=true)
  type: list
  elements: dict
summary:
  description: With O(apply=true), how many workloads were updated, unchanged, skipped or failed.
  returned: with O(apply=true)
  type: dict
diff:
  description:
    - Pod template annotations before and after of every workload that changes (diff mode,
      O(apply=true)).
  returned: diff mode with O(apply=true)
  type: list
  elements: dict
"""

import os
import time

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import (
    KubeClient,
    KubeError,
    auth_argument_spec,
    fail_read,
    validated_module,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.prometheus import (
    PrometheusError,
    client_from_params,
    connection_argument_spec,
    connection_module_options,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.reconcile import (
    apply_changes,
    batch_failure,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.redact import hide_secrets
from ansible_collections.meshtune.mesh.plugins.module_utils.report import files_to_write, write_files
from ansible_collections.meshtune.mesh.plugins.module_utils.rightsizing import (
    PROMETHEUS,
    build_queries,
    cpu_limit_ratio,
    current_settings,
    map_pods,
    mesh_defaults,
    owners_from_metrics,
    pod_usage,
    read_api_owners,
    read_usage,
    recommend,
    report_files,
    rollback_entries,
    totals,
    tune_entries,
    validate,
    written_settings,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.workloads import (
    KINDS,
    YAML_IMPORT_ERROR,
    plan_changes,
    read_selected,
    settings_wanted,
    wait_for_updated,
)


def argument_spec():
    spec = auth_argument_spec()
    spec.update(connection_argument_spec("prometheus_url", PROMETHEUS))
    spec.update(
        namespaces={"type": "list", "elements": "str", "required": True},
        kinds={"type": "list", "elements": "str", "choices": list(KINDS), "default": list(KINDS)},
        label_selector={"type": "str"},
        metric_filter={"type": "str"},
        cpu_recording_rule={"type": "str"},
        window={"type": "str", "default": "7d"},
        min_history={"type": "str", "default": "24h"},
        step={"type": "str", "default": "1m"},
        rate_interval={"type": "str", "default": "5m"},
        cpu_percentile={"type": "float", "default": 95},
        cpu_headroom={"type": "float", "default": 0},
        memory_headroom={"type": "float", "default": 0.15},
        cpu_limit={"type": "str", "default": "none"},
        memory_limit={"type": "float", "default": 1},
        min_cpu={"type": "str", "default": "10m"},
        min_memory={"type": "str", "default": "64Mi"},
        max_step_down={"type": "float", "default": 0.5},
        leak_growth={"type": "float", "default": 0.2},
        istio_namespace={"type": "str", "default": "istio-system"},
        injector_configmap={"type": "str", "default": "istio-sidecar-injector"},
        mesh_configmap={"type": "str", "default": "istio"},
        output_dir={"type": "path"},
        title={"type": "str", "default": "Sidecar rightsizing"},
        apply={"type": "bool", "default": False},
        wait={"type": "bool", "default": False},
        wait_timeout={"type": "int", "default": 300},
        parallelism={"type": "int", "default": 8},
    )
    return spec


def query_prometheus(module, params, queries):
    """The answers to every query; fails the task naming the option to look at."""
    try:
        return read_usage(client_from_params(params, "prometheus_url", PROMETHEUS), queries, time.time())
    except PrometheusError as error:
        option = "metric_filter" if params.get("metric_filter") and "rejected query" in str(error) \
            else "prometheus_url"
        module.fail_json(msg=f"{option}: {error} (nothing was changed)", queries=dict(queries))


def recommendations(module, client, params, answers):
    """(resources, workloads, entries, defaults, unmapped pod count)."""
    selection = dict(params, state="present", names=None, workloads=None)
    resources, workloads = read_selected(module, client, selection)
    usages = pod_usage(answers)
    metric_owners = owners_from_metrics(answers)
    try:
        defaults, source = mesh_defaults(client, params)
        api_owners = read_api_owners(client, usages, metric_owners, workloads)
    except KubeError as error:
        fail_read(module, error, "the mesh defaults and pod owners")
    grouped = map_pods(usages, metric_owners, api_owners)
    entries = []
    for kind, workload in workloads:
        key = (kind, workload["metadata"]["namespace"], workload["metadata"]["name"])
        current, own = current_settings(workload, defaults)
        entries.append(recommend(kind, workload, grouped.pop(key, []), current, own, params))
    unmapped = sum(len(pods) for pods in grouped.values()) + \
        sum(1 for key in usages if key not in metric_owners and key not in api_owners)
    return resources, workloads, entries, dict(defaults, source=source), unmapped


def write_report(module, params, files):
    """Paths of the report files; writes those that differ (none in check mode). (paths, changed)."""
    directory = params["output_dir"]
    names = files_to_write(directory, files)
    if names and not module.check_mode:
        write_files(directory, files, names)
    return [os.path.join(directory, name) for name in files], bool(names)


def apply(module, client, params, resources, workloads, entries, result):
    """Write the resizes through the sidecar_resources engine; wait; fail naming what failed."""
    ratio = cpu_limit_ratio(params["cpu_limit"])
    wanted = {(e["kind"], e["namespace"], e["name"]): settings_wanted(written_settings(e, ratio))
              for e in entries if e["action"] == "resize"}
    changes = plan_changes(client, resources, workloads, wanted)
    outcome = apply_changes(module, client, changes, params["parallelism"], fail=False)
    result.update(outcome, changed=result["changed"] or outcome["changed"])
    failure = batch_failure(module, client, changes)
    if params["wait"] and not module.check_mode:
        wait_for_updated(module, client, resources, changes, result, failure)
    if failure:
        module.fail_json(msg=failure, **result)


def main():
    module = validated_module(argument_spec(), validate,
                              missing_libraries=[("PyYAML", YAML_IMPORT_ERROR)],
                              **connection_module_options(PROMETHEUS))
    params = module.params
    hide_secrets(module, urls=[params["prometheus_url"]], headers=params["prometheus_headers"])
    queries = build_queries(params)
    answers = query_prometheus(module, params, queries)
    client = KubeClient.from_module(module)
    resources, workloads, entries, defaults, unmapped = recommendations(module, client, params, answers)
    summary = totals(entries)
    result = {"changed": False, "recommendations": entries, "totals": summary,
              "tune_sidecars": tune_entries(entries, params),
              "rollback": rollback_entries(entries, params), "queries": dict(queries),
              "mesh_defaults": defaults, "unmapped_pods": unmapped}
    if params["output_dir"]:
        meta = {"window": params["window"], "queries": len(queries),
                "cpu_percentile": params["cpu_percentile"], "mesh_defaults": defaults}
        files = report_files(params["title"], entries, summary, meta, params)
        result["report_files"], result["changed"] = write_report(module, params, files)
    if params["apply"]:
        apply(module, client, params, resources, workloads, entries, result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
