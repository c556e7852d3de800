"""meshtune.mesh.helm_release: real Helm (the Go SDK in-process) with a real chart from the chart
mirror, against the test API server.

One release of Istio's gateway chart goes through install, an idempotent re-run, check and diff
mode, an upgrade, an upgrade the API server rejects (atomic: rolled back), and uninstall. Each
phase is a module fixture on the one before it.
"""

from __future__ import annotations

import json

import pytest

from tests.support.ansible_runner import run_module
from tests.support.charts import chart_mirror, chart_package

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODULE = "meshtune.mesh.helm_release"
NAMESPACE = "istio-ingress"
RELEASE = "istio-ingressgateway"
VERSION = "1.30.3"
FIRST = {"revision": "1-30-3", "autoscaling": {"minReplicas": 1}}
SECOND = {"revision": "1-30-3", "autoscaling": {"minReplicas": 2}}
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


def writes(server) -> dict:
    verbs = server.stats()["requests"]["by_verb"]
    return {verb: verbs[verb] for verb in WRITE_VERBS if verbs.get(verb)}


@pytest.fixture(scope="module")
def mirror():
    return chart_mirror()


@pytest.fixture(scope="module")
def release(kubeapi, mirror, tmp_path_factory):
    """Run the module with the gateway chart from the mirror; extra arguments override."""
    tmp = tmp_path_factory.mktemp("helm-release")

    def run(*flags: str, **args) -> dict:
        base = {"kubeconfig": str(kubeapi.kubeconfig), "release_name": RELEASE,
                "release_namespace": NAMESPACE, "chart_ref": "gateway",
                "chart_repo_url": str(mirror), "chart_version": VERSION,
                "values": FIRST, "create_namespace": True,
                "wait": True, "wait_timeout": "2m", "atomic": True}
        return run_module(tmp, MODULE, {**base, **args}, *flags)

    return run


def live(server, kind: str, name: str) -> dict | None:
    result = server.kubectl("get", kind, name, "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def helm_records(server) -> list[str]:
    secrets = json.loads(server.kubectl("get", "secrets", "-n", NAMESPACE, "-l", "owner=helm",
                                        "-o", "json").stdout)["items"]
    return sorted(secret["metadata"]["name"] for secret in secrets)


@pytest.fixture(scope="module")
def installed(kubeapi, release):
    first = release()
    kubeapi.reset_stats()
    second = release()
    return first, second, writes(kubeapi), kubeapi.stats()["requests"]


def test_install_deploys_the_chart_and_records_the_release(installed, kubeapi):
    first = installed[0]
    assert first["changed"] is True and first["action"] == "installed", first
    assert first["release"] | {"deployed_at": None} == {
        "name": RELEASE, "namespace": NAMESPACE, "revision": 1, "status": "deployed",
        "chart_name": "gateway", "chart_version": VERSION, "app_version": VERSION,
        "deployed_at": None}
    deployment = live(kubeapi, "deployment", RELEASE)
    assert deployment["spec"]["template"]["metadata"]["labels"]["istio.io/rev"] == "1-30-3"
    assert live(kubeapi, "service", RELEASE)["spec"]["type"] == "LoadBalancer"
    assert helm_records(kubeapi) == [f"sh.helm.release.v1.{RELEASE}.v1"]


def test_rerun_changes_nothing_and_writes_nothing(installed):
    second, written, requests = installed[1:]
    assert second["changed"] is False and second["action"] == "unchanged", second
    assert second["release"]["revision"] == 1
    assert written == {}
    # Reads: the release history and the deployed revision's values, nothing else.
    assert requests["total"] <= 3, requests


@pytest.fixture(scope="module")
def planned(installed, kubeapi, release):
    kubeapi.reset_stats()
    result = release("--check", "--diff", values=SECOND)
    return result, writes(kubeapi)


def test_check_and_diff_mode_show_the_change_and_write_nothing(planned, kubeapi):
    result, written = planned
    assert result["changed"] is True and result["action"] == "upgraded", result
    assert written == {}
    values_diff, manifest_diff = result["diff"]
    assert "minReplicas: 1" in values_diff["before"] and "minReplicas: 2" in values_diff["after"]
    assert "kind: HorizontalPodAutoscaler" in manifest_diff["before"]
    assert "minReplicas: 2" in manifest_diff["after"] and "minReplicas: 2" not in manifest_diff["before"]
    assert helm_records(kubeapi) == [f"sh.helm.release.v1.{RELEASE}.v1"]


@pytest.fixture(scope="module")
def upgraded(planned, release):
    return release("--diff", values=SECOND)


def test_upgrade_makes_one_new_revision(upgraded, kubeapi):
    assert upgraded["changed"] is True and upgraded["action"] == "upgraded", upgraded
    assert upgraded["release"]["revision"] == 2
    assert live(kubeapi, "hpa", RELEASE)["spec"]["minReplicas"] == 2
    assert "minReplicas: 2" in upgraded["diff"][0]["after"]
    assert helm_records(kubeapi) == [f"sh.helm.release.v1.{RELEASE}.v{n}" for n in (1, 2)]


@pytest.fixture(scope="module")
def rejected(upgraded, release):
    """An upgrade whose Deployment the API server rejects (an invalid CPU quantity)."""
    return release(values={**SECOND, "resources": {"requests": {"cpu": "lots"}}})


def test_a_rejected_upgrade_fails_clearly_and_rolls_back(rejected, kubeapi):
    assert rejected.get("failed") is True, rejected
    message = rejected["msg"]
    assert message.startswith(f"Helm release {RELEASE} (namespace {NAMESPACE}): upgrade failed: ")
    assert "lots" in message
    assert f"Deployed now: revision 4 (gateway {VERSION})." in message, message
    assert live(kubeapi, "hpa", RELEASE)["spec"]["minReplicas"] == 2
    deployment = live(kubeapi, "deployment", RELEASE)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container.get("resources", {}).get("requests", {}).get("cpu") != "lots"


def test_a_rerun_after_the_rollback_is_unchanged(rejected, release):
    again = release(values=SECOND)
    assert again["changed"] is False, again
    assert again["release"]["revision"] == 4


@pytest.fixture(scope="module")
def uninstalled(rejected, kubeapi, release):
    first = release(state="absent")
    second = release(state="absent")
    return first, second


def test_uninstall_removes_the_objects_and_the_records(uninstalled, kubeapi):
    first, second = uninstalled
    assert first["changed"] is True and first["action"] == "uninstalled", first
    assert second["changed"] is False and second["action"] == "absent", second
    assert live(kubeapi, "deployment", RELEASE) is None
    assert helm_records(kubeapi) == []


def test_a_local_package_needs_no_version(uninstalled, kubeapi, release, mirror):
    package = chart_package(mirror, "gateway", VERSION)
    result = release("--check", chart_ref=str(package), chart_repo_url=None, chart_version=None)
    assert result["changed"] is True and result["action"] == "installed", result
    assert result["release"]["chart_version"] == VERSION
    assert helm_records(kubeapi) == []


@pytest.mark.parametrize(("args", "expected"), [
    ({"release_name": "Gateway_1"}, "release_name: expected a DNS subdomain of at most 53"),
    ({"wait_timeout": "soon"}, "wait_timeout: expected a positive Go duration"),
    ({"chart_version": None}, "chart_version: expected the chart version to install"),
    ({"chart_ref": "oci://registry.example/charts/gateway"}, "chart_repo_url: expected unset"),
    ({"chart_repo_url": "ftp://charts"}, "chart_repo_url: expected an http(s):// chart repository"),
    ({"chart_repo_url": "/nonexistent/mirror"}, "local chart mirror directory with an index.yaml"),
    ({"client_cert": __file__}, "client_cert: expected unset"),
])
def test_bad_input_fails_before_any_request(args, expected, kubeapi, release):
    kubeapi.reset_stats()
    result = release(**args)
    assert result.get("failed") is True, result
    assert expected in result["msg"], result["msg"]
    assert kubeapi.stats()["requests"]["total"] == 0


def test_repository_credentials_never_show(kubeapi, release):
    result = release("-vvv", chart_repo_url="http://reader:hunter2@127.0.0.1:9/charts")
    assert result.get("failed") is True
    assert "hunter2" not in json.dumps(result), result["msg"]


def test_a_version_missing_from_the_mirror_is_named(kubeapi, release, mirror):
    result = release(chart_version="9.9.9")
    assert result.get("failed") is True
    assert result["msg"] == (
        f"Helm release {RELEASE} (namespace {NAMESPACE}): find the chart in the mirror failed: "
        f"chart gateway version 9.9.9 is not in the chart mirror {mirror} (its index.yaml lists "
        f"versions of gateway: {VERSION}). No revision of {RELEASE} is deployed now.")
