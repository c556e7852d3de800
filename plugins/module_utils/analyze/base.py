# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What a rule is, what it finds, and the severities findings are ranked by.

A rule is a function `check(inventory, settings)` that yields Findings, decorated with `rule(...)`
to carry its stable code, severity, title, why it costs performance, and the fix. Adding a rule
is writing one decorated function in a group file (rules.py collects them).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections import namedtuple

SEVERITIES = ("info", "warning", "error")
Rule = namedtuple("Rule", "code severity title why fix check")


class Finding(namedtuple("Finding", "code kind namespace name message fix_task")):
    """One object a rule fired on: what is wrong with it, and the meshtune task that fixes it
    (`{"module": ..., "args": {...}}`), or None where no meshtune module does."""

    def __new__(cls, code, obj_kind, namespace, name, message, fix_task=None):
        return super().__new__(cls, code, obj_kind, namespace, name, message, fix_task)

    @property
    def object(self):
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


def rule(code, severity, title, why, fix):
    """Mark `check` as the rule `code`; `why` and `fix` are written for a person who owns the mesh."""
    if severity not in SEVERITIES:
        raise ValueError(f"{code}: severity {severity!r} is not one of {SEVERITIES}")

    def register(check):
        check.rule = Rule(code, severity, title, " ".join(why.split()), " ".join(fix.split()), check)
        return check

    return register


def severity_rank(severity):
    return SEVERITIES.index(severity)


def task(module, **args):
    """A fix as a meshtune task: the module's full name and its arguments."""
    return {"module": f"meshtune.mesh.{module}", "args": args}
