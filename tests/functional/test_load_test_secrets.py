"""meshtune.mesh.load_test keeps credentials out of what it shows and stores: URL passwords and
query tokens, credential-like headers (also at -vvv), and, with engine fortio, header values out
of the Job (they travel in a Secret that lives as long as the run)."""

from __future__ import annotations

import base64
import json
import threading

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen import fortio_run
from ansible_collections.meshtune.mesh.plugins.modules.load_test import main
from tests.support.ansible_runner import run_playbook
from tests.support.fortio_cluster import NAMESPACE, Cluster, kube_apis
from tests.support.http_stub import QuietHandler, StubServer, serving
from tests.support.module_harness import call_module

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SECRETS = ("pw-s3cret-1", "tok-s3cret-2", "bearer-s3cret-3", "key-s3cret-4")


class Target(StubServer):
    """Answers 200 to everything and remembers the Authorization headers it saw."""

    def __init__(self):
        super().__init__(TargetHandler)
        self.authorization = set()
        self.lock = threading.Lock()


class TargetHandler(QuietHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        with self.server.lock:
            self.server.authorization.add(self.headers.get("Authorization"))
        self.reply(200, "text/plain", b"ok")


@pytest.fixture
def target():
    with serving(Target()) as server:
        yield server


def secret_url(base: str) -> str:
    return base + f"/cart?token={SECRETS[1]}&page=2"


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, secret


def test_local_engine_masks_the_url_and_hides_credential_headers(target, tmp_path, umask_077):
    result_file = tmp_path / "result.json"
    progress_file = tmp_path / "progress.log"
    result = call_module(main, {
        "url": secret_url(target.url), "requests": 20, "qps": 200, "connections": 2,
        "headers": {"Authorization": f"Bearer {SECRETS[2]}", "X-Api-Key": SECRETS[3], "X-Trace": "t1"},
        "result_file": str(result_file), "progress_file": str(progress_file)})
    assert not result.get("failed"), result
    assert target.authorization == {f"Bearer {SECRETS[2]}"}
    shown = target.url + "/cart?token=********&page=********"
    assert result["result"]["URL"] == shown
    assert json.loads(result_file.read_text())["URL"] == shown
    assert shown in progress_file.read_text()
    assert_no_secret(json.dumps(result) + result_file.read_text() + progress_file.read_text())
    assert result_file.stat().st_mode & 0o777 == 0o600  # the umask, not 0644
    assert progress_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("engine", ["local", "fortio"])
def test_a_url_with_a_password_is_refused_without_showing_it(engine):
    result = call_module(main, {"url": f"http://alice:{SECRETS[0]}@shop:8080/", "requests": 10,
                                "engine": engine})
    assert result["failed"] is True
    assert result["msg"].startswith("Invalid options (nothing was changed): url: "), result["msg"]
    assert_no_secret(json.dumps(result))


@pytest.fixture
def umask_077():
    import os

    previous = os.umask(0o077)
    yield
    os.umask(previous)


PLAYBOOK = """
- name: Load with credentials
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Load a target that answers
      meshtune.mesh.load_test:
        url: "{{ good_url }}"
        requests: 10
        qps: 100
        connections: 1
        headers:
          Authorization: "Bearer {{ bearer }}"
          X-Api-Key: "{{ key }}"
        result_file: "{{ result_file }}"
      register: loaded

    - name: Load a target that does not
      meshtune.mesh.load_test:
        url: "{{ bad_url }}"
        requests: 10
        qps: 100
        connections: 1
        timeout: 1s
      ignore_errors: true

    - name: Fail Ansible's own option checks, before the module's code runs
      meshtune.mesh.load_test:
        url: "{{ good_url }}"
        requests: many
        headers:
          Authorization: "Bearer {{ bearer }}"
      ignore_errors: true

    - name: Show what was registered
      ansible.builtin.debug:
        var: loaded
"""


@pytest.mark.parametrize("verbosity", [[], ["-vvv"]])
def test_no_credential_reaches_the_playbook_output(target, tmp_path, verbosity):
    playbook = tmp_path / "load.yml"
    playbook.write_text(PLAYBOOK)
    process = run_playbook(playbook, {
        "good_url": secret_url(target.url), "bad_url": f"http://alice:{SECRETS[0]}@127.0.0.1:9/",
        "bearer": SECRETS[2], "key": SECRETS[3], "result_file": str(tmp_path / "result.json")},
        *verbosity)
    output = process.stdout + process.stderr
    assert "/cart?token=********" in output or not verbosity, output  # the invocation, masked
    assert_no_secret(output)
    assert_no_secret((tmp_path / "result.json").read_text())


# --- engine fortio: the Secret ------------------------------------------------------------------

@pytest.fixture(autouse=True)
def fast_polling(monkeypatch):
    monkeypatch.setattr(fortio_run, "POLL_INTERVAL", 0.05)


@pytest.fixture(scope="module")
def apis(kubeapi):
    apis = kube_apis(kubeapi.kubeconfig)
    apis["core"].create_namespace({"metadata": {"name": NAMESPACE}})
    return apis


def fortio_args(kubeapi, **options):
    return {"engine": "fortio", "namespace": NAMESPACE, "kubeconfig": str(kubeapi.kubeconfig),
            "qps": 100, "connections": 2, "duration": "1s", "start_timeout": "5s", "timeout": "1s",
            "url": f"http://shop.load.svc:8080/cart?token={SECRETS[1]}",
            "headers": {"Authorization": f"Bearer {SECRETS[2]}", "X-Scope": "mesh"}, **options}


def test_fortio_headers_travel_in_a_secret_deleted_with_the_run(kubeapi, apis, tmp_path):
    cluster = Cluster(kubeapi, apis, name="secret")
    cluster.start()
    result = call_module(main, fortio_args(kubeapi, name="secret", warmup="1s",
                                           result_file=str(tmp_path / "result.json")))
    cluster.join(timeout=10)
    assert cluster.error is None, cluster.error
    assert not result.get("failed"), result
    job = json.dumps(cluster.seen["Job"])
    assert SECRETS[2] not in job and "X-Scope:mesh" not in job
    assert [(entry["kind"], entry["name"], entry["state"]) for entry in result["objects"]] == [
        ("ServiceAccount", "secret", "deleted"), ("Secret", "secret-headers", "deleted"),
        ("Job", "secret-client", "deleted")]
    assert apis["core"].list_namespaced_secret(NAMESPACE).items == []
    assert result["url"] == "http://shop.load.svc:8080/cart?token=********"
    assert_no_secret(json.dumps(result) + (tmp_path / "result.json").read_text())
    for name in cluster.pods:
        apis["core"].delete_namespaced_pod(name, NAMESPACE)


def test_a_kept_run_shows_what_the_secret_holds(kubeapi, apis):
    cluster = Cluster(kubeapi, apis, name="kept-secret")
    cluster.start()
    result = call_module(main, fortio_args(kubeapi, name="kept-secret", cleanup=False))
    cluster.join(timeout=10)
    assert not result.get("failed"), result
    secret = apis["core"].read_namespaced_secret("kept-secret-headers", NAMESPACE)
    assert {key: base64.b64decode(value).decode() for key, value in secret.data.items()} == {
        "header-0": f"Authorization:Bearer {SECRETS[2]}", "header-1": "X-Scope:mesh"}
    assert secret.metadata.labels["meshtune.io/load-test"] == "kept-secret"
    pod_spec = cluster.seen["Job"]["spec"]["template"]["spec"]
    args = pod_spec["containers"][0]["args"]
    assert args[args.index("-H") + 1] == "$(MESHTUNE_HEADER_0)"
    assert args[-3:] == ["-H", "$(MESHTUNE_HEADER_1)", fortio_args(kubeapi)["url"]]
    assert [entry["valueFrom"]["secretKeyRef"] for entry in pod_spec["containers"][0]["env"]] == [
        {"name": "kept-secret-headers", "key": "header-0"},
        {"name": "kept-secret-headers", "key": "header-1"}]
    apis["batch"].delete_namespaced_job("kept-secret-client", NAMESPACE)
    apis["core"].delete_namespaced_secret("kept-secret-headers", NAMESPACE)
    apis["core"].delete_namespaced_service_account("kept-secret", NAMESPACE)
    for name in cluster.pods:
        apis["core"].delete_namespaced_pod(name, NAMESPACE)


def test_check_mode_lists_the_secret_and_creates_nothing(kubeapi, apis):
    result = call_module(main, fortio_args(kubeapi, name="dry-secret"), check_mode=True)
    assert not result.get("failed"), result
    assert [(entry["kind"], entry["name"]) for entry in result["objects"]] == [
        ("ServiceAccount", "dry-secret"), ("Secret", "dry-secret-headers"), ("Job", "dry-secret-client")]
    assert_no_secret(json.dumps(result))
