"""Protobuf request bodies of the test API server: the Kubernetes envelope and the core kinds
client-go writes that way (Helm's release Secrets, created Namespaces)."""

from __future__ import annotations

import base64

import pytest

from tests.kubeapi import protobuf
from tests.kubeapi.api import KubeAPI, Request
from tests.kubeapi.errors import ApiError

MESSAGES = protobuf.MESSAGES


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    unknown = MESSAGES["Unknown"](raw=raw)
    unknown.typeMeta.apiVersion = api_version
    unknown.typeMeta.kind = kind
    return protobuf.MAGIC + unknown.SerializeToString()


def release_secret() -> bytes:
    secret = MESSAGES["Secret"](type="helm.sh/release.v1", immutable=False)
    meta = secret.metadata
    meta.name = "sh.helm.release.v1.demo.v1"
    meta.namespace = "default"
    meta.labels.update({"owner": "helm", "name": "demo", "status": "deployed"})
    meta.annotations["note"] = "kept"
    meta.finalizers.append("example.com/keep")
    meta.creationTimestamp.seconds = 1_700_000_000
    owner = meta.ownerReferences.add(apiVersion="v1", kind="ConfigMap", name="owner",
                                     uid="1234", controller=True)
    assert owner.controller
    entry = meta.managedFields.add(manager="helm", operation="Update", apiVersion="v1",
                                   fieldsType="FieldsV1")
    entry.fieldsV1.Raw = b'{"f:data":{}}'
    secret.data["release"] = b"\x1f\x8b binary"
    return envelope("v1", "Secret", secret.SerializeToString())


def test_secret_decodes_to_its_json_form():
    obj = protobuf.decode(release_secret())
    assert obj["apiVersion"] == "v1" and obj["kind"] == "Secret"
    assert obj["type"] == "helm.sh/release.v1"
    assert obj["immutable"] is False, "a field set to its zero value is kept"
    assert base64.b64decode(obj["data"]["release"]) == b"\x1f\x8b binary"
    meta = obj["metadata"]
    assert meta["labels"] == {"owner": "helm", "name": "demo", "status": "deployed"}
    assert meta["annotations"] == {"note": "kept"}
    assert meta["finalizers"] == ["example.com/keep"]
    assert meta["creationTimestamp"] == "2023-11-14T22:13:20Z"
    assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                                        "uid": "1234", "controller": True}]
    assert meta["managedFields"][0]["fieldsV1"] == {"f:data": {}}


def test_namespace_decodes_with_spec():
    namespace = MESSAGES["Namespace"]()
    namespace.metadata.name = "istio-system"
    namespace.metadata.labels["istio-injection"] = "disabled"
    namespace.spec.finalizers.append("kubernetes")
    obj = protobuf.decode(envelope("v1", "Namespace", namespace.SerializeToString()))
    assert obj == {"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "istio-system", "labels": {"istio-injection": "disabled"}},
                   "spec": {"finalizers": ["kubernetes"]}}


def test_bad_magic_is_a_bad_request():
    with pytest.raises(ApiError) as err:
        protobuf.decode(b'{"kind": "Secret"}')
    assert err.value.code == 400
    assert "expected prefix" in err.value.message


def test_truncated_body_is_a_bad_request():
    with pytest.raises(ApiError) as err:
        protobuf.decode(release_secret()[:-3])
    assert err.value.code == 400


def test_kind_without_a_decoder_is_unsupported_media_type():
    with pytest.raises(ApiError) as err:
        protobuf.decode(envelope("apps/v1", "Deployment", b""))
    assert err.value.code == 415
    assert "apps/v1/Deployment" in err.value.message and "application/json" in err.value.message


def test_server_stores_a_protobuf_secret():
    api = KubeAPI()
    created = api.handle(Request("POST", "/api/v1/namespaces/default/secrets", {},
                                 protobuf.MEDIA_TYPE, release_secret()))
    assert created.code == 201
    stored = api.handle(Request("GET", "/api/v1/namespaces/default/secrets/"
                                       "sh.helm.release.v1.demo.v1", {})).body
    assert stored["metadata"]["labels"]["owner"] == "helm"
    assert stored["metadata"]["namespace"] == "default"
    assert base64.b64decode(stored["data"]["release"]) == b"\x1f\x8b binary"


def test_delete_options_decode_whatever_group_version_stamped_them():
    options = MESSAGES["DeleteOptions"](propagationPolicy="Background")
    options.dryRun.append("All")
    options.preconditions.uid = "1234"
    for api_version in ("v1", "apps/v1"):
        assert protobuf.decode(envelope(api_version, "DeleteOptions", options.SerializeToString())) \
            == {"apiVersion": api_version, "kind": "DeleteOptions", "propagationPolicy": "Background",
                "dryRun": ["All"], "preconditions": {"uid": "1234"}}
