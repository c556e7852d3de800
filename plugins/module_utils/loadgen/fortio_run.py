# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""One run of the in-cluster fortio engine: create the objects, wait, collect, merge, clean up.

The objects come from fortio_objects; pod states and results are read with fortio_pods. The fortio
server is waited for as `kubectl rollout status` would (workloads.rollout_status).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time
from collections import OrderedDict

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import KubeError
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.fortio_objects import (
    CLIENT_CONTAINER,
    LOAD_TEST_LABEL,
    client_job,
    object_entry,
    planned_objects,
    selector_labels,
    total_wait,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.fortio_pods import (
    LOG_TAIL_LINES,
    error_kinds,
    extract_result,
    log_tail,
    pod_index,
    pod_state,
    status_of,
    true_condition,
    waiting_reason,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.run_result import (
    go_duration,
    merge_results,
    summarize,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.workloads import rollout_status

# Seconds between status reads while waiting; tests shorten it.
POLL_INTERVAL = 2.0
# Log lines read per pod for its result: the result comes last and has well under 2000 lines,
# while fortio logs every failed call before it (its -log-errors default), which may be many.
RESULT_LOG_LINES = 5000


class FortioError(Exception):
    """A run that could not produce a result, with a message that says what to look at."""


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

    def setup(self):
        """Create everything but the Job and wait for the server: what the steps of a search share."""
        self.preflight()
        started = self.clock()
        for body in self.objects[:-1]:
            self._create(body)
        if self.settings.deploy_server:
            self.progress(f"created {self._names()}; waiting for the fortio server")
            self._wait_for_server(started + self.settings.start_timeout)
            self.progress("server ready")

    def run(self):
        """Create, wait, collect, merge: the module's return values (without cleanup)."""
        self.setup()
        return self._measure(self.objects[-1])

    def step(self, spec):
        """One load of a search on what setup() created: a Job of the run's name for `spec`,
        deleted again (its pods with it) before the next step may create its own."""
        self.spec = spec
        body = client_job(self.settings, spec)
        try:
            return self._measure(body)
        finally:
            self._remove_job(body)

    def _remove_job(self, body):
        """Delete a step's Job and wait until it is gone, within start_timeout."""
        resource = self._resource(body)
        name = body["metadata"]["name"]
        try:
            self.kube.call(resource.delete, name=name, namespace=self.settings.namespace,
                           body={"apiVersion": "v1", "kind": "DeleteOptions",
                                 "propagationPolicy": "Background"})
        except KubeError as error:
            if error.status != 404:
                raise
        deadline = self.clock() + self.settings.start_timeout
        while self.kube.get(resource, self.settings.namespace, name) is not None:
            if self.clock() >= deadline:
                raise FortioError(f"the Job {name} of the previous step was not deleted within "
                                  f"start_timeout ({go_duration(self.settings.start_timeout)})")
            self.sleep(POLL_INTERVAL)
        self.created = [created for created in self.created if created is not body]
        self.states[self._key(body)] = "deleted"

    def _measure(self, job_body):
        """Create the Job, wait for its pods, read and merge their results."""
        job = self._create(job_body)
        self.progress(f"created {self._names()}; load starts when the client pods run")
        pods = self._wait_for_job(job)
        results = self._collect(pods)
        merged = results[0][1] if len(results) == 1 else \
            merge_results([result for _pod, result in results], resolution=self.settings.resolution)
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
            if deployment is not None and rollout_status("Deployment", deployment)[0] == "complete":
                return
            if self.clock() >= deadline:
                reasons = self._pod_reasons(selector_labels(self.settings, "server"))
                raise FortioError(f"the fortio server Deployment {name} was not available within "
                                  f"start_timeout ({go_duration(self.settings.start_timeout)})"
                                  + (f": {reasons}" if reasons else ""))
            self.sleep(POLL_INTERVAL)

    def _pod_reasons(self, selector):
        pods = self.kube.list(self._pods_resource(), self.settings.namespace, _selector(selector))
        reasons = [f"pod {pod['metadata']['name']} {waiting_reason(pod)}" for pod in pods
                   if waiting_reason(pod)]
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
            failed = true_condition(live, "Failed")
            if failed is not None or status_of(live).get("failed"):
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
            if len(done) < wanted and (true_condition(live, "Complete") is not None
                                       or (status_of(live).get("succeeded") or 0) >= wanted):
                # The Job counts its pods as done before their status reaches us: read again.
                finished = [pod for pod, (state, _d) in states if state != "failed"]
                if len(finished) >= wanted and all(status_of(pod).get("phase") in (None, "Succeeded")
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
