"""Pure logic of meshtune.mesh.sidecar_resources: settings, annotations, patches, validation."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import KubeClient, KubeError
from ansible_collections.meshtune.mesh.plugins.module_utils.workloads import (
    PROXY_CONFIG,
    InvalidProxyConfig,
    Wanted,
    annotation_updates,
    apply_updates,
    build_patch,
    check_label_selector,
    merge_proxy_config,
    opt_out_reason,
    pair_problem,
    plan_changes,
    rollout_status,
    validate,
    wait_for_rollouts,
    wanted_settings,
)

CPU = "sidecar.istio.io/proxyCPU"
CPU_LIMIT = "sidecar.istio.io/proxyCPULimit"
MEMORY = "sidecar.istio.io/proxyMemory"
MEMORY_LIMIT = "sidecar.istio.io/proxyMemoryLimit"
ALL_FOUR = (CPU, CPU_LIMIT, MEMORY, MEMORY_LIMIT)


def params(**overrides) -> dict:
    base = {"namespaces": ["shop"], "kinds": ["Deployment", "StatefulSet", "DaemonSet"],
            "names": None, "label_selector": None, "cpu_request": None, "cpu_limit": None,
            "memory_request": None, "memory_limit": None, "concurrency": None, "wait": False,
            "wait_timeout": 300, "state": "present", "parallelism": 8}
    return {**base, **overrides}


def deployment(name="web", annotations=None, labels=None, namespace="shop", version="7"):
    template_meta = {"labels": {"app": name, **(labels or {})}}
    if annotations is not None:
        template_meta["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": version},
            "spec": {"template": {"metadata": template_meta}}}


# ---- settings and annotations ----------------------------------------------------------------

def test_present_sets_only_the_given_settings():
    wanted = wanted_settings(params(cpu_request="100m", memory_limit="1Gi", concurrency=2))
    assert wanted == Wanted({CPU: "100m", MEMORY_LIMIT: "1Gi"}, 2, True)
    updates = annotation_updates({"team": "a"}, wanted)
    assert updates == {CPU: "100m", MEMORY_LIMIT: "1Gi", PROXY_CONFIG: "concurrency: 2\n"}
    assert apply_updates({"team": "a"}, updates) == {"team": "a", **updates}


def test_matching_workload_needs_no_update_even_when_spelled_differently():
    wanted = wanted_settings(params(cpu_request="0.1", memory_request="1Gi", concurrency=2))
    live = {CPU: "100m", MEMORY: "1024Mi", PROXY_CONFIG: "concurrency: 2\ntracing: {}\n"}
    assert annotation_updates(live, wanted) == {}


def test_changed_value_is_updated_and_unparsable_live_value_replaced():
    wanted = wanted_settings(params(cpu_request="200m", memory_request="128Mi"))
    updates = annotation_updates({CPU: "100m", MEMORY: "lots"}, wanted)
    assert updates == {CPU: "200m", MEMORY: "128Mi"}


def test_concurrency_merges_into_existing_proxy_config_keeping_other_keys():
    text = "holdApplicationUntilProxyStarts: true\nconcurrency: 1\ntracing:\n  sampling: 10\n"
    updates = annotation_updates({PROXY_CONFIG: text}, Wanted({}, 4, True))
    assert list(updates) == [PROXY_CONFIG]
    assert yaml.safe_load(updates[PROXY_CONFIG]) == {
        "holdApplicationUntilProxyStarts": True, "concurrency": 4, "tracing": {"sampling": 10}}
    assert updates[PROXY_CONFIG].splitlines()[0] == "holdApplicationUntilProxyStarts: true", \
        "the order of the keys is kept"


def test_concurrency_zero_is_a_value_and_a_boolean_is_not():
    assert annotation_updates({PROXY_CONFIG: "concurrency: 0\n"}, Wanted({}, 0, True)) == {}
    assert annotation_updates({PROXY_CONFIG: "concurrency: false\n"}, Wanted({}, 0, True)) == {
        PROXY_CONFIG: "concurrency: 0\n"}


def test_concurrency_left_out_leaves_a_broken_proxy_config_alone():
    assert annotation_updates({PROXY_CONFIG: "[broken"}, wanted_settings(params(cpu_request="1"))) == {
        CPU: "1"}


@pytest.mark.parametrize(("text", "expected"), [
    ("concurrency: [2", "not valid YAML (line 1"),
    ("- concurrency", "not a YAML mapping"),
    ("just text", "not a YAML mapping"),
])
def test_malformed_proxy_config_is_an_error_not_a_crash(text, expected):
    with pytest.raises(InvalidProxyConfig, match=r"proxy\.istio\.io/config") as caught:
        annotation_updates({PROXY_CONFIG: text}, Wanted({}, 2, True))
    assert expected in str(caught.value)


def test_absent_without_settings_removes_all_of_ours_and_nothing_else():
    wanted = wanted_settings(params(state="absent"))
    assert wanted == Wanted(dict.fromkeys(ALL_FOUR), None, True)
    live = {CPU: "1", MEMORY_LIMIT: "1Gi", "team": "a",
            PROXY_CONFIG: "concurrency: 2\nholdApplicationUntilProxyStarts: true\n"}
    updates = annotation_updates(live, wanted)
    assert updates == {CPU: None, MEMORY_LIMIT: None,
                       PROXY_CONFIG: "holdApplicationUntilProxyStarts: true\n"}
    assert apply_updates(live, updates) == {"team": "a",
                                            PROXY_CONFIG: "holdApplicationUntilProxyStarts: true\n"}


def test_absent_drops_proxy_config_when_only_concurrency_was_in_it():
    wanted = wanted_settings(params(state="absent", concurrency=3))
    assert wanted == Wanted({}, None, True)
    assert annotation_updates({PROXY_CONFIG: "concurrency: 2\n", CPU: "1"}, wanted) == {
        PROXY_CONFIG: None}
    assert annotation_updates({PROXY_CONFIG: "tracing: {}\n"}, wanted) == {}
    assert annotation_updates({}, wanted) == {}


def test_absent_with_named_settings_removes_only_those():
    wanted = wanted_settings(params(state="absent", cpu_limit="1"))
    assert wanted == Wanted({CPU_LIMIT: None}, None, False)
    assert annotation_updates({CPU: "1", CPU_LIMIT: "2", PROXY_CONFIG: "concurrency: 2"}, wanted) == {
        CPU_LIMIT: None}


def test_merge_proxy_config_on_empty_annotation():
    assert merge_proxy_config(None, 2) == "concurrency: 2\n"
    assert merge_proxy_config("", None) is None
    assert merge_proxy_config("concurrency: 2\n", None) is None


def test_limit_below_a_request_already_on_the_workload_is_caught():
    assert pair_problem({CPU: "2", CPU_LIMIT: "1"}).startswith(f"{CPU_LIMIT}=1 would be below")
    assert pair_problem({MEMORY: "1Gi", MEMORY_LIMIT: "512Mi"}) is not None
    assert pair_problem({CPU: "500m", CPU_LIMIT: "1", MEMORY: "x", MEMORY_LIMIT: "1Gi"}) is None


# ---- opt-out ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("labels", "annotations", "opted_out"), [
    ({"sidecar.istio.io/inject": "false"}, None, True),
    (None, {"sidecar.istio.io/inject": "false"}, True),
    (None, {"sidecar.istio.io/inject": "False"}, True),
    (None, {"sidecar.istio.io/inject": "no"}, True),
    (None, {"sidecar.istio.io/inject": "true"}, False),
    ({"sidecar.istio.io/inject": "true"}, {"sidecar.istio.io/inject": "false"}, False),
    (None, None, False),
    ({"app": "web"}, {"other": "false"}, False),
])
def test_opt_out_reads_the_pod_template_with_the_label_first(labels, annotations, opted_out):
    reason = opt_out_reason(deployment(labels=labels, annotations=annotations))
    assert (reason is not None) == opted_out
    if opted_out:
        assert "sidecar.istio.io/inject" in reason


def test_workload_level_label_does_not_opt_out():
    workload = deployment()
    workload["metadata"]["labels"] = {"sidecar.istio.io/inject": "false"}
    assert opt_out_reason(workload) is None


# ---- patches and plans -----------------------------------------------------------------------

def test_patch_touches_only_pod_template_annotations():
    assert build_patch({CPU: "100m", MEMORY: None}) == {
        "spec": {"template": {"metadata": {"annotations": {CPU: "100m", MEMORY: None}}}}}


def test_patch_rewriting_proxy_config_carries_the_resource_version():
    assert build_patch({PROXY_CONFIG: "concurrency: 2\n"}, "42") == {
        "metadata": {"resourceVersion": "42"},
        "spec": {"template": {"metadata": {"annotations": {PROXY_CONFIG: "concurrency: 2\n"}}}}}


class Stored(dict):
    def to_dict(self):
        return dict(self)


class FakeResource:
    """Records merge patches; answers 409 for the first `conflicts` patches."""

    def __init__(self, conflicts=0):
        self.patches = []
        self.conflicts = conflicts

    def patch(self, body, name, namespace, content_type):
        assert content_type == "application/merge-patch+json"
        self.patches.append((namespace, name, body))
        if self.conflicts:
            self.conflicts -= 1
            raise KubeError("conflict", 409)
        return Stored()


class FakeClient(KubeClient):
    """The real KubeClient over a fake resource; `final_conflicts` records how 409s were to be
    handled and `get` serves `live`."""

    def __init__(self, live=None):
        super().__init__(dynamic_client=None, sleep=lambda _delay: None)
        self.gets = 0
        self.live = live
        self.final_conflicts = []

    def call(self, func, *args, conflict_is_final=False, **kwargs):
        self.final_conflicts.append(conflict_is_final)
        return super().call(func, *args, conflict_is_final=conflict_is_final, **kwargs)

    def get(self, resource, namespace, name):
        self.gets += 1
        return self.live


def test_plan_covers_every_outcome_and_writes_one_patch_per_change():
    client, resource = FakeClient(), FakeResource()
    live = [
        ("Deployment", deployment("web")),
        ("Deployment", deployment("done", annotations={CPU: "100m"})),
        ("Deployment", deployment("off", labels={"sidecar.istio.io/inject": "false"})),
        ("Deployment", deployment("heavy", annotations={CPU: "100m", CPU_LIMIT: "50m"})),
        ("Deployment", deployment("garbled", annotations={PROXY_CONFIG: "["})),
    ]
    changes = plan_changes(client, {"Deployment": resource}, live,
                           wanted_settings(params(cpu_request="100m", concurrency=2)))
    actions = {c.name: c.action for c in changes}
    assert actions == {"web": "updated", "done": "updated", "off": "skipped", "heavy": "failed",
                       "garbled": "failed"}
    web = changes[0]
    assert web.before == {"spec": {"template": {"metadata": {"annotations": {}}}}}
    assert web.after["spec"]["template"]["metadata"]["annotations"] == {
        CPU: "100m", PROXY_CONFIG: "concurrency: 2\n"}
    web.write()
    assert resource.patches == [("shop", "web", build_patch(
        {CPU: "100m", PROXY_CONFIG: "concurrency: 2\n"}, "7"))]
    assert client.final_conflicts == [True], "a stale resourceVersion is not resent as is"
    assert all(c.write is None for c in changes if c.action != "updated")
    assert changes[3].error and "below" in changes[3].reason


def test_plan_without_proxy_config_change_needs_no_resource_version():
    client, resource = FakeClient(), FakeResource()
    changes = plan_changes(client, {"Deployment": resource}, [("Deployment", deployment())],
                           wanted_settings(params(memory_limit="1Gi")))
    changes[0].write()
    assert resource.patches == [("shop", "web", build_patch({MEMORY_LIMIT: "1Gi"}))]
    assert client.final_conflicts == [False]


def test_conflict_on_proxy_config_rereads_and_recomputes():
    fresh = deployment(annotations={PROXY_CONFIG: "tracing: {}\n"}, version="9")
    client, resource = FakeClient(live=fresh), FakeResource(conflicts=1)
    changes = plan_changes(client, {"Deployment": resource}, [("Deployment", deployment())],
                           Wanted({}, 2, True))
    changes[0].write()
    assert client.gets == 1
    assert [body for _ns, _name, body in resource.patches] == [
        build_patch({PROXY_CONFIG: "concurrency: 2\n"}, "7"),
        build_patch({PROXY_CONFIG: "tracing: {}\nconcurrency: 2\n"}, "9")]


# Only a patch that rewrites proxy.istio.io/config carries a resourceVersion, and only such a
# patch gets a 409 from a real server: these conflicts force the re-read path.
def test_conflict_rechecks_the_limit_against_a_request_added_meanwhile():
    fresh = deployment(annotations={CPU: "2"}, version="9")
    client, resource = FakeClient(live=fresh), FakeResource(conflicts=1)
    changes = plan_changes(client, {"Deployment": resource}, [("Deployment", deployment())],
                           wanted_settings(params(cpu_limit="1", concurrency=2)))
    with pytest.raises(KubeError, match="would be below"):
        changes[0].write()
    assert len(resource.patches) == 1


def test_conflict_with_nothing_left_to_do_writes_nothing_more():
    fresh = deployment(annotations={MEMORY_LIMIT: "1Gi", PROXY_CONFIG: "concurrency: 2\n"},
                       version="9")
    client, resource = FakeClient(live=fresh), FakeResource(conflicts=1)
    changes = plan_changes(client, {"Deployment": resource}, [("Deployment", deployment())],
                           wanted_settings(params(memory_limit="1Gi", concurrency=2)))
    assert changes[0].write() is fresh
    assert len(resource.patches) == 1


# ---- rollouts --------------------------------------------------------------------------------

def rolled(kind, spec, status, generation=2):
    return {"metadata": {"generation": generation}, "spec": spec, "status": status}


@pytest.mark.parametrize(("kind", "spec", "status", "state"), [
    ("Deployment", {"replicas": 2}, {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                                     "availableReplicas": 2}, "complete"),
    ("Deployment", {"replicas": 2}, {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                                     "availableReplicas": 2}, "pending"),
    ("Deployment", {"replicas": 2}, {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2,
                                     "availableReplicas": 2}, "pending"),
    ("Deployment", {"replicas": 0}, {"observedGeneration": 2}, "complete"),
    ("Deployment", {"replicas": 2, "paused": True}, {"observedGeneration": 2}, "stalled"),
    ("Deployment", {"replicas": 2}, {"observedGeneration": 2, "conditions": [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]},
     "stalled"),
    ("StatefulSet", {"replicas": 2}, {"observedGeneration": 2, "updatedReplicas": 2,
                                      "readyReplicas": 2, "currentRevision": "a",
                                      "updateRevision": "a"}, "complete"),
    ("StatefulSet", {"replicas": 2}, {"observedGeneration": 2, "updatedReplicas": 2,
                                      "readyReplicas": 1}, "pending"),
    ("StatefulSet", {"replicas": 2, "updateStrategy": {"type": "OnDelete"}},
     {"observedGeneration": 2}, "complete"),
    ("DaemonSet", {}, {"observedGeneration": 2, "desiredNumberScheduled": 3,
                       "updatedNumberScheduled": 3, "numberAvailable": 3}, "complete"),
    ("DaemonSet", {}, {"observedGeneration": 2, "desiredNumberScheduled": 3,
                       "updatedNumberScheduled": 3, "numberAvailable": 2}, "pending"),
    ("DaemonSet", {}, {}, "pending"),
])
def test_rollout_status(kind, spec, status, state):
    assert rollout_status(kind, rolled(kind, spec, status))[0] == state


class PollingClient:
    """Answers reads from a script of rounds; counts list and get calls."""

    def __init__(self, rounds, got=None):
        self.rounds = rounds
        self.got = got
        self.round = -1
        self.calls = []

    def list(self, resource, namespace=None, label_selector=None):
        self.round += 1
        self.calls.append(("list", namespace))
        return self.rounds[min(self.round, len(self.rounds) - 1)]

    def get(self, resource, namespace, name):
        self.calls.append(("get", name))
        return self.got


def test_wait_lists_groups_and_stops_when_done():
    pending = rolled("Deployment", {"replicas": 1}, {}, generation=2)
    done = rolled("Deployment", {"replicas": 1}, {"observedGeneration": 2, "replicas": 1,
                                                  "updatedReplicas": 1, "availableReplicas": 1})

    def named(obj, name):
        return {**obj, "metadata": {**obj["metadata"], "name": name}}

    client = PollingClient([[named(pending, "a"), named(done, "b")]], got=named(done, "a"))
    sleeps = []
    targets = [("Deployment", "shop", "a"), ("Deployment", "shop", "b")]
    outcome = wait_for_rollouts(client, {"Deployment": "deployments"}, targets, 60,
                                sleep=sleeps.append, clock=lambda: 0.0)
    assert {t: s for t, (s, _why) in outcome.items()} == dict.fromkeys(targets, "complete")
    assert client.calls == [("list", "shop"), ("get", "a")]  # round 2: only "a" is left
    assert len(sleeps) == 2


def test_wait_gives_up_at_the_deadline():
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    stuck = {**rolled("Deployment", {"replicas": 1}, {}), "metadata": {"name": "a", "generation": 2}}
    client = PollingClient([], got=stuck)
    outcome = wait_for_rollouts(client, {"Deployment": "r"}, [("Deployment", "shop", "a")], 3,
                                sleep=sleep, clock=lambda: now[0])
    assert outcome[("Deployment", "shop", "a")][0] == "pending"
    assert now[0] == pytest.approx(3.0)
    assert client.calls and {call[0] for call in client.calls} == {"get"}


def test_wait_reports_a_workload_deleted_meanwhile():
    client = PollingClient([])
    outcome = wait_for_rollouts(client, {"Deployment": "r"}, [("Deployment", "shop", "a")], 10,
                                sleep=lambda _s: None, clock=lambda: 0.0)
    assert outcome[("Deployment", "shop", "a")] == ("gone", "deleted while waiting")


# ---- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize(("overrides", "option"), [
    ({"namespaces": []}, "namespaces: expected at least one namespace"),
    ({"namespaces": ["Shop"]}, "namespaces[0]: expected a DNS-1123 label"),
    ({"namespaces": ["shop", "shop"]}, "namespaces: expected each entry once"),
    ({"namespaces": ["a" * 64]}, "namespaces[0]"),
    ({"names": []}, "names: expected at least one name"),
    ({"names": ["web", "Web"]}, "names[1]"),
    ({"names": ["web", "web"]}, "names: expected each entry once"),
    ({"kinds": []}, "kinds: expected at least one of"),
    ({"kinds": ["Deployment", "Deployment"]}, "kinds: expected each kind once"),
    ({"cpu_request": "lots"}, "cpu_request: expected a Kubernetes quantity"),
    ({"cpu_limit": "1 core"}, "cpu_limit: expected a Kubernetes quantity"),
    ({"memory_request": "-128Mi"}, "memory_request: expected a quantity of zero or more"),
    ({"memory_limit": "1GB"}, "memory_limit: expected a Kubernetes quantity"),
    ({"cpu_request": "2", "cpu_limit": "500m"}, "cpu_limit: expected a quantity at least cpu_request"),
    ({"memory_request": "1Gi", "memory_limit": "1000Mi"}, "memory_limit: expected a quantity at least"),
    ({"concurrency": 65}, "concurrency: expected an integer 0 to 64"),
    ({"concurrency": -1}, "concurrency: expected an integer 0 to 64"),
    ({"cpu_request": None}, "concurrency: expected at least one setting with state=present"),
    ({"parallelism": 0}, "parallelism: expected an integer of at least 1"),
    ({"wait_timeout": 0}, "wait_timeout: expected a number of seconds of at least 1"),
    ({"label_selector": "tier in frontend"}, "label_selector: expected a label selector"),
    ({"label_selector": "app=web,"}, "label_selector"),
    ({"label_selector": "app=we b"}, "label_selector"),
    ({"label_selector": "tier in (a,b"}, "label_selector"),
])
def test_bad_options_are_named(overrides, option):
    message = validate(params(**{"cpu_request": "100m", **overrides}))
    assert message is not None and message.startswith("Invalid options (nothing was changed): ")
    assert option in message


def test_every_problem_is_reported_at_once():
    message = validate(params(namespaces=["Bad"], cpu_request="x", concurrency=99, parallelism=0))
    for option in ("namespaces[0]", "cpu_request", "concurrency", "parallelism"):
        assert option in message


@pytest.mark.parametrize("overrides", [
    {"cpu_request": "100m"},
    {"cpu_request": "0.5", "cpu_limit": "500m", "memory_request": "128Mi", "memory_limit": "1Gi"},
    {"concurrency": 0},
    {"state": "absent"},
    {"concurrency": 2, "names": ["web", "api"],
     "label_selector": "app=web,tier in (a, b),!legacy,x.io/y!=z"},
    {"concurrency": 2, "label_selector": ""},
])
def test_good_options_pass(overrides):
    assert validate(params(**overrides)) is None


@pytest.mark.parametrize("selector", ["app", "!app", "app==web", "app in (web)", "a notin (x,y)",
                                      "example.com/app=web", "count>3", "app="])
def test_label_selector_forms(selector):
    assert check_label_selector("label_selector", selector) == selector


# ---- values are written exactly as validated ---------------------------------------------------

QUANTITY_OPTIONS = ("cpu_request", "cpu_limit", "memory_request", "memory_limit")


@pytest.mark.parametrize("option", QUANTITY_OPTIONS)
@pytest.mark.parametrize("value", ["128Mi\n", " 100m", "100m ", "\n1", "1\r\n", "\t2", "2\u00a0",
                                   "1\u0661", "\uff19"])
def test_a_quantity_with_anything_around_it_is_refused_not_written_raw(option, value):
    message = validate(params(**{option: value}))
    assert message is not None and f"{option}: expected a Kubernetes quantity" in message, message


@pytest.mark.parametrize("option", QUANTITY_OPTIONS)
def test_what_passes_validation_is_exactly_what_is_written(option):
    settings = params(**{option: "128Mi"})
    assert validate(settings) is None
    written = wanted_settings(settings).annotations
    assert list(written.values()) == ["128Mi"]


@pytest.mark.parametrize("value", ["9223372036854775808", "8Ei", "1e19"])
def test_a_quantity_the_server_would_cap_is_refused(value):
    message = validate(params(memory_limit=value))
    assert "memory_limit: expected a quantity of at most 9223372036854775807" in message


@pytest.mark.parametrize(("selector", "why"), [
    ("app=web\u00a0", "Unicode space"),
    ("app\u2003=web", "Unicode space"),
    ("a b=c", "space in a key"),
    ("app=" + "v" * 64, "value of 64 characters"),
    ("k" * 64 + "=v", "key name of 64 characters"),
    ("x" * 254 + "/app=v", "key prefix of 254 characters"),
    ("Example.com/app=v", "upper-case prefix"),
    ("app in (a,b c)", "space in a set value"),
    ("app in (a,-b)", "set value starting with '-'"),
    ("count>99999999999999999999", "beyond int64"),
    ("count>-1", "negative number"),
    ("count>\u0663", "digit of another script"),
    ("app=web,,tier=db", "empty requirement"),
    ("app==web=x", "two operators"),
    ("=web", "no key"),
])
def test_label_selectors_are_checked_as_the_api_server_parses_them(selector, why):
    message = validate(params(cpu_request="100m", label_selector=selector))
    assert message is not None and "label_selector: expected a label selector" in message, why


@pytest.mark.parametrize("selector", [
    "app=web\n", "\napp=web", "app = web", "app\tin\t(a,b)", "app in (a,,b)", "app in ()",
    "x" * 253 + "/" + "k" * 63 + "=" + "v" * 63, "count<9223372036854775807",
])
def test_label_selector_whitespace_and_limits_the_api_server_accepts(selector):
    assert check_label_selector("label_selector", selector) == selector
