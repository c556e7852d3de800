# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Options and behaviour shared by the modules that converge many objects in one task."""

    DOCUMENTATION = r"""
options:
  state:
    description:
      - V(present) creates or updates the objects; V(absent) deletes them (or, for settings
        meshtune adds to objects it does not own, removes only those settings).
    type: str
    choices: [present, absent]
    default: present
  parallelism:
    description:
      - How many writes run at once.
    type: int
    default: 8
notes:
  - Every option is validated before the first write; a bad value fails the task with one message
    naming the option, and nothing is written.
  - Live objects are read with one list call per namespace; only objects that differ are written.
  - Conflicts (HTTP 409) are resolved by re-reading the object; 429, 5xx and dropped connections
    are retried with bounded backoff. If objects still fail, the task fails naming them, and
    RV(results) tells which objects were changed.
  - Once the API server stops answering (connections refused, reset or timed out after the
    retries), the writes not yet started are not attempted; they are reported as V(skipped) with
    the reason C(not attempted), and the task fails naming the server and those objects.
attributes:
  check_mode:
    support: full
    description: Reads the cluster and reports what would change; writes nothing.
  diff_mode:
    support: full
    description: Returns the before and after of every object that changes.
"""

    # The modules whose objects meshtune owns whole (destination_rule, sidecar_scope, hpa_policy).
    OWNED = r"""
options:
  force:
    description:
      - Take over objects of the same name that meshtune does not manage (without the label
        C(app.kubernetes.io/managed-by=meshtune)). With O(state=present) their managed fields
        are replaced and the label added; with O(state=absent) they are deleted.
      - Without it such objects are left as they are, reported with action V(skipped) and a
        reason, and named in a warning.
    type: bool
    default: false
notes:
  - >-
    Objects meshtune creates carry the label C(app.kubernetes.io/managed-by=meshtune). meshtune
    owns their whole C(spec) (for a HorizontalPodAutoscaler too): a field changed, added or
    removed by hand is drift, put back on the next run and reported as V(updated) with the reason
    C(drift) and the fields, for example C(drift: spec.trafficPolicy.tls). Defaults the API server
    fills in are not drift. Labels and annotations others add are kept.
  - An object of the same name without that label belongs to someone else. It is not changed
    and not deleted unless O(force=true).
"""
