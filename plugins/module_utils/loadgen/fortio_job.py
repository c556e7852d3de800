# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The in-cluster fortio engine: fortio client pods as a Job, optionally a fortio server.

Measuring a mesh from inside it is the standard way (Istio's own benchmarks run fortio in pods):
the load passes through the client's sidecar, the server's sidecar and the cluster network, as
real traffic does. This module builds the Kubernetes objects and drives one run:

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
import json
import math
import time
from collections import OrderedDict

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import (
    KUBERNETES_IMPORT_ERROR,
    KubeClient,
    KubeError,
    auth_argument_spec,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.errors import ERROR_KINDS
from ansible_collections.meshtune.mesh.plugins.module_utils.run_result import (
    go_duration,
    merge_results,
    summarize,
)

DEFAULT_NAME = "meshtune-load"
DEFAULT_NAMESPACE = "meshtune-load"
DEFAULT_IMAGE = "fortio/fortio"
# The newest fortio release found when this engine was written (1.77.0, November 2026).
DEFAULT_VERSION = "1.77.0"
DEFAULT_START_TIMEOUT = "5m"
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
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
CLIENT_CONTAINER = "fortio"
WARMUP_CONTAINER = "warmup"
# Environment variables of the client containers that hold the headers, from the headers Secret.
HEADER_ENV_PREFIX = "MESHTUNE_HEADER_"
SERVER_CONTAINER = "fortio"
# Seconds between status reads while waiting; tests shorten it.
POLL_INTERVAL = 2.0
# Log lines of a failed pod quoted in the failure message.
LOG_TAIL_LINES = 20
# Log lines read per pod for its result: the result comes last and has well under 2000 lines,
# while fortio logs every failed call before it (its -log-errors default), which may be many.
RESULT_LOG_LINES = 5000
# fortio flags meshtune sets itself (fortio_args may not repeat them), and why.
RESERVED_FLAGS = {
    "json": "the result is read from the log", "a": "the result is read from the log",
    "qps": "from qps", "c": "from connections", "t": "from duration", "n": "from requests",
    "timeout": "from timeout", "p": "the merged result lists fixed percentiles",
    "labels": "from labels", "H": "from headers", "X": "from method", "payload": "from body",
    "payload-file": "from body", "payload-size": "from body", "k": "from validate_certs",
    "https-insecure": "from validate_certs",
    "r": "histograms merge exactly only at fortio's default resolution",
    "offset": "histograms merge exactly only at fortio's default offset",
}


class FortioError(Exception):
    """A run that could not produce a result, with a message that says what to look at."""


class FortioSettings:
    """The fortio engine's options, validated (see options.py), with defaults filled in.

    `resources` are {"client": ..., "server": ...} in the Kubernetes form ({requests, limits}).
    `job_timeout` is None when the wait follows from the load (see total_wait).
    `deploy_server` is true when no URL was given: meshtune deploys the fortio server.
    `labels` is fortio's -labels; empty means the run's name (fortio would add its host name,
    which differs per pod).
    """

    def __init__(self, namespace=DEFAULT_NAMESPACE, name=DEFAULT_NAME, image=DEFAULT_IMAGE,
                 version=DEFAULT_VERSION, client_pods=1, sidecar=True, revision=None, cleanup=True,
                 start_timeout=300.0, job_timeout=None, fortio_args=(), resources=None,
                 pod_annotations=None, deploy_server=True, labels=""):
        self.namespace = namespace
        self.name = name
        self.image = image
        self.version = version
        self.client_pods = int(client_pods)
        self.sidecar = bool(sidecar)
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


def mesh_labels(settings):
    """Sidecar injection: a revision's label, the inject label, or opted out of every proxy."""
    if not settings.sidecar:
        return {INJECT_LABEL: "false", DATAPLANE_LABEL: "none"}
    if settings.revision:
        return {REVISION_LABEL: settings.revision}
    return {INJECT_LABEL: "true"}


def pod_metadata(settings, component):
    """Pod template metadata: run labels, injection labels, annotations."""
    pod_labels = labels(settings, component)
    pod_labels.update(mesh_labels(settings))
    annotations = OrderedDict()
    if settings.sidecar and component == "client":
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
    args += ["-timeout", go_duration(spec.timeout), "-p", PERCENTILES,
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


# ---- results from pod logs -----------------------------------------------------------------

def _is_log_object(line):
    """A one-line JSON object at the start of a line: fortio's structured log lines."""
    if not (line.startswith("{") and line.rstrip().endswith("}")) or line.strip() == "{":
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def extract_result(log_text):
    """fortio's result object from a pod log that mixes it with fortio's log lines.

    fortio writes the result with two-space indentation: it starts with a line "{" and ends
    with a line "}", and every line between is indented. Log lines (plain text, or one-line
    JSON objects in recent fortio versions) start at the first column, so lines of that kind
    that got interleaved into the result are dropped. The last block that parses to an object
    with a DurationHistogram wins. ValueError when there is none.
    """
    lines = log_text.splitlines()
    found = None
    block = None
    for line in lines:
        if line.rstrip() == "{":
            block = [line]
            continue
        if block is None:
            continue
        if line.rstrip() == "}":
            block.append(line)
            try:
                candidate = json.loads("\n".join(block), object_pairs_hook=OrderedDict)
            except ValueError:
                candidate = None
            if isinstance(candidate, dict) and "DurationHistogram" in candidate:
                found = candidate
            block = None
        elif line.startswith((" ", "\t")):
            block.append(line)
        elif _is_log_object(line) or line.strip():
            continue  # a log line written while the result was being written
    if found is None:
        raise ValueError("no fortio JSON result (an object with DurationHistogram) in the log")
    return found


def error_kinds(result):
    """The load_test `errors` of a fortio result: fortio does not tell kinds of failed calls
    apart, so every call without an HTTP response (code -1) counts as `other`."""
    kinds = OrderedDict((kind, 0) for kind in ERROR_KINDS)
    kinds["other"] = int((result.get("RetCodes") or {}).get("-1", 0))
    return kinds


def log_tail(text, lines=LOG_TAIL_LINES):
    """The last lines of a log, for failure messages."""
    kept = [line for line in (text or "").splitlines() if line.strip()]
    return "\n".join(kept[-lines:]) if kept else "(empty log)"


# ---- running it ----------------------------------------------------------------------------

def _status(obj):
    return obj.get("status") or {}


def _condition(obj, kind):
    for condition in _status(obj).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def deployment_available(deployment):
    """The Deployment's current generation has an available pod."""
    status = _status(deployment)
    generation = deployment.get("metadata", {}).get("generation")
    if generation is not None and status.get("observedGeneration", 0) < generation:
        return False
    return bool(status.get("availableReplicas")) or _condition(deployment, "Available") is not None


def _container_statuses(pod):
    status = _status(pod)
    return (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])


def pod_index(pod):
    """The pod's completion index in the Indexed Job (as an int; None when not set)."""
    meta = pod.get("metadata") or {}
    value = (meta.get("annotations") or {}).get(COMPLETION_INDEX) or \
        (meta.get("labels") or {}).get(COMPLETION_INDEX)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def pod_state(pod):
    """(state, detail) of a client pod: pending, running, succeeded or failed.

    A pod whose fortio container exited 0 has succeeded even when a sidecar still runs.
    A container that exited non-zero (the warm-up or fortio) fails the pod.
    """
    for container in _container_statuses(pod):
        terminated = (container.get("state") or {}).get("terminated")
        if terminated and terminated.get("exitCode", 0) != 0 and \
                container.get("name") in (CLIENT_CONTAINER, WARMUP_CONTAINER):
            reason = terminated.get("reason") or "Error"
            return "failed", (f"container {container['name']} exited with code "
                              f"{terminated.get('exitCode')} ({reason})", container["name"])
    phase = _status(pod).get("phase")
    if phase == "Failed":
        reason = _status(pod).get("reason") or _status(pod).get("message") or "Failed"
        return "failed", (f"pod failed ({reason})", CLIENT_CONTAINER)
    for container in _status(pod).get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if container.get("name") == CLIENT_CONTAINER and terminated and \
                terminated.get("exitCode", 0) == 0:
            return "succeeded", None
    if phase == "Succeeded":
        return "succeeded", None
    started = phase == "Running" or any(
        set(container.get("state") or {}) & {"running", "terminated"}
        for container in _container_statuses(pod)
        if container.get("name") in (CLIENT_CONTAINER, WARMUP_CONTAINER))
    return ("running" if started else "pending"), _waiting_reason(pod)


def _waiting_reason(pod):
    """Why a pod has not started: a container's waiting reason, or why it is not scheduled."""
    for container in _container_statuses(pod):
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
            message = waiting.get("message")
            return f"{container.get('name')}: {waiting['reason']}" + (f" ({message})" if message else "")
    for condition in _status(pod).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"not scheduled: {condition.get('message') or condition.get('reason')}"
    return None


class FortioRun:
    """One run of the engine against a cluster, through a kube.KubeClient.

    `progress(text)` gets one line per phase. `clock` and `sleep` are replaceable for tests.
    """

    def __init__(self, kube, settings, spec, progress=None, clock=time.monotonic, sleep=time.sleep):
        self.kube = kube
        self.settings = settings
        self.spec = spec
        self.progress = progress or (lambda text: None)
        self.clock = clock
        self.sleep = sleep
        self.objects = planned_objects(settings, spec)
        self.created = []
        self.states = OrderedDict()
        for body in self.objects:
            self.states[self._key(body)] = "planned"

    @staticmethod
    def _key(body):
        return (body["kind"], body["metadata"]["name"])

    def _resource(self, body):
        return self.kube.resource(body["apiVersion"], body["kind"])

    def _pods_resource(self):
        return self.kube.resource("v1", "Pod")

    # -- checks ----------------------------------------------------------------------------

    def preflight(self):
        """The namespace exists and no object of this run's names is left from another run."""
        namespace = self.settings.namespace
        try:
            found = self.kube.get(self.kube.resource("v1", "Namespace"), None, namespace)
        except KubeError as error:
            if error.status != 403:
                raise
            found = True  # credentials for one namespace only: creating in it will tell
        if found is None:
            raise FortioError(f"namespace {namespace} does not exist: create it (labelled for "
                              "sidecar injection as your mesh requires) or set namespace")
        existing = []
        for body in self.objects:
            live = self.kube.get(self._resource(body), namespace, body["metadata"]["name"])
            if live is not None:
                existing.append(f"{body['kind']} {body['metadata']['name']}")
        if existing:
            raise FortioError(
                f"objects of an earlier load test named {self.settings.name} exist in namespace "
                f"{namespace}: {', '.join(existing)}. Delete them (kubectl -n {namespace} delete "
                f"job,deployment,service,serviceaccount -l {LOAD_TEST_LABEL}={self.settings.name}) "
                "or choose another name")

    def planned(self, state="would create"):
        return [object_entry(body, state) for body in self.objects]

    # -- the run ---------------------------------------------------------------------------

    def run(self):
        """Create, wait, collect, merge: the module's return values (without cleanup)."""
        self.preflight()
        started = self.clock()
        for body in self.objects[:-1]:
            self._create(body)
        if self.settings.deploy_server:
            self.progress(f"created {self._names()}; waiting for the fortio server")
            self._wait_for_server(started + self.settings.start_timeout)
            self.progress("server ready")
        job = self._create(self.objects[-1])
        self.progress(f"created {self._names()}; load starts when the client pods run")
        pods = self._wait_for_job(job)
        results = self._collect(pods)
        merged = results[0][1] if len(results) == 1 else \
            merge_results([result for _pod, result in results])
        summary = summarize(merged)
        self.progress("done: p50={p50_ms}ms p90={p90_ms}ms p99={p99_ms}ms p999={p999_ms}ms "
                      "achieved={achieved_qps}/s errors={errors}".format(**summary))
        pod_entries = []
        for pod, result in results:
            meta = pod["metadata"]
            entry = OrderedDict((("name", meta["name"]), ("index", pod_index(pod)),
                                 ("node", (pod.get("spec") or {}).get("nodeName")),
                                 ("summary", summarize(result))))
            pod_entries.append(entry)
        return {"result": merged, "summary": summary, "pods": pod_entries,
                "errors": error_kinds(merged)}

    def _names(self):
        return ", ".join(f"{kind} {name}" for (kind, name), state in self.states.items()
                         if state == "created")

    def _create(self, body):
        created = self.kube.create(self._resource(body), self.settings.namespace, body)
        self.created.append(body)
        self.states[self._key(body)] = "created"
        return created

    def _wait_for_server(self, deadline):
        resource = self.kube.resource("apps/v1", "Deployment")
        name = self.settings.server_name
        while True:
            deployment = self.kube.get(resource, self.settings.namespace, name)
            if deployment is not None and deployment_available(deployment):
                return
            if self.clock() >= deadline:
                reasons = self._pod_reasons(selector_labels(self.settings, "server"))
                raise FortioError(f"the fortio server Deployment {name} was not available within "
                                  f"start_timeout ({go_duration(self.settings.start_timeout)})"
                                  + (f": {reasons}" if reasons else ""))
            self.sleep(POLL_INTERVAL)

    def _pod_reasons(self, selector):
        pods = self.kube.list(self._pods_resource(), self.settings.namespace, _selector(selector))
        reasons = [f"pod {pod['metadata']['name']} {_waiting_reason(pod)}" for pod in pods
                   if _waiting_reason(pod)]
        return "; ".join(reasons)

    def _job_pods(self, job_uid):
        """The Job's pods (by owner), one per completion index, the newest when there are more."""
        pods = self.kube.list(self._pods_resource(), self.settings.namespace,
                              _selector(selector_labels(self.settings, "client")))
        owned = [pod for pod in pods if any(
            ref.get("uid") == job_uid for ref in pod["metadata"].get("ownerReferences") or [])]
        owned.sort(key=lambda pod: (pod_index(pod) if pod_index(pod) is not None else -1,
                                    pod["metadata"].get("creationTimestamp") or ""))
        by_index = OrderedDict()
        for position, pod in enumerate(owned):
            index = pod_index(pod)
            by_index[index if index is not None else f"pod-{position}"] = pod
        return list(by_index.values())

    def _wait_for_job(self, job):
        """Poll until every client pod has finished; FortioError when one fails or time is up."""
        settings = self.settings
        resource = self.kube.resource("batch/v1", "Job")
        uid = job["metadata"]["uid"]
        name = settings.job_name
        created = self.clock()
        start_deadline = created + settings.start_timeout
        deadline = created + total_wait(settings, self.spec)
        wanted = settings.client_pods
        reported = None
        while True:
            live = self.kube.get(resource, settings.namespace, name)
            if live is None:
                raise FortioError(f"the Job {name} was deleted while the load test ran")
            pods = self._job_pods(uid)
            states = [(pod, pod_state(pod)) for pod in pods]
            for pod, (state, detail) in states:
                if state == "failed":
                    raise FortioError(self._failure(pod, detail))
            failed = _condition(live, "Failed")
            if failed is not None or _status(live).get("failed"):
                reason = failed.get("reason") if failed else "a pod failed"
                message = failed.get("message") if failed else ""
                raise FortioError(f"the Job {name} failed: {reason}"
                                  + (f" ({message})" if message else "")
                                  + self._states_text(states))
            done = [pod for pod, (state, _detail) in states if state == "succeeded"]
            running = sum(1 for _pod, (state, _detail) in states if state in ("running", "succeeded"))
            counts = (running, len(done))
            if counts != reported:
                self.progress(f"job running {running}/{wanted} pods, {len(done)} done")
                reported = counts
            if len(done) >= wanted:
                return done[:wanted]
            if len(done) < wanted and (_condition(live, "Complete") is not None
                                       or (_status(live).get("succeeded") or 0) >= wanted):
                # The Job counts its pods as done before their status reaches us: read again.
                finished = [pod for pod, (state, _d) in states if state != "failed"]
                if len(finished) >= wanted and all(_status(pod).get("phase") in (None, "Succeeded")
                                                   for pod in finished):
                    return finished[:wanted]
            now = self.clock()
            if now >= start_deadline and running < wanted:
                raise FortioError(
                    f"only {running} of {wanted} client pods of Job {name} started within "
                    f"start_timeout ({go_duration(settings.start_timeout)})"
                    + self._states_text(states, not_started=True))
            if now >= deadline:
                raise FortioError(f"the Job {name} did not finish within "
                                  f"{go_duration(total_wait(settings, self.spec))}"
                                  + self._states_text(states))
            self.sleep(POLL_INTERVAL)

    def _states_text(self, states, not_started=False):
        if not states:
            return (": the Job created no pods (check its events: Pod Security admission, a "
                    "ResourceQuota or a LimitRange may reject them)") if not_started else ""
        parts = []
        for pod, (state, detail) in states:
            text = f"{pod['metadata']['name']} {state}"
            if detail and not isinstance(detail, tuple):
                text += f" ({detail})"
            parts.append(text)
        return ": " + "; ".join(parts)

    def _read_log(self, pod_name, container, tail):
        """A container's log as text. Read raw: the client would turn a JSON log into a repr."""
        from kubernetes import client as kube_client

        core = kube_client.CoreV1Api(self.kube.dynamic.client)
        options = {"container": container, "_preload_content": False, "tail_lines": tail}
        response = self.kube.call(core.read_namespaced_pod_log, pod_name, self.settings.namespace,
                                  **options)
        try:
            return response.data.decode("utf-8", errors="replace")
        finally:
            response.release_conn()

    def _failure(self, pod, detail):
        message, container = detail
        name = pod["metadata"]["name"]
        try:
            tail = log_tail(self._read_log(name, container, LOG_TAIL_LINES))
        except KubeError as error:  # the failure matters more than its log
            tail = f"(log not readable: {error})"
        return (f"client pod {name} of Job {self.settings.job_name} failed: {message}. "
                f"Last log lines:\n{tail}")

    def _collect(self, pods):
        """(pod, fortio result) per pod, from the pods' logs."""
        results = []
        for pod in pods:
            name = pod["metadata"]["name"]
            text = self._read_log(name, CLIENT_CONTAINER, RESULT_LOG_LINES)
            try:
                results.append((pod, extract_result(text)))
            except ValueError as error:
                raise FortioError(f"client pod {name}: {error}. Last log lines:\n{log_tail(text)}"
                                  ) from error
        return results

    # -- cleanup ---------------------------------------------------------------------------

    def cleanup(self):
        """Delete what this run created, newest first; the problems met (empty when none).

        The Job goes with propagationPolicy Background, so the garbage collector removes its
        pods too (a Job deleted through the API orphans them by default).
        """
        problems = []
        for body in reversed(self.created):
            name = body["metadata"]["name"]
            try:
                self.kube.call(self._resource(body).delete, name=name,
                               namespace=self.settings.namespace,
                               body={"apiVersion": "v1", "kind": "DeleteOptions",
                                     "propagationPolicy": "Background"})
                self.states[self._key(body)] = "deleted"
            except KubeError as error:
                if error.status == 404:
                    self.states[self._key(body)] = "deleted"
                    continue
                problems.append(f"{body['kind']} {name}: {error}")
        return problems

    def object_states(self):
        """Every planned object with what became of it (created, deleted, kept, planned)."""
        entries = []
        for body in self.objects:
            state = self.states[self._key(body)]
            if state == "created" and not self.settings.cleanup:
                state = "kept"
            entries.append(object_entry(body, state))
        return entries


def _selector(mapping):
    return ",".join(f"{key}={value}" for key, value in mapping.items())


# ---- the module's side -----------------------------------------------------------------------

def auth_option_names():
    """kubernetes.core's auth options that load_test takes: all but validate_certs.

    load_test's validate_certs is about the target's certificate. Passing it on would turn off
    (or force) verification of the API server's certificate as well, so the API server's is
    left to the kubeconfig or K8S_AUTH_VERIFY_SSL.
    """
    return [name for name in auth_argument_spec() if name != "validate_certs"]


class _AuthView:
    """The module as kubernetes.core's client factory sees it: the auth options only."""

    server_side_dry_run = False

    def __init__(self, module):
        self._module = module
        self.params = {name: module.params.get(name) for name in auth_option_names()}

    def requires(self, dependency, minimum=None, reason=None):
        from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import requires

        try:
            requires(dependency, minimum, reason=reason)
        except Exception as error:  # noqa: BLE001 - kubernetes.core raises a bare Exception
            self._module.fail_json(msg=str(error))

    def fail_json(self, **kwargs):
        self._module.fail_json(**kwargs)


def execute(module, spec, progress=None):
    """Run the fortio engine for load_test: (return values, failure message or None).

    Objects are deleted again whatever happens after the first one was created (unless
    cleanup is off); in check mode only reads are made.
    """
    settings = spec.fortio
    if KUBERNETES_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(KUBERNETES_IMPORT_ERROR))
    kube = KubeClient.from_module(_AuthView(module))
    runner = FortioRun(kube, settings, spec, progress)
    output = {"changed": False, "url": spec.url}
    failure = None
    try:
        if module.check_mode:
            runner.preflight()
            output["objects"] = runner.planned()
            output["msg"] = "check mode: options are valid, nothing was created"
            return output, None
        try:
            output.update(runner.run())
        finally:
            if settings.cleanup:
                problems = runner.cleanup()
                if problems:
                    module.warn("cleanup: could not delete " + "; ".join(problems))
                    output["changed"] = True
            elif runner.created:
                output["changed"] = True
            output["objects"] = runner.object_states()
    except (FortioError, KubeError) as error:
        failure = f"fortio engine: {error}"
        if progress is not None:
            progress(f"failed: {error}")
    return output, failure
