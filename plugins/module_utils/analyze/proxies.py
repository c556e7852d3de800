# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Rules on the sidecars of injected workloads: worker threads, and resources against the
namespace's LimitRanges."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.base import Finding, rule, task
from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.inventory import cores, quantity
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import canonical_quantity

DEFAULT_CONCURRENCY = 2
# Istio's chart default sidecar memory limit: the limit proposed when a LimitRange's is applied.
PROPOSED_MEMORY_LIMIT = "1Gi"


def _names(workload):
    return workload["metadata"]["namespace"], workload["metadata"]["name"]


def _resources_task(kind, workload, **settings):
    namespace, name = _names(workload)
    return task("sidecar_resources", namespaces=[namespace], kinds=[kind], names=[name], **settings)


@rule("MT003", "warning", "Sidecar worker threads beyond its CPU",
      why="""Envoy runs one worker thread per concurrency; with concurrency 0, or unset with no CPU
      limit, it runs one per core of the node. More threads than the CPU limit allows are
      throttled by the kernel (latency spikes), and each thread holds its own connections and
      buffers (memory).""",
      fix="""Set concurrency to the CPU limit in whole cores (2 is a common cap) with
      meshtune.mesh.sidecar_resources, or give the sidecar a CPU limit.""")
def concurrency_beyond_cpu(inventory, settings):
    for kind, workload, revision in inventory.injected_workloads():
        limit_text = (inventory.sidecar_resources(workload, revision).get("limits") or {}).get("cpu")
        limit = quantity(limit_text)
        concurrency = inventory.concurrency(workload, revision)
        if concurrency == 0:
            message = "concurrency 0: one worker thread per node core"
        elif concurrency is None and limit is None:
            message = "concurrency unset and no CPU limit: one worker thread per node core"
        elif concurrency is not None and limit is not None and concurrency > cores(limit):
            message = f"concurrency {concurrency} above the CPU limit of {limit_text} " \
                      f"({cores(limit)} core{'s' if cores(limit) > 1 else ''})"
        else:
            continue
        wanted = cores(limit) if limit is not None else DEFAULT_CONCURRENCY
        yield Finding("MT003", kind, *_names(workload), message,
                      _resources_task(kind, workload, concurrency=wanted))


def _applied(item, section, resource):
    """A LimitRange item's default for `section` (default or defaultRequest), with the API
    server's own defaulting: default falls back to max, defaultRequest to default."""
    chain = {"default": ("default", "max"), "defaultRequest": ("defaultRequest", "default", "max")}[section]
    return next((item[key][resource] for key in chain if (item.get(key) or {}).get(resource)), None)


@rule("MT010", "warning", "Sidecar without a memory limit in a namespace with a LimitRange",
      why="""The sidecar has no memory limit of its own, so the namespace's LimitRange gives it
      its default, a limit sized for application containers rather than for a proxy whose memory
      grows with the mesh configuration it holds: the proxy is OOM-killed under load or after a
      config push, and every connection of the pod drops with it.""",
      fix="""Give the sidecars an explicit memory limit (meshtune.mesh.sidecar_resources
      memory_limit), sized from their measured use.""")
def limit_range_memory_limit(inventory, settings):
    for kind, workload, revision in inventory.injected_workloads():
        resources = inventory.sidecar_resources(workload, revision)
        if (resources.get("limits") or {}).get("memory"):
            continue
        namespace, _name = _names(workload)
        for range_name, item in inventory.container_limit_ranges(namespace):
            applied = _applied(item, "default", "memory")
            if applied is None:
                continue
            proposed = PROPOSED_MEMORY_LIMIT
            maximum = quantity((item.get("max") or {}).get("memory"))
            if maximum is not None and maximum < quantity(proposed):
                proposed = canonical_quantity((item["max"])["memory"])
            yield Finding("MT010", kind, *_names(workload),
                          f"no sidecar memory limit: LimitRange {range_name} gives it {applied}",
                          _resources_task(kind, workload, memory_limit=proposed))
            break


def admitted_problems(resources, limit_ranges):
    """Why the API server would refuse a pod with this sidecar, after LimitRange defaulting:
    request above limit, or outside a LimitRange's min, max or maxLimitRequestRatio."""
    problems = []
    for resource in ("cpu", "memory"):
        request_text = (resources.get("requests") or {}).get(resource)
        limit_text = (resources.get("limits") or {}).get(resource)
        if request_text is None and limit_text is not None:
            request_text = limit_text  # the API server's defaulting, before any LimitRange
        for _range, item in limit_ranges:
            limit_text = limit_text or _applied(item, "default", resource)
            request_text = request_text or _applied(item, "defaultRequest", resource)
        request, limit = quantity(request_text), quantity(limit_text)
        if request is not None and limit is not None and request > limit:
            problems.append(f"{resource} request {request_text} above its limit {limit_text}")
        for range_name, item in limit_ranges:
            minimum = quantity((item.get("min") or {}).get(resource))
            maximum = quantity((item.get("max") or {}).get(resource))
            ratio = quantity((item.get("maxLimitRequestRatio") or {}).get(resource))
            if minimum is not None and (request is None or request < minimum):
                problems.append(f"{resource} request {request_text or 'unset'} below the minimum "
                                f"{item['min'][resource]} of LimitRange {range_name}")
            if maximum is not None and (limit is None or limit > maximum):
                problems.append(f"{resource} limit {limit_text or 'unset'} above the maximum "
                                f"{item['max'][resource]} of LimitRange {range_name}")
            if ratio is not None and request and limit is not None and limit / request > ratio:
                problems.append(f"{resource} limit/request {limit_text}/{request_text} above the "
                                f"maxLimitRequestRatio {item['maxLimitRequestRatio'][resource]} "
                                f"of LimitRange {range_name}")
    return problems


@rule("MT011", "error", "Sidecar resources the API server refuses",
      why="""The sidecar's requests and limits, after the namespace's LimitRange defaults, break a
      rule the API server enforces (request above limit, outside the LimitRange's min or max or
      its limit/request ratio): every new pod of the workload is refused, so rollouts and scale-ups
      stop while the old pods carry the load.""",
      fix="""Set sidecar requests and limits that fit the LimitRange
      (meshtune.mesh.sidecar_resources cpu_request, cpu_limit, memory_request, memory_limit).""")
def refused_sidecar_resources(inventory, settings):
    for kind, workload, revision in inventory.injected_workloads():
        namespace, _name = _names(workload)
        problems = admitted_problems(inventory.sidecar_resources(workload, revision),
                                     inventory.container_limit_ranges(namespace))
        if problems:
            yield Finding("MT011", kind, *_names(workload), "; ".join(problems))
