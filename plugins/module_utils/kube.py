# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Reaching a cluster: kubernetes.core's client built from its standard auth options.

Every meshtune module takes kubernetes.core's auth options (`kubeconfig`, `context`, `host`,
`api_key`, ...) so one `module_defaults` entry serves both collections.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import random
import re
import threading
import time
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC

from ansible_collections.meshtune.mesh.plugins.module_utils.redact import hide_secrets, redact_url
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption, Problems

try:
    import urllib3
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
    from kubernetes import client as kube_client
    from kubernetes import config as kube_config
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    # What failing to reach or to authenticate to an API server raises.
    CONNECTION_ERRORS = (CoreException, kube_config.ConfigException, kube_client.ApiException,
                         urllib3.exceptions.HTTPError, OSError)
    KUBERNETES_IMPORT_ERROR = None
except ImportError as err:  # reported by the module through missing_required_lib
    KUBERNETES_IMPORT_ERROR = err

POINT_ELSEWHERE = ("Point meshtune at a cluster with the inventory variables meshtune_kubeconfig / "
                   "meshtune_kube_context (module options kubeconfig / context), or set KUBECONFIG.")


def auth_argument_spec():
    """A copy of kubernetes.core's auth options, to merge into a module's argument spec."""
    return copy.deepcopy(AUTH_ARG_SPEC)


def auth_option_problems(params):
    """One message naming every auth option that cannot work, or None.

    kubernetes.core passes these options on to the kubernetes client unchecked, which raises
    TypeError or YAML errors (a traceback) for `kubeconfig: 5`, a kubeconfig that is not YAML or
    not shaped like one, and takes `host: ftp://...` for a server it then cannot reach. Checked here,
    before any client is built. Values are quoted with any credentials masked.
    """
    problems = Problems()
    add_auth_option_problems(problems, params)
    return problems.message()


def add_auth_option_problems(problems, params):
    """auth_option_problems for a module that collects its other option problems too
    (validate.Problems), so that all of them are reported in one message."""
    kubeconfig = params.get("kubeconfig")
    if isinstance(kubeconfig, dict):
        problems.check(_check_kubeconfig_content, "kubeconfig", kubeconfig)
    elif kubeconfig is not None and kubeconfig != "":
        if not isinstance(kubeconfig, str):
            problems.add("kubeconfig", "the path of a kubeconfig file or a kubeconfig mapping",
                         _Kind(kubeconfig))
        else:  # kubernetes reads several files like KUBECONFIG: paths joined by os.pathsep
            for path in (part for part in kubeconfig.split(os.pathsep) if part):
                problems.check(_check_kubeconfig_file, "kubeconfig", path)
    elif not _credentials_given(params) and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        # No option: the client reads these files (missing ones are skipped), unless the options
        # hold everything to log in with or it runs in a pod.
        variable = "K8S_AUTH_KUBECONFIG" if os.environ.get("K8S_AUTH_KUBECONFIG") else "KUBECONFIG"
        listed = os.environ.get(variable) or os.path.join("~", ".kube", "config")
        for path in (part for part in listed.split(os.pathsep) if part):
            if os.path.exists(os.path.expanduser(path)):
                problems.check(_check_kubeconfig_file, f"kubeconfig (from {variable} or ~/.kube/config)",
                               path)
    problems.check(_check_server_url, "host", params.get("host"))
    problems.check(_check_server_url, "proxy", params.get("proxy"), _PROXY_SCHEMES,
                   "an http(s) or socks URL such as http://proxy.example.com:3128")
    for option in ("ca_cert", "client_cert", "client_key"):
        path = params.get(option)
        if path is not None and not (os.path.isfile(path) and os.access(path, os.R_OK)):
            problems.add(option, "the path of a readable file", path)


def _credentials_given(params):
    """Whether kubernetes.core logs in with the options alone, without reading any kubeconfig."""
    return bool(params.get("host")) and any(all(params.get(name) for name in names) for names in (
        ("username", "password"), ("api_key",), ("client_cert", "client_key")))


# What each list of a kubeconfig holds: (list key, key of each entry's settings).
_KUBECONFIG_LISTS = (("clusters", "cluster"), ("contexts", "context"), ("users", "user"))
_SERVER_SCHEMES = ("http", "https")
_SERVER_FORM = "an http(s) URL such as https://kube.example.com:6443"
_PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")


class _Kind:
    """What a value is, for messages about values that are never quoted (a kubeconfig is no_log)."""

    def __init__(self, value):
        if isinstance(value, bool):
            self.text = "true/false"
        elif isinstance(value, (int, float)):
            self.text = "a number"
        elif isinstance(value, str):
            self.text = "a string"
        elif isinstance(value, (list, tuple)):
            self.text = "a list"
        elif isinstance(value, dict):
            self.text = "a mapping"
        else:
            self.text = "nothing" if value is None else type(value).__name__

    def __repr__(self):
        return self.text


def _check_kubeconfig_file(option, path):
    try:
        import yaml
    except ImportError:  # the kubernetes client needs PyYAML: reported when it fails to import
        return
    try:
        with open(os.path.expanduser(path), "rb") as handle:
            content = yaml.safe_load(handle.read().decode("utf-8"))
    except OSError as err:
        raise InvalidOption(option, f"a readable kubeconfig file ({err.strerror or err})",
                            path) from err
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise InvalidOption(option, f"a kubeconfig file in YAML, but it is not YAML{where}",
                            path) from err
    _check_kubeconfig_content(f"{option} ({path})", content)


def _check_kubeconfig_content(where, content):
    """A kubeconfig's shape as the kubernetes client reads it: lists of named entries."""
    if not isinstance(content, dict):
        raise InvalidOption(where, "a kubeconfig (a mapping with clusters, contexts and users)",
                            _Kind(content))
    for key, entry_key in _KUBECONFIG_LISTS:
        entries = content.get(key)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise InvalidOption(f"{where}.{key}", f"a list of {{name, {entry_key}}}", _Kind(entries))
        for index, entry in enumerate(entries):
            path = f"{where}.{key}[{index}]"
            if not isinstance(entry, dict):
                raise InvalidOption(path, f"a mapping with a name and a {entry_key} mapping", _Kind(entry))
            if not isinstance(entry.get("name"), str):
                raise InvalidOption(path + ".name", f"the name of the {entry_key}", _Kind(entry.get("name")))
            if not isinstance(entry.get(entry_key), dict):
                raise InvalidOption(f"{path}.{entry_key}", "a mapping", _Kind(entry.get(entry_key)))
            server = entry[entry_key].get("server")
            if key == "clusters" and server is not None:
                _check_server_url(f"{path}.cluster.server", server)
    current = content.get("current-context")
    if current is not None and not isinstance(current, str):
        raise InvalidOption(f"{where}.current-context", "a context name", _Kind(current))


def _check_server_url(option, value, schemes=_SERVER_SCHEMES, form=_SERVER_FORM):
    """An absolute URL with one of `schemes` and a host; credentials only in a proxy URL."""
    if value is None or value == "":
        return
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
        port_ok = parts is not None and (parts.port is None or parts.port > 0)
    except ValueError:
        parts, port_ok = None, False
    if parts is None or not port_ok or parts.scheme.lower() not in schemes or not parts.hostname:
        raise InvalidOption(option, form, redact_url(value) if isinstance(value, str) else _Kind(value))
    if schemes is _SERVER_SCHEMES and "@" in parts.netloc:  # API servers: messages name them
        raise InvalidOption(option, "a URL without user:password@ (credentials belong in the username "
                                    "and password or api_key options, or a kubeconfig user)",
                            redact_url(value))


def validated_module(argument_spec, validate, missing_libraries=(), **module_options):
    """The module object, once its libraries import and every option is valid.

    Fails the module otherwise: a missing library by name, bad options with the one message
    `validate(params)` returns. Nothing has touched a cluster at that point.
    `missing_libraries` holds (name, import error) pairs beyond the kubernetes client.
    """
    missing = [(name, error) for name, error in
               (("kubernetes", KUBERNETES_IMPORT_ERROR), *missing_libraries) if error is not None]
    if missing:
        module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True, **module_options)
        module.fail_json(msg=missing_required_lib(missing[0][0]), exception=str(missing[0][1]))
    module = AnsibleK8SModule(argument_spec=argument_spec, supports_check_mode=True, **module_options)
    # A password in a proxy or host URL stays out of every message and result (no_log_values).
    hide_secrets(getattr(module, "_module", module), urls=(module.params.get("host"),
                                                           module.params.get("proxy")))
    problem = auth_option_problems(module.params) or validate(module.params)
    if problem:
        module.fail_json(msg=problem)
    return module


def api_server_url(params):
    """The API server URL the auth options point at, for messages; None when it cannot be told."""
    if params.get("host"):
        return params["host"]
    if KUBERNETES_IMPORT_ERROR is not None:
        return None
    configuration = kube_client.Configuration()
    kubeconfig = params.get("kubeconfig")
    try:
        if isinstance(kubeconfig, dict):
            kube_config.load_kube_config_from_dict(kubeconfig, context=params.get("context"),
                                                   client_configuration=configuration)
        else:
            kube_config.load_kube_config(config_file=kubeconfig or os.environ.get("KUBECONFIG"),
                                         context=params.get("context"),
                                         client_configuration=configuration,
                                         persist_config=False)
    except (kube_config.ConfigException, OSError, TypeError, ValueError):
        return None
    return configuration.host


def connection_reason(error):
    """The part of a connection error a person acts on, e.g. 'Connection refused'."""
    text = str(error)
    # "[Errno 111] Connection refused", or urllib3's
    # "('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))"
    errno_reason = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text) or \
        re.search(r"\w+Error\(-?\d+, '([^']+)'\)", text)
    if errno_reason:
        return errno_reason.group(1).strip()
    for hint in ("timed out", "certificate verify failed", "Unauthorized", "Forbidden"):
        if hint.lower() in text.lower():
            return hint
    return text.splitlines()[0][:200] if text else type(error).__name__


def unreachable_message(params, error):
    """One line naming the server, why it is unreachable and how to point meshtune elsewhere."""
    server = api_server_url(params) or "(no API server configured)"
    context = f" (context {params['context']})" if params.get("context") else ""
    reason = connection_reason(error)
    return f"Cannot reach the Kubernetes API server {server}{context}: {reason}. {POINT_ELSEWHERE}"


def failure_reason(error):
    """A KubeError as the reason part of `unreachable_message`: the HTTP status when there was one."""
    status = getattr(error, "status", None)
    return KubeError(f"HTTP {status}: {error}", status) if status else error


def fail_read(module, error, what):
    """Fail a task whose first reads went wrong, before anything was written: the unreachable
    message when no answer came at all, else what could not be read and why."""
    if getattr(error, "unreachable", False):
        module.fail_json(msg=f"{unreachable_message(module.params, error)} Nothing was changed.")
    module.fail_json(msg=f"Could not read {what} (nothing was changed): {error}")


def lookup_served_version(module, client, group, kind, preferred):
    """`client.served_version`, failing the task with the unreachable message (server, reason, how
    to point elsewhere) when the cluster could not be asked: a server that does not answer must
    never read as one that lacks the API."""
    try:
        return client.served_version(group, kind, preferred)
    except KubeError as error:
        module.fail_json(msg=unreachable_message(module.params, failure_reason(error)))


def require_served_version(module, client, group, kind, preferred, hint):
    """lookup_served_version, failing the task when the cluster serves none of `preferred`;
    `hint` says what is probably missing (such as "is Istio installed?")."""
    version = lookup_served_version(module, client, group, kind, preferred)
    if version is None:
        module.fail_json(msg=f"The cluster serves no {group} {kind} API ({', '.join(preferred)}): {hint}")
    return version


RETRYABLE_STATUS = (429, 500, 502, 503, 504)
MAX_ATTEMPTS = 6
BASE_DELAY = 0.2
MAX_DELAY = 5.0
MAX_CONFLICT_RETRIES = 8
LIST_PAGE = 500


class KubeError(Exception):
    """An API call that failed for good (after retries), with the HTTP status when there was one.

    `unreachable` is true when no answer came at all (connection refused, reset or timed out): the
    server, not the request, is the problem, so other calls to it will fail the same way.
    """

    def __init__(self, message, status=None, unreachable=False):
        super().__init__(message)
        self.status = status
        self.unreachable = unreachable


def _status_of(error):
    return getattr(error, "status", None)


def _is_connection_error(error):
    """No HTTP answer: refused, reset or timed-out connections (urllib3 wraps most of them)."""
    return _status_of(error) is None and \
        isinstance(error, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


def _is_retryable(error, conflict_is_final):
    if _is_connection_error(error):
        return True
    status = _status_of(error)
    return status in RETRYABLE_STATUS or (status == 409 and not conflict_is_final)


def _retry_after(error):
    headers = getattr(error, "headers", None) or {}
    try:
        return float(headers.get("Retry-After"))
    except (TypeError, ValueError):
        return None


def _error_text(error):
    body = getattr(error, "body", None)
    if body:
        try:
            return json.loads(body).get("message") or str(body)
        except (TypeError, ValueError, AttributeError):
            return str(body)
    return connection_reason(error)


class KubeClient:
    """The calls meshtune makes, each retried with bounded, jittered backoff.

    429, 5xx and dropped connections are retried up to MAX_ATTEMPTS times; a 409 on an update is
    resolved by re-reading the object and re-applying the change (see `update`).
    """

    def __init__(self, dynamic_client, sleep=time.sleep):
        self.dynamic = dynamic_client
        self._sleep = sleep
        self._resources = {}
        self._lock = threading.Lock()
        self.retries = 0
        # Set once a call gave up on a connection error: the server is gone for this run.
        self.unreachable = None

    @classmethod
    def from_module(cls, module):
        """Connect with the module's auth options; fail the module with one line when unreachable."""
        try:
            return cls(get_api_client(module=module).client)
        except CONNECTION_ERRORS as error:
            module.fail_json(msg=unreachable_message(module.params, error))

    def resource(self, api_version, kind):
        key = (api_version, kind)
        if key not in self._resources:
            self._resources[key] = self.call(self.dynamic.resources.get, api_version=api_version,
                                             kind=kind)
        return self._resources[key]

    def served_version(self, group, kind, preferred):
        """The first of `preferred` versions the cluster serves for group/kind, or None.

        Only discovery's answer that the group/version/kind is absent (or its group/version
        unknown, 404) means "not served"; any other failure to ask (unreachable server, 5xx,
        401/403) raises KubeError, so that it is never mistaken for a missing API.
        """
        for version in preferred:
            try:
                self.resource(f"{group}/{version}", kind)
                return version
            except ResourceNotFoundError:
                continue
            except KubeError as error:
                if error.status != 404:
                    raise
        return None

    def call(self, func, *args, conflict_is_final=False, **kwargs):
        """Call the API; retry what a healthy cluster would answer on a later try.

        A 409 is retried as is, except where the caller resolves it itself (`conflict_is_final`:
        a create that finds the object, an update of a stale version).
        """
        attempt = 0
        while True:
            try:
                return func(*args, **kwargs)
            except ResourceNotFoundError:
                raise
            except Exception as error:
                attempt += 1
                unreachable = _is_connection_error(error)
                # Once one call found the server gone, the others stop retrying their own way.
                if not _is_retryable(error, conflict_is_final) or attempt >= MAX_ATTEMPTS or \
                        (unreachable and self.unreachable is not None):
                    failure = KubeError(_error_text(error), _status_of(error), unreachable)
                    if unreachable and self.unreachable is None:
                        self.unreachable = failure
                    raise failure from error
                self.count_retry()
                delay = _retry_after(error) or min(MAX_DELAY, BASE_DELAY * 2 ** (attempt - 1))
                self._sleep(delay * random.uniform(0.5, 1.0))

    def list(self, resource, namespace=None, label_selector=None):
        """All objects of a type (in one namespace, or all), as plain dicts, in pages of LIST_PAGE."""
        items, token = [], None
        while True:
            page = self.call(resource.get, namespace=namespace, label_selector=label_selector,
                             limit=LIST_PAGE, _continue=token)
            items.extend(item.to_dict() for item in page.items)
            token = getattr(page.metadata, "continue", None)
            if not token:
                return items

    def count_retry(self):
        with self._lock:
            self.retries += 1

    def get(self, resource, namespace, name):
        try:
            return self.call(resource.get, name=name, namespace=namespace).to_dict()
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    def create(self, resource, namespace, body):
        return self.call(resource.create, body=body, namespace=namespace,
                         conflict_is_final=True).to_dict()

    def create_or_update(self, resource, namespace, body, change):
        """Create `body`; when it turns out to exist (409), update it with `change` instead."""
        name = body["metadata"]["name"]
        for _attempt in range(MAX_CONFLICT_RETRIES):
            try:
                return self.create(resource, namespace, body)
            except KubeError as error:
                if error.status != 409:
                    raise
                self.count_retry()
            updated = self.update(resource, namespace, name, change)
            if updated is not None:
                return updated
        raise KubeError(f"{name}: create and update kept conflicting", 409)

    def merge_patch(self, resource, namespace, name, patch):
        """A JSON merge patch. One that carries metadata.resourceVersion is a precondition: its
        409 is final (sending the same stale version again cannot succeed; re-read instead)."""
        preconditioned = bool((patch.get("metadata") or {}).get("resourceVersion"))
        return self.call(resource.patch, body=patch, name=name, namespace=namespace,
                         content_type="application/merge-patch+json",
                         conflict_is_final=preconditioned).to_dict()

    def delete(self, resource, namespace, name):
        try:
            self.call(resource.delete, name=name, namespace=namespace)
        except KubeError as error:
            if error.status != 404:
                raise

    def update(self, resource, namespace, name, change, live=None):
        """Replace an object with `change(live)`; on 409 re-read and re-apply the change.

        `change` returns the desired object, or None when nothing is to be written. Returns the
        stored object, or None when the object is gone or unchanged.
        """
        for _attempt in range(MAX_CONFLICT_RETRIES):
            if live is None:
                live = self.get(resource, namespace, name)
                if live is None:
                    return None
            desired = change(copy.deepcopy(live))
            if desired is None:
                return None
            try:
                return self.call(resource.replace, body=desired, name=name,
                                 namespace=namespace, conflict_is_final=True).to_dict()
            except KubeError as error:
                if error.status != 409:
                    raise
                self.count_retry()
                live = None
        raise KubeError(f"{name}: still conflicting after {MAX_CONFLICT_RETRIES} re-reads", 409)
