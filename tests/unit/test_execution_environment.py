"""What ansible-builder learns about the collection: meta/execution-environment.yml, the runtime
Python requirements it names (every third-party import of plugins/ covered), bindep.txt, and the
example execution environment for users."""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import sys
from pathlib import Path

import pytest
import yaml
from ansible_builder._target_scripts.introspect import process_collection
from ansible_builder.ee_schema import validate_schema
from bindep.depends import Depends
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.ansible_runner import REPO_ROOT
from tests.support.requirement_files import requirement_lines

EE = yaml.safe_load((REPO_ROOT / "meta" / "execution-environment.yml").read_text())
GALAXY = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())


RUNTIME = [Requirement(line) for line in requirement_lines(REPO_ROOT / EE["dependencies"]["python"])]


def build_ignored(path: str) -> bool:
    """Whether `ansible-galaxy collection build` leaves a path out (its fnmatch on relative paths)."""
    parts = Path(path).parts
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes for pattern in GALAXY["build_ignore"])


def test_the_collection_metadata_names_shipped_files_that_ansible_builder_reads():
    validate_schema(dict(EE))
    for kind in ("python", "system"):
        path = EE["dependencies"][kind]
        assert (REPO_ROOT / path).is_file() and not build_ignored(path), path
    pip, bindep = process_collection(str(REPO_ROOT))
    assert pip == requirement_lines(REPO_ROOT / EE["dependencies"]["python"])
    assert bindep == requirement_lines(REPO_ROOT / EE["dependencies"]["system"])
    assert {"kubernetes", "helm-python-sdk"} <= {requirement.name for requirement in RUNTIME}


def test_the_development_requirements_include_the_runtime_ones_once():
    lines = requirement_lines(REPO_ROOT / "requirements.txt")
    assert f"-r {EE['dependencies']['python']}" in lines
    development = {Requirement(line).name for line in lines if not line.startswith("-")}
    assert not development & {requirement.name for requirement in RUNTIME}
    assert build_ignored("requirements.txt"), "the tool chain's requirements are no part of the collection"


def imported_top_level_modules(root: Path) -> dict[str, str]:
    """Top-level module name -> a file importing it, for every import in root's Python files."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO_ROOT)))
    return found


def closure(names: set[str]) -> set[str]:
    """The distributions named and everything they require (installed ones, extras left out)."""
    done: set[str] = set()
    todo = [canonicalize_name(name) for name in names]
    while todo:
        name = todo.pop()
        if name in done:
            continue
        done.add(name)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if not requirement.marker or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return done


def test_every_third_party_import_of_the_plugins_is_a_runtime_requirement():
    provided = closure({requirement.name for requirement in RUNTIME} | {"ansible-core"})
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for module, where in imported_top_level_modules(REPO_ROOT / "plugins").items():
        if module in sys.stdlib_module_names or module in ("__future__", "ansible_collections"):
            continue
        names = {canonicalize_name(name) for name in distributions.get(module, [module])}
        if not names & provided:
            missing[module] = where
    assert not missing, f"imported but in no runtime requirement: {missing}"


@pytest.mark.parametrize("platform", ["platform:rpm", "platform:dpkg"])
def test_bindep_txt_parses_and_names_packages_for(platform):
    depends = Depends((REPO_ROOT / EE["dependencies"]["system"]).read_text())
    assert {rule[0] for rule in depends.active_rules([platform])} >= {"ca-certificates"}


def test_the_example_execution_environment_installs_the_collection_and_its_dependencies():
    example = yaml.safe_load((REPO_ROOT / "docs" / "execution-environment.yml").read_text())
    validate_schema(dict(example))
    assert example["version"] == 3
    collections = {entry["name"] for entry in example["dependencies"]["galaxy"]["collections"]}
    assert collections == {f"{GALAXY['namespace']}.{GALAXY['name']}", *GALAXY["dependencies"]}
