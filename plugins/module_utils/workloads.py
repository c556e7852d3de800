# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Istio sidecar settings on workloads meshtune does not own: select, compute, patch, wait.

The settings live in pod-template annotations of Deployments, StatefulSets and DaemonSets. The
workloads belong to their teams, so meshtune never replaces them: it reads them with one list call
per namespace and kind, computes which of *its* annotations differ, and writes one JSON merge patch
per workload that touches only `spec.template.metadata.annotations`. Changing a pod template
restarts the pods, so an unchanged workload is never written, and `wait_for_rollouts` can follow
the restarts to the end.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import time
from collections import namedtuple

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import KubeError, fail_read
from ansible_collections.meshtune.mesh.plugins.module_utils.reconcile import (
    Change,
    add_option_problems,
    batch_result,
    live_objects,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import (
    InvalidOption,
    Problems,
    check_label_key,
    check_label_value,
    check_name,
    check_quantity_pair,
    check_range,
    parse_quantity,
)

try:
    import yaml

    YAML_IMPORT_ERROR = None
except ImportError as err:  # reported by the module through missing_required_lib
    YAML_IMPORT_ERROR = err

API_VERSION = "apps/v1"
KINDS = ("Deployment", "StatefulSet", "DaemonSet")
# Option name -> pod-template annotation Istio's injector reads (Kubernetes quantities).
RESOURCE_ANNOTATIONS = (
    ("cpu_request", "sidecar.istio.io/proxyCPU"),
    ("cpu_limit", "sidecar.istio.io/proxyCPULimit"),
    ("memory_request", "sidecar.istio.io/proxyMemory"),
    ("memory_limit", "sidecar.istio.io/proxyMemoryLimit"),
)
PROXY_CONFIG = "proxy.istio.io/config"
INJECT = "sidecar.istio.io/inject"
SETTING_OPTIONS = (*(option for option, _annotation in RESOURCE_ANNOTATIONS), "concurrency")
# Request/limit annotation pairs the injector turns into one container's resources.
QUANTITY_PAIRS = (("sidecar.istio.io/proxyCPU", "sidecar.istio.io/proxyCPULimit"),
                  ("sidecar.istio.io/proxyMemory", "sidecar.istio.io/proxyMemoryLimit"))
# Istio reads sidecar.istio.io/inject like YAML 1.1 booleans; these values switch injection off.
OPT_OUT_VALUES = ("false", "n", "no", "off")
MAX_CONCURRENCY = 64
MAX_CONFLICT_RETRIES = 5
FIRST_POLL = 0.5
MAX_POLL = 5.0

# Label selector syntax as the API server parses it (k8s.io/apimachinery/pkg/labels): tokens end
# at whitespace (space, tab, CR, LF only) or at one of !=(),<>; the keys and values found are then
# checked as label keys and values.
_SELECTOR_SPACE = r"[ \t\r\n]"
_SELECTOR_TOKEN = r"[^ \t\r\n!=(),<>]+"
_SELECTOR_REQUIREMENTS = [re.compile(pattern) for pattern in (
    rf"\A{_SELECTOR_SPACE}*!?{_SELECTOR_SPACE}*(?P<key>{_SELECTOR_TOKEN}){_SELECTOR_SPACE}*\Z",
    rf"\A{_SELECTOR_SPACE}*(?P<key>{_SELECTOR_TOKEN}){_SELECTOR_SPACE}*(?:==|=|!=)"
    rf"{_SELECTOR_SPACE}*(?P<value>{_SELECTOR_TOKEN})?{_SELECTOR_SPACE}*\Z",
    rf"\A{_SELECTOR_SPACE}*(?P<key>{_SELECTOR_TOKEN}){_SELECTOR_SPACE}+(?:in|notin){_SELECTOR_SPACE}*"
    rf"\((?P<values>[^()]*)\){_SELECTOR_SPACE}*\Z",
    rf"\A{_SELECTOR_SPACE}*(?P<key>{_SELECTOR_TOKEN}){_SELECTOR_SPACE}*[<>]{_SELECTOR_SPACE}*"
    rf"(?P<number>[0-9]+){_SELECTOR_SPACE}*\Z",
)]
_SELECTOR_SET_VALUE = re.compile(rf"\A{_SELECTOR_SPACE}*(?P<value>{_SELECTOR_TOKEN})?{_SELECTOR_SPACE}*\Z")
SELECTOR_EXPECTED = "a label selector such as app=web,tier in (api,db),!legacy"
INT64_MAX = 2 ** 63 - 1

# What one call asks for. `annotations` maps annotation -> value to set, or None to remove it;
# `concurrency` is the value to merge into proxy.istio.io/config (None with touch_concurrency:
# remove the key); touch_concurrency False leaves that annotation alone.
Wanted = namedtuple("Wanted", ["annotations", "concurrency", "touch_concurrency"])


class InvalidProxyConfig(ValueError):
    """A live proxy.istio.io/config annotation that is not a YAML mapping."""


# ---- validation -----------------------------------------------------------------------------

def check_label_selector(path, value):
    """A label selector as `kubectl get -l` takes it: `app=web,tier in (a,b),!legacy`.

    Checked as the API server checks it: the syntax, then each key as a label key and each value
    as a label value (`<` and `>` take an integer).
    """
    if not isinstance(value, str):
        raise InvalidOption(path, SELECTOR_EXPECTED, value)
    for requirement in _split_selector(value):
        problem = _requirement_problem(requirement)
        if problem:
            raise InvalidOption(path, f"{SELECTOR_EXPECTED} ({problem})", value)
    return value


def _requirement_problem(requirement):
    """What is wrong with one requirement of a selector, or None."""
    match = next((m for m in (p.match(requirement) for p in _SELECTOR_REQUIREMENTS) if m), None)
    if match is None:
        return f"{requirement!r} is not a requirement such as key, !key, key=value, key!=value, " \
               "key in (a,b), key notin (a,b), key<1 or key>1"
    groups = match.groupdict()
    values = [groups.get("value") or ""]
    if groups.get("values") is not None:
        values = [_SELECTOR_SET_VALUE.match(item) for item in groups["values"].split(",")]
        if not all(values):
            return f"{requirement!r}: the values in ( ) are label values separated by commas"
        values = [item.group("value") or "" for item in values]
    if groups.get("number") is not None:
        values = [groups["number"]]
        if int(groups["number"]) > INT64_MAX:
            return f"{requirement!r}: {groups['number']} is beyond the largest 64-bit integer"
    try:
        check_label_key("key", groups["key"])
        for item in values:
            check_label_value("value", item)
    except InvalidOption as error:
        return f"in {requirement!r}, {error.value!r} is not {error.expected}"
    return None


def _split_selector(selector):
    """Requirements of a selector: split on commas outside `( ... )` value sets."""
    parts, depth, current = [], 0, []
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _check_quantity(path, value):
    """True when `value` is unset or a quantity of zero or more; InvalidOption otherwise."""
    if value is not None and parse_quantity(path, value) < 0:
        raise InvalidOption(path, "a quantity of zero or more, such as 100m or 128Mi", value)
    return True


def _check_list(problems, option, values, label):
    if not values:
        if option == "namespaces":
            problems.add(option, "at least one namespace", values)
        else:
            problems.add(option, "at least one name, or the option left out", values)
        return
    for index, value in enumerate(values):
        problems.check(check_name, f"{option}[{index}]", value, label=label)
    if len(set(values)) != len(values):
        problems.add(option, "each entry once", values)


def add_selection_problems(problems, params):
    """Add to validate.Problems what is wrong with namespaces, names, kinds and label_selector."""
    _check_list(problems, "namespaces", params["namespaces"], label=True)
    if params.get("names") is not None:
        _check_list(problems, "names", params["names"], label=False)
    kinds = params.get("kinds") or []
    if not kinds:
        problems.add("kinds", f"at least one of {', '.join(KINDS)}", kinds)
    elif len(set(kinds)) != len(kinds):
        problems.add("kinds", "each kind once", kinds)
    if params.get("label_selector"):
        problems.check(check_label_selector, "label_selector", params["label_selector"])


def _add_setting_problems(problems, settings, prefix=""):
    """Quantities, their request/limit pairs and concurrency of one set of settings."""
    for request, limit in (("cpu_request", "cpu_limit"), ("memory_request", "memory_limit")):
        well_formed = [problems.check(_check_quantity, prefix + option, settings.get(option))
                       for option in (request, limit)]
        if all(well_formed):
            problems.check(check_quantity_pair, prefix + request, settings.get(request),
                           prefix + limit, settings.get(limit))
    problems.check(check_range, prefix + "concurrency", settings.get("concurrency"), 0, MAX_CONCURRENCY)


def entry_settings(params, entry):
    """The settings of one `workloads` entry: its own, else the task-level ones."""
    return {option: entry[option] if entry.get(option) is not None else params.get(option)
            for option in SETTING_OPTIONS}


def _add_workload_entry_problems(problems, params):
    if params.get("names") is not None or params.get("label_selector"):
        problems.add("workloads", "no names or label_selector beside it (each entry names its "
                                  "workload)", "(given)")
    if not params["workloads"]:
        problems.add("workloads", "at least one entry, or the option left out", [])
    seen = set()
    for index, entry in enumerate(params["workloads"]):
        where = f"workloads[{index}]."
        if entry["kind"] not in params["kinds"]:
            problems.add(where + "kind", f"one of kinds ({', '.join(params['kinds'])})", entry["kind"])
        if entry["namespace"] not in params["namespaces"]:
            problems.add(where + "namespace", "one of namespaces", entry["namespace"])
        problems.check(check_name, where + "name", entry["name"])
        key = (entry["kind"], entry["namespace"], entry["name"])
        if key in seen:
            problems.add(where + "name", "each workload once", "/".join(key))
        seen.add(key)
        settings = entry_settings(params, entry)
        _add_setting_problems(problems, settings, where)
        if params["state"] == "present" and all(settings[o] is None for o in SETTING_OPTIONS):
            problems.add(where[:-1], "at least one setting (its own or the task's) with state=present",
                         None)


def validate(params):
    """Every problem with the options, as one message; None when all is well."""
    problems = Problems()
    add_selection_problems(problems, params)
    _add_setting_problems(problems, params)
    if params.get("workloads") is not None:
        _add_workload_entry_problems(problems, params)
    elif params["state"] == "present" and all(params.get(o) is None for o in SETTING_OPTIONS):
        problems.add(", ".join(SETTING_OPTIONS), "at least one setting with state=present", None)
    add_option_problems(problems, params)
    if params["wait_timeout"] < 1:
        problems.add("wait_timeout", "a number of seconds of at least 1", params["wait_timeout"])
    return problems.message()


def settings_wanted(settings, state="present"):
    """The Wanted of one set of settings (option -> value or None). With state=absent the named
    settings go, all of them when none is named."""
    if state == "present":
        annotations = {annotation: str(settings[option]) for option, annotation in RESOURCE_ANNOTATIONS
                       if settings.get(option) is not None}
        return Wanted(annotations, settings.get("concurrency"), settings.get("concurrency") is not None)
    named = [option for option in SETTING_OPTIONS if settings.get(option) is not None]
    everything = not named
    annotations = {annotation: None for option, annotation in RESOURCE_ANNOTATIONS
                   if everything or option in named}
    return Wanted(annotations, None, everything or "concurrency" in named)


def wanted_settings(params):
    """What the options ask for: one Wanted for every selected workload, or with `workloads` a
    dict (kind, namespace, name) -> Wanted."""
    if params.get("workloads") is None:
        return settings_wanted(params, params["state"])
    return {(entry["kind"], entry["namespace"], entry["name"]):
            settings_wanted(entry_settings(params, entry), params["state"])
            for entry in params["workloads"]}


# ---- annotations ----------------------------------------------------------------------------

def template_annotations(workload):
    """The pod template's annotations (a copy; {} when there are none)."""
    template = (workload.get("spec") or {}).get("template") or {}
    return dict((template.get("metadata") or {}).get("annotations") or {})


def opt_out_reason(workload):
    """Why Istio injects no sidecar into this workload's pods, or None when it does.

    Istio reads `sidecar.istio.io/inject` from the pod's labels first, then its annotations; the
    pods get the pod template's, so that is where to look.
    """
    template = (workload.get("spec") or {}).get("template") or {}
    meta = template.get("metadata") or {}
    for where in ("labels", "annotations"):
        value = (meta.get(where) or {}).get(INJECT)
        if value is not None:
            if str(value).strip().lower() in OPT_OUT_VALUES:
                singular = where[:-1]
                return f"sidecar injection is off (pod template {singular} {INJECT}={value})"
            return None
    return None


def _same_quantity(live, wanted):
    if live == wanted:
        return True
    try:
        return parse_quantity("live", live) == parse_quantity("wanted", wanted)
    except InvalidOption:
        return False


def load_proxy_config(text):
    """A live proxy.istio.io/config annotation as a dict; InvalidProxyConfig when it is not one."""
    try:
        config = yaml.safe_load(text) if text else None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise InvalidProxyConfig(f"annotation {PROXY_CONFIG} is not valid YAML{where}") from error
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise InvalidProxyConfig(f"annotation {PROXY_CONFIG} is not a YAML mapping "
                                 f"(a ProxyConfig such as 'concurrency: 2')")
    return config


def injector_resources(configmap):
    """The sidecar resources an injector ConfigMap (istio-sidecar-injector[-<rev>], key `values`)
    gives pods without resource annotations: {"requests": {...}, "limits": {...}} of strings,
    sections empty where it says nothing or cannot be read."""
    try:
        values = json.loads(((configmap or {}).get("data") or {}).get("values") or "{}")
    except ValueError:
        values = {}
    proxy = ((values.get("global") or {}).get("proxy") or {}) if isinstance(values, dict) else {}
    resources = proxy.get("resources") if isinstance(proxy, dict) else None
    resources = resources if isinstance(resources, dict) else {}
    return {section: {name: str(value) for name, value in (resources.get(section) or {}).items()
                      if value is not None}
            for section in ("requests", "limits")}


def mesh_concurrency(configmap):
    """The proxies' default worker threads in a mesh ConfigMap (istio[-<rev>], key `mesh`,
    defaultConfig.concurrency): a non-negative int, or None when it is unset or unreadable."""
    try:
        mesh = load_proxy_config(((configmap or {}).get("data") or {}).get("mesh"))
    except InvalidProxyConfig:
        return None
    value = (mesh.get("defaultConfig") or {}).get("concurrency")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def merge_proxy_config(text, concurrency):
    """The proxy.istio.io/config annotation with `concurrency` set (None: removed), other keys kept.

    Returns the new annotation text, or None when the config ends up empty. Raises
    InvalidProxyConfig when `text` is not a YAML mapping.
    """
    config = load_proxy_config(text)
    if concurrency is None:
        config.pop("concurrency", None)
    else:
        config["concurrency"] = concurrency
    if not config:
        return None
    return yaml.safe_dump(config, default_flow_style=False, sort_keys=False)


def _concurrency_differs(text, concurrency):
    """Whether the live config's concurrency differs from the wanted one (None: absent)."""
    config = load_proxy_config(text)
    if concurrency is None:
        return "concurrency" in config
    live = config.get("concurrency")
    return isinstance(live, bool) or live != concurrency


def annotation_updates(current, wanted):
    """Annotation -> new value (None: remove) for each of our annotations that must change.

    An empty result means the workload already matches. Quantities that are equal in value
    ("500m" and "0.5") count as unchanged: a rewrite would restart the pods for nothing. Raises
    InvalidProxyConfig when proxy.istio.io/config must be changed but cannot be read.
    """
    updates = {}
    for annotation, value in wanted.annotations.items():
        live = current.get(annotation)
        if value is None:
            if live is not None:
                updates[annotation] = None
        elif live is None or not _same_quantity(str(live), value):
            updates[annotation] = value
    if wanted.touch_concurrency:
        text = current.get(PROXY_CONFIG)
        if _concurrency_differs(text, wanted.concurrency):
            updates[PROXY_CONFIG] = merge_proxy_config(text, wanted.concurrency)
    return updates


def apply_updates(current, updates):
    """The annotations after `updates` (None removes a key), as a new dict."""
    result = dict(current)
    for key, value in updates.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def pair_problem(annotations):
    """Why these annotations would give the sidecar a limit below its request, or None.

    Checked on the result, live values included: setting only a CPU limit below a CPU request
    already on the workload would make every new pod fail validation.
    """
    for request_key, limit_key in QUANTITY_PAIRS:
        request, limit = annotations.get(request_key), annotations.get(limit_key)
        if request is None or limit is None:
            continue
        try:
            if parse_quantity(limit_key, limit) < parse_quantity(request_key, request):
                return (f"{limit_key}={limit} would be below {request_key}={request}; "
                        f"set both so that the limit is at least the request")
        except InvalidOption:
            continue
    return None


def build_patch(updates, resource_version=None):
    """The JSON merge patch for `updates`: only pod-template annotations (null removes one).

    With `resource_version`, the server refuses the patch (409) if the workload changed since it
    was read: used when proxy.istio.io/config is rewritten from its live value.
    """
    patch = {"spec": {"template": {"metadata": {"annotations": dict(updates)}}}}
    if resource_version:
        patch["metadata"] = {"resourceVersion": resource_version}
    return patch


def _annotation_view(annotations):
    return {"spec": {"template": {"metadata": {"annotations": dict(annotations)}}}}


# ---- selection, planning, writing -----------------------------------------------------------

def read_workloads(client, resources, namespaces, kinds, label_selector=None, names=None):
    """(kind, workload) pairs, read with reconcile.live_objects (one list per namespace and kind,
    or one cluster-wide list per kind for many namespaces), filtered by `names`.

    Ordered by namespace, then kind (in the given order), then name.
    """
    wanted_names = set(names) if names is not None else None
    by_kind = {kind: live_objects(client, resources[kind], namespaces, label_selector or None)
               for kind in kinds}
    namespace_order = {namespace: index for index, namespace in enumerate(namespaces)}
    found = [(namespace_order[namespace], kind_index, name, kind, obj)
             for kind_index, kind in enumerate(kinds)
             for (namespace, name), obj in by_kind[kind].items()
             if wanted_names is None or name in wanted_names]
    return [(kind, obj) for _ns, _kind, _name, kind, obj in sorted(found, key=lambda f: f[:3])]


def plan_changes(client, resources, workloads, wanted):
    """One Change per workload: skipped (no sidecar), failed (cannot be done), unchanged or updated.

    `wanted` is one Wanted for all, or a dict (kind, namespace, name) -> Wanted; workloads it does
    not name are left out.
    """
    changes = []
    for kind, workload in workloads:
        meta = workload["metadata"]
        namespace, name = meta.get("namespace"), meta["name"]
        if isinstance(wanted, dict):
            if (kind, namespace, name) not in wanted:
                continue
            these = wanted[(kind, namespace, name)]
        else:
            these = wanted
        reason = opt_out_reason(workload)
        if reason is None and meta.get("deletionTimestamp"):
            reason = "being deleted"
        if reason:
            changes.append(Change(kind, namespace, name, "skipped", reason=reason))
            continue
        current = template_annotations(workload)
        try:
            updates = annotation_updates(current, these)
        except InvalidProxyConfig as error:
            changes.append(_failed(kind, namespace, name, f"{error}; fix or remove it first"))
            continue
        if not updates:
            changes.append(Change(kind, namespace, name, "unchanged"))
            continue
        after = apply_updates(current, updates)
        problem = pair_problem(after)
        if problem:
            changes.append(_failed(kind, namespace, name, problem))
            continue
        version = meta.get("resourceVersion") if PROXY_CONFIG in updates else None
        changes.append(Change(kind, namespace, name, "updated", before=_annotation_view(current),
                              after=_annotation_view(after),
                              write=_patcher(client, resources[kind], namespace, name, updates,
                                             version, these)))
    return changes


def _failed(kind, namespace, name, reason):
    change = Change(kind, namespace, name, "failed", reason=reason)
    change.error = reason
    return change


def _patcher(client, resource, namespace, name, updates, resource_version, wanted):
    """The write of one workload: one merge patch.

    On 409 (the workload changed after it was read, which matters when proxy.istio.io/config is
    rewritten from its live value) the workload is read again and the patch computed afresh.
    """

    def write():
        patch = build_patch(updates, resource_version)
        for _attempt in range(MAX_CONFLICT_RETRIES):
            try:
                return client.merge_patch(resource, namespace, name, patch)
            except KubeError as error:
                if error.status != 409:
                    raise
                client.count_retry()
            live = client.get(resource, namespace, name)
            if live is None:
                raise KubeError(f"{name}: deleted while being updated", 404)
            current = template_annotations(live)
            try:
                fresh = annotation_updates(current, wanted)
            except InvalidProxyConfig as error:
                raise KubeError(f"{error} (changed while being updated)") from error
            if not fresh:
                return live
            problem = pair_problem(apply_updates(current, fresh))
            if problem:
                raise KubeError(f"{problem} (changed while being updated)")
            version = live["metadata"].get("resourceVersion") if PROXY_CONFIG in fresh else None
            patch = build_patch(fresh, version)
        raise KubeError(f"{name}: still conflicting after {MAX_CONFLICT_RETRIES} re-reads", 409)

    return write


# ---- rollouts -------------------------------------------------------------------------------

def _count(status, key):
    value = status.get(key)
    return value if isinstance(value, int) else 0


def rollout_status(kind, workload):
    """('complete' | 'pending' | 'stalled', why) for one workload, as `kubectl rollout status` judges.

    'stalled' means waiting longer will not help (a paused Deployment, an exceeded progress
    deadline).
    """
    meta, spec = workload.get("metadata") or {}, workload.get("spec") or {}
    status = workload.get("status") or {}
    if _count(status, "observedGeneration") < (meta.get("generation") or 0):
        return "pending", "the controller has not seen the change yet"
    if kind == "Deployment":
        return _deployment_status(spec, status)
    if kind == "StatefulSet":
        return _statefulset_status(spec, status)
    return _daemonset_status(spec, status)


def _deployment_status(spec, status):
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return "stalled", "progress deadline exceeded"
    replicas = spec.get("replicas", 1)
    updated, total = _count(status, "updatedReplicas"), _count(status, "replicas")
    available = _count(status, "availableReplicas")
    if updated == replicas == total == available:
        return "complete", None
    if spec.get("paused"):
        return "stalled", "the Deployment is paused"
    return "pending", f"{updated} of {replicas} replicas updated, {available} available"


def _statefulset_status(spec, status):
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return "complete", "OnDelete update strategy: pods change only when deleted"
    replicas = spec.get("replicas", 1)
    partition = (strategy.get("rollingUpdate") or {}).get("partition") or 0
    updated, ready = _count(status, "updatedReplicas"), _count(status, "readyReplicas")
    if updated < replicas - partition or ready < replicas:
        return "pending", f"{updated} of {replicas} replicas updated, {ready} ready"
    if not partition and status.get("updateRevision") != status.get("currentRevision"):
        return "pending", "the update revision is not current yet"
    return "complete", None


def _daemonset_status(spec, status):
    if (spec.get("updateStrategy") or {}).get("type") == "OnDelete":
        return "complete", "OnDelete update strategy: pods change only when deleted"
    desired = _count(status, "desiredNumberScheduled")
    updated, available = _count(status, "updatedNumberScheduled"), _count(status, "numberAvailable")
    if updated == desired == available:
        return "complete", None
    return "pending", f"{updated} of {desired} pods updated, {available} available"


def wait_for_rollouts(client, resources, targets, timeout, label_selector=None,
                      sleep=time.sleep, clock=time.monotonic):
    """Poll until the rollouts of `targets` ((kind, namespace, name) tuples) finish or time runs out.

    Returns {target: (state, why)} with state 'complete', 'pending' (timed out), 'stalled' or
    'gone'. Each round reads a (namespace, kind) group with one list call when it holds several
    targets, else with one GET, so a round costs at most as many calls as the first read.
    """
    outcome = dict.fromkeys(targets, ("pending", "not checked yet"))
    deadline = clock() + timeout
    interval = FIRST_POLL
    while True:
        waiting = [t for t, (state, _why) in outcome.items() if state == "pending"]
        if not waiting:
            return outcome
        remaining = deadline - clock()
        if remaining <= 0:
            return outcome
        sleep(min(interval, remaining))
        interval = min(MAX_POLL, interval * 1.5)
        for target, live in _read_targets(client, resources, waiting, label_selector).items():
            kind = target[0]
            outcome[target] = ("gone", "deleted while waiting") if live is None \
                else rollout_status(kind, live)


def _read_targets(client, resources, targets, label_selector):
    groups = {}
    for target in targets:
        groups.setdefault(target[:2], []).append(target)
    live = {}
    for (kind, namespace), members in groups.items():
        if len(members) > 1:
            listed = {obj["metadata"]["name"]: obj for obj in
                      client.list(resources[kind], namespace=namespace,
                                  label_selector=label_selector or None)}
        else:
            listed = {}
        for target in members:
            obj = listed.get(target[2])
            if obj is None:
                obj = client.get(resources[kind], namespace, target[2])
            live[target] = obj
    return live


# ---- the module side: read the selection, wait for the updated workloads ---------------------

def read_selected(module, client, params):
    """(resources by kind, (kind, workload) pairs) of the selected workloads; fails the task when
    they cannot be read, or when a named workload (O(names), O(workloads)) is missing with
    state=present."""
    entries = params.get("workloads")
    names = sorted({entry["name"] for entry in entries}) if entries else params.get("names")
    try:
        resources = {kind: client.resource(API_VERSION, kind) for kind in params["kinds"]}
        workloads = read_workloads(client, resources, params["namespaces"], params["kinds"],
                                   params.get("label_selector"), names)
    except KubeError as error:
        fail_read(module, error, "the workloads")
    if entries:
        keys = {(entry["kind"], entry["namespace"], entry["name"]) for entry in entries}
        workloads = [(kind, obj) for kind, obj in workloads
                     if (kind, obj["metadata"]["namespace"], obj["metadata"]["name"]) in keys]
        found = {(kind, obj["metadata"]["namespace"], obj["metadata"]["name"]) for kind, obj in workloads}
        missing = [f"{kind} {namespace}/{name}" for kind, namespace, name in sorted(keys - found)]
    else:
        found = {obj["metadata"]["name"] for _kind, obj in workloads}
        missing = [name for name in names or [] if name not in found]
    if missing and params["state"] == "present":
        what = ", ".join(missing) if entries else \
            f"{'/'.join(params['kinds'])} named {', '.join(missing)} in {', '.join(params['namespaces'])}"
        module.fail_json(msg=f"No {what} (nothing was changed)", **batch_result([], module._diff))
    if missing:
        module.warn(f"No workload named {', '.join(missing)}: nothing to remove there")
    empty = sorted(set(params["namespaces"]) - {obj["metadata"]["namespace"] for _k, obj in workloads})
    if empty and not names:
        module.warn(f"No selected workloads in namespace(s) {', '.join(empty)}")
    return resources, workloads


def wait_for_updated(module, client, resources, changes, result, failure=None):
    """Wait for the rollouts of the updated workloads (module option wait_timeout), also when other
    workloads failed (their `failure` message then comes first); record each outcome in
    result['results'] and fail the task naming the unfinished ones."""
    targets = {(c.kind, c.namespace, c.name): c for c in changes if c.action == "updated"}
    if not targets:
        return
    first = f"{failure} " if failure else ""
    if client.unreachable is not None:
        module.fail_json(msg=f"{first}The rollouts of the {len(targets)} updated workload(s) were "
                             "not waited for: the API server stopped answering.", **result)
    timeout = module.params["wait_timeout"]
    try:
        outcome = wait_for_rollouts(client, resources, list(targets), timeout,
                                    module.params.get("label_selector"))
    except KubeError as error:
        module.fail_json(msg=f"{first}The annotations were written, but reading the rollouts failed: "
                             f"{error}. Every workload's outcome is in 'results'.", **result)
    for entry in result["results"]:
        key = (entry["kind"], entry["namespace"], entry["name"])
        if key in outcome:
            entry["rollout"] = outcome[key][0]
    result["retries"] = client.retries
    stalled = [f"{targets[key].label} ({why})" for key, (state, why) in outcome.items()
               if state == "stalled"]
    pending = [targets[key].label for key, (state, _why) in outcome.items() if state == "pending"]
    if stalled or pending:
        result["pending_rollouts"] = [targets[key].label for key, (state, _why) in outcome.items()
                                      if state in ("pending", "stalled")]
        problems = []
        if pending:
            problems.append(f"not rolled out after {timeout} s: {', '.join(pending)}")
        if stalled:
            problems.append(f"rollout stalled: {', '.join(stalled)}")
        module.fail_json(msg=f"{first}Rollouts unfinished ({'; '.join(problems)}). The annotations "
                             f"of {len(targets)} workload(s) were already written and their rollouts "
                             f"go on; every workload's outcome is in 'results'.", **result)
    if failure:
        module.fail_json(msg=f"{failure} The rollouts of the {len(targets)} updated workload(s) "
                             "finished.", **result)
