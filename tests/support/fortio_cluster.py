"""A stand-in for the Job controller and the kubelet, for fortio runs against the test API server.

The test server runs no pods. Cluster, a thread, waits for a load_test run's Job, creates the
Job's pods as the Job controller would (labels, completion index, owner reference), serves each
pod's log (a fortio result among fortio's log lines) and marks the pods and the Job finished. Each
pod's result has its own known latency samples, so merged percentiles can be checked exactly.
"""

from __future__ import annotations

import random
import threading
import time

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from ansible_collections.meshtune.mesh.plugins.module_utils import run_result
from ansible_collections.meshtune.mesh.plugins.module_utils.histogram import (
    DEFAULT_PERCENTILES,
    FortioBuckets,
    HistogramRecorder,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen import fortio_objects
from tests.support.fortio_samples import fortio_result

NAMESPACE = "load"
FORTIO_LOG_START = (
    '{"ts":1764489600.101,"level":"info","r":1,"file":"logger.go","line":254,'
    '"msg":"Log level is now 3 Info (was 2 Info)"}\n'
    "Fortio 1.77.0 running at 50 queries per second, 2->2 procs, for 1s: {url}\n"
    '{"ts":1764489600.102,"level":"info","r":1,"file":"httprunner.go","line":121,'
    '"msg":"Starting http test","run":0,"url":"{url}","threads":2,"qps":"50.0"}\n'
    "Starting at 50 qps with 2 thread(s) [gomax 2] for 1s : 25 calls each (total 50 + 0)\n"
)
FORTIO_LOG_END = (
    "All done 50 calls (plus 2 warmup) 2.345 ms avg, 49.9 qps\n"
    '{"ts":1764489601.2,"level":"info","r":1,"file":"fortio_main.go","line":525,'
    '"msg":"Successfully wrote 4321 bytes of Json data to stdout"}\n'
)


def kube_apis(kubeconfig) -> dict:
    """The API groups Cluster uses, by short name, plus the raw client ("raw")."""
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    return {"core": client.CoreV1Api(api_client), "apps": client.AppsV1Api(api_client),
            "batch": client.BatchV1Api(api_client), "rbac": client.RbacAuthorizationV1Api(api_client),
            "raw": api_client}


def samples_for(index, scale=1.0):
    """Known latencies (seconds) of one pod: each pod's differ, so merging has to be right.
    `scale` stretches them (a slower run of the same load)."""
    generator = random.Random(index)
    low, high = (0.0008, 0.004) if index % 2 == 0 else (0.002, 0.030)
    return [scale * generator.uniform(low, high) for _sample in range(400 + 100 * index)]


def histogram_of(samples):
    histogram = HistogramRecorder(FortioBuckets(fortio_objects.DEFAULT_RESOLUTION))
    for value in samples:
        histogram.record(value)
    return histogram


def pod_result(index, url, scale=1.0):
    samples = samples_for(index, scale)
    histogram = histogram_of(samples)
    result = fortio_result(
        Labels="meshtune-load", Version="1.77.0", RequestedQPS="50", RequestedDuration="1s",
        ActualQPS=49.9, ActualDuration=1002000000 + index, NumThreads=2, URL=url,
        StartTime=f"2026-11-30T08:00:0{index}.5Z",
        DurationHistogram=histogram.export(DEFAULT_PERCENTILES),
        ErrorsDurationHistogram=histogram_of([]).export(DEFAULT_PERCENTILES),
        RetCodes={"200": len(samples) - index, "503": index} if index else {"200": len(samples)})
    result["Exactly"] = 0
    return result


def pod_log(index, url, interleave=False, scale=1.0):
    """A fortio pod's log: stderr lines around the result, one log line inside it if asked."""
    text = run_result.dumps(pod_result(index, url, scale))
    if interleave:
        lines = text.splitlines(keepends=True)
        lines.insert(5, '{"ts":1764489600.5,"level":"warn","r":7,"msg":"slow connect"}\n')
        text = "".join(lines)
    return FORTIO_LOG_START.replace("{url}", url) + text + FORTIO_LOG_END


class Cluster(threading.Thread):
    """Plays the Job controller and the kubelet for one run of the module."""

    def __init__(self, kubeapi, apis, name="meshtune-load", fail_index=None, pods_finish=True,
                 complete_job=True, classic_sidecar=False, namespace=NAMESPACE, scale=1.0,
                 job_timeout=20.0):
        super().__init__(daemon=True)
        self.kubeapi = kubeapi
        self.apis = apis
        self.name = name
        self.namespace = namespace
        self.scale = scale
        self.job_timeout = job_timeout
        self.fail_index = fail_index
        self.pods_finish = pods_finish
        self.complete_job = complete_job
        self.classic_sidecar = classic_sidecar
        self.seen = {}
        self.pods = []
        self.error = None

    def run(self):
        try:
            self._play()
        except Exception as error:  # noqa: BLE001 - reported by the test
            self.error = error

    def _wait_for_job(self):
        deadline = time.monotonic() + self.job_timeout
        while time.monotonic() < deadline:
            try:
                return self.apis["raw"].sanitize_for_serialization(
                    self.apis["batch"].read_namespaced_job(f"{self.name}-client", self.namespace))
            except ApiException as error:
                if error.status != 404:
                    raise
            time.sleep(0.02)
        raise TimeoutError("the module created no Job")

    def _read_objects(self):
        """Everything the module created, as it is while the load runs."""
        raw, core = self.apis["raw"], self.apis["core"]
        self.seen["ServiceAccount"] = raw.sanitize_for_serialization(
            core.read_namespaced_service_account(self.name, self.namespace))
        for kind, read in (("Deployment", self.apis["apps"].read_namespaced_deployment),
                           ("Service", core.read_namespaced_service)):
            try:
                self.seen[kind] = raw.sanitize_for_serialization(read(f"{self.name}-server", self.namespace))
            except ApiException as error:
                if error.status != 404:
                    raise
        rbac = self.apis["rbac"]
        self.seen["RoleBindings"] = rbac.list_namespaced_role_binding(self.namespace).items
        self.seen["Roles"] = rbac.list_namespaced_role(self.namespace).items

    def _play(self):
        job = self._wait_for_job()
        self.seen["Job"] = job
        self._read_objects()
        self.play_job(job)

    def pod_log_text(self, index, url, job):
        """The log of the Job's pod `index`: a fortio result among fortio's log lines."""
        return pod_log(index, url, interleave=index == 1, scale=self.scale)

    def play_job(self, job, pod_suffix=""):
        """Create the Job's pods with their logs, then finish them (and the Job) as asked."""
        template = job["spec"]["template"]
        url = template["spec"]["containers"][0]["args"][-1]
        core = self.apis["core"]
        created = []
        for index in range(job["spec"]["completions"]):
            name = f"{self.name}-client-{index}-x{index}k2p{pod_suffix}"
            labels = {**template["metadata"]["labels"], "job-name": job["metadata"]["name"],
                      "batch.kubernetes.io/job-name": job["metadata"]["name"],
                      "controller-uid": job["metadata"]["uid"],
                      "batch.kubernetes.io/controller-uid": job["metadata"]["uid"],
                      fortio_objects.COMPLETION_INDEX: str(index)}
            annotations = {**template["metadata"].get("annotations", {}),
                           fortio_objects.COMPLETION_INDEX: str(index)}
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": self.namespace, "labels": labels,
                                "annotations": annotations,
                                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job",
                                                     "name": job["metadata"]["name"],
                                                     "uid": job["metadata"]["uid"],
                                                     "controller": True,
                                                     "blockOwnerDeletion": True}]},
                   "spec": {**template["spec"], "nodeName": f"worker-{index}"}}
            core.create_namespaced_pod(self.namespace, pod)
            self.pods.append(name)
            created.append(name)
            if index == self.fail_index:
                self.kubeapi.set_pod_log(self.namespace, name, FORTIO_LOG_START.replace("{url}", url)
                                         + "Aborting because of dial tcp: connection refused\n")
            else:
                self.kubeapi.set_pod_log(self.namespace, name, self.pod_log_text(index, url, job))
            self._set_pod_status(name, "Running", None)
        if not self.pods_finish:
            return
        for index, name in enumerate(created):
            exit_code = 1 if index == self.fail_index else 0
            phase = "Failed" if exit_code else "Running" if self.classic_sidecar else "Succeeded"
            self._set_pod_status(name, phase, exit_code)
        if self.complete_job and self.fail_index is None:
            status = {"succeeded": len(created), "conditions": [
                {"type": "Complete", "status": "True"}]}
            try:
                self.apis["batch"].patch_namespaced_job_status(f"{self.name}-client", self.namespace,
                                                               {"status": status})
            except ApiException as error:
                # The module may have seen every pod finish, collected and deleted the Job already.
                if error.status != 404:
                    raise

    def _set_pod_status(self, name, phase, exit_code):
        state = {"running": {"startedAt": "2026-11-30T08:00:00Z"}} if exit_code is None else \
            {"terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                            "startedAt": "2026-11-30T08:00:00Z", "finishedAt": "2026-11-30T08:00:02Z"}}
        status = {"phase": phase, "containerStatuses": [
            {"name": "fortio", "image": "fortio/fortio:1.77.0", "imageID": "", "ready": exit_code is None,
             "restartCount": 0, "state": state}]}
        if self.classic_sidecar:
            status["containerStatuses"].append(
                {"name": "istio-proxy", "image": "istio/proxyv2", "imageID": "", "ready": True,
                 "restartCount": 0, "state": {"running": {"startedAt": "2026-11-30T08:00:00Z"}}})
        self.apis["core"].patch_namespaced_pod_status(name, self.namespace, {"status": status})
