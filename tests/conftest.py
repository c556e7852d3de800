"""Shared fixtures: a test Kubernetes API server per module, and required local programs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from ansible.plugins.loader import init_plugin_loader

from tests.kubeapi.harness import KubeAPIServer, start_server

# Ansible's collection finder, installed before any test imports from ansible_collections. Tests
# that template like Ansible need it; installed only then, it would refuse to import the parts of
# meshtune.mesh that the tests before them had not imported yet.
init_plugin_loader([str(Path(__file__).resolve().parents[1] / "build" / "collections")])


def require_program(name: str) -> str:
    """Path of a program a test needs: missing is a failure in CI and a visible skip elsewhere."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (.ci/run installs it)"
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def kubeapi(tmp_path_factory) -> KubeAPIServer:
    """A fresh test API server for one test module."""
    server = start_server(tmp_path_factory.mktemp("kubeapi") / "kubeconfig")
    yield server
    server.stop()


def _server_factory(directory):
    servers = []

    def start(*options: str) -> KubeAPIServer:
        server = start_server(directory / f"kubeconfig-{len(servers)}", *options)
        servers.append(server)
        return server

    return start, servers


@pytest.fixture
def kubeapi_factory(tmp_path):
    """Start servers with extra command-line options, e.g. `--disable autoscaling/v2`."""
    start, servers = _server_factory(tmp_path)
    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def kubeapi_factory_module(tmp_path_factory):
    """Like kubeapi_factory, for servers a whole test module shares."""
    start, servers = _server_factory(tmp_path_factory.mktemp("kubeapi"))
    yield start
    for server in servers:
        server.stop()
