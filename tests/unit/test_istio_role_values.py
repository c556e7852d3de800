"""The istio role's rendered Helm values, per profile, checked against the charts' value paths.

Helm ignores a value key that no template reads and the istiod chart has no values schema, so a
misspelt key would cost nothing at install and buy nothing. The role renders its values with its
own tasks (render-only, no cluster needed) and every leaf path of every file must be a value of
the pinned chart version (roles/istio/vars/value_paths.yml, which the role's own check uses too).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.support.ansible_runner import REPO_ROOT, run_playbook

ROLE = REPO_ROOT / "roles" / "istio"
VALUE_PATHS = yaml.safe_load((ROLE / "vars" / "value_paths.yml").read_text())
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
PROFILES = ["minimal", "balanced", "performance"]
REVISION = "1-30-3"

# The istiod values meshtune tunes, as istio.md names them for the pinned chart (top-level
# control-plane keys, meshConfig, global.proxy): each must be in the role's value paths.
DOCUMENTED_ISTIOD_PATHS = [
    "resources.requests.cpu", "resources.requests.memory", "autoscaleEnabled", "autoscaleMin",
    "autoscaleMax", "replicaCount", "cpu.targetAverageUtilization", "traceSampling",
    "keepaliveMaxServerConnectionAge", "env.PILOT_DEBOUNCE_AFTER", "env.PILOT_DEBOUNCE_MAX",
    "env.PILOT_PUSH_THROTTLE", "revision", "revisionTags", "profile", "compatibilityVersion",
    "meshConfig.accessLogFile", "meshConfig.enableTracing",
    "meshConfig.defaultConfig.tracing.sampling", "meshConfig.defaultConfig.concurrency",
    "meshConfig.defaultConfig.holdApplicationUntilProxyStarts", "meshConfig.discoverySelectors",
    "meshConfig.outboundTrafficPolicy.mode", "meshConfig.enablePrometheusMerge",
    "meshConfig.defaultConfig.proxyStatsMatcher.inclusionRegexps",
    "global.proxy.resources.requests.cpu", "global.proxy.resources.requests.memory",
    "global.proxy.resources.limits.cpu", "global.proxy.resources.limits.memory",
]
# What every profile must decide (the knobs the install stage tunes); stats inclusion only where on.
PROFILE_KNOBS = [path for path in DOCUMENTED_ISTIOD_PATHS
                 if path not in {"traceSampling", "keepaliveMaxServerConnectionAge", "profile",
                                 "compatibilityVersion", "meshConfig.outboundTrafficPolicy.mode",
                                 "meshConfig.enablePrometheusMerge",
                                 "meshConfig.defaultConfig.proxyStatsMatcher.inclusionRegexps"}]
# Paths Helm would silently ignore: each must be rejected.
MISSPELT = ["meshConfig.defaultConfig.concurency", "pilot.resources.requests.cpu",
            "autoscaleMaxReplicas", "global.proxy.resource.limits.cpu", "env.PILOT_DEBOUNCE",
            "meshConfig.accesLogFile"]

RENDER_PLAYBOOK = """
- name: Render the istio role's values without a cluster
  hosts: all
  gather_facts: false
  tasks:
    - name: Validate the profile and the values
      ansible.builtin.include_role: {name: meshtune.mesh.istio, tasks_from: validate}
    - name: Write the values files
      ansible.builtin.include_role: {name: meshtune.mesh.istio, tasks_from: render}
"""
# A host's failure in ansible-playbook's output (whitespace folded), up to the next event.
FAILURE = (r"(?:fatal|failed): \[{host}\](?: \(item=[^)]*\))?(?:: FAILED!)? => "
           r"(.*?)(?=fatal: \[|failed: \[|PLAY RECAP|TASK \[)")
MAIN_PLAYBOOK = """
- name: Run the istio role
  hosts: all
  gather_facts: false
  roles:
    - meshtune.mesh.istio
"""


def flatten(tree: dict, prefix: str = ""):
    """(dotted path, value) of every leaf: scalars, lists and empty mappings."""
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def leaf_paths(tree: dict) -> list[str]:
    return [path for path, _value in flatten(tree)]


def is_chart_value(path: str, known: list[str]) -> bool:
    """Known exactly, or below a free-form map (an entry ending in `.*`)."""
    return path in known or any(
        entry.endswith(".*") and (path == entry[:-2] or path.startswith(entry[:-1]))
        for entry in known)


def write_inventory(path: Path, render_dir: Path, hosts: dict[str, dict]) -> Path:
    """One local host per case; the role writes to render_dir/<host>/."""
    common = {"ansible_connection": "local", "meshtune_helm_install": False,
              "meshtune_render_dir": str(render_dir)}
    path.write_text(yaml.safe_dump(
        {"all": {"hosts": {name: {**common, **host_vars} for name, host_vars in hosts.items()}}}))
    return path


def rendered(render_dir: Path, host: str, release: str) -> dict:
    return yaml.safe_load((render_dir / host / f"{release}.values.yaml").read_text())


@pytest.fixture(scope="module")
def render_dir(tmp_path_factory) -> Path:
    """Every profile, plus one host with overrides, tags and the gateway, in one run."""
    tmp = tmp_path_factory.mktemp("istio-render")
    hosts = {profile: {"meshtune_profile": profile} for profile in PROFILES}
    hosts["custom"] = {
        "meshtune_profile": "balanced", "istio_charts": ["base", "istiod", "gateway"],
        "istio_revision_tags": ["prod-stable"], "istio_default_revision": "1-29-6",
        "istio_overrides": {"autoscaleMax": 8, "meshConfig": {"defaultConfig": {"concurrency": 4}},
                            "podAnnotations": {"example.com/team": "mesh"}},
        "istio_gateway_overrides": {"service": {"type": "ClusterIP"}}}
    playbook = tmp / "render.yml"
    playbook.write_text(RENDER_PLAYBOOK)
    inventory = write_inventory(tmp / "hosts.yml", tmp / "rendered", hosts)
    result = run_playbook(playbook, inventory=str(inventory))
    assert result.returncode == 0, result.stdout + result.stderr
    return tmp / "rendered"


@pytest.mark.slow
@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(("release", "chart"), [("istio-base", "base"),
                                                (f"istiod-{REVISION}", "istiod")])
def test_every_rendered_path_is_a_chart_value(render_dir, profile, release, chart):
    values = rendered(render_dir, profile, release)
    unknown = [path for path in leaf_paths(values)
               if not is_chart_value(path, VALUE_PATHS["istio_value_paths"][chart])]
    assert unknown == []


@pytest.mark.slow
@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_decides_the_tuning_knobs(render_dir, profile):
    paths = leaf_paths(rendered(render_dir, profile, f"istiod-{REVISION}"))
    assert [knob for knob in PROFILE_KNOBS if knob not in paths] == []


@pytest.mark.slow
def test_profiles_trade_cost_for_speed(render_dir):
    istiod = {profile: rendered(render_dir, profile, f"istiod-{REVISION}") for profile in PROFILES}
    minimal, balanced, performance = (istiod[p] for p in PROFILES)
    assert not minimal["autoscaleEnabled"] and minimal["replicaCount"] == 1
    assert balanced["autoscaleMin"] == 2 and performance["autoscaleMin"] == 3
    assert minimal["meshConfig"]["defaultConfig"]["concurrency"] == 1
    assert performance["meshConfig"]["accessLogFile"] == ""
    assert performance["meshConfig"]["discoverySelectors"]
    assert performance["meshConfig"]["defaultConfig"]["tracing"]["sampling"] < \
        balanced["meshConfig"]["defaultConfig"]["tracing"]["sampling"]
    for values in istiod.values():
        assert values["revision"] == REVISION and values["revisionTags"] == []
        assert values["global"]["istioNamespace"] == "istio-system"
        assert all(isinstance(value, str) for value in values["env"].values())  # chart quotes them


@pytest.mark.slow
def test_overrides_change_single_values_over_the_profile(render_dir):
    istiod = rendered(render_dir, "custom", f"istiod-{REVISION}")
    balanced = rendered(render_dir, "balanced", f"istiod-{REVISION}")
    assert istiod["autoscaleMax"] == 8
    assert istiod["meshConfig"]["defaultConfig"]["concurrency"] == 4
    # The rest of the profile stays: deep merge, not replacement.
    mesh, balanced_mesh = istiod["meshConfig"], balanced["meshConfig"]
    assert mesh["defaultConfig"]["tracing"] == balanced_mesh["defaultConfig"]["tracing"]
    assert mesh["accessLogFile"] == balanced_mesh["accessLogFile"]
    assert istiod["revisionTags"] == ["prod-stable"]
    assert rendered(render_dir, "custom", "istio-base")["defaultRevision"] == "1-29-6"
    gateway = rendered(render_dir, "custom", "istio-ingressgateway")
    assert gateway["revision"] == REVISION and gateway["service"] == {"type": "ClusterIP"}
    assert [path for path in leaf_paths(gateway)
            if not is_chart_value(path, VALUE_PATHS["istio_value_paths"]["gateway"])] == []


@pytest.mark.slow
def test_render_only_writes_only_the_enabled_releases(render_dir):
    assert sorted(p.name for p in (render_dir / "balanced").iterdir()) == [
        "istio-base.values.yaml", f"istiod-{REVISION}.values.yaml"]


def test_value_paths_are_for_the_pinned_version():
    assert VALUE_PATHS["istio_value_paths_version"] == DEFAULTS["istio_version"]
    assert DEFAULTS["istio_version"] == "1.30.3"


def test_documented_paths_are_known_and_misspellings_are_not():
    known = VALUE_PATHS["istio_value_paths"]["istiod"]
    assert [path for path in DOCUMENTED_ISTIOD_PATHS if path not in known] == []
    assert [path for path in MISSPELT if is_chart_value(path, known)] == []
    assert len(known) == len(set(known))


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_value_carries_a_comment(profile):
    """A leaf line has its own comment or sits in a block of keys under a comment."""
    lines = (ROLE / "vars" / "profiles" / f"{profile}.yml").read_text().splitlines()
    uncommented = []
    for number, line in enumerate(lines):
        if not re.match(r"^\s+[\w.]+:\s*\S", line) or "#" in line:
            continue  # not a leaf value, or commented inline
        above = number - 1
        while above >= 0 and re.match(r"^\s+([\w.]+:|- )", lines[above]):
            above -= 1
        if above < 0 or not lines[above].lstrip().startswith("#"):
            uncommented.append(line.strip())
    assert uncommented == []


@pytest.mark.slow
def test_bad_input_fails_before_anything_is_written(tmp_path):
    hosts = {
        "typo": {"istio_overrides": {"meshConfig": {"defaultConfig": {"concurency": 4}}}},
        "unknown_profile": {"meshtune_profile": "fast"},
        "wrong_type": {"istio_overrides": ["concurrency", 4]},
        "string_list": {"istio_injected_namespaces": "shop,payments"},
        "bad_revision": {"istio_revision": "1.30.3"},
        "owned_override": {"istio_overrides": {"global": {"istioNamespace": "mesh"}},
                           "istio_gateway_overrides": {"revision": "canary"}},
        "bad_driver": {"meshtune_helm_driver": "helm"},
    }
    playbook = tmp_path / "main.yml"
    playbook.write_text(MAIN_PLAYBOOK)
    inventory = write_inventory(tmp_path / "hosts.yml", tmp_path / "rendered", hosts)
    result = run_playbook(playbook, inventory=str(inventory))
    output = " ".join(result.stdout.split())
    expected = {
        "typo": "meshConfig.defaultConfig.concurency is not a value of the istiod chart 1.30.3",
        "unknown_profile": "value of meshtune_profile must be one of: minimal, balanced, performance",
        "wrong_type": "argument 'istio_overrides' is of type list",
        "string_list": "must be YAML lists, not strings",
        "bad_revision": "must be DNS labels",
        "owned_override": "The overrides set istio_overrides.global.istioNamespace, "
                          "istio_gateway_overrides.revision, which the role renders itself",
        "bad_driver": "value of meshtune_helm_driver must be one of: sdk, cli, got: helm",
    }
    for host, message in expected.items():
        failure = re.search(FAILURE.format(host=host), output)
        assert failure, f"{host} did not fail:\n{result.stdout}"
        assert message in failure.group(1).replace("''", "'"), failure.group(1)
    assert not (tmp_path / "rendered").exists()


def docs_tables(section: str) -> list[dict[str, list[str]]]:
    """The tables of one `## section` of docs/profiles.md: value path -> cells of the profiles."""
    text = (REPO_ROOT / "docs" / "profiles.md").read_text().split(f"\n## {section}\n", 1)[1]
    text = text.split("\n## ", 1)[0]
    tables, rows = [], None
    for line in text.splitlines():
        if line.startswith("| value |"):
            rows = {}
            tables.append(rows)
        elif line.startswith("| `") and rows is not None:
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0].strip("`")] = cells[1:4]
        elif not line.startswith("|"):
            rows = None
    return tables


@pytest.mark.parametrize(("table", "variable"), [(0, "istio_profile_defaults"),
                                                 (1, "istio_gateway_profile_defaults")])
def test_docs_show_the_profiles_as_they_are(table, variable):
    rows = docs_tables("istio")[table]
    for column, profile in enumerate(PROFILES):
        values = yaml.safe_load((ROLE / "vars" / "profiles" / f"{profile}.yml").read_text())[variable]
        leaves = dict(flatten(values))
        assert sorted(leaves) == sorted(path for path, cells in rows.items() if cells[column] != "—")
        for path, cells in rows.items():
            cell = cells[column]
            if re.fullmatch(r"`[^`]*`", cell):  # a literal value, not prose
                assert str(yaml.safe_load(cell.strip("`"))) == str(leaves[path]), (profile, path)
