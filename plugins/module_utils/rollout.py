# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The upgrade gate's wait: every workload of some namespaces rolled out and ready, in one call.

The first round reads each kind with reconcile.live_objects (one list per namespace, or one
cluster-wide list from 10 namespaces on) and judges each workload as `kubectl rollout status`
does (workloads.rollout_status). Later rounds list again only the namespaces and kinds that still
hold unfinished workloads, so a gate over a thousand ready workloads costs a handful of requests
instead of one wait per workload.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.meshtune.mesh.plugins.module_utils.reconcile import live_objects
from ansible_collections.meshtune.mesh.plugins.module_utils.tables import text_table
from ansible_collections.meshtune.mesh.plugins.module_utils.workloads import rollout_status

FIRST_POLL = 1.0
MAX_POLL = 5.0
# Rows of the not-ready table shown in a failure message (all of them are in the result).
TABLE_ROWS = 50


def wait_until_ready(client, resources, namespaces, timeout, label_selector=None,
                     sleep=time.sleep, clock=time.monotonic):
    """({(kind, namespace, name): (state, why)}, rounds) for the workloads of `namespaces`.

    `resources` maps each kind to its API resource. States are those of rollout_status
    ('complete', 'pending', 'stalled') plus 'gone' for a workload deleted while waited for. Waits
    at most `timeout` seconds (0: one read); a stalled workload is not waited for.
    """
    deadline = clock() + timeout
    outcome = {}
    scope = {kind: sorted(set(namespaces)) for kind in resources}
    interval, rounds = FIRST_POLL, 0
    while True:
        for kind, kind_namespaces in scope.items():
            if kind_namespaces:
                _judge(outcome, kind, kind_namespaces,
                       live_objects(client, resources[kind], kind_namespaces, label_selector))
        rounds += 1
        scope = {kind: sorted({ns for (k, ns, _name), (state, _why) in outcome.items()
                               if k == kind and state == "pending"}) for kind in resources}
        remaining = deadline - clock()
        if not any(scope.values()) or remaining <= 0:
            return outcome, rounds
        sleep(min(interval, remaining))
        interval = min(MAX_POLL, interval * 1.5)


def _judge(outcome, kind, namespaces, live):
    """Record the state of every listed workload; a pending one that is no longer listed is gone."""
    listed = set(namespaces)
    for key, (state, _why) in list(outcome.items()):
        if key[0] == kind and key[1] in listed and state == "pending" and key[1:] not in live:
            outcome[key] = ("gone", "deleted while waiting")
    for (namespace, name), obj in live.items():
        outcome[(kind, namespace, name)] = rollout_status(kind, obj)


def not_ready(outcome):
    """The workloads that are neither complete nor gone, as result entries sorted by namespace."""
    return [{"kind": kind, "namespace": namespace, "name": name, "state": state, "reason": why}
            for (kind, namespace, name), (state, why) in sorted(outcome.items(),
                                                                key=lambda i: (i[0][1], i[0][0], i[0][2]))
            if state not in ("complete", "gone")]


def not_ready_table(entries, limit=TABLE_ROWS):
    """namespace | kind | name | state | reason, for a failure message."""
    return text_table(("namespace", "kind", "name", "state", "reason"),
                      [(e["namespace"], e["kind"], e["name"], e["state"], e["reason"] or "")
                       for e in entries], limit)
