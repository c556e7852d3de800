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

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC

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
    problem = validate(module.params)
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
    errno_reason = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
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


RETRYABLE_STATUS = (429, 500, 502, 503, 504)
MAX_ATTEMPTS = 6
BASE_DELAY = 0.2
MAX_DELAY = 5.0
MAX_CONFLICT_RETRIES = 8
LIST_PAGE = 500


class KubeError(Exception):
    """An API call that failed for good (after retries), with the HTTP status when there was one."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


def _status_of(error):
    return getattr(error, "status", None)


def _is_retryable(error, conflict_is_final):
    if isinstance(error, (urllib3.exceptions.HTTPError, ConnectionError)):
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
        """The first of `preferred` versions the cluster serves for group/kind, or None."""
        for version in preferred:
            try:
                self.resource(f"{group}/{version}", kind)
                return version
            except (ResourceNotFoundError, KubeError):
                continue
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
                if not _is_retryable(error, conflict_is_final) or attempt >= MAX_ATTEMPTS:
                    raise KubeError(_error_text(error), _status_of(error)) from error
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
