"""Chart value paths (leaves, unknown paths, clashes with owned paths), values files, chart sources.

The install roles' checks rest on these: a misspelt key must be named, a free-form map must take
any key, an override must not touch what a role renders itself, the values file must load back to
exactly the values a module receives, and a chart mirror must give the package its index lists.
"""

from __future__ import annotations

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.meshtune.mesh.plugins.filter.chart_values import FilterModule, to_values_yaml
from ansible_collections.meshtune.mesh.plugins.module_utils.chart_values import (
    clashing_paths,
    leaf_paths,
    unknown_paths,
)

FILTERS = FilterModule().filters()
TREE = {
    "autoscaleMax": 8,
    "meshConfig": {"defaultConfig": {"concurrency": 4, "proxyMetadata": {}},
                   "discoverySelectors": [{"matchLabels": {"mesh": "on"}}]},
    "podAnnotations": {"example.com/team": "mesh", "nested": {"deeper": "x"}},
    "global": {"proxy": {"resources": {"limits": {"cpu": "1", "memory": None}}}},
}


# --- leaf paths -------------------------------------------------------------------------------


def test_leaves_are_scalars_lists_and_empty_mappings_in_tree_order():
    assert leaf_paths(TREE) == [
        "autoscaleMax", "meshConfig.defaultConfig.concurrency", "meshConfig.defaultConfig.proxyMetadata",
        "meshConfig.discoverySelectors", "podAnnotations.example.com/team", "podAnnotations.nested.deeper",
        "global.proxy.resources.limits.cpu", "global.proxy.resources.limits.memory"]


def test_an_empty_tree_has_no_leaves_and_keys_become_text():
    assert leaf_paths({}) == []
    assert leaf_paths({1: {True: "x"}}) == ["1.True"]


# --- unknown paths ----------------------------------------------------------------------------

KNOWN = ["autoscaleMax", "meshConfig.defaultConfig.concurrency", "meshConfig.defaultConfig.proxyMetadata.*",
         "meshConfig.discoverySelectors", "podAnnotations.*", "global.proxy.resources.limits.cpu",
         "global.proxy.resources.limits.memory"]


def test_known_paths_and_anything_in_a_free_form_map_are_chart_values():
    assert unknown_paths(TREE, KNOWN) == []
    assert unknown_paths({"podAnnotations": {}}, KNOWN) == []  # the map itself


@pytest.mark.parametrize(("tree", "unknown"), [
    ({"meshConfig": {"defaultConfig": {"concurency": 4}}}, ["meshConfig.defaultConfig.concurency"]),
    ({"podAnnotationsExtra": {"a": "b"}}, ["podAnnotationsExtra.a"]),  # a prefix is not the map
    ({"autoscaleMax": {"replicas": 3}}, ["autoscaleMax.replicas"]),  # below a scalar value
    ({"global": {"proxy": {}}}, ["global.proxy"]),  # {} where the chart reads keys below
    ({"autoscaleMaxReplicas": 8, "autoscaleMax": 8, "pilot": {"cpu": 1}},
     ["autoscaleMaxReplicas", "pilot.cpu"]),
])
def test_paths_the_chart_does_not_read_are_named(tree, unknown):
    assert unknown_paths(tree, KNOWN) == unknown


# --- clashes with owned paths -----------------------------------------------------------------

OWNED = ["admin", "datasources.datasources.yaml", "sidecar.dashboards.enabled"]


@pytest.mark.parametrize(("tree", "clashes"), [
    ({"admin": {"existingSecret": "mine"}}, ["admin.existingSecret"]),  # inside an owned path
    ({"sidecar": {"dashboards": {"enabled": False}}}, ["sidecar.dashboards.enabled"]),  # the path
    ({"sidecar": False}, ["sidecar"]),  # replaces the mapping that holds one
    ({"datasources": {}}, ["datasources"]),
    ({"adminUser": "root", "sidecar": {"dashboards": {"label": "x"}},
      "datasources": {"other.yaml": {"apiVersion": 1}}}, []),  # neighbours, not owned paths
])
def test_overrides_may_not_touch_owned_paths(tree, clashes):
    assert clashing_paths(tree, OWNED) == clashes


# --- values files -----------------------------------------------------------------------------

VALUES = {
    "extraScrapeConfigs": "- job_name: istiod\n  scrape_interval: 15s\n",
    "serverFiles": {"rules.yml": {"groups": [{"expr": "sum(\n  rate(x[1m])\n)\n"}]}},
    "looksLikeOther": ["1.0", "yes", "2026-01-01", "null", "0x1F", "~", ""],
    "trailingSpaces": "line  \nnext\n",
    "numbers": {"int": 3, "float": 0.5, "bool": True, "none": None},
    "empty": {"map": {}, "list": []},
    "unicode": "grüße",
}


def test_values_file_loads_back_to_the_same_values():
    assert yaml.safe_load(to_values_yaml(VALUES)) == VALUES


def test_values_file_is_sorted_and_keeps_multi_line_text_readable():
    text = to_values_yaml(VALUES)
    assert [line.split(":")[0] for line in text.splitlines() if line[:1].isalpha()] == sorted(VALUES)
    assert "extraScrapeConfigs: |\n  - job_name: istiod\n    scrape_interval: 15s\n" in text
    assert "- expr: |\n" in text


def test_values_file_has_no_anchors_for_shared_objects():
    shared = {"limits": {"memory": "1Gi"}}
    text = to_values_yaml({"a": shared, "b": shared})
    assert "&" not in text and "*" not in text
    assert yaml.safe_load(text) == {"a": shared, "b": shared}


# --- the filters --------------------------------------------------------------------------------


def test_filters_call_the_same_logic():
    assert FILTERS["leaf_paths"](TREE) == leaf_paths(TREE)
    assert FILTERS["unknown_paths"]({"x": 1}, ("y",)) == ["x"]
    assert FILTERS["clashing_paths"]({"admin": {"user": "a"}}, OWNED) == ["admin.user"]
    assert FILTERS["to_values_yaml"] is to_values_yaml


@pytest.mark.parametrize(("name", "args", "message"), [
    ("leaf_paths", (["a", "b"],), "leaf_paths: expected a mapping of chart values, got list"),
    ("unknown_paths", ({}, "a.b"), "unknown_paths: expected a list of dotted paths, got str"),
    ("clashing_paths", ("a: b", []), "clashing_paths: expected a mapping of chart values, got str"),
])
def test_filters_name_wrong_input(name, args, message):
    with pytest.raises(AnsibleFilterError, match=message):
        FILTERS[name](*args)


# --- chart sources ------------------------------------------------------------------------------


@pytest.fixture
def mirror(tmp_path):
    """A chart mirror: packages beside their index.yaml, one of them in a subdirectory."""
    (tmp_path / "charts").mkdir()
    index = {"apiVersion": "v1", "entries": {
        "istiod": [{"name": "istiod", "version": "1.30.3", "urls": ["istiod-1.30.3.tgz"]},
                   {"name": "istiod", "version": "1.29.6", "urls": ["charts/istiod-1.29.6.tgz"]}],
        "grafana": [{"name": "grafana", "version": "12.11.1",
                     "urls": ["https://charts.example.com/grafana-12.11.1.tgz"]}]}}
    (tmp_path / "index.yaml").write_text(yaml.safe_dump(index))
    return tmp_path


def test_a_repository_url_gives_the_chart_name_in_it():
    repository = "https://istio-release.storage.googleapis.com/charts"
    assert FILTERS["chart_source"](repository, "istiod", "1.30.3") == {
        "chart_ref": "istiod", "chart_repo_url": repository}


def test_a_mirror_directory_gives_the_package_its_index_lists(mirror):
    def package(chart, version):
        return FILTERS["chart_source"](str(mirror), chart, version)["chart_ref"]

    assert package("istiod", "1.30.3") == str(mirror / "istiod-1.30.3.tgz")
    assert package("istiod", "1.29.6") == str(mirror / "charts" / "istiod-1.29.6.tgz")  # relative path
    assert package("grafana", "12.11.1") == "https://charts.example.com/grafana-12.11.1.tgz"  # absolute URL
    assert FILTERS["chart_source"](str(mirror), "istiod", "1.30.3").keys() == {"chart_ref"}


def test_a_version_missing_from_the_mirror_is_named_with_the_ones_it_has(mirror):
    with pytest.raises(AnsibleFilterError, match=r"chart istiod version 1\.31\.0 is not in the chart mirror "
                                                 r".* lists versions of istiod: 1\.30\.3, 1\.29\.6\)"):
        FILTERS["chart_source"](str(mirror), "istiod", "1.31.0")


def test_a_directory_without_an_index_is_named(tmp_path):
    with pytest.raises(AnsibleFilterError, match=r"cannot read the chart mirror's index .*index\.yaml"):
        FILTERS["chart_source"](str(tmp_path), "istiod", "1.30.3")
