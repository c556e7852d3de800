"""The reconcile engine: planning owned objects, running writes, reporting, retrying."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils import kube, reconcile


class FakeResource:
    """Records the writes a plan performs."""


class FakeClient:
    def __init__(self, fail_on=(), unreachable=False, defaults=None):
        self.writes = []
        self.fail_on = set(fail_on)
        self.unreachable_on_failure = unreachable
        self.defaults = defaults or {}  # spec fields the "server" adds to what it stores
        self.retries = 0
        self.unreachable = None

    def _write(self, verb, name):
        if name in self.fail_on:
            if self.unreachable_on_failure:
                self.unreachable = kube.KubeError("Connection refused", unreachable=True)
                raise self.unreachable
            raise kube.KubeError(f"{name} refused", 500)
        self.writes.append((verb, name))

    def _stored(self, body):
        stored = copy.deepcopy(body)
        stored["spec"] = {**stored["spec"], **self.defaults}
        stored["metadata"]["resourceVersion"] = "7"
        return stored

    def create_or_update(self, resource, namespace, body, change):
        self._write("create", body["metadata"]["name"])
        return self._stored(body)

    def delete(self, resource, namespace, name):
        self._write("delete", name)

    def update(self, resource, namespace, name, change, live=None):
        self.last_update = change(live)
        self._write("update", name)
        return self._stored(self.last_update)

    def merge_patch(self, resource, namespace, name, patch):
        self.writes.append(("patch", name))
        self.last_patch = patch


def rule(name, spec):
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": name, "namespace": "ns"}, "spec": spec}


def applied(obj):
    """What the cluster holds after meshtune applied `obj`: a server-side default in the spec,
    the digest meshtune recorded of that stored spec, and a label someone else added."""
    stamped = reconcile._stamp(obj, ("spec",))
    stamped["spec"] = {**stamped["spec"], "serverDefault": True}
    stamped["metadata"]["annotations"][reconcile.STORED_HASH] = \
        reconcile.spec_hash({"spec": stamped["spec"]})
    stamped["metadata"]["labels"]["team"] = "theirs"
    return stamped


def hand_made(obj):
    """An object of the same name that someone else created (no managed-by label)."""
    made = copy.deepcopy(obj)
    made["metadata"]["labels"] = {"team": "theirs"}
    return made


def test_plan_creates_updates_and_keeps():
    client = FakeClient()
    same, changed, new = rule("same", {"host": "a"}), rule("changed", {"host": "b"}), \
        rule("new", {"host": "c"})
    live = {("ns", "same"): applied(same), ("ns", "changed"): applied(rule("changed", {"host": "x"}))}
    changes = reconcile.plan_owned(client, FakeResource(), [same, changed, new], live, "present")
    assert [(c.name, c.action) for c in changes] == [
        ("same", "unchanged"), ("changed", "updated"), ("new", "created")]
    reconcile.run(changes)
    assert sorted(client.writes) == [("create", "new"), ("update", "changed")]
    merged = client.last_update
    assert merged["spec"] == {"host": "b"}, "the spec is replaced, server defaults included"
    assert merged["metadata"]["labels"]["team"] == "theirs", "labels of others are kept"


def test_removed_fields_are_noticed_through_the_applied_digest():
    client = FakeClient()
    before = rule("r", {"host": "a", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}})
    after = rule("r", {"host": "a"})
    changes = reconcile.plan_owned(client, FakeResource(), [after],
                                   {("ns", "r"): applied(before)}, "present")
    assert changes[0].action == "updated"
    assert "trafficPolicy" in changes[0].before["spec"]
    assert "trafficPolicy" not in changes[0].after["spec"]


def test_check_mode_writes_nothing_and_absent_deletes():
    client = FakeClient()
    obj = rule("r", {"host": "a"})
    changes = reconcile.plan_owned(client, FakeResource(), [obj, rule("gone", {"host": "g"})],
                                   {("ns", "r"): applied(obj)}, "absent")
    assert [c.action for c in changes] == ["deleted", "unchanged"]
    reconcile.run(changes, check_mode=True)
    assert client.writes == []
    result = reconcile.batch_result(changes, diff_mode=True)
    assert result["changed"] is True
    assert result["summary"]["deleted"] == 1 and result["summary"]["total"] == 2
    assert result["diff"][0]["after"] == {}


def test_failures_are_reported_per_object():
    client = FakeClient(fail_on={"b"})
    desired = [rule(name, {"host": name}) for name in ("a", "b", "c")]
    changes = reconcile.plan_owned(client, FakeResource(), desired, {}, "present")
    reconcile.run(changes, parallelism=2)
    assert [c.action for c in changes] == ["created", "failed", "created"]
    message = reconcile.failure_message(changes)
    assert "1 of 3 objects failed: DestinationRule ns/b: b refused" in message
    assert "DestinationRule ns/a" in message and "DestinationRule ns/c" in message


class Flaky:
    """Fails with the given errors first, then answers."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class HttpError(Exception):
    def __init__(self, status, retry_after=None):
        super().__init__(f"HTTP {status}")
        self.status = status
        self.headers = {"Retry-After": retry_after} if retry_after else {}
        self.body = None


def test_retries_throttling_and_server_errors_with_bounded_backoff():
    delays = []
    client = kube.KubeClient(dynamic_client=None, sleep=delays.append)
    flaky = Flaky(HttpError(429, "2"), HttpError(503), ConnectionResetError("reset"))
    assert client.call(flaky) == "ok"
    assert flaky.calls == 4 and client.retries == 3
    assert 1.0 <= delays[0] <= 2.0, "Retry-After is honoured"
    assert all(d <= kube.MAX_DELAY for d in delays)


def test_gives_up_after_max_attempts_and_never_retries_client_errors():
    client = kube.KubeClient(dynamic_client=None, sleep=lambda _delay: None)
    always = Flaky(*[HttpError(500)] * 10)
    with pytest.raises(kube.KubeError) as err:
        client.call(always)
    assert always.calls == kube.MAX_ATTEMPTS and err.value.status == 500
    invalid = Flaky(HttpError(422))
    with pytest.raises(kube.KubeError):
        client.call(invalid)
    assert invalid.calls == 1


def test_a_field_changed_by_hand_is_drift_reported_and_put_back():
    client = FakeClient()
    obj = rule("r", {"host": "a", "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"}}})
    live = reconcile._stamp(obj, ("spec",))
    live["spec"]["trafficPolicy"]["tls"] = {"mode": "DISABLE"}  # added by hand
    live["spec"]["host"] = "b"  # changed by hand
    [change] = reconcile.plan_owned(client, FakeResource(), [obj], {("ns", "r"): live}, "present")
    assert change.action == "updated"
    assert change.reason == "drift: spec.host, spec.trafficPolicy.tls"
    assert change.result()["reason"] == change.reason
    reconcile.run([change])
    assert client.last_update["spec"] == obj["spec"], "the whole managed spec is put back"


def test_a_hand_change_over_server_defaults_is_drift_too():
    client = FakeClient()
    obj = rule("r", {"host": "a"})
    live = applied(obj)
    live["spec"]["subsets"] = [{"name": "v1"}]
    [change] = reconcile.plan_owned(client, FakeResource(), [obj], {("ns", "r"): live}, "present")
    assert change.action == "updated"
    assert "spec.subsets" in change.reason, "the server's defaults may be listed with it"
    reconcile.run([change])
    assert client.last_update["spec"] == obj["spec"]
    assert reconcile.STORED_HASH not in client.last_update["metadata"]["annotations"], \
        "the digest of the replaced spec goes with it"


def test_server_defaults_are_not_drift():
    obj = rule("r", {"host": "a"})
    [change] = reconcile.plan_owned(FakeClient(), FakeResource(), [obj],
                                    {("ns", "r"): applied(obj)}, "present")
    assert change.action == "unchanged"


def test_what_the_server_stored_otherwise_is_recorded_once():
    client = FakeClient(defaults={"serverDefault": True})
    obj = rule("r", {"host": "a"})
    [change] = reconcile.plan_owned(client, FakeResource(), [obj], {}, "present")
    reconcile.run([change])
    assert client.writes == [("create", "r"), ("patch", "r")]
    assert client.last_patch == {"metadata": {"resourceVersion": "7", "annotations": {
        reconcile.STORED_HASH: reconcile.spec_hash({"spec": {"host": "a", "serverDefault": True}})}}}

    exact = FakeClient()
    reconcile.run(reconcile.plan_owned(exact, FakeResource(), [obj], {}, "present"))
    assert exact.writes == [("create", "r")], "no second write when stored as sent"


def test_a_label_changed_by_hand_is_drift():
    obj = rule("r", {"host": "a"})
    obj["metadata"]["labels"] = {"tier": "gold"}
    live = applied(obj)
    live["metadata"]["labels"]["tier"] = "silver"
    [change] = reconcile.plan_owned(FakeClient(), FakeResource(), [obj], {("ns", "r"): live}, "present")
    assert (change.action, change.reason) == ("updated", "drift: metadata.labels.tier")


def test_objects_meshtune_does_not_manage_are_left_alone_without_force():
    client = FakeClient()
    theirs = rule("theirs", {"host": "t", "subsets": [{"name": "v1"}]})
    ours = rule("ours", {"host": "o"})
    live = {("ns", "theirs"): hand_made(theirs), ("ns", "ours"): applied(ours)}
    wanted = [rule("theirs", {"host": "t"}), rule("ours", {"host": "o2"})]
    for state in ("present", "absent"):
        changes = reconcile.plan_owned(client, FakeResource(), wanted, live, state)
        assert [(c.name, c.action) for c in changes] == [
            ("theirs", "skipped"), ("ours", "updated" if state == "present" else "deleted")]
        verb = "changed" if state == "present" else "deleted"
        assert changes[0].reason == (
            f"exists and is not managed by meshtune (no label app.kubernetes.io/managed-by=meshtune): "
            f"not {verb}; force=true takes it over")
        assert changes[0].foreign and not changes[1].foreign
        reconcile.run(changes)
    assert [name for _verb, name in client.writes] == ["ours", "ours"]


def test_force_takes_over_and_says_so():
    client = FakeClient()
    theirs = rule("theirs", {"host": "t", "subsets": [{"name": "v1"}]})
    live = {("ns", "theirs"): hand_made(theirs)}
    [change] = reconcile.plan_owned(client, FakeResource(), [rule("theirs", {"host": "t"})], live,
                                    "present", force=True)
    assert change.action == "updated" and change.foreign
    assert change.reason.startswith("taken over with force=true")
    reconcile.run([change])
    assert client.last_update["metadata"]["labels"] == {"team": "theirs", **reconcile.MANAGED_BY}
    assert client.last_update["spec"] == {"host": "t"}
    [removal] = reconcile.plan_owned(client, FakeResource(), [rule("theirs", {})], live, "absent",
                                     force=True)
    assert removal.action == "deleted" and removal.reason.startswith("taken over")


def test_the_batch_stops_once_the_server_stops_answering():
    names = [f"r{index}" for index in range(6)]
    client = FakeClient(fail_on=names, unreachable=True)
    changes = reconcile.plan_owned(client, FakeResource(), [rule(n, {"host": n}) for n in names],
                                   {}, "present")
    reconcile.run(changes, parallelism=1)
    assert [c.action for c in changes] == ["failed"] + ["skipped"] * 5
    assert changes[1].reason == (f"{reconcile.NOT_ATTEMPTED} (it would have been created)")
    assert [c.attempted for c in changes] == [True] + [False] * 5
    message = reconcile.failure_message(changes)
    assert "1 of 6 objects failed: DestinationRule ns/r0: Connection refused." in message
    assert "5 not attempted, because the API server stopped answering: DestinationRule ns/r1, " \
           "DestinationRule ns/r2" in message
    assert "Changed before the failure: none." in message


def test_server_errors_do_not_stop_the_batch():
    client = FakeClient(fail_on={"a"})
    changes = reconcile.plan_owned(client, FakeResource(), [rule(n, {"host": n}) for n in "abc"],
                                   {}, "present")
    reconcile.run(changes, parallelism=1)
    assert [c.action for c in changes] == ["failed", "created", "created"]


def test_differing_paths_name_changed_added_and_removed_fields():
    wanted = {"spec": {"a": 1, "b": {"c": 2}, "list": [{"x": 1}, {"x": 2}]}}
    actual = {"spec": {"b": {"c": 3, "d": 4}, "list": [{"x": 1}, {"x": 5}], "e": 0}}
    assert reconcile.differing_paths(wanted, actual) == [
        "spec.a", "spec.b.c", "spec.b.d", "spec.e", "spec.list[1].x"]
    assert reconcile.differing_paths({"l": [1]}, {"l": [1, 2]}) == ["l"]


class Discovery:
    """resources.get of a DynamicClient: absent kinds, or a server that does not answer."""

    def __init__(self, served=(), error=None):
        self.served, self.error, self.calls = set(served), error, 0

    def get(self, api_version, kind):
        self.calls += 1
        if self.error is not None:
            raise self.error
        if api_version not in self.served:
            raise kube.ResourceNotFoundError(f"{api_version} {kind}")
        return api_version


class Dynamic:
    def __init__(self, resources):
        self.resources = resources


def test_served_version_is_none_only_when_discovery_says_so():
    client = kube.KubeClient(Dynamic(Discovery(served={"g/v1beta1"})), sleep=lambda _delay: None)
    assert client.served_version("g", "K", ("v1", "v1beta1")) == "v1beta1"
    assert client.served_version("g", "K", ("v2",)) is None
    gone = kube.KubeClient(Dynamic(Discovery(error=ConnectionRefusedError(111, "Connection refused"))),
                           sleep=lambda _delay: None)
    with pytest.raises(kube.KubeError) as err:
        gone.served_version("g", "K", ("v1", "v1beta1"))
    assert err.value.unreachable and gone.unreachable is err.value
    unauthorized = kube.KubeClient(Dynamic(Discovery(error=HttpError(401))), sleep=lambda _delay: None)
    with pytest.raises(kube.KubeError) as err:
        unauthorized.served_version("g", "K", ("v1",))
    assert err.value.status == 401 and not err.value.unreachable
    not_found = kube.KubeClient(Dynamic(Discovery(error=HttpError(404))), sleep=lambda _delay: None)
    assert not_found.served_version("g", "K", ("v1",)) is None


def test_once_the_server_is_gone_other_calls_stop_retrying_connection_errors():
    client = kube.KubeClient(dynamic_client=None, sleep=lambda _delay: None)
    first = Flaky(*[ConnectionResetError("reset")] * 10)
    with pytest.raises(kube.KubeError) as err:
        client.call(first)
    assert first.calls == kube.MAX_ATTEMPTS and err.value.unreachable
    second = Flaky(*[ConnectionResetError("reset")] * 10)
    with pytest.raises(kube.KubeError):
        client.call(second)
    assert second.calls == 1
    throttled = Flaky(HttpError(429), HttpError(503))
    assert client.call(throttled) == "ok", "answers from the server are still retried"


def test_connection_reasons_are_the_words_a_person_acts_on():
    assert kube.connection_reason(OSError("[Errno 111] Connection refused")) == "Connection refused"
    reset = "('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))"
    assert kube.connection_reason(Exception(reset)) == "Connection reset by peer"
