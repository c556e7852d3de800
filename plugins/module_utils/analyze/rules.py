# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Every rule, collected from the group files, and running them over an inventory."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshtune.mesh.plugins.module_utils.analyze import (
    control_plane,
    proxies,
    scaling,
    services,
    traffic,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.base import SEVERITIES, severity_rank
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption

GROUPS = (services, traffic, proxies, scaling, control_plane)
RULES = tuple(sorted((check.rule for group in GROUPS for check in vars(group).values()
                      if callable(check) and hasattr(check, "rule")), key=lambda rule: rule.code))
RULES_BY_CODE = {rule.code: rule for rule in RULES}


def check_codes(path, codes):
    """Rule codes such as MT001, each known and given once."""
    for index, code in enumerate(codes):
        if code not in RULES_BY_CODE:
            raise InvalidOption(f"{path}[{index}]", f"a rule code: one of {', '.join(RULES_BY_CODE)}", code)
    if len(set(codes)) != len(codes):
        raise InvalidOption(path, "each rule code once", codes)
    return codes


def finding_entry(finding):
    """A finding as the module returns it and report.json holds it."""
    rule = RULES_BY_CODE[finding.code]
    return {"code": finding.code, "severity": rule.severity, "title": rule.title,
            "kind": finding.kind, "namespace": finding.namespace, "name": finding.name,
            "object": finding.object, "message": finding.message, "why": rule.why, "fix": rule.fix,
            "fix_task": finding.fix_task}


def run_rules(inventory, settings, skip=()):
    """Findings of every rule not skipped, most severe first, then by code, namespace (a Namespace
    by its own name), kind and name."""
    findings = [finding_entry(finding) for rule in RULES if rule.code not in skip
                for finding in rule.check(inventory, settings)]
    return sorted(findings, key=lambda f: (-severity_rank(f["severity"]), f["code"],
                                           f["namespace"] or f["name"], f["kind"], f["name"], f["message"]))


def summary(findings):
    """Findings by severity and by code, and the total."""
    counts = dict.fromkeys(SEVERITIES, 0)
    by_code = {}
    for finding in findings:
        counts[finding["severity"]] += 1
        by_code[finding["code"]] = by_code.get(finding["code"], 0) + 1
    return {**counts, "total": len(findings), "by_code": by_code}


def at_or_above(findings, severity):
    """The findings of `severity` or worse."""
    return [f for f in findings if severity_rank(f["severity"]) >= severity_rank(severity)]
