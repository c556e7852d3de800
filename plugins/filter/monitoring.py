# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Filters of meshtune_monitoring: operator: the logic lives in module_utils/monitoring.py; these
check their input's shape and name the failure. Each filter is documented in the YAML file of its
name beside this one."""

from collections.abc import Mapping, Sequence

import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.meshtune.mesh.plugins.module_utils import monitoring
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption, check_labels


def _mapping(filter_name, what, value):
    if not isinstance(value, Mapping):
        raise AnsibleFilterError(f"{filter_name}: expected {what} (a mapping), got {type(value).__name__}")
    return value


def _objects(filter_name, what, value):
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or \
            not all(isinstance(item, Mapping) for item in value):
        raise AnsibleFilterError(f"{filter_name}: expected {what} (a list of objects), "
                                 f"got {type(value).__name__}")
    return [dict(item) for item in value]


def _run(filter_name, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except monitoring.MonitoringError as error:
        raise AnsibleFilterError(f"{filter_name}: {error}") from error


def prometheus_rules(rule_files, namespace, labels=None):
    files = _mapping("prometheus_rules", "rule files by name", rule_files)
    try:
        parsed = {name: yaml.safe_load(text) if isinstance(text, str) else text
                  for name, text in files.items()}
    except yaml.YAMLError as error:
        raise AnsibleFilterError(f"prometheus_rules: a rule file is not YAML: {error}") from error
    return _run("prometheus_rules", monitoring.prometheus_rules, parsed, str(namespace),
                _mapping("prometheus_rules", "labels", labels or {}))


def prometheus_operator_selection(prometheuses, namespace="", labels=None, prometheus="",
                                  fallback_namespace=""):
    return _run("prometheus_operator_selection", monitoring.operator_selection,
                _objects("prometheus_operator_selection", "Prometheus resources", prometheuses),
                str(namespace or ""), _mapping("prometheus_operator_selection", "labels", labels or {}),
                str(prometheus or ""), str(fallback_namespace or ""))


def cadvisor_scrapes(service_monitors, scrape_configs, metrics):
    return monitoring.cadvisor_scrapes(
        _objects("cadvisor_scrapes", "ServiceMonitors", service_monitors),
        _objects("cadvisor_scrapes", "ScrapeConfigs", scrape_configs), [str(m) for m in metrics])


def operator_relabelings(relabel_configs):
    return _run("operator_relabelings", monitoring.operator_relabelings,
                _objects("operator_relabelings", "relabel configs", relabel_configs))


def grafana_outdated(reads, folder_uid=""):
    return monitoring.outdated_dashboards(_objects("grafana_outdated", "dashboard reads", reads),
                                          str(folder_uid or ""))


def label_problems(labels, option):
    """The problem with a mapping of labels as one message naming the option, or ''."""
    try:
        check_labels(option, labels)
    except InvalidOption as error:
        return str(error)
    return ""


class FilterModule:
    """meshtune.mesh's monitoring filters."""

    def filters(self):
        return {
            "prometheus_rules": prometheus_rules,
            "prometheus_operator_selection": prometheus_operator_selection,
            "cadvisor_scrapes": cadvisor_scrapes,
            "label_problems": label_problems,
            "operator_relabelings": operator_relabelings,
            "grafana_outdated": grafana_outdated,
        }
