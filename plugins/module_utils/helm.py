# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Helm releases through Helm's Go SDK in-process (helm-python-sdk): no helm program needed.

The pieces `meshtune.mesh.helm_release` is built from: where a chart comes from (a chart
repository, a local chart mirror, a local package or an OCI reference), the auth options mapped
onto the SDK's cluster configuration, and a release's deployed state compared with the wanted one
so that an unchanged release is never upgraded.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import logging
import os
import re
import time

try:
    import yaml

    YAML_IMPORT_ERROR = None
except ImportError as err:  # reported by the module through missing_required_lib
    YAML_IMPORT_ERROR = err

try:
    import helm_python

    HELM_IMPORT_ERROR = None
except ImportError as err:
    HELM_IMPORT_ERROR = err

# Go durations as Helm's --timeout takes them: 300s, 5m, 10m0s, 1h30m.
GO_DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|m|s|ms))+\Z")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
RELEASE_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
RELEASE_NAME_MAX = 53
# Auth options the SDK's configuration cannot take: they belong in the kubeconfig.
UNSUPPORTED_AUTH = ("username", "password", "client_cert", "client_key", "proxy", "no_proxy",
                    "proxy_headers")
# Release states in which Helm refuses another action until the first one is resolved.
PENDING_STATES = ("pending-install", "pending-upgrade", "pending-rollback", "uninstalling")
# Helm read calls that failed this way are worth another try: the API server was busy or away.
TRANSIENT_READ_ERRORS = ("connection reset", "connection refused", "EOF", "timeout",
                         "too many requests", "Internal error", "the server is currently unable",
                         "i/o timeout", "TLS handshake")
READ_ATTEMPTS = 5


class HelmFailure(Exception):
    """A Helm step that failed: which step, and Helm's own message."""

    def __init__(self, step, message):
        super().__init__(f"{step}: {message}")
        self.step = step
        self.helm_message = message


def timeout_seconds(value):
    """Seconds of a Go duration ("10m0s", "300s") or a plain number of seconds; None if invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value) if value > 0 else None
    text = str(value).strip()
    if text.isdigit():
        return int(text) or None
    if not GO_DURATION_RE.match(text):
        return None
    seconds = sum(float(number) * _SECONDS[unit] for number, unit in _DURATION_PART_RE.findall(text))
    return max(1, round(seconds)) if seconds > 0 else None


def is_local_chart(chart_ref):
    """A chart on this machine: a path to a packaged chart or a chart directory."""
    return chart_ref.startswith(("/", "./", "../", "~")) or chart_ref.endswith(".tgz") or \
        os.path.isdir(chart_ref)


def is_local_repository(chart_repo_url):
    """A chart mirror on this machine: a directory (or file:// URL) holding an index.yaml."""
    return bool(chart_repo_url) and (chart_repo_url.startswith("file://") or
                                     not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", chart_repo_url))


def mirror_index(chart_repo_url):
    """Path of a local chart mirror's index.yaml."""
    directory = chart_repo_url[len("file://"):] if chart_repo_url.startswith("file://") \
        else chart_repo_url
    return os.path.join(os.path.expanduser(directory), "index.yaml")


def mirror_package(chart_repo_url, chart, version):
    """Path of `chart` `version` in a local chart mirror, found through its index.yaml."""
    index_path = mirror_index(chart_repo_url)
    directory = os.path.dirname(index_path)
    try:
        with open(index_path) as handle:
            index = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as error:
        raise HelmFailure("find the chart in the mirror",
                          f"cannot read the chart mirror's index {index_path}: {error}") from error
    entries = (index.get("entries") or {}).get(chart) or []
    for entry in entries:
        if str(entry.get("version")) == version and entry.get("urls"):
            url = entry["urls"][0]
            if re.match(r"^[a-z]+://", url) and not url.startswith("file://"):
                return url
            path = url[len("file://"):] if url.startswith("file://") else url
            return path if os.path.isabs(path) else os.path.join(directory, path)
    versions = ", ".join(str(entry.get("version")) for entry in entries) or "none"
    raise HelmFailure("find the chart in the mirror",
                      f"chart {chart} version {version} is not in the chart mirror {directory} "
                      f"(its index.yaml lists versions of {chart}: {versions})")


class ChartSource:
    """Where the SDK gets a chart: `ref` (name, path or oci:// URL) and the repository URL."""

    def __init__(self, chart_ref, chart_repo_url, chart_version):
        self.version = chart_version
        self.repo_url = None
        if chart_repo_url and is_local_repository(chart_repo_url):
            self.ref = mirror_package(chart_repo_url, chart_ref, chart_version)
        else:
            self.ref = chart_ref
            self.repo_url = chart_repo_url
        self.local = is_local_chart(self.ref) and not re.match(r"^[a-z]+://", self.ref)
        self.name = None if self.local else chart_ref.rstrip("/").rsplit("/", 1)[-1]

    def identify(self):
        """Chart name and version; read from the package itself when the chart is local."""
        if self.local:
            try:
                chart = helm_python.Chart.load(os.path.expanduser(self.ref))
                metadata = chart.metadata
                chart.close()
            except helm_python.HelmError as error:
                raise HelmFailure("load the chart", error.detail) from error
            self.name, self.version = metadata["name"], metadata["version"]
        return self.name, self.version

    def options(self):
        """The SDK's chart options: repository URL and version (local charts have neither)."""
        if self.local:
            return {}
        return {"chart_repo_url": self.repo_url, "chart_version": self.version}


def config_options(params, namespace):
    """The SDK's cluster configuration from kubernetes.core's auth options."""
    kubeconfig = params.get("kubeconfig")
    options = {
        "namespace": namespace,
        "kube_context": params.get("context"),
        "kube_apiserver": params.get("host"),
        "kube_token": params.get("api_key"),
        "kube_ca_file": params.get("ca_cert"),
        "kube_insecure_skip_tls_verify": params.get("validate_certs") is False or None,
        "kube_as_user": params.get("impersonate_user"),
        "kube_as_groups": params.get("impersonate_groups") or None,
    }
    if isinstance(kubeconfig, dict):
        options["kubeconfig_content"] = json.dumps(kubeconfig)  # JSON is YAML
    elif kubeconfig:
        options["kubeconfig_path"] = os.path.expanduser(kubeconfig)
    return {key: value for key, value in options.items() if value is not None}


def plain(values):
    """Values as Helm stores them: JSON types only (numbers compare equal across int/float)."""
    return json.loads(json.dumps(values or {}))


def yaml_text(data):
    """Block-style YAML with sorted keys, for diffs people read."""
    return yaml.safe_dump(data, default_flow_style=False, sort_keys=True)


def summary(release):
    """What the module returns about a release."""
    return {key: release.get(key) for key in
            ("name", "namespace", "revision", "status", "chart_name", "chart_version",
             "app_version", "deployed_at")}


class WarningCollector(logging.Handler):
    """Keeps the SDK's warnings (deprecated APIs, ignored values) to pass on to the user."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        message = record.getMessage().strip()
        if message and message not in self.messages:
            self.messages.append(message)


class Releases:
    """Helm actions on the releases of one namespace, each failure named by its step."""

    def __init__(self, params, namespace, sleep=time.sleep):
        self.warnings = WarningCollector()
        logger = logging.getLogger("meshtune.helm")
        logger.propagate = False
        logger.addHandler(self.warnings)
        helm_python.enable_logging(logging.WARNING, logger=logger)
        self.namespace = namespace
        self._sleep = sleep
        try:
            self.config = helm_python.Config(**config_options(params, namespace))
        except helm_python.HelmError as error:
            raise HelmFailure("configure the cluster connection", error.detail) from error

    def close(self):
        self.config.close()

    def _read(self, step, func, *args, **kwargs):
        """A read action, retried with backoff while the API server answers with a passing fault."""
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                return func(*args, **kwargs)
            except helm_python.HelmNotFoundError:
                raise
            except helm_python.HelmError as error:
                transient = any(hint.lower() in error.detail.lower() for hint in TRANSIENT_READ_ERRORS)
                if not transient or attempt == READ_ATTEMPTS:
                    raise HelmFailure(step, error.detail) from error
                self._sleep(min(5.0, 0.2 * 2 ** attempt))
        return None  # not reached: the last attempt returns or raises

    def history(self, name):
        """Every stored revision of release `name`, oldest first; [] when there is none."""
        try:
            return self._read("read the release history", self.config.history, name)
        except helm_python.HelmNotFoundError:
            return []

    def user_values(self, name, revision):
        return plain(self._read("read the release values", self.config.get_values, name,
                                revision=revision))

    def manifest(self, name, revision):
        return self._read("read the release manifest", self.config.status, name,
                          revision=revision).get("manifest", "")

    @staticmethod
    def _write(step, action, *args, **options):
        try:
            return action(*args, **{key: value for key, value in options.items() if value is not None})
        except helm_python.HelmError as error:
            raise HelmFailure(step, error.detail) from error

    def install(self, name, source, values, **options):
        return self._write("install", self.config.install, source.ref, name, plain(values),
                           namespace=self.namespace, **source.options(), **options)

    def upgrade(self, name, source, values, **options):
        return self._write("upgrade", self.config.upgrade, source.ref, name, plain(values),
                           namespace=self.namespace, reset_values=True, **source.options(),
                           **options)

    def uninstall(self, name, **options):
        return self._write("uninstall", self.config.uninstall, name, **options)


def deployed(history):
    """The release's deployed revision, or None."""
    for release in reversed(history):
        if release.get("status") == "deployed":
            return release
    return None


def deployed_now(releases, name):
    """One sentence saying which revision of `name` is deployed now, for failure messages."""
    try:
        current = deployed(releases.history(name))
    except HelmFailure as error:
        return f"Which revision is deployed now could not be read: {error.helm_message}"
    if current is None:
        return f"No revision of {name} is deployed now."
    return (f"Deployed now: revision {current['revision']} ({current['chart_name']} "
            f"{current['chart_version']}).")
