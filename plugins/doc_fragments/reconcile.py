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
attributes:
  check_mode:
    support: full
    description: Reads the cluster and reports what would change; writes nothing.
  diff_mode:
    support: full
    description: Returns the before and after of every object that changes.
"""
