"""The collection as a provisioning pipeline gets it: `ansible-galaxy collection build`, an offline
install of the tarball into an empty collections path beside kubernetes.core, playbooks run by name
from that installed copy against the test API server, and an execution environment's build context
from `ansible-builder create`. The tarball is built and installed once for the module."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from ansible_builder._target_scripts.introspect import EXCLUDE_REQUIREMENTS
from packaging.requirements import Requirement

from tests.support.ansible_runner import REPO_ROOT
from tests.support.requirement_files import requirement_lines

BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.integration, pytest.mark.slow]
COLLECTIONS_DIR = REPO_ROOT / os.environ.get("COLLECTIONS_DIR", "build/collections")
# What a built collection must never hold: the checkout's local state and its tool chain.
NOT_SHIPPED = {".venv", "build", ".pytest_cache", ".ruff_cache", ".hypothesis", ".ansible", ".git",
               ".ci", ".gitignore", ".ansible-lint", ".yamllint", "ansible.cfg", "pyproject.toml",
               "requirements.txt", "Makefile", "tools", "bench"}


def run(command: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command to completion; output captured, failure reported with it."""
    process = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                             check=False)
    assert process.returncode == 0, f"{shlex.join(command)}\n{process.stdout[-4000:]}{process.stderr[-4000:]}"
    return process


def isolated_env(root: Path) -> dict:
    """An environment that reaches only the installed collections: no repository, no user config."""
    config = root / "ansible.cfg"
    config.write_text(f"[defaults]\ncollections_path = {root / 'collections'}\n"
                      f"collections_scan_sys_path = false\nroles_path = {root / 'roles'}\n")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("ANSIBLE_") and key not in ("PYTHONPATH", "MESHTUNE_CHART_MIRROR")}
    return {**env, "HOME": str(root / "home"), "ANSIBLE_CONFIG": str(config), "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCAL_TEMP": str(root / "home" / "tmp")}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """The tarball built from the checkout, and a root with it installed offline beside kubernetes.core."""
    root = tmp_path_factory.mktemp("built")
    (root / "home").mkdir()
    env = isolated_env(root)
    run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(root / "dist"),
         str(REPO_ROOT)], cwd=root, env=env)
    tarball = next((root / "dist").glob("meshtune-mesh-*.tar.gz"))
    kubernetes_core = COLLECTIONS_DIR / "ansible_collections" / "kubernetes" / "core"
    run([str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "-p", str(root / "collections"),
         str(tarball), str(kubernetes_core.resolve())], cwd=root, env=env)
    return {"root": root, "env": env, "tarball": tarball,
            "installed": root / "collections" / "ansible_collections" / "meshtune" / "mesh"}


def repository_files() -> set[str]:
    listing = run([str(REPO_ROOT / "tools" / "list_files.sh")], cwd=REPO_ROOT).stdout
    return {path for path in listing.split("\0") if path}


def test_the_tarball_holds_the_collection_and_nothing_of_the_checkouts_local_state(built):
    with tarfile.open(built["tarball"]) as archive:
        members = {member.name for member in archive.getmembers() if member.isfile()}
        manifest = json.loads(archive.extractfile("MANIFEST.json").read())
    print("\n".join(sorted(members)))
    leaked = sorted(name for name in members if Path(name).parts[0] in NOT_SHIPPED
                    or "__pycache__" in name or name.endswith(".pyc"))
    assert not leaked, leaked
    # Every file shipped is one of the repository's own (tracked, or new and not ignored by git).
    assert members - {"MANIFEST.json", "FILES.json"} <= repository_files(), \
        sorted(members - {"MANIFEST.json", "FILES.json"} - repository_files())
    ee = yaml.safe_load((REPO_ROOT / "meta" / "execution-environment.yml").read_text())
    for needed in ("playbooks/site.yml", "playbooks/tune.yml", "roles/tune/tasks/main.yml",
                   "plugins/modules/sidecar_scope.py", "meta/runtime.yml", "meta/execution-environment.yml",
                   ee["dependencies"]["python"], ee["dependencies"]["system"], "LICENSE", "README.md"):
        assert needed in members, needed
    galaxy = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())
    assert manifest["collection_info"]["version"] == galaxy["version"]
    assert manifest["collection_info"]["dependencies"] == galaxy["dependencies"]


def playbook(built: dict, name: str, inventory: Path, *args: str) -> subprocess.CompletedProcess:
    """ansible-playbook meshtune.mesh.<name> from the installed copy, run outside the checkout."""
    command = [str(BIN / "ansible-playbook"), "-v", "-i", str(inventory), f"meshtune.mesh.{name}",
               "-e", f"ansible_python_interpreter={sys.executable}", *args]
    return run(command, cwd=built["root"], env=built["env"])


def test_site_and_tune_run_by_name_from_the_installed_copy(built, kubeapi):
    found = json.loads(run([str(BIN / "ansible-galaxy"), "collection", "list", "--format", "json"],
                           cwd=built["root"], env=built["env"]).stdout.strip().splitlines()[-1])
    paths = [path for path, collections in found.items() if "meshtune.mesh" in collections]
    assert paths == [str(built["installed"].parent.parent)], found
    assert not built["installed"].is_symlink() and REPO_ROOT not in built["installed"].resolve().parents

    rendered = built["root"] / "rendered"
    host = {"ansible_connection": "local", "meshtune_kubeconfig": str(kubeapi.kubeconfig),
            "meshtune_render_dir": str(rendered), "meshtune_profile": "balanced",
            "grafana_admin_password": "s3cret-for-tests", "istio_injected_namespaces": ["shop"],
            "tune_sidecar_scopes": [{"namespaces": ["shop"]}]}
    inventory = built["root"] / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"cluster-a": host}}}))
    site = playbook(built, "site", inventory, "-e", "meshtune_helm_install=false")
    assert f"Using {built['root'] / 'ansible.cfg'} as config file" in site.stdout
    # No path into the checkout but the virtual environment's Python.
    assert not re.search(re.escape(str(REPO_ROOT)) + r"/(?!\.venv/)", site.stdout), site.stdout[-3000:]
    assert sorted(path.name for path in (rendered / "cluster-a").glob("*.values.yaml")), site.stdout[-3000:]
    assert kubeapi.kubectl("get", "sidecars.networking.istio.io", "-n", "shop", "-o", "name").stdout.strip()

    pool = {"http": {"http1_max_pending_requests": 64}}
    host["tune_destination_rules"] = [{"namespace": "shop", "rules": [
        {"name": "reviews", "host": "reviews", "connection_pool": pool}]}]
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"cluster-a": host}}}))
    tune = playbook(built, "tune", inventory)
    assert re.search(r"changed=[1-9]", tune.stdout.split("PLAY RECAP")[-1]), tune.stdout[-3000:]
    rule = yaml.safe_load(kubeapi.kubectl("get", "destinationrules.networking.istio.io", "reviews",
                                          "-n", "shop", "-o", "yaml").stdout)
    assert rule["spec"]["trafficPolicy"]["connectionPool"]["http"]["http1MaxPendingRequests"] == 64


def local(word: str, places: dict[str, str]) -> str:
    """A word of a Containerfile step with the image's paths replaced by local ones."""
    for image_path, local_path in places.items():
        word = word.replace(image_path, local_path)
    return word


def test_ansible_builder_create_assembles_a_context_that_installs_the_collections_requirements(built):
    context = built["root"] / "context"
    run([str(BIN / "ansible-builder"), "create", "-f", str(REPO_ROOT / "docs" / "execution-environment.yml"),
         "-c", str(context), "--output-filename", "Containerfile"], cwd=built["root"], env=built["env"])
    galaxy = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert {entry["name"] for entry in galaxy["collections"]} >= {"meshtune.mesh", "kubernetes.core"}
    containerfile = (context / "Containerfile").read_text()
    assert '--collections-path "/usr/share/ansible/collections"' in containerfile
    # The builder stage's introspection, run as the Containerfile runs it, on the collections path that
    # the galaxy stage fills: the tarball installed beside kubernetes.core.
    step = next(line for line in containerfile.splitlines() if "introspect.py introspect" in line)
    out = built["root"] / "introspected"
    out.mkdir()
    places = {"/output/scripts": str(context / "_build" / "scripts"), "/tmp/src": str(out)}
    command = [sys.executable if word == "$PYCMD" else local(word, places)
               for word in shlex.split(step.removeprefix("RUN "))]
    run([*command, str(built["root"] / "collections")], cwd=built["root"], env=built["env"])

    ee = yaml.safe_load((built["installed"] / "meta" / "execution-environment.yml").read_text())
    pip = (out / "requirements.txt").read_text().splitlines()
    for line in requirement_lines(built["installed"] / ee["dependencies"]["python"]):
        if Requirement(line).name in EXCLUDE_REQUIREMENTS:
            continue  # already in every execution environment
        assert f"{line}  # from collection meshtune.mesh" in pip, (line, pip)
    assert any(line.startswith("kubernetes>=") and "meshtune.mesh" in line for line in pip), pip
    assert any(line.startswith("helm-python-sdk") for line in pip), pip
    bindep = (out / "bindep.txt").read_text().splitlines()
    entries = requirement_lines(built["installed"] / ee["dependencies"]["system"])
    assert entries
    for line in entries:
        assert f"{line}  # from collection meshtune.mesh" in bindep, (line, bindep)


def test_the_example_builds_from_the_tarball_as_its_comments_say(built):
    example = yaml.safe_load((REPO_ROOT / "docs" / "execution-environment.yml").read_text())
    tarball = built["tarball"].name
    collections = example["dependencies"]["galaxy"]["collections"]
    collections[:] = [{"name": f"collections/{tarball}", "type": "file"} if entry["name"] == "meshtune.mesh"
                      else entry for entry in collections]
    example["additional_build_files"] = [{"src": str(built["tarball"]), "dest": "collections"}]
    definition = built["root"] / "execution-environment.yml"
    definition.write_text(yaml.safe_dump(example))
    context = built["root"] / "context-from-tarball"
    run([str(BIN / "ansible-builder"), "create", "-f", str(definition), "-c", str(context)],
        cwd=built["root"], env=built["env"])
    # The galaxy stage installs requirements.yml from the context's _build, where the tarball now is.
    assert (context / "_build" / "collections" / tarball).read_bytes() == built["tarball"].read_bytes()
    galaxy = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert {"name": f"collections/{tarball}", "type": "file"} in galaxy["collections"]
    dockerfile = next(path for path in context.iterdir() if path.name in ("Containerfile", "Dockerfile"))
    assert "COPY _build /build" in dockerfile.read_text()
