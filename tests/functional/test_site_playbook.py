"""playbooks/site.yml, render-only, against the test API server: every release's values are
written, every non-helm object is applied, and a second run changes nothing."""

from __future__ import annotations

import re

import yaml

from tests.support.ansible_runner import REPO_ROOT, run_playbook

RELEASES = ("istio-base", "istiod", "prometheus", "grafana")


def recap_changed(stdout: str) -> int:
    match = re.search(r"changed=(\d+)", stdout.split("PLAY RECAP")[-1])
    assert match, stdout[-2000:]
    return int(match.group(1))


def test_site_render_only_converges_and_is_idempotent(kubeapi, tmp_path):
    rendered = tmp_path / "rendered"
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"cluster-a": {
        "ansible_connection": "local", "meshtune_kubeconfig": str(kubeapi.kubeconfig),
        "meshtune_helm_install": False, "meshtune_render_dir": str(rendered),
        "meshtune_profile": "balanced", "grafana_admin_password": "s3cret-for-tests",
        "istio_injected_namespaces": ["shop"],
        "tune_sidecar_scopes": [{"namespaces": ["shop"]}]}}}}))
    site = REPO_ROOT / "playbooks" / "site.yml"

    first = run_playbook(site, inventory=str(inventory))
    assert first.returncode == 0, first.stdout[-4000:]
    files = sorted(path.name for path in (rendered / "cluster-a").glob("*.values.yaml"))
    for release in RELEASES:
        assert any(name.startswith(release) for name in files), (release, files)
    shop = yaml.safe_load(kubeapi.kubectl("get", "namespace", "shop", "-o", "yaml").stdout)
    assert "istio.io/rev" in shop["metadata"]["labels"]
    assert kubeapi.kubectl("get", "sidecars.networking.istio.io", "-n", "shop", "-o", "name").stdout
    assert kubeapi.kubectl("get", "configmaps", "-n", "monitoring", "-o", "name").stdout
    assert "s3cret-for-tests" not in "".join(p.read_text() for p in rendered.rglob("*") if p.is_file())
    assert "s3cret-for-tests" not in first.stdout

    second = run_playbook(site, inventory=str(inventory))
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap_changed(second.stdout) == 0, second.stdout[-4000:]


def site_inventory(tmp_path, server, **host_vars) -> str:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"cluster-a": {
        "ansible_connection": "local", "meshtune_kubeconfig": str(server.kubeconfig),
        "meshtune_helm_install": False, "meshtune_render_dir": str(tmp_path / "rendered"),
        "meshtune_profile": "balanced", "istio_injected_namespaces": ["preflight"], **host_vars}}}}))
    return str(inventory)


def writes(server) -> int:
    verbs = server.stats()["requests"]["by_verb"]
    return sum(verbs.get(verb, 0) for verb in ("create", "update", "patch", "delete"))


def test_a_missing_grafana_password_fails_before_any_stage_writes(kubeapi_factory, tmp_path):
    server = kubeapi_factory()
    server.reset_stats()
    run = run_playbook(REPO_ROOT / "playbooks" / "site.yml", inventory=site_inventory(tmp_path, server))
    assert run.returncode != 0, run.stdout[-4000:]
    assert "grafana_admin_password is not set" in run.stdout, run.stdout[-4000:]
    assert writes(server) == 0
    assert not (tmp_path / "rendered").exists()
    assert "PLAY [Check the inputs of every stage before anything changes]" in run.stdout
    assert "Install Istio" not in run.stdout, "no stage started"


def test_a_tune_entry_without_namespaces_fails_naming_it_before_any_write(kubeapi_factory, tmp_path):
    server = kubeapi_factory()
    server.reset_stats()
    inventory = site_inventory(tmp_path, server, grafana_admin_password="s3cret-for-tests",
                               tune_sidecar_scopes=[{"namespaces": ["preflight"]},
                                                    {"outbound_traffic_policy": "REGISTRY_ONLY"}])
    run = run_playbook(REPO_ROOT / "playbooks" / "site.yml", inventory=inventory)
    assert run.returncode != 0, run.stdout[-4000:]
    assert "tune_sidecar_scopes[1] has no namespaces (meshtune.mesh.sidecar_scope needs namespaces)" \
        in run.stdout, run.stdout[-4000:]
    assert "loop_control.label" not in run.stdout
    assert writes(server) == 0


def test_the_tune_role_names_the_entry_without_namespaces(kubeapi_factory, tmp_path):
    server = kubeapi_factory()
    inventory = site_inventory(tmp_path, server,
                               tune_destination_rules=[{"rules": [{"name": "r", "host": "r"}]}],
                               tune_hpa_policies=[{"namespace": "shop"}])
    run = run_playbook(REPO_ROOT / "playbooks" / "tune.yml", inventory=inventory)
    assert run.returncode != 0, run.stdout[-4000:]
    assert "tune_destination_rules[0] has no namespace (meshtune.mesh.destination_rule needs namespace)" \
        in run.stdout, run.stdout[-4000:]
    assert "tune_hpa_policies[0] has no policies" in run.stdout
    assert "loop_control.label" not in run.stdout
