# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Filters of the Helm pipeline the install roles share (roles/helm_releases).

Walking a values tree, comparing its paths with a chart's value paths and finding a package in a
chart mirror are a few lines of Python and a page of Jinja: that logic lives in module_utils
(chart_values.py, helm.py), where modules can use it too, and these filters check their input and
name the failure. Writing values files is the controller's job alone, so it lives here.
Each filter is documented in the YAML file of its name beside this one.
"""

import json
from collections.abc import Mapping, Sequence

import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.meshtune.mesh.plugins.module_utils import chart_values
from ansible_collections.meshtune.mesh.plugins.module_utils.helm import (
    HelmFailure,
    is_local_repository,
    mirror_package,
)


def _tree(filter_name, tree):
    if not isinstance(tree, Mapping):
        raise AnsibleFilterError(f"{filter_name}: expected a mapping of chart values, "
                                 f"got {type(tree).__name__}")
    return tree


def _paths(filter_name, paths):
    if isinstance(paths, (str, bytes)) or not isinstance(paths, Sequence):
        raise AnsibleFilterError(f"{filter_name}: expected a list of dotted paths, "
                                 f"got {type(paths).__name__}")
    return [str(path) for path in paths]


def leaf_paths(tree):
    return chart_values.leaf_paths(_tree("leaf_paths", tree))


def unknown_paths(tree, known):
    return chart_values.unknown_paths(_tree("unknown_paths", tree), _paths("unknown_paths", known))


def clashing_paths(tree, owned):
    return chart_values.clashing_paths(_tree("clashing_paths", tree), _paths("clashing_paths", owned))


class _ValuesDumper(yaml.SafeDumper):
    """YAML for people: multi-line strings (scrape configs, PromQL) as literal blocks."""


def _represent_text(dumper, text):
    # PyYAML falls back to a quoted scalar by itself where a literal block cannot hold the text.
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_ValuesDumper.add_representer(str, _represent_text)


def to_values_yaml(values):
    """Chart values as the text of a values file: keys sorted, two-space indent, no anchors.

    The tree goes through JSON first, so the file holds exactly what a module receives as JSON
    (plain types, no shared objects that YAML would turn into anchors). Loading the text gives
    back the same tree.
    """
    plain = json.loads(json.dumps(_tree("to_values_yaml", values)))
    return yaml.dump(plain, Dumper=_ValuesDumper, indent=2, width=160, default_flow_style=False,
                     sort_keys=True, allow_unicode=True)


def chart_source(repository, chart, version):
    """kubernetes.core.helm's chart_ref and chart_repo_url for `chart` `version` from `repository`."""
    if not is_local_repository(repository):
        return {"chart_ref": chart, "chart_repo_url": repository}
    try:
        return {"chart_ref": mirror_package(repository, chart, str(version))}
    except HelmFailure as error:
        raise AnsibleFilterError(f"chart_source: {error.helm_message}") from error


class FilterModule:
    """meshtune.mesh's chart value filters."""

    def filters(self):
        return {
            "leaf_paths": leaf_paths,
            "unknown_paths": unknown_paths,
            "clashing_paths": clashing_paths,
            "to_values_yaml": to_values_yaml,
            "chart_source": chart_source,
        }
