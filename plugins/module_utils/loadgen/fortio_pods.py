# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What the fortio client pods say: their state, their completion index, their result.

A pod's log mixes fortio's JSON result with its log lines; extract_result finds the result.
pod_state judges a client pod by its containers, so a pod whose fortio container is done counts as
done even while a classic sidecar keeps the pod running.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
from collections import OrderedDict

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.errors import ERROR_KINDS
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.fortio_objects import (
    CLIENT_CONTAINER,
    COMPLETION_INDEX,
    WARMUP_CONTAINER,
)

# Log lines of a failed pod quoted in the failure message.
LOG_TAIL_LINES = 20


def _is_log_object(line):
    """A one-line JSON object at the start of a line: fortio's structured log lines."""
    if not (line.startswith("{") and line.rstrip().endswith("}")) or line.strip() == "{":
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def extract_result(log_text):
    """fortio's result object from a pod log that mixes it with fortio's log lines.

    fortio writes the result with two-space indentation: it starts with a line "{" and ends
    with a line "}", and every line between is indented. Log lines (plain text, or one-line
    JSON objects in recent fortio versions) start at the first column, so lines of that kind
    that got interleaved into the result are dropped. The last block that parses to an object
    with a DurationHistogram wins. ValueError when there is none.
    """
    lines = log_text.splitlines()
    found = None
    block = None
    for line in lines:
        if line.rstrip() == "{":
            block = [line]
            continue
        if block is None:
            continue
        if line.rstrip() == "}":
            block.append(line)
            try:
                candidate = json.loads("\n".join(block), object_pairs_hook=OrderedDict)
            except ValueError:
                candidate = None
            if isinstance(candidate, dict) and "DurationHistogram" in candidate:
                found = candidate
            block = None
        elif line.startswith((" ", "\t")):
            block.append(line)
        elif _is_log_object(line) or line.strip():
            continue  # a log line written while the result was being written
    if found is None:
        raise ValueError("no fortio JSON result (an object with DurationHistogram) in the log")
    return found


def error_kinds(result):
    """The load_test `errors` of a fortio result: fortio does not tell kinds of failed calls
    apart, so every call without an HTTP response (code -1) counts as `other`."""
    kinds = OrderedDict((kind, 0) for kind in ERROR_KINDS)
    kinds["other"] = int((result.get("RetCodes") or {}).get("-1", 0))
    return kinds


def log_tail(text, lines=LOG_TAIL_LINES):
    """The last lines of a log, for failure messages."""
    kept = [line for line in (text or "").splitlines() if line.strip()]
    return "\n".join(kept[-lines:]) if kept else "(empty log)"


def status_of(obj):
    """The status of an object, {} when it has none."""
    return obj.get("status") or {}


def true_condition(obj, kind):
    """The object's status condition of this type when it is True, else None."""
    for condition in status_of(obj).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def _container_statuses(pod):
    status = status_of(pod)
    return (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])


def pod_index(pod):
    """The pod's completion index in the Indexed Job (as an int; None when not set)."""
    meta = pod.get("metadata") or {}
    value = (meta.get("annotations") or {}).get(COMPLETION_INDEX) or \
        (meta.get("labels") or {}).get(COMPLETION_INDEX)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def pod_state(pod):
    """(state, detail) of a client pod: pending, running, succeeded or failed.

    A pod whose fortio container exited 0 has succeeded even when a sidecar still runs.
    A container that exited non-zero (the warm-up or fortio) fails the pod.
    """
    for container in _container_statuses(pod):
        terminated = (container.get("state") or {}).get("terminated")
        if terminated and terminated.get("exitCode", 0) != 0 and \
                container.get("name") in (CLIENT_CONTAINER, WARMUP_CONTAINER):
            reason = terminated.get("reason") or "Error"
            return "failed", (f"container {container['name']} exited with code "
                              f"{terminated.get('exitCode')} ({reason})", container["name"])
    phase = status_of(pod).get("phase")
    if phase == "Failed":
        reason = status_of(pod).get("reason") or status_of(pod).get("message") or "Failed"
        return "failed", (f"pod failed ({reason})", CLIENT_CONTAINER)
    for container in status_of(pod).get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if container.get("name") == CLIENT_CONTAINER and terminated and \
                terminated.get("exitCode", 0) == 0:
            return "succeeded", None
    if phase == "Succeeded":
        return "succeeded", None
    started = phase == "Running" or any(
        set(container.get("state") or {}) & {"running", "terminated"}
        for container in _container_statuses(pod)
        if container.get("name") in (CLIENT_CONTAINER, WARMUP_CONTAINER))
    return ("running" if started else "pending"), waiting_reason(pod)


def waiting_reason(pod):
    """Why a pod has not started: a container's waiting reason, or why it is not scheduled."""
    for container in _container_statuses(pod):
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
            message = waiting.get("message")
            return f"{container.get('name')}: {waiting['reason']}" + (f" ({message})" if message else "")
    for condition in status_of(pod).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"not scheduled: {condition.get('message') or condition.get('reason')}"
    return None
