"""The fortio engine's pieces: load arguments, object builders, pod states, results in logs."""

from __future__ import annotations

import json
import random

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils import run_result
from ansible_collections.meshtune.mesh.plugins.module_utils.histogram import (
    DEFAULT_PERCENTILES,
    FortioBuckets,
    HistogramRecorder,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.kube import KubeError
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen import (
    fortio_objects,
    fortio_pods,
    fortio_run,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.engine import LoadSpec
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.options import spec_from_params
from ansible_collections.meshtune.mesh.plugins.modules.load_test import argument_spec
from tests.support.fortio_samples import fortio_result


def params(**changes):
    values = {name: option.get("default") for name, option in argument_spec().items()}
    values.update(engine="fortio", duration="30s")
    values.update(changes)
    return values


def fortio_spec(**changes):
    spec, problem = spec_from_params(params(**changes))
    assert problem is None, problem
    return spec


def test_the_load_is_split_evenly_over_the_client_pods():
    spec = fortio_spec(qps=100, connections=9, client_pods=3, requests=3000, duration=None,
                       job_timeout="10m")
    args = fortio_objects.load_args(spec.fortio, spec)
    assert args[args.index("-qps") + 1] == "33.33333333"
    assert args[args.index("-c") + 1] == "3"
    assert args[args.index("-n") + 1] == "1000"
    assert "-t" not in args


def test_max_rate_is_qps_0_for_fortio():
    spec = fortio_spec(qps=0, connections=4)
    args = fortio_objects.load_args(spec.fortio, spec)
    assert args[args.index("-qps") + 1] == "0"


def test_durations_are_written_as_go_durations():
    spec = fortio_spec(duration="1m30s", timeout="250ms", warmup="1500ms")
    assert "-t" in fortio_objects.load_args(spec.fortio, spec)
    measured = fortio_objects.load_args(spec.fortio, spec)
    assert measured[measured.index("-t") + 1] == "1m30s"
    assert measured[measured.index("-timeout") + 1] == "250ms"
    warmup = fortio_objects.load_args(spec.fortio, spec, measured=False)
    assert warmup[warmup.index("-t") + 1] == "1.5s"


def test_a_digest_pins_the_image():
    digest = "sha256:" + "ab" * 32
    spec = fortio_spec(fortio_image="registry.example.com:5000/mirror/fortio", fortio_version=digest)
    assert spec.fortio.image_ref == f"registry.example.com:5000/mirror/fortio@{digest}"


@pytest.mark.parametrize("image", ["fortio/fortio", "fortio", "ghcr.io/fortio/fortio",
                                   "localhost/fortio", "registry.example.com:5000/a/b-c_d"])
def test_image_names_without_tag_are_accepted(image):
    assert fortio_spec(fortio_image=image).fortio.image == image


@pytest.mark.parametrize("image", ["fortio/fortio:1.77.0", "Fortio/fortio", "fortio/fortio@sha256:ab",
                                   "", "a b"])
def test_image_names_with_tags_or_bad_characters_are_refused(image):
    _spec, problem = spec_from_params(params(fortio_image=image))
    assert "fortio_image:" in problem


def test_the_job_waits_for_start_warmup_load_and_timeouts():
    spec = fortio_spec(duration="60s", warmup="10s", timeout="3s", start_timeout="2m")
    assert fortio_objects.total_wait(spec.fortio, spec) == 120 + 10 + 60 + 6
    by_count = fortio_spec(duration=None, requests=1000, qps=100, warmup="0s", timeout="1s",
                           start_timeout="1m")
    assert fortio_objects.total_wait(by_count.fortio, by_count) == 60 + 10 + 2
    given = fortio_spec(job_timeout="7m")
    assert fortio_objects.total_wait(given.fortio, given) == 420


def test_user_annotations_come_after_meshtune_s_and_may_override_them():
    spec = fortio_spec(pod_annotations={"sidecar.istio.io/nativeSidecar": "false",
                                        "proxy.istio.io/config": "concurrency: 2"})
    metadata = fortio_objects.client_job(spec.fortio, spec)["spec"]["template"]["metadata"]
    assert metadata["annotations"] == {"sidecar.istio.io/nativeSidecar": "false",
                                       "proxy.istio.io/config": "concurrency: 2"}


def test_resources_replace_the_defaults():
    resources = {"requests": {"cpu": "2", "memory": "300Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}}
    spec = fortio_spec(client_resources=resources)
    container = fortio_objects.client_job(spec.fortio, spec)["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == resources
    server = fortio_objects.server_deployment(spec.fortio)["spec"]["template"]["spec"]["containers"][0]
    assert server["resources"] == fortio_objects.DEFAULT_SERVER_RESOURCES


def test_a_given_url_means_no_server():
    spec = fortio_spec(url="http://web.shop.svc:8080/")
    assert [body["kind"] for body in fortio_objects.planned_objects(spec.fortio, spec)] == [
        "ServiceAccount", "Job"]


def test_the_result_is_found_among_log_lines():
    result = fortio_result()
    text = ("plain text log line\n"
            '{"ts":1,"level":"info","msg":"one-line JSON log"}\n'
            + run_result.dumps(result) + "All done 10000 calls\n")
    assert fortio_pods.extract_result(text) == json.loads(json.dumps(result))


def test_log_lines_inside_the_result_are_skipped():
    lines = run_result.dumps(fortio_result()).splitlines()
    lines.insert(3, '{"ts":2,"level":"warn","msg":"written while the result was"}')
    lines.insert(10, "a plain line too")
    assert fortio_pods.extract_result("\n".join(lines))["DurationHistogram"]["Count"] == 10000


def test_the_last_result_wins_and_other_objects_are_ignored():
    first = run_result.dumps(fortio_result(Labels="first"))
    other = json.dumps({"not": "a result"}, indent=2) + "\n"
    last = run_result.dumps(fortio_result(Labels="last"))
    assert fortio_pods.extract_result(first + other + last)["Labels"] == "last"


@pytest.mark.parametrize("text", ["", "Aborting because of dial tcp: connection refused\n",
                                  '{\n  "RunType": "HTTP"\n}\n', "{\n  \"cut\": [\n"])
def test_no_result_is_a_clear_error(text):
    with pytest.raises(ValueError, match="no fortio JSON result"):
        fortio_pods.extract_result(text)


def terminated(name, code):
    reason = "Error" if code else "Completed"
    return {"name": name, "state": {"terminated": {"exitCode": code, "reason": reason}}}


@pytest.mark.parametrize(("status", "expected"), [
    ({}, "pending"),
    ({"phase": "Pending", "containerStatuses": [
        {"name": "fortio", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}, "pending"),
    ({"phase": "Running"}, "running"),
    ({"phase": "Pending", "initContainerStatuses": [
        {"name": "warmup", "state": {"running": {}}}]}, "running"),
    ({"phase": "Succeeded"}, "succeeded"),
    ({"phase": "Running", "containerStatuses": [
        terminated("fortio", 0), {"name": "istio-proxy", "state": {"running": {}}}]}, "succeeded"),
    ({"phase": "Running", "containerStatuses": [terminated("fortio", 2)]}, "failed"),
    ({"phase": "Pending", "initContainerStatuses": [terminated("warmup", 1)]}, "failed"),
    ({"phase": "Failed", "reason": "DeadlineExceeded"}, "failed"),
    ({"phase": "Running", "containerStatuses": [terminated("istio-proxy", 1)]}, "running"),
])
def test_pod_states(status, expected):
    assert fortio_pods.pod_state({"metadata": {"name": "p"}, "status": status})[0] == expected


def test_a_waiting_reason_says_why_a_pod_did_not_start():
    pod = {"status": {"phase": "Pending", "containerStatuses": [
        {"name": "fortio", "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}]}}
    assert fortio_pods.pod_state(pod) == ("pending", "fortio: ErrImagePull (not found)")
    unscheduled = {"status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "message": "0/3 nodes are available"}]}}
    assert fortio_pods.pod_state(unscheduled)[1] == "not scheduled: 0/3 nodes are available"


def test_settings_defaults_follow_the_documentation():
    settings = fortio_objects.FortioSettings()
    assert settings.image_ref == "fortio/fortio:1.77.0"
    assert settings.default_url() == "http://meshtune-load-server.meshtune-load.svc:8080/echo"
    spec = LoadSpec(settings.default_url(), duration=1.0)
    assert fortio_objects.client_job(settings, spec)["metadata"]["name"] == "meshtune-load-client"


class FakeKube:
    """Records calls; `namespace_error` is raised when the namespace is read."""

    def __init__(self, namespace_error=None):
        self.namespace_error = namespace_error
        self.deleted = []

    def resource(self, api_version, kind):
        fake = type("Resource", (), {})()
        fake.kind = kind
        fake.delete = lambda **kwargs: self.deleted.append((kind, kwargs))
        return fake

    def get(self, resource, namespace, name):
        if resource.kind == "Namespace":
            if self.namespace_error:
                raise self.namespace_error
            return {"metadata": {"name": name}}
        return None

    def call(self, func, *args, **kwargs):
        return func(*args, **kwargs)


def test_credentials_for_one_namespace_skip_the_namespace_check():
    spec = fortio_spec()
    run = fortio_run.FortioRun(FakeKube(KubeError("forbidden", 403)), spec.fortio, spec)
    run.preflight()
    with pytest.raises(KubeError):
        fortio_run.FortioRun(FakeKube(KubeError("boom", 500)), spec.fortio, spec).preflight()


def test_cleanup_deletes_newest_first_in_the_background():
    spec = fortio_spec()
    kube = FakeKube()
    run = fortio_run.FortioRun(kube, spec.fortio, spec)
    run.created = list(run.objects)
    assert run.cleanup() == []
    assert [kind for kind, _kwargs in kube.deleted] == ["Job", "Service", "Deployment", "ServiceAccount"]
    assert all(kwargs["body"]["propagationPolicy"] == "Background" for _kind, kwargs in kube.deleted)
    assert {entry["state"] for entry in run.object_states()} == {"deleted"}


# ---- histogram resolution (fortio -r) --------------------------------------------------------

def test_the_client_records_at_0_1_ms_resolution_by_default():
    spec = fortio_spec()
    assert spec.fortio.resolution == fortio_objects.DEFAULT_RESOLUTION == 0.0001
    args = fortio_objects.load_args(spec.fortio, spec)
    assert args[args.index("-r") + 1] == "0.0001"


@pytest.mark.parametrize("resolution", [0.00001, 0.001, 0.000005])
def test_the_resolution_option_reaches_the_job_arguments(resolution):
    spec = fortio_spec(histogram_resolution=resolution)
    args = fortio_objects.load_args(spec.fortio, spec)
    assert float(args[args.index("-r") + 1]) == resolution


@pytest.mark.parametrize("resolution", [0, -0.001, 0.5, float("nan"), True, "fine"])
def test_a_bad_resolution_is_refused_before_anything(resolution):
    _spec, problem = spec_from_params(params(histogram_resolution=resolution))
    assert "histogram_resolution:" in problem and "such as 0.0001" in problem


def test_resolution_is_an_option_of_engine_fortio_only():
    _spec, problem = spec_from_params(params(engine="local", url="http://127.0.0.1:1/",
                                             histogram_resolution=0.0001))
    assert "histogram_resolution: expected no histogram_resolution with engine local" in problem


def test_fortio_args_may_not_set_the_resolution():
    _spec, problem = spec_from_params(params(fortio_args=["-r", "0.001"]))
    assert "-r is set from histogram_resolution" in problem


def _pod_result(samples, resolution):
    layout = FortioBuckets(resolution)
    histogram = HistogramRecorder(layout)
    histogram.record_many(samples)
    return fortio_result(DurationHistogram=histogram.export(DEFAULT_PERCENTILES),
                         ErrorsDurationHistogram=HistogramRecorder(layout).export(DEFAULT_PERCENTILES),
                         RetCodes={"200": len(samples)}), histogram


def test_per_pod_histograms_at_0_1_ms_merge_exactly():
    generator = random.Random(14)
    # Sub-millisecond latencies, as a sidecar adds them, in three pods of different speeds.
    pods = [[generator.uniform(0.0002 * (index + 1), 0.0009 * (index + 1)) for _sample in range(300)]
            for index in range(3)]
    resolution = fortio_objects.DEFAULT_RESOLUTION
    results = [_pod_result(samples, resolution)[0] for samples in pods]
    merged = run_result.merge_results(results, resolution=resolution)
    _whole, everything = _pod_result([value for samples in pods for value in samples], resolution)
    histogram = merged["DurationHistogram"]
    assert histogram["Count"] == everything.count
    assert [(b["Start"], b["End"], b["Count"]) for b in histogram["Data"]] == \
        [(start, end, count) for start, end, _cumulative, count in everything.buckets()]
    for entry, value in zip(histogram["Percentiles"], everything.percentiles(DEFAULT_PERCENTILES),
                            strict=True):
        assert entry["Value"] == pytest.approx(value, rel=1e-12)
    # The buckets below 1.2 ms are 0.1 ms wide: p50 is known to 0.1 ms, not to fortio's 1 ms.
    widths = {round(b["End"] - b["Start"], 9) for b in histogram["Data"][1:-1] if b["End"] <= 0.0012}
    assert widths == {resolution}
    # Results recorded at another resolution do not fit these buckets and are refused.
    coarse = _pod_result(pods[2], 0.001)[0]
    with pytest.raises(ValueError, match="cannot be merged exactly"):
        run_result.merge_results([results[0], coarse], resolution=resolution)
