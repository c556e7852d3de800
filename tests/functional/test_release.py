"""`make release VERSION=x.y.z` (tools/release.sh) on a copy of the repository: galaxy.yml bumped,
the changelog released from the fragments, the tarball built with that version; versions already
released or not x.y.z refused before anything changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.support.ansible_runner import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]
COLLECTIONS_DIR = REPO_ROOT / os.environ.get("COLLECTIONS_DIR", "build/collections")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """The repository's files (tools/list_files.sh) copied into a directory of their own."""
    copy = tmp_path_factory.mktemp("checkout")
    listing = subprocess.run([str(REPO_ROOT / "tools" / "list_files.sh")], cwd=REPO_ROOT, capture_output=True,
                             check=True).stdout
    pack = subprocess.run(["tar", "--null", "--files-from=-", "--create", "--file=-"], cwd=REPO_ROOT,
                          input=listing, capture_output=True, check=True).stdout
    subprocess.run(["tar", "--extract", "--file=-"], cwd=copy, input=pack, check=True)
    return copy


def release(checkout: Path, version: str) -> subprocess.CompletedProcess:
    # kubernetes.core (for the plugin docs antsibull-changelog reads) from the one `make setup` installed.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_DIR)}
    return subprocess.run(["tools/release.sh", version], cwd=checkout, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_a_release_bumps_galaxy_yml_writes_the_changelog_and_builds_the_tarball(checkout):
    galaxy_before = yaml.safe_load((checkout / "galaxy.yml").read_text())
    fragments = sorted(path.name for path in (checkout / "changelogs" / "fragments").glob("*.yml"))
    run = release(checkout, "9.8.7")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    assert yaml.safe_load((checkout / "galaxy.yml").read_text()) == {**galaxy_before, "version": "9.8.7"}
    released = yaml.safe_load((checkout / "changelogs" / "changelog.yaml").read_text())["releases"]["9.8.7"]
    assert sorted(released["fragments"]) == fragments
    assert "v9.8.7" in (checkout / "CHANGELOG.rst").read_text()

    tarball = checkout / "build" / "release" / "meshtune-mesh-9.8.7.tar.gz"
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
        manifest = json.loads(archive.extractfile("MANIFEST.json").read())
    assert manifest["collection_info"]["version"] == "9.8.7"
    assert {"CHANGELOG.rst", "changelogs/changelog.yaml"} <= set(names)
    assert "changelogs/.plugin-cache.yaml" not in names
    assert "CHANGELOG.rst" in run.stdout, "the tarball's contents are listed"
    assert yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())["version"] != "9.8.7", "only the copy"

    again = release(checkout, "9.8.7")
    assert again.returncode != 0
    assert "9.8.7 is already released" in again.stderr


@pytest.mark.parametrize("version", ["", "1.2", "v1.2.3", "1.2.3; rm -rf /", "01.2.3"])
def test_a_version_that_is_not_x_y_z_is_refused_before_any_change(checkout, version):
    before = (checkout / "galaxy.yml").read_text()
    run = release(checkout, version)
    assert run.returncode == 2
    assert "usage: tools/release.sh x.y.z" in run.stderr
    assert (checkout / "galaxy.yml").read_text() == before
