"""The shared Helm pipeline (roles/helm_releases) without a cluster: value-path failures, the chart
mirror checks, the values files and their header, and render-only install and uninstall.

Each inventory host is one case; they all run the role's entry points in one ansible-playbook
run. What installs through a driver needs a cluster and is tested with the playbooks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.support.ansible_runner import run_playbook

pytestmark = pytest.mark.slow

PLAYBOOK = """
- name: Run entry points of the shared Helm pipeline
  hosts: all
  gather_facts: false
  tasks:
    - name: Run each entry point of the case
      ansible.builtin.include_role:
        name: meshtune.mesh.helm_releases
        tasks_from: "{{ entry }}"
      vars:
        helm_releases_list: "{{ uninstalls if entry == 'uninstall' else releases }}"
      loop: "{{ entries }}"
      loop_control:
        loop_var: entry
"""
VALUES = {"replicas": 2, "podLabels": {"team": "mesh"}, "config": "line one\nline two\n"}
KNOWN = ["replicas", "podLabels.*", "config"]


def release(**changes) -> dict:
    return {"name": "demo-release", "namespace": "demo", "chart": "demo", "chart_version": "1.0.0",
            "chart_repo_url": "https://charts.example.com/official", "chart_values": VALUES,
            "value_paths": KNOWN, "value_paths_version": "1.0.0",
            "value_paths_file": "roles/demo/vars/value_paths.yml",
            "set_by": "demo_overrides or the balanced profile", "profile": "balanced",
            "wait_timeout": "5m0s", **changes}


def write_mirror(directory: Path, packages: dict[str, str], present: bool = True) -> Path:
    """A chart mirror: an index.yaml listing demo at each version, with (or without) the packages."""
    directory.mkdir()
    entries = [{"name": "demo", "version": version, "urls": [url]} for version, url in packages.items()]
    (directory / "index.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "entries": {"demo": entries}}))
    for url in packages.values() if present else ():
        (directory / url).write_bytes(b"package")
    return directory


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("helm-releases")
    mirror = write_mirror(tmp / "mirror", {"1.0.0": "demo-1.0.0.tgz"})
    broken = write_mirror(tmp / "broken", {"1.0.0": "demo-1.0.0.tgz"}, present=False)
    (tmp / "empty").mkdir()
    render = {"entries": ["render"], "helm_releases_install": True}
    cases = {
        "official": {**render, "meshtune_chart_mirror": ""},
        "url_mirror": {**render, "meshtune_chart_mirror": "https://mirror.example.com/charts",
                       "releases": [release(comment="No secrets in here.")]},
        "dir_mirror": {**render, "meshtune_chart_mirror": str(mirror)},
        "no_index": {**render, "meshtune_chart_mirror": str(tmp / "empty")},
        "not_mirrored": {**render, "meshtune_chart_mirror": str(mirror),
                         "releases": [release(chart_version="2.0.0")]},
        "no_package": {**render, "meshtune_chart_mirror": str(broken)},
        "typo": {**render, "meshtune_chart_mirror": "",
                 "releases": [release(chart_values={**VALUES, "replica": 1, "pod": {"labels": {}}}),
                              release(name="other", chart_values={"replicass": 3})]},
        "render_only": {"entries": ["render", "install", "uninstall"], "helm_releases_install": False,
                        "meshtune_chart_mirror": str(tmp / "empty"),
                        "helm_releases_render_only_note": "The namespace demo is still applied.",
                        "uninstalls": [{"name": "demo-release", "namespace": "demo", "wait_timeout": "5m0s",
                                        "record": {"revision": "1-0-0"}}]},
    }
    common = {"ansible_connection": "local", "helm_releases_render_dir": str(tmp / "rendered"),
              "releases": [release()]}
    inventory = tmp / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {
        host: {**common, **case} for host, case in cases.items()}}}))
    playbook = tmp / "pipeline.yml"
    playbook.write_text(PLAYBOOK)
    result = run_playbook(playbook, inventory=str(inventory))
    return result, " ".join(result.stdout.split()), tmp / "rendered", mirror


def failure(output: str, host: str) -> str:
    found = re.search(rf"(?:fatal|failed): \[{host}\](?: \(item=[^)]*\))?(?:: FAILED!)? => (.*?)"
                      r"(?=fatal: \[|failed: \[|PLAY RECAP|TASK \[)", output)
    assert found, f"{host} did not fail"
    return found.group(0).replace("''", "'")


def header(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("#")]


def test_values_file_header_names_release_chart_version_source_and_profile(run):
    _result, _output, rendered, mirror = run
    sources = {"official": "https://charts.example.com/official", "url_mirror": "https://mirror.example.com/charts",
               "dir_mirror": str(mirror)}
    for host, source in sources.items():
        path = rendered / host / "demo-release.values.yaml"
        assert header(path)[:2] == ["# Helm values of release demo-release (chart demo 1.0.0 from",
                                    f"# {source}), profile balanced."], host
        assert yaml.safe_load(path.read_text()) == VALUES
    assert header(rendered / "url_mirror" / "demo-release.values.yaml")[3:] == ["# No secrets in here."]


def test_multi_line_text_is_a_literal_block(run):
    text = (run[2] / "official" / "demo-release.values.yaml").read_text()
    assert "config: |\n  line one\n  line two\n" in text


@pytest.mark.parametrize(("host", "message"), [
    ("no_index", "it must be an http(s):// chart repository URL or a directory holding the pinned chart "
                 "packages and their index.yaml"),
    ("not_mirrored", "chart demo version 2.0.0 is not in the chart mirror"),
    ("no_package", "index.yaml lists demo 1.0.0 as"),
])
def test_a_mirror_without_the_pinned_charts_fails_before_any_write(run, host, message):
    _result, output, rendered, _mirror = run
    assert message in failure(output, host)
    assert not (rendered / host).exists()


def test_unknown_paths_fail_once_per_release_before_any_write(run):
    _result, output, rendered, _mirror = run
    assert ("demo-release: pod.labels, replica are not values of the demo chart 1.0.0 (a misspelt key in "
            "demo_overrides or the balanced profile? Helm would ignore it silently). "
            "Known paths: roles/demo/vars/value_paths.yml.") in output
    assert "other: replicass is not a value of the demo chart 1.0.0" in output
    assert not (rendered / "typo").exists()


def test_render_only_writes_says_so_and_records_the_uninstall(run):
    result, output, rendered, _mirror = run
    assert re.search(r"^render_only\s*:.*failed=0", result.stdout, re.M), result.stdout[-3000:]
    assert (f"Render-only (meshtune_helm_install is false): values of demo-release written to "
            f"{rendered / 'render_only'}; Helm was not run. The namespace demo is still applied.") in output
    files = sorted(path.name for path in (rendered / "render_only").iterdir())
    assert files == ["demo-release.uninstall.yaml"]  # the values file went with the release
    record = rendered / "render_only" / "demo-release.uninstall.yaml"
    assert yaml.safe_load(record.read_text()) == {"action": "uninstall", "release": "demo-release",
                                                  "namespace": "demo", "revision": "1-0-0"}
    assert header(record)[0] == "# Render-only plan: remove release demo-release from namespace demo"
