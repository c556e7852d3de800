"""playbooks/site.yml, render-only, against the test API server: every release's values are
written, every non-helm object is applied, and a second run changes nothing."""

from __future__ import annotations

import re

import yaml

from tests.ansible_runner import REPO_ROOT, run_playbook

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
