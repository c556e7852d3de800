"""kubernetes.core's auth options checked before any client is built (kube.auth_option_problems),
and every Kubernetes module failing on them with one message instead of a traceback."""

from __future__ import annotations

import json

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import (
    add_auth_option_problems,
    auth_option_problems,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import Problems
from ansible_collections.meshtune.mesh.plugins.modules import (
    cluster_check,
    destination_rule,
    hpa_policy,
    k8s_objects,
    sidecar_resources,
    sidecar_scope,
)
from tests.support.module_harness import call_module

PREFIX = "Invalid options (nothing was changed): "
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "https://127.0.0.1:6443"}}]
contexts: [{name: test, context: {cluster: test, user: test}}]
users: [{name: test, user: {token: abc}}]
current-context: test
"""


@pytest.fixture
def files(tmp_path, monkeypatch):
    """Kubeconfig files, good and bad; no kubeconfig from the environment."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("K8S_AUTH_KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    contents = {
        "good": KUBECONFIG,
        "not_yaml": "clusters: [ {name: a, cluster: {server: x}\n  : oops",
        "scalar": "just a string\n",
        "clusters_number": "clusters: 5\n",
        "entry_number": "clusters: [5]\n",
        "unnamed": "contexts: [{context: {cluster: a}}]\n",
        "cluster_number": "clusters: [{name: a, cluster: 5}]\n",
        "ftp_server": "clusters: [{name: a, cluster: {server: 'ftp://u:pw-s3cret@kube'}}]\n",
        "current_list": "current-context: [a]\n",
        "user_in_server": "clusters: [{name: a, cluster: {server: 'https://u:pw-s3cret@kube'}}]\n",
        "binary": b"\xff\xfe\x00\x01",
        "deep": "[" * 20000 + "]" * 20000,
    }
    paths = {}
    for name, content in contents.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        paths[name] = str(path)
    return paths


def test_good_options_pass(files):
    assert auth_option_problems({"kubeconfig": files["good"]}) is None
    assert auth_option_problems({"kubeconfig": {"clusters": [], "users": []}}) is None
    assert auth_option_problems({"kubeconfig": None, "host": "https://kube:6443/", "api_key": "t"}) is None
    assert auth_option_problems({"kubeconfig": "", "proxy": "socks5h://u:p@proxy:1080"}) is None
    assert auth_option_problems({"kubeconfig": f"{files['good']}:{files['good']}"}) is None


@pytest.mark.parametrize(("options", "problem"), [
    ({"kubeconfig": 5}, "kubeconfig: expected the path of a kubeconfig file or a kubeconfig mapping, "
                        "got a number"),
    ({"kubeconfig": [1, 2]}, "kubeconfig: expected the path of a kubeconfig file or a kubeconfig mapping, "
                             "got a list"),
    ({"kubeconfig": True}, "kubeconfig: expected the path of a kubeconfig file or a kubeconfig mapping, "
                           "got true/false"),
    ({"kubeconfig": "{not_yaml}"}, "kubeconfig: expected a kubeconfig file in YAML, but it is not YAML "
                                   "(line 2, column 3), got '{not_yaml}'"),
    ({"kubeconfig": "{binary}"}, "kubeconfig: expected a kubeconfig file in YAML, but it is not YAML, got"),
    ({"kubeconfig": "{deep}"}, "kubeconfig: expected a kubeconfig file in YAML, but it is not YAML, got"),
    ({"kubeconfig": "{scalar}"}, "kubeconfig ({scalar}): expected a kubeconfig (a mapping with clusters, "
                                 "contexts and users), got a string"),
    ({"kubeconfig": "{clusters_number}"}, "kubeconfig ({clusters_number}).clusters: expected a list of "
                                          "{{name, cluster}}, got a number"),
    ({"kubeconfig": "{entry_number}"}, "kubeconfig ({entry_number}).clusters[0]: expected a mapping with a "
                                       "name and a cluster mapping, got a number"),
    ({"kubeconfig": "{unnamed}"}, "kubeconfig ({unnamed}).contexts[0].name: expected the name of the "
                                  "context, got nothing"),
    ({"kubeconfig": "{cluster_number}"}, "kubeconfig ({cluster_number}).clusters[0].cluster: expected a "
                                         "mapping, got a number"),
    ({"kubeconfig": "{ftp_server}"}, "kubeconfig ({ftp_server}).clusters[0].cluster.server: expected an "
                                     "http(s) URL such as https://kube.example.com:6443, got "
                                     "'ftp://u:********@kube'"),
    ({"kubeconfig": "{current_list}"}, "kubeconfig ({current_list}).current-context: expected a context "
                                       "name, got a list"),
    ({"kubeconfig": {"clusters": {"a": 1}}}, "kubeconfig.clusters: expected a list of {{name, cluster}}, "
                                             "got a mapping"),
    ({"kubeconfig": "/does/not/exist"}, "kubeconfig: expected a readable kubeconfig file (No such file or "
                                        "directory), got '/does/not/exist'"),
    ({"host": "ftp://alice:pw-s3cret@kube"}, "host: expected an http(s) URL such as "
                                             "https://kube.example.com:6443, got 'ftp://alice:********@kube'"),
    ({"host": "kube.example.com:6443"}, "host: expected an http(s) URL such as "
                                        "https://kube.example.com:6443, got 'kube.example.com:6443'"),
    ({"host": "https://alice:pw-s3cret@kube"}, "host: expected a URL without user:password@ "
                                               "(credentials belong in the username and password or "
                                               "api_key options, or a kubeconfig user), got "
                                               "'https://alice:********@kube'"),
    ({"kubeconfig": "{user_in_server}"}, "kubeconfig ({user_in_server}).clusters[0].cluster.server: "
                                         "expected a URL without user:password@"),
    ({"host": "http://[::1"}, "host: expected an http(s) URL"),
    ({"host": "https://kube:99999"}, "host: expected an http(s) URL"),
    ({"proxy": "proxy:3128"}, "proxy: expected an http(s) or socks URL such as "
                              "http://proxy.example.com:3128, got 'proxy:3128'"),
    ({"ca_cert": "/does/not/exist.pem"}, "ca_cert: expected the path of a readable file, got "
                                         "'/does/not/exist.pem'"),
    ({"client_cert": "/"}, "client_cert: expected the path of a readable file, got '/'"),
])
def test_each_bad_option_is_named(files, options, problem):
    options = {key: value.format(**files) if isinstance(value, str) else value
               for key, value in options.items()}
    message = auth_option_problems(options)
    assert message.startswith(PREFIX), message
    assert problem.format(**files) in message
    assert "s3cret" not in message


def test_every_problem_is_in_one_message(files):
    message = auth_option_problems({"kubeconfig": 5, "host": "ftp://kube", "ca_cert": "/nope"})
    assert message.count("; ") == 2
    options = [part.split(":")[0] for part in message[len(PREFIX):].split("; ")]
    assert options == ["kubeconfig", "host", "ca_cert"]


def test_auth_problems_join_a_module_s_other_problems(files):
    problems = Problems()
    problems.add("qps", "a number", "fast")
    add_auth_option_problems(problems, {"kubeconfig": 5})
    assert problems.message() == (f"{PREFIX}qps: expected a number, got 'fast'; kubeconfig: expected the "
                                  "path of a kubeconfig file or a kubeconfig mapping, got a number")


def test_the_kubeconfig_from_the_environment_is_checked_when_no_option_gives_one(files, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", f"{files['not_yaml']}:/does/not/exist")
    assert "kubeconfig (from KUBECONFIG or ~/.kube/config): expected a kubeconfig file in YAML" in \
        auth_option_problems({})
    # Options that log in by themselves make kubernetes.core read no kubeconfig at all.
    assert auth_option_problems({"host": "https://kube", "api_key": "token"}) is None
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert auth_option_problems({}) is None
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", files["good"])
    assert auth_option_problems({}) is None


MODULES = [
    (cluster_check, {}),
    (sidecar_scope, {"namespaces": ["shop"]}),
    (sidecar_resources, {"namespaces": ["shop"], "cpu_request": "100m"}),
    (destination_rule, {"namespace": "shop", "rules": [{"name": "reviews", "host": "reviews"}]}),
    (hpa_policy, {"namespace": "shop", "policies": [{"name": "web", "min_replicas": 1, "max_replicas": 2,
                                                     "cpu_utilization": 80}]}),
    (k8s_objects, {"definitions": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}]}),
]


MODULE_NAMES = [module.__name__.rsplit(".", 1)[1] for module, _args in MODULES]


@pytest.mark.parametrize(("module", "args"), MODULES, ids=MODULE_NAMES)
@pytest.mark.parametrize(("options", "option"), [
    ({"kubeconfig": 5}, "kubeconfig"),
    ({"kubeconfig": "{not_yaml}"}, "kubeconfig"),
    ({"host": "ftp://alice:pw-s3cret@kube.example.com"}, "host"),
])
def test_kubernetes_modules_fail_on_bad_auth_options_without_a_traceback(
        files, module, args, options, option):
    options = {key: value.format(**files) if isinstance(value, str) else value
               for key, value in options.items()}
    result = call_module(module.main, {**args, **options})
    assert result["failed"] is True, result
    assert result["msg"].startswith(f"{PREFIX}{option}"), result["msg"]
    assert "exception" not in result
    assert "Traceback" not in json.dumps(result)
    assert "s3cret" not in json.dumps(result)
