"""The tune role wires virtual_service, rate_limit and telemetry_policy (playbooks/examples/
tune_requests.yml) and writes the profile's mesh-wide Telemetry, against the test API server."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.support.ansible_runner import REPO_ROOT, run_playbook

EXAMPLE = REPO_ROOT / "playbooks" / "examples" / "tune_requests.yml"
PROFILES = REPO_ROOT / "roles" / "tune" / "vars" / "profiles"
TUNE = REPO_ROOT / "playbooks" / "tune.yml"


def inventory(tmp_path, server, **host_vars) -> str:
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"cluster-a": {
        "ansible_connection": "local", "meshtune_kubeconfig": str(server.kubeconfig), **host_vars}}}}))
    return str(path)


def get(server, resource: str, namespace: str, name: str) -> dict:
    return json.loads(server.kubectl("get", resource, name, "-n", namespace, "-o", "json").stdout)


def writes(server) -> int:
    verbs = server.stats()["requests"]["by_verb"]
    return sum(verbs.get(verb, 0) for verb in ("create", "update", "patch", "delete"))


def recap(stdout: str, field: str) -> int:
    match = re.search(rf"{field}=(\d+)", stdout.split("PLAY RECAP")[-1])
    assert match, stdout[-3000:]
    return int(match.group(1))


@pytest.fixture
def cluster(kubeapi_factory):
    server = kubeapi_factory()
    for namespace in ("bookinfo", "istio-system"):
        server.kubectl("create", "namespace", namespace)
    return server


@pytest.mark.slow
def test_the_example_wires_all_three_and_a_rerun_writes_nothing(cluster, tmp_path):
    hosts = inventory(tmp_path, cluster, meshtune_profile="performance")
    first = run_playbook(EXAMPLE, inventory=hosts)
    assert first.returncode == 0, first.stdout[-4000:]
    example = yaml.safe_load(EXAMPLE.read_text())[0]["vars"]

    [services] = example["tune_virtual_services"]
    for service in services["services"]:
        stored = get(cluster, "virtualservices.networking.istio.io", "bookinfo", service["name"])
        assert [route.get("name") for route in stored["spec"]["http"]] == [r["name"] for r in service["http"]]
    reviews = get(cluster, "virtualservices.networking.istio.io", "bookinfo", "reviews")["spec"]["http"][0]
    retries = services["services"][1]["http"][0]["retries"]
    assert reviews["retries"]["retryOn"] == ",".join(retries["retry_on"])

    [limit] = example["tune_rate_limits"]
    envoy_filter = get(cluster, "envoyfilters.networking.istio.io", "bookinfo", limit["name"])
    assert envoy_filter["spec"]["workloadSelector"]["labels"] == limit["workload_selector"]
    assert "envoy.filters.http.local_ratelimit" in json.dumps(envoy_filter["spec"])

    [telemetry] = example["tune_telemetry"]
    stored = get(cluster, "telemetries.telemetry.istio.io", "bookinfo", "bookinfo-metrics")["spec"]
    overrides = telemetry["policies"][0]["metrics"]["overrides"]
    assert stored["metrics"][0]["overrides"][0]["tagOverrides"] == {
        tag: {"operation": "REMOVE"} for tag in overrides[0]["remove_tags"]}

    # The performance profile's mesh-wide Telemetry, with the example's override merged in.
    profile = yaml.safe_load((PROFILES / "performance.yml").read_text())["tune_profile_mesh_telemetry"]
    mesh = get(cluster, "telemetries.telemetry.istio.io", "istio-system", "mesh-default")["spec"]
    assert mesh["accessLogging"] == [{"providers": [{"name": "envoy"}],
                                      "filter": {"expression": profile["access_logging"]["filter"]}}]
    assert mesh["tracing"] == [{"randomSamplingPercentage": example["tune_mesh_telemetry_overrides"]
                                ["tracing"]["sampling"]}]
    assert mesh["metrics"][0]["overrides"][0]["tagOverrides"] == {
        tag: {"operation": "REMOVE"} for tag in profile["metrics"]["overrides"][0]["remove_tags"]}

    cluster.reset_stats()
    second = run_playbook(EXAMPLE, inventory=hosts)
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap(second.stdout, "changed") == 0, second.stdout[-4000:]
    assert writes(cluster) == 0


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["minimal", "balanced", "performance"])
def test_each_profile_writes_its_mesh_wide_telemetry(cluster, tmp_path, profile):
    run = run_playbook(TUNE, inventory=inventory(tmp_path, cluster, meshtune_profile=profile))
    assert run.returncode == 0, run.stdout[-4000:]
    wanted = yaml.safe_load((PROFILES / f"{profile}.yml").read_text())["tune_profile_mesh_telemetry"]
    mesh = get(cluster, "telemetries.telemetry.istio.io", "istio-system", "mesh-default")["spec"]
    assert mesh["tracing"] == [{"randomSamplingPercentage": wanted["tracing"]["sampling"]}]
    logging = mesh["accessLogging"][0]
    assert logging.get("filter", {}).get("expression") == wanted["access_logging"].get("filter")
    assert ("metrics" in mesh) == ("metrics" in wanted)
    if profile in ("minimal", "performance"):  # the promise: errors only, 1 % of traces
        assert logging["filter"]["expression"] == "response.code >= 400"
        assert mesh["tracing"][0]["randomSamplingPercentage"] == 1.0


def test_entries_without_what_they_tune_fail_naming_them_before_any_write(cluster, tmp_path):
    hosts = inventory(tmp_path, cluster, tune_virtual_services=[{"namespace": "bookinfo"}],
                      tune_rate_limits=[{"name": "r"}],
                      tune_telemetry=[{"namespace": "istio-system",
                                       "policies": [{"name": "second", "tracing": {"sampling": 5}}]}])
    cluster.reset_stats()
    run = run_playbook(TUNE, inventory=hosts)
    assert run.returncode != 0
    output = " ".join(run.stdout.split())
    assert "tune_virtual_services[0] has no services (meshtune.mesh.virtual_service needs namespace and " \
           "services)" in output, output[-3000:]
    assert "tune_rate_limits[0] has no namespace (meshtune.mesh.rate_limit needs namespace)" in output
    assert writes(cluster) == 0

    clash = inventory(tmp_path, cluster, tune_telemetry=[{"namespace": "istio-system", "policies": [
        {"name": "second", "tracing": {"sampling": 5}}]}])
    run = run_playbook(TUNE, inventory=clash)
    assert run.returncode != 0
    output = " ".join(run.stdout.split())
    assert "tune_telemetry has policies without workload_selector in the root namespace istio-system " \
           "(second)" in output, output[-3000:]
    assert writes(cluster) == 0
