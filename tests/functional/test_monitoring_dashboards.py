"""The grafana role with meshtune_monitoring operator/external: meshtune's dashboards for a Grafana
it does not install.

- As a ConfigMap for the dashboard sidecar (test API server): labelled as configured (defaults as
  kube-prometheus-stack's), holding the grafana role's dashboard files, not written again.
- Through Grafana's HTTP API, against a loopback stand-in that checks the bearer token and the
  payload as Grafana would: sent once, not again while unchanged; a refused token fails naming
  the URL without ever showing the token; missing inputs fail before any request.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.observability import content
from tests.support.ansible_runner import run_playbook
from tests.support.http_stub import QuietHandler, StubServer, serving

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "glsa_meshtune_test_token_5f1c"
PLAYBOOK = """
- name: Deliver meshtune's dashboards
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/meshtune.mesh.meshtune:
      kubeconfig: "{{ meshtune_kubeconfig | default(omit) }}"
  roles:
    - role: meshtune.mesh.grafana
"""
DASHBOARDS = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in content.dashboards()}


def said(result) -> str:
    return " ".join(result.stdout.split())


def play(tmp_path: Path, *flags: str, **host_vars):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    return run_playbook(playbook, {"meshtune_monitoring": "operator", **host_vars}, *flags)


class FakeGrafana:
    """Grafana's dashboard API as far as meshtune uses it: GET /api/dashboards/uid/<uid> and
    POST /api/dashboards/db, each with `Authorization: Bearer <token>` or 401."""

    def __init__(self):
        self.stored: dict[str, dict] = {}
        self.posts: list[dict] = []
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        grafana = self

        class Handler(QuietHandler):
            def _authorized(self) -> bool:
                grafana.requests.append((self.command, self.path))
                if self.headers.get("Authorization") == f"Bearer {TOKEN}":
                    return True
                self.reply(401, "application/json", b'{"message":"invalid API key"}')
                return False

            def do_GET(self) -> None:
                if not self._authorized():
                    return
                uid = self.path.removeprefix("/api/dashboards/uid/")
                with grafana.lock:
                    entry = grafana.stored.get(uid)
                if entry is None:
                    self.reply(404, "application/json", b'{"message":"Dashboard not found"}')
                    return
                self.reply(200, "application/json", json.dumps(entry).encode())

            def do_POST(self) -> None:
                if not self._authorized():
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                dashboard = body["dashboard"]
                problems = [field for field in ("uid", "title", "panels") if field not in dashboard]
                if self.path != "/api/dashboards/db" or problems or body.get("overwrite") is not True \
                        or self.headers.get("Content-Type") != "application/json":
                    message = json.dumps({"message": f"bad request {problems}"}).encode()
                    self.reply(400, "application/json", message)
                    return
                with grafana.lock:
                    grafana.posts.append(body)
                    stored = grafana.stored.get(dashboard["uid"], {}).get("dashboard", {})
                    version = stored.get("version", 0) + 1
                    grafana.stored[dashboard["uid"]] = {
                        "dashboard": {**dashboard, "id": 7, "version": version},
                        "meta": {"folderUid": body.get("folderUid", "")}}
                self.reply(200, "application/json", json.dumps(
                    {"status": "success", "uid": dashboard["uid"], "version": version}).encode())

        self.server = StubServer(Handler)


@pytest.fixture
def grafana():
    fake = FakeGrafana()
    with serving(fake.server):
        yield fake


def test_dashboard_configmap_carries_the_sidecar_label(kubeapi, tmp_path):
    kubeapi.kubectl("create", "namespace", "kps")
    common = {"meshtune_kubeconfig": str(kubeapi.kubeconfig), "grafana_dashboard_namespace": "kps"}
    result = play(tmp_path, **common)
    assert result.returncode == 0, result.stdout[-4000:]
    configmap = json.loads(kubeapi.kubectl("get", "configmap", "-n", "kps", "meshtune-dashboards",
                                           "-o", "json").stdout)
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert {name: json.loads(text) for name, text in configmap["data"].items()} == DASHBOARDS
    assert "grafana" not in kubeapi.kubectl("get", "deployments", "-A").stdout  # nothing installed
    kubeapi.reset_stats()
    again = play(tmp_path, **common, grafana_dashboard_label="dashboards",
                 grafana_dashboard_label_value="meshtune")
    assert again.returncode == 0, again.stdout[-4000:]
    labels = json.loads(kubeapi.kubectl("get", "configmap", "-n", "kps", "meshtune-dashboards",
                                        "-o", "json").stdout)["metadata"]["labels"]
    assert labels["dashboards"] == "meshtune"
    assert kubeapi.stats()["requests"]["by_verb"].get("patch") == 1


def test_dashboards_are_pushed_once_through_the_api(grafana, tmp_path):
    api = {"meshtune_monitoring": "external", "meshtune_prometheus_url": "http://127.0.0.1:9",
           "grafana_dashboard_delivery": "api", "grafana_api_url": grafana.server.url + "/",
           "grafana_api_token": TOKEN, "grafana_api_folder_uid": "mesh"}
    planned = play(tmp_path, "--check", **api)
    assert planned.returncode == 0, planned.stdout[-4000:]
    assert grafana.posts == []  # check mode reads and reports, and sends nothing
    for dashboard in DASHBOARDS.values():
        assert f"Would send the dashboard {dashboard['uid']}" in said(planned)
    result = play(tmp_path, **api)
    assert result.returncode == 0, result.stdout[-4000:]
    assert TOKEN not in result.stdout + result.stderr
    assert [post["dashboard"]["uid"] for post in grafana.posts] == [d["uid"] for d in DASHBOARDS.values()]
    for post in grafana.posts:
        wanted = next(d for d in DASHBOARDS.values() if d["uid"] == post["dashboard"]["uid"])
        assert post["dashboard"] == {k: v for k, v in wanted.items() if k != "version"}
        assert post["folderUid"] == "mesh"
    again = play(tmp_path, **api)
    assert again.returncode == 0, again.stdout[-4000:]
    assert len(grafana.posts) == len(DASHBOARDS)  # unchanged: read, not sent again
    moved = play(tmp_path, **{**api, "grafana_api_folder_uid": "other"})
    assert moved.returncode == 0, moved.stdout[-4000:]
    assert len(grafana.posts) == 2 * len(DASHBOARDS) and grafana.posts[-1]["folderUid"] == "other"


def test_a_refused_token_fails_naming_grafana_and_never_shows_it(grafana, tmp_path):
    result = play(tmp_path, grafana_dashboard_delivery="api", grafana_api_url=grafana.server.url,
                  grafana_api_token="wrong-" + TOKEN)
    assert result.returncode != 0
    assert f"Grafana at {grafana.server.url} did not answer" in said(result)
    assert "HTTP status 401" in said(result)
    assert TOKEN not in result.stdout + result.stderr
    assert grafana.posts == [] and {method for method, _path in grafana.requests} == {"GET"}


@pytest.mark.parametrize(("host_vars", "expected"), [
    pytest.param({"grafana_api_url": "http://127.0.0.1:9"}, "set grafana_api_token", id="no-token"),
    pytest.param({"grafana_api_url": "grafana.local", "grafana_api_token": TOKEN},
                 'set grafana_api_url to the http(s) base URL of Grafana, got "grafana.local"', id="bad-url"),
    pytest.param({"grafana_dashboard_delivery": "push"}, "grafana_dashboard_delivery", id="bad-delivery"),
    pytest.param({"grafana_dashboard_label": "bad label"},
                 "grafana_dashboard_label / grafana_dashboard_label_value", id="bad-label"),
])
def test_bad_delivery_inputs_fail_before_any_request(grafana, tmp_path, host_vars, expected):
    result = play(tmp_path, **{"grafana_dashboard_delivery": "api", **host_vars})
    assert result.returncode != 0
    assert expected in said(result), result.stdout[-3000:]
    assert grafana.requests == []
