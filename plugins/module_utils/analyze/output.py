# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Findings for people and tools: the console table, and report.json / report.md / report.html
rendered with the report module's document, so the analysis reads like the verify reports."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
from collections import OrderedDict

from ansible_collections.meshtune.mesh.plugins.module_utils.report import (
    Section,
    Table,
    render_html,
    render_markdown,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.tables import text_table

TABLE_COLUMNS = ("code", "severity", "object", "message")
DEFAULT_TITLE = "Mesh performance analysis"


def console_table(findings):
    """Lines of a plain-text table (code, severity, object, finding), aligned for a terminal."""
    if not findings:
        return ["no findings"]
    rows = [tuple(finding[column] for column in TABLE_COLUMNS) for finding in findings]
    return text_table(("code", "severity", "object", "finding"), rows).splitlines()


def _fix_text(finding):
    if finding["fix_task"] is None:
        return finding["fix"]
    return f"{finding['fix_task']['module']} {json.dumps(finding['fix_task']['args'], sort_keys=True)}"


def render_files(title, findings, counts, rules, objects):
    """OrderedDict file name -> bytes; depends only on the inputs, so a re-run over the same
    cluster state writes nothing."""
    data = OrderedDict([("title", title), ("summary", counts), ("objects", objects),
                        ("rules", [{"code": r.code, "severity": r.severity, "title": r.title, "why": r.why,
                                    "fix": r.fix} for r in rules]),
                        ("findings", findings)])
    sections = [
        Section("Summary", [Table(("severity", "findings"),
                                  [(s, str(counts[s])) for s in ("error", "warning", "info", "total")],
                                  (False, True))]),
        Section("Findings", [Table(("code", "severity", "object", "finding", "fix"),
                                   [(f["code"], f["severity"], f["object"], f["message"], _fix_text(f))
                                    for f in findings], (False,) * 5)] if findings else ["No findings."]),
        Section("Rules", [Table(("code", "severity", "rule", "why it costs performance", "fix"),
                                [(r.code, r.severity, r.title, r.why, r.fix) for r in rules], (False,) * 5)]),
    ]
    files = OrderedDict()
    files["report.json"] = (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    files["report.md"] = render_markdown(title, sections).encode("utf-8")
    files["report.html"] = render_html(title, sections).encode("utf-8")
    return files
