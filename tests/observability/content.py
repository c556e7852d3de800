"""Reading the collection's observability content: rule files, scrape jobs, dashboards."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.observability.rendering import ROLES

RULES_DIR = ROLES / "prometheus" / "files" / "rules"
DASHBOARDS_DIR = ROLES / "grafana" / "files" / "dashboards"
PROMTOOL_TESTS = Path(__file__).resolve().parent / "promtool"

# Grafana's own variables, which it fills in itself.
GRAFANA_BUILTINS = frozenset({
    "__interval", "__interval_ms", "__rate_interval", "__range", "__range_s", "__range_ms",
    "__from", "__to", "__dashboard", "__name", "__org", "__user", "timeFilter", "__timeFilter",
})
# $name, ${name} and ${name:format}; [[name]] is Grafana's deprecated form.
VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)")
DEPRECATED_VARIABLE = re.compile(r"\[\[\w+(?::[^\]]*)?\]\]")


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def rules(paths: list[Path]) -> Iterator[dict[str, Any]]:
    """Every rule (recording or alerting) of the given rule files."""
    for path in paths:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            yield from group["rules"]


def recording_rules() -> list[dict[str, Any]]:
    return [rule for rule in rules(rule_files()) if "record" in rule]


def dashboards() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every query of every panel."""
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


def variables_in(text: str) -> set[str]:
    return {braced or bare for braced, bare in VARIABLE.findall(text)}


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace Grafana variables in a query with concrete values, as Grafana would."""
    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return values[name]

    return VARIABLE.sub(replace, expr)


def swap_kubernetes_sd(scrape_configs: list[dict[str, Any]], targets: dict[str, list[dict[str, Any]]],
                       in_pod_files: dict[str, str]) -> list[dict[str, Any]]:
    """The scrape jobs with every `kubernetes_sd_configs` block replaced by `static_configs`.

    Prometheus without Kubernetes discovery (Debian's build) rejects `kubernetes_sd_configs`.
    Each job gets instead the targets given for its Kubernetes SD role, each a static target
    whose labels are the `__meta_kubernetes_*` labels that discovery would have set, so the
    job's relabelling runs on realistic input. `in_pod_files` maps files that exist only inside
    a pod (the service account token and CA) to local stand-ins.
    """
    swapped = copy.deepcopy(scrape_configs)
    for job in swapped:
        sd_configs = job.pop("kubernetes_sd_configs", None)
        if sd_configs is None:
            continue
        static = []
        for sd_config in sd_configs:
            for target in targets[sd_config["role"]]:
                static.append({"targets": [target["__address__"]],
                               "labels": {k: v for k, v in target.items() if k != "__address__"}})
        job["static_configs"] = static
        for section, key in (("authorization", "credentials_file"), ("tls_config", "ca_file"),
                             ("tls_config", "cert_file"), ("tls_config", "key_file")):
            path = job.get(section, {}).get(key)
            if path is not None:
                job[section][key] = in_pod_files[path]
    return swapped
