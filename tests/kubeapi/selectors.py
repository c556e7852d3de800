"""Label and field selectors with the syntax and semantics of the Kubernetes API."""

from __future__ import annotations

import re
from collections.abc import Callable

Predicate = Callable[[dict], bool]

_SET_EXPR = re.compile(r"^\s*(!?)([A-Za-z0-9_./-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ_EXPR = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_.-]*)\s*$")


class SelectorError(ValueError):
    """A selector string that does not parse."""


def _split_requirements(selector: str) -> list[str]:
    """Split on commas that are not inside a `(...)` value set."""
    parts, depth, current = [], 0, []
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def parse_label_selector(selector: str | None) -> Predicate:
    """Compile `a=b,c!=d,e in (x,y),f notin (z),g,!h` into a predicate on an object."""
    if not selector:
        return lambda obj: True
    checks = [_label_requirement(req) for req in _split_requirements(selector)]

    def matches(obj: dict) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(check(labels) for check in checks)

    return matches


def _label_requirement(text: str) -> Callable[[dict], bool]:
    equality = _EQ_EXPR.match(text)
    if equality:
        key, op, value = equality.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    setexpr = _SET_EXPR.match(text)
    if not setexpr:
        raise SelectorError(f"unable to parse requirement: {text!r}")
    negate, key, op, values = setexpr.groups()
    if op:
        if negate:
            raise SelectorError(f"unable to parse requirement: {text!r}")
        allowed = {v.strip() for v in values.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in allowed
        return lambda labels: labels.get(key) not in allowed
    if negate:
        return lambda labels: key not in labels
    return lambda labels: key in labels


def parse_field_selector(selector: str | None) -> Predicate:
    """Compile `metadata.name=x,metadata.namespace!=y,status.phase=Running` into a predicate."""
    if not selector:
        return lambda obj: True
    checks = []
    for req in _split_requirements(selector):
        match = _EQ_EXPR.match(req)
        if not match:
            raise SelectorError(f"invalid field selector: {req!r}")
        path, op, value = match.groups()
        checks.append((path.split("."), op == "!=", value))

    def matches(obj: dict) -> bool:
        for path, negated, value in checks:
            actual = _lookup(obj, path)
            if (actual == value) == negated:
                return False
        return True

    return matches


def _lookup(obj: dict, path: list[str]) -> str:
    node = obj
    for part in path:
        if not isinstance(node, dict):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def field_selected_name(selector: str | None) -> str | None:
    """The name a `metadata.name=X` field selector pins, so lookups can skip the scan."""
    if not selector:
        return None
    for req in _split_requirements(selector):
        match = _EQ_EXPR.match(req)
        if match and match.group(1) == "metadata.name" and match.group(2) != "!=":
            return match.group(3)
    return None
