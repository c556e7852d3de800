# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Sidecar rightsizing: per-workload istio-proxy requests, limits and concurrency from what the
proxies used, as Prometheus recorded it.

Cost is constant in the number of workloads: a fixed set of instant queries whose subqueries and
range functions evaluate the window inside Prometheus (QUERY_COUNT of them), each answering for
every pod of the selected namespaces at once. With a recording rule of the per-pod CPU rate
(cpu_recording_rule) the CPU percentile reads the recorded samples instead of a subquery.

Pods are mapped to their workloads through kube-state-metrics (kube_pod_owner,
kube_replicaset_owner) and, for pods it does not know, through the API (pod owners, the
ReplicaSets of every kept generation, the pod names a controller gives).

The numbers (docs/rightsizing.md says why):
- CPU request: the `cpu_percentile` of each pod's usage rate over the window, the busiest pod of
  the workload, x (1 + cpu_headroom), rounded up to 5m, at least min_cpu.
- memory request: the largest working set of any of its pods, x (1 + memory_headroom), rounded up
  to 1Mi, at least min_memory. A leak suspect (memory growing steadily) keeps its current value.
- a cut is at most max_step_down of the current request per run.
- limits: cpu_limit none (the current limit stays, raised to the request if below it) or a ratio
  of the request; memory_limit a ratio of the request.
- concurrency: the request in whole cores rounded up, never above the CPU limit in whole cores,
  at least 1.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import re
from collections import OrderedDict
from decimal import Decimal

from ansible_collections.meshtune.mesh.plugins.module_utils.prometheus import (
    add_connection_problems,
    parse_duration,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.reconcile import (
    add_option_problems,
    live_objects,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.report import (
    Section,
    Table,
    json_safe,
    render_html,
    render_markdown,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import (
    InvalidOption,
    Problems,
    check_name,
    parse_quantity,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.workloads import (
    PROXY_CONFIG,
    RESOURCE_ANNOTATIONS,
    InvalidProxyConfig,
    add_selection_problems,
    injector_resources,
    load_proxy_config,
    mesh_concurrency,
    opt_out_reason,
    template_annotations,
)

MIB = 1048576
CPU_STEP_MILLI = 5
# Prefix of the Prometheus connection options: kubernetes.core's auth options hold the plain names.
PROMETHEUS = "prometheus_"
# Istio's chart defaults (istiod values global.proxy.resources; ProxyConfig concurrency), used
# when the cluster's injector and mesh ConfigMaps do not say otherwise.
ISTIO_DEFAULTS = {"cpu_request": "100m", "cpu_limit": "2000m", "memory_request": "128Mi",
                  "memory_limit": "1024Mi", "concurrency": 2}
SETTINGS = ("cpu_request", "cpu_limit", "memory_request", "memory_limit", "concurrency")
_ANNOTATION = dict(RESOURCE_ANNOTATIONS)
_MATCHER = r'\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\\n]|\\.)*"\s*'
MATCHERS_RE = re.compile(rf"\A{_MATCHER}(?:,{_MATCHER})*,?\s*\Z")
METRIC_NAME_RE = re.compile(r"\A[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
QUERY_NAMES = ("cpu", "memory", "growth", "recent_growth", "first", "last", "pod_owner",
               "replicaset_owner")
QUERY_COUNT = len(QUERY_NAMES)
HISTORY_STEPS = 200


# ---- options ---------------------------------------------------------------------------------

def _number_at_least(problems, option, value, minimum, expected, maximum=None):
    if value is None or not math.isfinite(value) or value < minimum or \
            (maximum is not None and value > maximum):
        problems.add(option, expected, value)


def cpu_limit_ratio(value):
    """None for `none`, else the ratio as a float; InvalidOption otherwise."""
    text = str(value).strip().lower()
    if text == "none":
        return None
    try:
        ratio = float(text)
    except ValueError:
        ratio = float("nan")
    if not math.isfinite(ratio) or ratio < 1:
        raise InvalidOption("cpu_limit", "none, or a ratio of the CPU request of at least 1 "
                                         "(such as 2)", value)
    return ratio


def check_matchers(path, value):
    """Extra PromQL label matchers, such as cluster="eu-1",team=~"shop|pay"."""
    if value is not None and not MATCHERS_RE.match(value):
        raise InvalidOption(path, 'PromQL label matchers such as cluster="eu-1" or '
                                  'cluster="eu-1",node!~"spot-.*"', value)
    return value


def validate(params):
    """Every problem with the options, as one message; None when all is well."""
    problems = Problems()
    add_selection_problems(problems, params)
    add_connection_problems(problems, params, "prometheus_url", PROMETHEUS)
    seconds = {option: problems.check(parse_duration, option, params[option])
               for option in ("window", "min_history", "step", "rate_interval")}
    if None not in (seconds["window"], seconds["step"]) and seconds["window"] < 2 * seconds["step"]:
        problems.add("window", f"a duration of at least two steps (step is {params['step']})",
                     params["window"])
    if None not in (seconds["window"], seconds["min_history"]) and \
            seconds["min_history"] > seconds["window"]:
        problems.add("min_history", f"a duration not longer than window ({params['window']})",
                     params["min_history"])
    _number_at_least(problems, "cpu_percentile", params["cpu_percentile"], 1,
                     "a percentile from 1 to 100", maximum=100)
    for option in ("cpu_headroom", "memory_headroom"):
        _number_at_least(problems, option, params[option], 0,
                         "a share of zero or more, such as 0.15 for 15 %")
    problems.check(cpu_limit_ratio, params["cpu_limit"])
    _number_at_least(problems, "memory_limit", params["memory_limit"], 1,
                     "a ratio of the memory request of at least 1 (1: limit = request)")
    _number_at_least(problems, "max_step_down", params["max_step_down"], 0,
                     "a share from 0 (never cut) to 1 (cut to the recommendation at once)", maximum=1)
    if not (math.isfinite(params["leak_growth"]) and params["leak_growth"] > 0):
        problems.add("leak_growth", "a share above 0 of the largest working set, such as 0.2",
                     params["leak_growth"])
    for option in ("min_cpu", "min_memory"):
        amount = problems.check(parse_quantity, option, params[option])
        if amount is not None and amount < 0:
            problems.add(option, "a quantity of zero or more", params[option])
    problems.check(check_matchers, "metric_filter", params.get("metric_filter"))
    if params.get("cpu_recording_rule") is not None and \
            not METRIC_NAME_RE.match(params["cpu_recording_rule"]):
        problems.add("cpu_recording_rule", "a metric name such as meshtune:istio_proxy_cpu_usage:rate5m",
                     params["cpu_recording_rule"])
    problems.check(check_name, "istio_namespace", params["istio_namespace"], label=True)
    for option in ("injector_configmap", "mesh_configmap"):
        problems.check(check_name, option, params[option])
    add_option_problems(problems, params)
    if params["wait_timeout"] < 1:
        problems.add("wait_timeout", "a number of seconds of at least 1", params["wait_timeout"])
    return problems.message()


# ---- Prometheus ------------------------------------------------------------------------------

def _duration(seconds):
    """Seconds as a PromQL duration (whole seconds; PromQL durations take no fractions)."""
    return f"{max(1, round(seconds))}s"


def build_queries(params):
    """OrderedDict name -> PromQL: QUERY_COUNT instant queries for all selected namespaces."""
    window = parse_duration("window", params["window"])
    step = _duration(parse_duration("step", params["step"]))
    rate = _duration(parse_duration("rate_interval", params["rate_interval"]))
    namespaces = "|".join(sorted(params["namespaces"]))
    extra = params.get("metric_filter")
    extra = f",{extra.strip().rstrip(',')}" if extra and extra.strip() else ""
    proxy = f'{{container="istio-proxy",namespace=~"{namespaces}"{extra}}}'
    memory = f"container_memory_working_set_bytes{proxy}"
    owners = f'{{namespace=~"{namespaces}"}}'
    span, half = _duration(window), _duration(window / 2)
    # The history's ends: the first and last step at which a pod had a sample, at 1/200 of the
    # window (finer buys nothing for min_history). `x * 0 + time()` is the step's time where x
    # exists; Prometheus evaluates it several times faster than timestamp(x) in a subquery.
    coarse = _duration(max(parse_duration("step", params["step"]), window / HISTORY_STEPS))
    present = f"({memory} * 0 + time())[{span}:{coarse}]"
    quantile = params["cpu_percentile"] / 100.0
    recorded = params.get("cpu_recording_rule")
    if recorded:  # the rates Prometheus recorded as it scraped: no subquery to evaluate
        usage = f'{recorded}{{namespace=~"{namespaces}"{extra}}}[{span}]'
    else:
        usage = f"rate(container_cpu_usage_seconds_total{proxy}[{rate}])[{span}:{step}]"
    return OrderedDict([
        ("cpu", f"max by (namespace, pod) (quantile_over_time({quantile:g}, {usage}))"),
        ("memory", f"max by (namespace, pod) (max_over_time({memory}[{span}]))"),
        ("growth", f"max by (namespace, pod) (deriv({memory}[{span}]))"),
        ("recent_growth", f"max by (namespace, pod) (deriv({memory}[{half}]))"),
        ("first", f"min by (namespace, pod) (min_over_time({present}))"),
        ("last", f"max by (namespace, pod) (max_over_time({present}))"),
        ("pod_owner", f"max by (namespace, pod, owner_kind, owner_name) "
                      f"(max_over_time(kube_pod_owner{owners}[{span}]))"),
        ("replicaset_owner", f"max by (namespace, replicaset, owner_kind, owner_name) "
                             f"(max_over_time(kube_replicaset_owner{owners}[{span}]))"),
    ])


def read_usage(client, queries, time):
    """{name: [samples]} of every query, evaluated at the same `time`; PrometheusError on failure."""
    answers = OrderedDict()
    for name, query in queries.items():
        converted, _warnings = client.instant(name, query, time)
        answers[name] = converted["result"] if converted["result_type"] == "vector" else []
    return answers


def _by_pod(samples):
    return {(s["metric"].get("namespace"), s["metric"].get("pod")): s["value"] for s in samples
            if "value" in s and math.isfinite(s["value"])}


class PodUsage:
    """What one pod's sidecar used over the window."""

    def __init__(self, cpu=None, memory=None, growth=None, recent_growth=None, first=None, last=None):
        self.cpu, self.memory = cpu, memory
        self.growth, self.recent_growth = growth, recent_growth
        self.first, self.last = first, last

    def grew_steadily(self, share):
        """Memory rising over its whole life by at least `share` of its largest working set, and
        still rising over the last half of the window."""
        if None in (self.growth, self.recent_growth, self.first, self.last, self.memory) or \
                self.memory <= 0:
            return False
        risen = self.growth * (self.last - self.first)
        return risen >= share * self.memory and self.recent_growth > 0


def pod_usage(answers):
    """{(namespace, pod): PodUsage} from the query answers."""
    columns = {name: _by_pod(answers[name]) for name in
               ("cpu", "memory", "growth", "recent_growth", "first", "last")}
    pods = set()
    for values in columns.values():
        pods.update(values)
    return {pod: PodUsage(**{name: values.get(pod) for name, values in columns.items()})
            for pod in pods if pod[0] and pod[1]}


WORKLOAD_OWNERS = {"Deployment", "StatefulSet", "DaemonSet"}


def owners_from_metrics(answers):
    """{(namespace, pod): (kind, workload name)} from kube-state-metrics' owner series."""
    replicasets = {}
    for sample in answers["replicaset_owner"]:
        metric = sample["metric"]
        if metric.get("owner_kind") == "Deployment":
            replicasets[(metric.get("namespace"), metric.get("replicaset"))] = metric.get("owner_name")
    owners = {}
    for sample in answers["pod_owner"]:
        metric = sample["metric"]
        key = (metric.get("namespace"), metric.get("pod"))
        kind, name = metric.get("owner_kind"), metric.get("owner_name")
        if kind == "ReplicaSet" and (key[0], name) in replicasets:
            owners[key] = ("Deployment", replicasets[(key[0], name)])
        elif kind in WORKLOAD_OWNERS:
            owners[key] = (kind, name)
    return owners


# ---- the API: owners of pods kube-state-metrics does not know, current values ----------------

def _controller(obj):
    for reference in (obj.get("metadata") or {}).get("owner_references") or \
            (obj.get("metadata") or {}).get("ownerReferences") or []:
        if reference.get("controller"):
            return reference.get("kind"), reference.get("name")
    return None


def owners_from_api(pods, live_pods, replicasets, workloads):
    """{(namespace, pod): (kind, name)} for `pods`, from the live pods' owners, the ReplicaSets
    of every kept generation (pod = <replicaset>-<suffix>) and the names controllers give
    (<statefulset>-<ordinal>, <daemonset>-<suffix>, <deployment>-<hash>-<suffix>)."""
    rs_owner = {}
    for (namespace, name), replicaset in replicasets.items():
        owner = _controller(replicaset)
        if owner and owner[0] == "Deployment":
            rs_owner[(namespace, name)] = owner[1]
    patterns = []
    for kind, obj in workloads:
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        shape = {"StatefulSet": r"[0-9]+", "DaemonSet": r"[a-z0-9]{5}",
                 "Deployment": r"[a-z0-9]{5,10}-[a-z0-9]{5}"}[kind]
        patterns.append((namespace, re.compile(re.escape(name) + "-" + shape + r"\Z"), kind, name))
    owners = {}
    for namespace, pod in pods:
        owner = _controller(live_pods.get((namespace, pod)) or {})
        if owner and owner[0] == "ReplicaSet":
            owner = ("Deployment", rs_owner[(namespace, owner[1])]) \
                if (namespace, owner[1]) in rs_owner else None
        if owner is None:
            replicaset = pod.rsplit("-", 1)[0]
            if (namespace, replicaset) in rs_owner:
                owner = ("Deployment", rs_owner[(namespace, replicaset)])
        if owner is None:
            owner = next(((kind, name) for ns, pattern, kind, name in patterns
                          if ns == namespace and pattern.match(pod)), None)
        if owner and owner[0] in WORKLOAD_OWNERS:
            owners[(namespace, pod)] = owner
    return owners


def read_owner_objects(client, namespaces):
    """(live pods, ReplicaSets), each keyed by (namespace, name): one list per namespace each."""
    pods = live_objects(client, client.resource("v1", "Pod"), namespaces)
    replicasets = live_objects(client, client.resource("apps/v1", "ReplicaSet"), namespaces)
    return pods, replicasets


def mesh_defaults(client, params):
    """(settings, source): the injector's sidecar resources and the mesh's concurrency, read from
    the cluster's ConfigMaps; Istio's chart defaults for what they do not say."""
    defaults = dict(ISTIO_DEFAULTS)
    configmaps = client.resource("v1", "ConfigMap")
    namespace = params["istio_namespace"]
    found = []
    injector = client.get(configmaps, namespace, params["injector_configmap"])
    if injector:
        resources = injector_resources(injector)
        for option, (part, resource) in (("cpu_request", ("requests", "cpu")),
                                         ("memory_request", ("requests", "memory")),
                                         ("cpu_limit", ("limits", "cpu")),
                                         ("memory_limit", ("limits", "memory"))):
            if resource in resources[part]:
                defaults[option] = resources[part][resource]
        found.append(f"ConfigMap {namespace}/{params['injector_configmap']}")
    mesh = client.get(configmaps, namespace, params["mesh_configmap"])
    if mesh:
        concurrency = mesh_concurrency(mesh)
        if concurrency is not None:
            defaults["concurrency"] = concurrency
        found.append(f"ConfigMap {namespace}/{params['mesh_configmap']}")
    source = " and ".join(found) if found else "Istio's chart defaults (no injector ConfigMap found)"
    return defaults, source


def current_settings(workload, defaults):
    """(settings, from_annotations): what the workload's sidecar runs with, as strings/ints, and
    which of them its pod template sets itself."""
    annotations = template_annotations(workload)
    current, own = {}, []
    for option in SETTINGS[:4]:
        value = annotations.get(_ANNOTATION[option])
        try:
            parse_quantity(option, value)
        except InvalidOption:
            value = None
        current[option] = value if value is not None else defaults[option]
        if value is not None:
            own.append(option)
    try:
        concurrency = load_proxy_config(annotations.get(PROXY_CONFIG)).get("concurrency")
    except InvalidProxyConfig:
        concurrency = None
    if isinstance(concurrency, int) and not isinstance(concurrency, bool):
        current["concurrency"] = concurrency
        own.append("concurrency")
    else:
        current["concurrency"] = defaults["concurrency"]
    return current, own


# ---- the numbers -----------------------------------------------------------------------------

def millicores(value):
    return int((parse_quantity("cpu", value) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def byte_count(value):
    return int(parse_quantity("memory", value).to_integral_value(rounding="ROUND_CEILING"))


def _up(value, unit):
    """`value` rounded up to a multiple of `unit` (a little slack for float noise)."""
    return math.ceil(value / unit - 1e-9) * unit


def cpu_text(milli):
    return f"{milli}m"


def memory_text(count):
    return f"{count // MIB}Mi" if count % MIB == 0 else str(count)


def _mib(count):
    return f"{count / MIB:.1f}Mi"


def _replicas(kind, workload, pods_seen):
    spec, status = workload.get("spec") or {}, workload.get("status") or {}
    if kind == "DaemonSet":
        desired = status.get("desiredNumberScheduled")
        return desired if isinstance(desired, int) else pods_seen
    replicas = spec.get("replicas")
    return replicas if isinstance(replicas, int) else 1


def _history(usages):
    """Seconds between the first and the last sample of any of the workload's pods."""
    firsts = [u.first for u in usages if u.first is not None]
    lasts = [u.last for u in usages if u.last is not None]
    return (max(lasts) - min(firsts)) if firsts and lasts else 0.0


def _skip_reason(workload, usages, history, params):
    reason = opt_out_reason(workload)
    if reason is None and not (any(u.cpu is not None for u in usages) and
                               any(u.memory is not None for u in usages)):
        reason = "no istio-proxy CPU and memory series in Prometheus over the window"
    if reason is None and history < parse_duration("min_history", params["min_history"]):
        reason = (f"too little history: {history / 3600.0:.1f}h of data, less than min_history "
                  f"({params['min_history']})")
    return reason


def _bounded(amount, unit, floor, floor_text, current, current_text, params, why):
    """`amount` raised to the floor, then to the step-down cap below `current`; notes in `why`."""
    if amount < floor:
        amount = _up(floor, unit)
        why.append(f"raised to {floor_text}")
    lowest = _up(current * (1 - params["max_step_down"]), unit)
    if amount < lowest:
        amount = lowest
        why.append(f"cut capped at {params['max_step_down']:.0%} of {current_text} (max_step_down)")
    return amount, "; ".join(why)


def _cpu_request(usage, current, params):
    """(millicores, reason): the percentile x (1 + headroom), rounded, floored, capped."""
    wanted = usage * (1 + params["cpu_headroom"]) * 1000
    milli = _up(wanted, CPU_STEP_MILLI)
    why = [f"p{params['cpu_percentile']:g} of the busiest pod {usage * 1000:.1f}m x "
           f"{1 + params['cpu_headroom']:g} = {wanted:.1f}m, rounded up to {milli}m"]
    return _bounded(milli, CPU_STEP_MILLI, millicores(params["min_cpu"]), f"min_cpu {params['min_cpu']}",
                    millicores(current["cpu_request"]), current["cpu_request"], params, why)


def _memory_request(peak, leak, current, params):
    """(bytes, reason): the largest working set x (1 + headroom), rounded, floored, capped; a
    leak suspect keeps its current request."""
    if leak:
        worst = max(leak, key=lambda u: u.growth)
        return byte_count(current["memory_request"]), (
            f"leak suspect: working set grew {worst.growth * 3600 / MIB:.1f}Mi/h steadily over the "
            f"window (largest {_mib(peak)}); left at {current['memory_request']}, investigate "
            "before sizing it")
    memory = _up(peak * (1 + params["memory_headroom"]), MIB)
    why = [f"largest working set {_mib(peak)} x {1 + params['memory_headroom']:g}, rounded up "
           f"to {memory // MIB}Mi"]
    return _bounded(memory, MIB, byte_count(params["min_memory"]), f"min_memory {params['min_memory']}",
                    byte_count(current["memory_request"]), current["memory_request"], params, why)


def _cpu_limit(milli, current, params):
    """(limit in millicores or None, limit text, reason)."""
    ratio = cpu_limit_ratio(params["cpu_limit"])
    if ratio is not None:
        limit = _up(milli * ratio, CPU_STEP_MILLI)
        return limit, cpu_text(limit), f"{ratio:g} x the request"
    limit = millicores(current["cpu_limit"]) if current["cpu_limit"] is not None else None
    if limit is not None and limit < milli:
        return milli, cpu_text(milli), (f"cpu_limit none, but the current limit {current['cpu_limit']} "
                                        "is below the new request: raised to the request")
    return limit, current["cpu_limit"], "cpu_limit none: the current limit is left as it is"


def _concurrency(milli, limit):
    """The request in whole cores rounded up, at most the limit in whole cores, at least 1."""
    threads = max(1, math.ceil(milli / 1000.0 - 1e-9))
    if limit is not None:
        threads = max(1, min(threads, limit // 1000))
    return threads, ("the request in whole cores, rounded up" +
                     (", at most the CPU limit in whole cores" if limit is not None else "") +
                     ", at least 1")


def recommend(kind, workload, usages, current, own, params):
    """One workload's recommendation: current -> recommended values, with a reason for each."""
    meta = workload["metadata"]
    history = _history(usages)
    cpu_values = [u.cpu for u in usages if u.cpu is not None]
    memory_values = [u.memory for u in usages if u.memory is not None]
    entry = OrderedDict([
        ("kind", kind), ("namespace", meta["namespace"]), ("name", meta["name"]), ("pods", len(usages)),
        ("replicas", _replicas(kind, workload, len(usages))), ("current", dict(current)),
        ("current_source", "pod template annotations" if len(own) == len(SETTINGS) else
         ("pod template annotations and mesh defaults" if own else "mesh defaults")),
        ("annotated", sorted(own)), ("history_hours", round(history / 3600.0, 2)),
        ("usage", {"cpu_cores": max(cpu_values) if cpu_values else None,
                   "memory_bytes": max(memory_values) if memory_values else None})])
    skip = _skip_reason(workload, usages, history, params)
    if skip:
        entry.update(action="skipped", reason=skip, recommended=dict(current), reasons={},
                     leak_suspect=False)
        return entry
    leak = [u for u in usages if u.grew_steadily(params["leak_growth"])]
    reasons = OrderedDict()
    milli, reasons["cpu_request"] = _cpu_request(max(cpu_values), current, params)
    memory, reasons["memory_request"] = _memory_request(max(memory_values), leak, current, params)
    limit, limit_text, reasons["cpu_limit"] = _cpu_limit(milli, current, params)
    if leak:  # a lower limit would only bring the next OOM kill closer
        memory_limit = max(byte_count(current["memory_limit"]), memory)
        reasons["memory_limit"] = "leak suspect: the current limit is left as it is"
    else:
        memory_limit = _up(memory * params["memory_limit"], MIB)
        reasons["memory_limit"] = f"{params['memory_limit']:g} x the request"
    threads, reasons["concurrency"] = _concurrency(milli, limit)
    recommended = OrderedDict([("cpu_request", cpu_text(milli)), ("cpu_limit", limit_text),
                               ("memory_request", memory_text(memory)),
                               ("memory_limit", memory_text(memory_limit)), ("concurrency", threads)])
    entry.update(recommended=recommended, reasons=reasons, leak_suspect=bool(leak),
                 action="resize" if _differs(current, recommended) else "keep")
    return entry


def _differs(current, recommended):
    for option in SETTINGS[:4]:
        before, after = current.get(option), recommended.get(option)
        if after is None:
            continue
        if before is None or parse_quantity(option, before) != parse_quantity(option, after):
            return True
    return current["concurrency"] != recommended["concurrency"]


def written_settings(entry, cpu_limit_ratio_value):
    """The settings a resize writes: all but a CPU limit that cpu_limit none leaves alone."""
    settings = OrderedDict((option, entry["recommended"][option]) for option in SETTINGS)
    if cpu_limit_ratio_value is None and entry["recommended"]["cpu_limit"] == entry["current"]["cpu_limit"]:
        settings.pop("cpu_limit")
    return settings


def totals(entries):
    """Requested CPU (cores) and memory (bytes) over all replicas, before and after."""
    result = OrderedDict((key, Decimal(0)) for key in
                         ("cpu_before", "cpu_after", "memory_before", "memory_after"))
    for entry in entries:
        replicas = entry["replicas"]
        result["cpu_before"] += parse_quantity("cpu", entry["current"]["cpu_request"]) * replicas
        result["cpu_after"] += parse_quantity("cpu", entry["recommended"]["cpu_request"]) * replicas
        result["memory_before"] += parse_quantity("memory", entry["current"]["memory_request"]) * replicas
        result["memory_after"] += parse_quantity("memory", entry["recommended"]["memory_request"]) * replicas
    return OrderedDict([("cpu_request_cores_before", float(result["cpu_before"])),
                        ("cpu_request_cores_after", float(result["cpu_after"])),
                        ("memory_request_bytes_before", int(result["memory_before"])),
                        ("memory_request_bytes_after", int(result["memory_after"])),
                        ("workloads", len(entries)),
                        ("resized", sum(1 for e in entries if e["action"] == "resize")),
                        ("skipped", sum(1 for e in entries if e["action"] == "skipped")),
                        ("leak_suspects", sum(1 for e in entries if e.get("leak_suspect")))])


def tune_entries(entries, params):
    """The resizes in the tune_sidecars form: one meshtune.mesh.sidecar_resources option set."""
    ratio = cpu_limit_ratio(params["cpu_limit"])
    resized = [e for e in entries if e["action"] == "resize"]
    if not resized:
        return []
    return [OrderedDict([
        ("namespaces", sorted({e["namespace"] for e in resized})),
        ("kinds", [kind for kind in params["kinds"] if any(e["kind"] == kind for e in resized)]),
        ("workloads", [OrderedDict([("kind", e["kind"]), ("namespace", e["namespace"]),
                                    ("name", e["name"]), *written_settings(e, ratio).items()])
                       for e in resized]),
    ])]


def rollback_entries(entries, params):
    """tune_sidecars entries that put the resized workloads back as they were, in this order: the
    removal of the annotations they did not have (state absent), then their own old values."""
    ratio = cpu_limit_ratio(params["cpu_limit"])
    restore, remove = [], []
    for entry in entries:
        if entry["action"] != "resize":
            continue
        written = written_settings(entry, ratio)
        key = OrderedDict([("kind", entry["kind"]), ("namespace", entry["namespace"]),
                           ("name", entry["name"])])
        own = [option for option in written if option in entry["annotated"]]
        gone = [option for option in written if option not in entry["annotated"]]
        if own:
            restore.append(OrderedDict(key, **{option: entry["current"][option] for option in own}))
        if gone:
            remove.append(OrderedDict(key, **{option: entry["recommended"][option] for option in gone}))
    result = []
    # Removals first: a restored limit never meets a new request above it.
    for state, listed in (("absent", remove), ("present", restore)):
        if listed:
            result.append(OrderedDict([("namespaces", sorted({e["namespace"] for e in listed})),
                                       ("kinds", sorted({e["kind"] for e in listed})),
                                       ("state", state), ("workloads", listed)]))
    return result


# ---- the report ------------------------------------------------------------------------------

def _cores(value):
    return f"{value:.3f}"


def document(entries, summary, meta):
    """Sections of rightsize.md / rightsize.html."""
    intro = (f"Sidecar (istio-proxy) requests, limits and concurrency per workload, from "
             f"{meta['window']} of Prometheus data ({meta['queries']} queries for "
             f"{len(entries)} workloads). CPU: p{meta['cpu_percentile']:g} of each pod's usage, "
             f"memory: the largest working set; see docs/rightsizing.md.")
    mesh = Table(["", "before", "after", "change"], [
        ["requested CPU (cores)", _cores(summary["cpu_request_cores_before"]),
         _cores(summary["cpu_request_cores_after"]),
         _cores(summary["cpu_request_cores_after"] - summary["cpu_request_cores_before"])],
        ["requested memory (MiB)", f"{summary['memory_request_bytes_before'] / MIB:.0f}",
         f"{summary['memory_request_bytes_after'] / MIB:.0f}",
         f"{(summary['memory_request_bytes_after'] - summary['memory_request_bytes_before']) / MIB:.0f}"],
    ], [False, True, True, True])
    counts = (f"{summary['workloads']} workloads: {summary['resized']} to resize, "
              f"{summary['skipped']} skipped, {summary['leak_suspects']} leak suspect(s).")
    rows = []
    for e in entries:
        cur, rec = e["current"], e["recommended"]

        def pair(option, cur=cur, rec=rec):
            return f"{cur[option]} → {rec[option]}" if cur[option] != rec[option] else str(cur[option])

        why = e.get("reason") or "; ".join(f"{k}: {v}" for k, v in e["reasons"].items())
        rows.append([e["namespace"], f"{e['kind']} {e['name']}", str(e["pods"]),
                     f"{e['history_hours']:g}h", pair("cpu_request"), pair("cpu_limit"),
                     pair("memory_request"), pair("memory_limit"), pair("concurrency"),
                     e["action"] + (" (leak suspect)" if e.get("leak_suspect") else ""), why])
    table = Table(["namespace", "workload", "pods", "history", "CPU request", "CPU limit",
                   "memory request", "memory limit", "concurrency", "action", "why"], rows,
                  [False, False, True, True, True, True, True, True, True, False, False])
    return [Section(None, [intro]), Section("Mesh totals (requests x replicas)", [counts, mesh]),
            Section("Workloads", [table])]


def report_files(title, entries, summary, meta, params):
    """OrderedDict file name -> bytes: rightsize.json (with the tune_sidecars and rollback
    entries, to apply or undo later), rightsize.md, rightsize.html."""
    sections = document(entries, summary, meta)
    data = OrderedDict([("title", title), ("meta", meta), ("totals", summary),
                        ("recommendations", entries), ("tune_sidecars", tune_entries(entries, params)),
                        ("rollback", rollback_entries(entries, params))])
    return OrderedDict([
        ("rightsize.json", (json.dumps(json_safe(data), indent=2, ensure_ascii=False, allow_nan=False)
                            + "\n").encode("utf-8")),
        ("rightsize.md", render_markdown(title, sections).encode("utf-8")),
        ("rightsize.html", render_html(title, sections).encode("utf-8")),
    ])


def map_pods(usages, metric_owners, api_owners):
    """{(kind, namespace, name): [PodUsage]} of the pods whose workload is known."""
    grouped = {}
    for key, usage in usages.items():
        owner = metric_owners.get(key) or api_owners.get(key)
        if owner:
            grouped.setdefault((owner[0], key[0], owner[1]), []).append(usage)
    return grouped


def read_api_owners(client, usages, metric_owners, workloads):
    """owners_from_api for the pods kube-state-metrics did not map (no request when it mapped all)."""
    unknown = [key for key in usages if key not in metric_owners]
    if not unknown:
        return {}
    namespaces = sorted({namespace for namespace, _pod in unknown})
    live_pods, replicasets = read_owner_objects(client, namespaces)
    return owners_from_api(unknown, live_pods, replicasets, workloads)
