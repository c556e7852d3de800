# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The in-cluster fortio engine: fortio client pods as a Job, optionally a fortio server.

Measuring a mesh from inside it is the standard way (Istio's own benchmarks run fortio in pods):
the load passes through the client's sidecar, the server's sidecar and the cluster network, as
real traffic does. This module builds the Kubernetes objects of one run; fortio_run drives the
run, fortio_pods reads the pods, fortio_engine is the load_test module's side. A run has:

1. a ServiceAccount without API access (no token mounted, no Role or RoleBinding: fortio needs
   no API access, and a token nobody uses is only something to steal);
2. when no URL is given, a fortio server Deployment and Service as the target;
3. when headers are given, a Secret holding them: the client containers read each header from
   it into an environment variable and pass it as `-H $(VAR)`, which Kubernetes expands, so header
   values (bearer tokens, cookies) are not in the Job's or the pods' specs;
4. an Indexed Job with one client pod per `client_pods`, each running `fortio load -json -` with
   its share of the rate and connections, so its result ends up in the pod's log;
5. the results read from the pods' logs and merged exactly (histogram buckets add up);
6. every object it created deleted again, also after a failure, unless cleanup is off.

Pods run under the restricted Pod Security Standard. The fortio image has no shell, so a warm-up
is an init container running the same load, and nothing chains commands inside a container.

With a sidecar, client pods ask for Istio's native sidecar (`sidecar.istio.io/nativeSidecar`):
the proxy then runs as an init container that starts before the warm-up container and stops
when fortio exits, so the Job completes. A pod whose fortio container has exited counts as done
even when a classic sidecar keeps the pod running.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import copy
import math
from collections import OrderedDict

from ansible_collections.meshtune.mesh.plugins.module_utils.run_result import go_duration

DEFAULT_NAME = "meshtune-load"
DEFAULT_NAMESPACE = "meshtune-load"
DEFAULT_IMAGE = "fortio/fortio"
# The newest fortio release found when this engine was written (1.77.0, November 2026).
DEFAULT_VERSION = "1.77.0"
DEFAULT_START_TIMEOUT = "5m"
# fortio's -r, the histogram resolution in seconds: its buckets are a fixed table (0, 1, 2, ...,
# 100000) times this. fortio's own default, 1 ms, puts a sidecar's few tenths of a millisecond
# inside one bucket; 0.1 ms buckets see them and still reach 10 s (beyond, one bucket up to
# the maximum).
DEFAULT_RESOLUTION = 0.0001
SERVER_PORT = 8080
SERVER_PATH = "/echo"
# fortio's default -p list; the merged result lists the same percentiles.
PERCENTILES = "50,75,90,99,99.9"
# Not root, as the restricted Pod Security Standard requires; the fortio image has no users.
RUN_AS_USER = 65532
# No CPU limit by default: a throttled load generator or server adds latency that is not the
# mesh's. Memory is limited, so a runaway pod cannot starve its node.
DEFAULT_CLIENT_RESOURCES = {"requests": {"cpu": "1", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
DEFAULT_SERVER_RESOURCES = {"requests": {"cpu": "500m", "memory": "128Mi"},
                            "limits": {"memory": "512Mi"}}
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "meshtune"
LOAD_TEST_LABEL = "meshtune.io/load-test"
COMPONENT_LABEL = "app.kubernetes.io/component"
NAME_LABEL = "app.kubernetes.io/name"
INJECT_LABEL = "sidecar.istio.io/inject"
REVISION_LABEL = "istio.io/rev"
# Ambient mode: keep baseline pods out of the ztunnel data plane as well.
DATAPLANE_LABEL = "istio.io/dataplane-mode"
NATIVE_SIDECAR_ANNOTATION = "sidecar.istio.io/nativeSidecar"
# Which pods get a sidecar: Istio's benchmark modes. "server" leaves the client out of the mesh,
# so that the server-side proxy's cost shows apart from the client-side one's.
SIDECAR_MODES = ("both", "server", "none")
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
CLIENT_CONTAINER = "fortio"
WARMUP_CONTAINER = "warmup"
# Environment variables of the client containers that hold the headers, from the headers Secret.
HEADER_ENV_PREFIX = "MESHTUNE_HEADER_"
SERVER_CONTAINER = "fortio"
# fortio flags meshtune sets itself (fortio_args may not repeat them), and why.
RESERVED_FLAGS = {
    "json": "the result is read from the log", "a": "the result is read from the log",
    "qps": "from qps", "c": "from connections", "t": "from duration", "n": "from requests",
    "timeout": "from timeout", "p": "the merged result lists fixed percentiles",
    "labels": "from labels", "H": "from headers", "X": "from method", "payload": "from body",
    "payload-file": "from body", "payload-size": "from body", "k": "from validate_certs",
    "https-insecure": "from validate_certs",
    "r": "from histogram_resolution",
    "offset": "histograms merge exactly only at fortio's default offset",
}


class FortioSettings:
    """The fortio engine's options, validated (see options.py), with defaults filled in.

    `resources` are {"client": ..., "server": ...} in the Kubernetes form ({requests, limits}).
    `job_timeout` is None when the wait follows from the load (see total_wait).
    `deploy_server` is true when no URL was given: meshtune deploys the fortio server.
    `labels` is fortio's -labels; empty means the run's name (fortio would add its host name,
    which differs per pod). `resolution` is fortio's -r in seconds: every pod records with it, so
    their histograms merge exactly.
    """

    def __init__(self, namespace=DEFAULT_NAMESPACE, name=DEFAULT_NAME, image=DEFAULT_IMAGE,
                 version=DEFAULT_VERSION, client_pods=1, sidecar=True, revision=None, cleanup=True,
                 start_timeout=300.0, job_timeout=None, fortio_args=(), resources=None,
                 pod_annotations=None, deploy_server=True, labels="",
                 resolution=DEFAULT_RESOLUTION):
        self.namespace = namespace
        self.name = name
        self.image = image
        self.version = version
        self.client_pods = int(client_pods)
        # "both" (true), "server" (the server's sidecar only) or "none" (false, the baseline)
        self.sidecar = sidecar if sidecar in SIDECAR_MODES else ("both" if sidecar else "none")
        self.revision = revision
        self.cleanup = bool(cleanup)
        self.start_timeout = float(start_timeout)
        self.job_timeout = job_timeout
        self.fortio_args = list(fortio_args or ())
        resources = resources or {}
        self.client_resources = resources.get("client") or copy.deepcopy(DEFAULT_CLIENT_RESOURCES)
        self.server_resources = resources.get("server") or copy.deepcopy(DEFAULT_SERVER_RESOURCES)
        self.pod_annotations = dict(pod_annotations or {})
        self.deploy_server = bool(deploy_server)
        self.labels = labels or ""
        self.resolution = float(resolution)

    @property
    def image_ref(self):
        """`image:tag`, or `image@sha256:...` when the version is a digest."""
        separator = "@" if self.version.startswith("sha256:") else ":"
        return f"{self.image}{separator}{self.version}"

    @property
    def server_name(self):
        return f"{self.name}-server"

    @property
    def job_name(self):
        return f"{self.name}-client"

    @property
    def headers_secret_name(self):
        return f"{self.name}-headers"

    def default_url(self):
        """The deployed fortio server's echo endpoint, by its cluster-internal name."""
        return f"http://{self.server_name}.{self.namespace}.svc:{SERVER_PORT}{SERVER_PATH}"


def measured_seconds(spec):
    """How long the measured load runs; None when it cannot be known (requests at qps 0)."""
    if spec.duration is not None:
        return spec.duration
    if spec.qps > 0:
        return spec.requests / spec.qps
    return None


def total_wait(settings, spec):
    """Seconds allowed for the Job: start-up, warm-up, load, and two request timeouts of slack.

    Also the Job's activeDeadlineSeconds, so a run that hangs stops in the cluster too.
    """
    if settings.job_timeout is not None:
        return settings.job_timeout
    measured = measured_seconds(spec)
    if measured is None:
        raise ValueError("job_timeout is needed when the run length is unknown")
    return settings.start_timeout + spec.warmup + measured + 2 * spec.timeout


# ---- object builders -----------------------------------------------------------------------


def labels(settings, component=None):
    """The labels of every object of one run; `component` adds the role (client, server)."""
    result = OrderedDict()
    result[MANAGED_BY_LABEL] = MANAGED_BY
    result[LOAD_TEST_LABEL] = settings.name
    result[NAME_LABEL] = "fortio"
    if component:
        result[COMPONENT_LABEL] = component
    return result


def selector_labels(settings, component):
    """What selects one run's pods of one role (the Service's and Deployment's selector)."""
    return OrderedDict(((LOAD_TEST_LABEL, settings.name), (COMPONENT_LABEL, component)))


def injected(settings, component):
    """Whether the pods of `component` (client, server) get a sidecar in the settings' mode."""
    return settings.sidecar == "both" or (settings.sidecar == "server" and component == "server")


def mesh_labels(settings, component):
    """Sidecar injection: a revision's label, the inject label, or opted out of every proxy."""
    if not injected(settings, component):
        return {INJECT_LABEL: "false", DATAPLANE_LABEL: "none"}
    if settings.revision:
        return {REVISION_LABEL: settings.revision}
    return {INJECT_LABEL: "true"}


def pod_metadata(settings, component):
    """Pod template metadata: run labels, injection labels, annotations."""
    pod_labels = labels(settings, component)
    pod_labels.update(mesh_labels(settings, component))
    annotations = OrderedDict()
    if injected(settings, component) and component == "client":
        annotations[NATIVE_SIDECAR_ANNOTATION] = "true"
    annotations.update(settings.pod_annotations)
    metadata = {"labels": dict(pod_labels)}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return metadata


def pod_security_context():
    """The restricted Pod Security Standard's pod-level part."""
    return {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security_context():
    """The restricted Pod Security Standard's container part, plus a read-only root."""
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True, "runAsNonRoot": True}


def _share(total, parts):
    """A per-pod share of a rate as fortio's -qps takes it (shortest exact decimal)."""
    value = total / parts
    return f"{value:.10g}"


def load_args(settings, spec, measured=True):
    """The `fortio load` arguments of one client pod (its share of the load).

    The measured run writes its result as JSON to stdout (`-json -`); the warm-up does not.
    The rate and connections are split evenly over the pods (options.py checks that
    connections and requests divide evenly).
    """
    pods = settings.client_pods
    args = ["load"]
    if measured:
        args += ["-json", "-"]
    args += ["-qps", _share(spec.qps, pods) if spec.qps > 0 else "0",
             "-c", str(spec.connections // pods)]
    if not measured:
        args += ["-t", go_duration(spec.warmup)]
    elif spec.requests is not None:
        args += ["-n", str(spec.requests // pods)]
    else:
        args += ["-t", go_duration(spec.duration)]
    args += ["-timeout", go_duration(spec.timeout), "-r", f"{settings.resolution:g}", "-p", PERCENTILES,
             "-labels", settings.labels or settings.name]
    for index in range(len(spec.headers)):  # values from the headers Secret, see header_env
        args += ["-H", f"$({HEADER_ENV_PREFIX}{index})"]
    if spec.method != "GET" or spec.body:
        args += ["-X", spec.method]
    if spec.body:
        args += ["-payload", spec.body.decode("utf-8")]
    if not spec.validate_certs:
        args.append("-k")
    args += settings.fortio_args
    args.append(spec.url)
    return args


def _container(name, image, args, resources):
    return {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", "args": args,
            "resources": copy.deepcopy(resources),
            "securityContext": container_security_context(),
            "terminationMessagePolicy": "FallbackToLogsOnError"}


def _pod_spec(settings, containers, restart_policy, init_containers=None):
    spec = {"serviceAccountName": settings.name, "automountServiceAccountToken": False,
            "enableServiceLinks": False, "restartPolicy": restart_policy,
            "securityContext": pod_security_context(), "terminationGracePeriodSeconds": 5,
            "containers": containers}
    if init_containers:
        spec["initContainers"] = init_containers
    return spec


def _metadata(settings, name, component=None):
    return {"name": name, "namespace": settings.namespace, "labels": dict(labels(settings, component))}


def service_account(settings):
    """The pods' identity: no API token mounted (no Role or RoleBinding either)."""
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": _metadata(settings, settings.name),
            "automountServiceAccountToken": False}


def server_args():
    """`fortio server` with the HTTP echo only: no UI, gRPC, TCP/UDP echo or redirector."""
    return ["server", "-http-port", str(SERVER_PORT), "-ui-path", "", "-grpc-port", "disabled",
            "-redirect-port", "disabled", "-tcp-port", "disabled", "-udp-port", "disabled"]


def server_deployment(settings):
    """One fortio server pod answering on SERVER_PORT, ready once its echo endpoint answers."""
    container = _container(SERVER_CONTAINER, settings.image_ref, server_args(),
                           settings.server_resources)
    container["ports"] = [{"name": "http", "containerPort": SERVER_PORT, "protocol": "TCP"}]
    container["readinessProbe"] = {"httpGet": {"path": SERVER_PATH, "port": SERVER_PORT},
                                   "periodSeconds": 2, "failureThreshold": 3}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": _metadata(settings, settings.server_name, "server"),
            "spec": {"replicas": 1,
                     "selector": {"matchLabels": dict(selector_labels(settings, "server"))},
                     "template": {"metadata": pod_metadata(settings, "server"),
                                  "spec": _pod_spec(settings, [container], "Always")}}}


def server_service(settings):
    """The server's Service; the port is named http so Istio treats the traffic as HTTP."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _metadata(settings, settings.server_name, "server"),
            "spec": {"selector": dict(selector_labels(settings, "server")),
                     "ports": [{"name": "http", "port": SERVER_PORT, "targetPort": SERVER_PORT,
                                "protocol": "TCP", "appProtocol": "http"}]}}


def headers_secret(settings, spec):
    """The request headers, one `Name:value` entry each, for the client containers' environment."""
    data = OrderedDict(
        (f"header-{index}", base64.b64encode(f"{name}:{value}".encode()).decode("ascii"))
        for index, (name, value) in enumerate(spec.headers.items()))
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": _metadata(settings, settings.headers_secret_name, "client"),
            "data": dict(data)}


def header_env(settings, spec):
    """The client containers' environment: each header from the headers Secret."""
    return [{"name": f"{HEADER_ENV_PREFIX}{index}",
             "valueFrom": {"secretKeyRef": {"name": settings.headers_secret_name,
                                            "key": f"header-{index}"}}}
            for index in range(len(spec.headers))]


def client_job(settings, spec):
    """The load: an Indexed Job with client_pods pods running at once, none retried.

    A retried pod would repeat part of the load and skew the merged figures, so backoffLimit is
    0 and a failed pod fails the run. activeDeadlineSeconds stops a run that hangs.
    """
    init = []
    if spec.warmup > 0:
        init.append(_container(WARMUP_CONTAINER, settings.image_ref,
                               load_args(settings, spec, measured=False), settings.client_resources))
    container = _container(CLIENT_CONTAINER, settings.image_ref, load_args(settings, spec),
                           settings.client_resources)
    if spec.headers:
        for each in [container, *init]:
            each["env"] = header_env(settings, spec)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": _metadata(settings, settings.job_name, "client"),
            "spec": {"parallelism": settings.client_pods, "completions": settings.client_pods,
                     "completionMode": "Indexed", "backoffLimit": 0,
                     "activeDeadlineSeconds": math.ceil(total_wait(settings, spec)),
                     "template": {"metadata": pod_metadata(settings, "client"),
                                  "spec": _pod_spec(settings, [container], "Never", init)}}}


def planned_objects(settings, spec):
    """Every object of a run, in the order it is created."""
    objects = [service_account(settings)]
    if settings.deploy_server:
        objects += [server_deployment(settings), server_service(settings)]
    if spec.headers:
        objects.append(headers_secret(settings, spec))
    objects.append(client_job(settings, spec))
    return objects


def object_entry(body, state):
    """How an object appears in the module's `objects` return value."""
    return OrderedDict((("kind", body["kind"]), ("api_version", body["apiVersion"]),
                        ("namespace", body["metadata"]["namespace"]),
                        ("name", body["metadata"]["name"]), ("state", state)))
