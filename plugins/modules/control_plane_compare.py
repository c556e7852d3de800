#!/usr/bin/python
# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: control_plane_compare
short_description: Compare a new istiod revision with the old one over the same window
version_added: 0.1.0
description:
  - Queries Prometheus for both revisions' istiod over the same window and fails when a figure of
    O(revision) is worse than O(previous_revision)'s by more than its factor in O(limits). Part of
    the upgrade gate of playbooks/upgrade.yml, where a miss rolls the canary back.
  - C(push_rate) - config pushes per second and connected proxy (C(pilot_xds_pushes) over
    C(pilot_xds)), since the canary serves fewer proxies than the old revision.
  - C(convergence_p99) - p99 of C(pilot_proxy_convergence_time), from a config change to the
    proxies having it.
  - C(queue_time_p99) - p99 of C(pilot_proxy_queue_time), a proxy's wait in the push queue.
  - C(memory) - resident memory of one istiod instance (C(process_resident_memory_bytes)).
  - Series are told apart by their C(revision) label, as the istiod scrape job of the
    meshtune.mesh.prometheus role sets it. A figure without data for either revision is reported
    and warned about, not judged.
author:
  - meshtune maintainers (@meshtune)
extends_documentation_fragment:
  - meshtune.mesh.prometheus
options:
  url:
    description: Base URL of the Prometheus server that scrapes istiod.
    type: str
    required: true
  revision:
    description: The new revision (label C(revision) of its series).
    type: str
    required: true
  previous_revision:
    description: The old revision.
    type: str
    required: true
  window:
    description: Length of the window both revisions are measured over, a duration such as C(10m).
    type: str
    default: 10m
  time:
    description:
      - End of the window, as RFC3339, unix seconds, C(now), or relative to now (C(-5m)).
      - Defaults to now.
    type: str
  job:
    description: Value of the C(job) label of istiod's series.
    type: str
    default: istiod
  limits:
    description:
      - Largest allowed new/old factor per figure; figures left out keep their default
        (C(push_rate) 2, C(convergence_p99) 2, C(queue_time_p99) 2, C(memory) 1.5).
    type: dict
    default: {}
  when_unreachable:
    description:
      - V(skip) returns RV(compared=false) with a warning when Prometheus cannot be reached;
        V(fail) fails the task.
    type: str
    choices: [skip, fail]
    default: skip
notes:
  - Read-only; check mode runs the same queries.
"""

EXAMPLES = r"""
- name: The canary's istiod may push at most twice as often per proxy as the old one
  meshtune.mesh.control_plane_compare:
    url: http://prometheus-server.monitoring
    revision: 1-30-3
    previous_revision: 1-29-6
    window: 15m
    limits:
      push_rate: 2
      memory: 1.3
"""

RETURN = r"""
compared:
  description: false when Prometheus could not be reached and O(when_unreachable=skip).
  returned: always
  type: bool
comparisons:
  description: One entry per figure.
  returned: when compared
  type: list
  elements: dict
  contains:
    figure:
      description: push_rate, convergence_p99, queue_time_p99 or memory.
      type: str
    unit:
      description: Unit of old and new.
      type: str
    old:
      description: The old revision's figure (null without data).
      type: float
    new:
      description: The new revision's figure (null without data).
      type: float
    ratio:
      description: new / old (null without data).
      type: float
    limit:
      description: Largest allowed ratio.
      type: float
    ok:
      description: Whether the ratio is within the limit (null without data).
      type: bool
  sample:
    - {figure: push_rate, unit: pushes/s per proxy, old: 0.02, new: 0.06, ratio: 3.0, limit: 2.0, ok: false}
table:
  description: The comparisons as a text table.
  returned: when compared
  type: str
queries:
  description: The PromQL sent, by figure.
  returned: always
  type: dict
time:
  description: End of the window, unix seconds.
  returned: always
  type: float
"""

import math
import time

from ansible_collections.meshtune.mesh.plugins.module_utils.control_plane import (
    DEFAULT_LIMITS,
    by_revision,
    compare,
    queries,
    table,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.prometheus import (
    CONNECTION_MODULE_OPTIONS,
    PrometheusError,
    add_connection_problems,
    client_from_params,
    connection_argument_spec,
    format_seconds,
    parse_duration,
    parse_time,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.redact import SecretHidingModule
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import (
    Problems,
    check_label_value,
    check_name,
)

UNREACHABLE = "Cannot reach Prometheus"


def argument_spec():
    spec = connection_argument_spec("url")
    spec.update(
        revision={"type": "str", "required": True},
        previous_revision={"type": "str", "required": True},
        window={"type": "str", "default": "10m"},
        time={"type": "str"},
        job={"type": "str", "default": "istiod"},
        limits={"type": "dict", "default": {}},
        when_unreachable={"type": "str", "choices": ["skip", "fail"], "default": "skip"},
    )
    return spec


def validate(params, now):
    """(message or None, window seconds, end time)."""
    problems = Problems()
    add_connection_problems(problems, params, "url")
    for option in ("revision", "previous_revision"):
        problems.check(check_name, option, params[option], label=True)
    if params["revision"] == params["previous_revision"]:
        problems.add("previous_revision", "a revision other than revision", params["previous_revision"])
    problems.check(check_label_value, "job", params["job"])
    window = problems.check(parse_duration, "window", params["window"])
    if window is not None and window < 1:
        problems.add("window", "a duration of at least 1s", params["window"])
    end = problems.check(parse_time, "time", params["time"] or "now", now)
    for name, value in params["limits"].items():
        if name not in DEFAULT_LIMITS:
            problems.add(f"limits.{name}", f"one of {', '.join(DEFAULT_LIMITS)}", name)
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value) or value <= 0:
            problems.add(f"limits.{name}", "a factor above 0, such as 2 or 1.5", value)
    return problems.message(), window, end


def main():
    module = SecretHidingModule(
        argument_spec=argument_spec(), url_options=["url"], header_options=["headers"],
        supports_check_mode=True, **CONNECTION_MODULE_OPTIONS)
    params = module.params
    problem, window, end = validate(params, time.time())
    if problem:
        module.fail_json(msg=problem)
    sent = queries(params["job"], params["revision"], params["previous_revision"],
                   f"{format_seconds(window)}s")
    result = {"changed": False, "queries": sent, "time": end}
    client = client_from_params(params)
    comparisons = []
    limits = {**DEFAULT_LIMITS, **params["limits"]}
    try:
        for name, promql in sent.items():
            converted, notes = client.instant(name, promql, end)
            for note in notes:
                module.warn(f"Query {name!r}: {note}")
            comparisons.append(compare(name, by_revision(converted), params["revision"],
                                       params["previous_revision"], float(limits[name])))
    except PrometheusError as error:
        if str(error).startswith(UNREACHABLE) and params["when_unreachable"] == "skip":
            module.warn(f"Control plane not compared: {error}")
            module.exit_json(compared=False, **result)
        module.fail_json(msg=str(error), compared=False, **result)
    text = table(comparisons, params["revision"], params["previous_revision"])
    result.update(compared=True, comparisons=[c._asdict() for c in comparisons], table=text)
    empty = [c.figure for c in comparisons if c.ok is None]
    if empty:
        module.warn(f"No data for {', '.join(empty)} of one or both revisions in the window: not judged")
    missed = [c.figure for c in comparisons if c.ok is False]
    if missed:
        old = params["previous_revision"]
        module.fail_json(msg=f"Control plane of {params['revision']} worse than {old} over the same "
                             f"{params['window']}: {', '.join(missed)} beyond the limit\n"
                             f"{text}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
