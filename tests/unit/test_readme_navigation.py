"""README's map of the code: every role README linked, and for every module the module_utils it
imports, so any behaviour is two hops from the README. Computed from the sources, so the map
cannot drift from the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "ansible_collections.meshtune.mesh.plugins.module_utils"
ROW_RE = re.compile(r"^\| \[`(\w+)`\]\(plugins/modules/\1\.py\) \| (.*) \|$")
# Used by (nearly) every module: README names them once, above the table.
PLUMBING = {"kube", "validate", "reconcile", "redact"}
LINK_RE = re.compile(r"\[`([\w/]+)`\]\(plugins/module_utils/([\w/]+)(?:\.py|/)\)")


def module_utils_of(path: Path) -> set[str]:
    """The module_utils a module imports directly (`loadgen/engine`, `analyze/rules`, `kube`)."""
    used = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith(PACKAGE):
            continue
        inner = node.module[len(PACKAGE):].lstrip(".").replace(".", "/")
        if inner in ("", "loadgen", "analyze"):
            used.update(f"{inner}/{alias.name}".lstrip("/") for alias in node.names)
        else:
            used.add(inner)
    return used


def readme_map() -> dict[str, set[str]]:
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        match = ROW_RE.match(line)
        if match:
            links = LINK_RE.findall(match.group(2))
            assert all(shown == target for shown, target in links), line
            rows[match.group(1)] = {shown for shown, _target in links}
            assert links or match.group(2) == "(only the shared ones)", line
    return rows


def test_every_module_has_a_row_naming_the_module_utils_it_imports():
    modules = {path.stem: module_utils_of(path) - PLUMBING
               for path in (ROOT / "plugins/modules").glob("*.py")}
    assert readme_map() == modules


def test_every_linked_file_exists():
    text = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(((?:plugins|roles|docs|tests|bench)/[^)#]+)\)", text):
        assert (ROOT / target).exists(), target


def test_every_role_readme_is_linked():
    text = (ROOT / "README.md").read_text()
    for readme in sorted((ROOT / "roles").glob("*/README.md")):
        assert f"]({readme.relative_to(ROOT)})" in text, readme
