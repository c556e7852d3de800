"""Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded to the JSON
form the rest of the server works with.

client-go writes typed objects of the core group as protobuf: Helm's release Secrets, the Namespace
of `create_namespace`, the DeleteOptions of their deletes, kubectl's `create namespace|secret|
configmap|serviceaccount`. A body is the magic `k8s\\0` followed by a runtime.Unknown envelope
whose `raw` holds the object's own message. The field numbers are those of k8s.io/api core/v1 and
k8s.io/apimachinery meta/v1 and runtime `generated.proto`. Responses stay JSON: client-go lists
JSON in its Accept header and decodes by the response's Content-Type.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from google.protobuf import message

from .errors import ApiError
from .protodesc import Table, message_classes

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"

_OBJECT_META: tuple = (
    ("name", 1, "string"), ("generateName", 2, "string"), ("namespace", 3, "string"),
    ("selfLink", 4, "string"), ("uid", 5, "string"), ("resourceVersion", 6, "string"),
    ("generation", 7, "int64"), ("creationTimestamp", 8, "Time"),
    ("deletionTimestamp", 9, "Time"), ("deletionGracePeriodSeconds", 10, "int64"),
    ("labels", 11, "map<string,string>"), ("annotations", 12, "map<string,string>"),
    ("ownerReferences", 13, "[]OwnerReference"), ("finalizers", 14, "[]string"),
    ("managedFields", 17, "[]ManagedFieldsEntry"),
)
_METADATA = ("metadata", 1, "ObjectMeta")

TABLE: Table = {
    # k8s.io/apimachinery/pkg/runtime
    "TypeMeta": (("apiVersion", 1, "string"), ("kind", 2, "string")),
    "Unknown": (("typeMeta", 1, "TypeMeta"), ("raw", 2, "bytes"), ("contentEncoding", 3, "string"),
                ("contentType", 4, "string")),
    # k8s.io/apimachinery/pkg/apis/meta/v1
    "Time": (("seconds", 1, "int64"), ("nanos", 2, "int32")),
    "FieldsV1": (("Raw", 1, "bytes"),),
    "OwnerReference": (("kind", 1, "string"), ("name", 3, "string"), ("uid", 4, "string"),
                       ("apiVersion", 5, "string"), ("controller", 6, "bool"),
                       ("blockOwnerDeletion", 7, "bool")),
    "ManagedFieldsEntry": (("manager", 1, "string"), ("operation", 2, "string"),
                           ("apiVersion", 3, "string"), ("time", 4, "Time"),
                           ("fieldsType", 6, "string"), ("fieldsV1", 7, "FieldsV1"),
                           ("subresource", 8, "string")),
    "ObjectMeta": _OBJECT_META,
    # k8s.io/api/core/v1
    "Secret": (_METADATA, ("data", 2, "map<string,bytes>"), ("type", 3, "string"),
               ("stringData", 4, "map<string,string>"), ("immutable", 5, "bool")),
    "ConfigMap": (_METADATA, ("data", 2, "map<string,string>"),
                  ("binaryData", 3, "map<string,bytes>"), ("immutable", 4, "bool")),
    "Namespace": (_METADATA, ("spec", 2, "NamespaceSpec"), ("status", 3, "NamespaceStatus")),
    "NamespaceSpec": (("finalizers", 1, "[]string"),),
    "NamespaceStatus": (("phase", 1, "string"), ("conditions", 2, "[]NamespaceCondition")),
    "NamespaceCondition": (("type", 1, "string"), ("status", 2, "string"),
                           ("lastTransitionTime", 4, "Time"), ("reason", 5, "string"),
                           ("message", 6, "string")),
    "ServiceAccount": (_METADATA, ("secrets", 2, "[]ObjectReference"),
                       ("imagePullSecrets", 3, "[]LocalObjectReference"),
                       ("automountServiceAccountToken", 4, "bool")),
    "ObjectReference": (("kind", 1, "string"), ("namespace", 2, "string"), ("name", 3, "string"),
                        ("uid", 4, "string"), ("apiVersion", 5, "string"),
                        ("resourceVersion", 6, "string"), ("fieldPath", 7, "string")),
    "LocalObjectReference": (("name", 1, "string"),),
    # meta/v1 options, the body of a DELETE
    "DeleteOptions": (("gracePeriodSeconds", 1, "int64"), ("preconditions", 2, "Preconditions"),
                      ("orphanDependents", 3, "bool"), ("propagationPolicy", 4, "string"),
                      ("dryRun", 5, "[]string"),
                      ("ignoreStoreReadErrorWithClusterBreakingPotential", 6, "bool")),
    "Preconditions": (("uid", 1, "string"), ("resourceVersion", 2, "string")),
}

MESSAGES = message_classes("meshtune.kubeapi.k8s", TABLE)

# The objects the server reads from a protobuf body: (apiVersion, kind) -> message name.
KINDS = {("v1", kind): kind for kind in ("Secret", "ConfigMap", "Namespace", "ServiceAccount")}
# Options every group/version accepts, whatever apiVersion the client's codec stamps on them.
OPTIONS = {"DeleteOptions"}


def decode(body: bytes) -> dict:
    """The JSON form of a protobuf-encoded object; `ApiError` 400 or 415 when it cannot be read."""
    if not body.startswith(MAGIC):
        raise ApiError(400, "the body of the request was in an unknown format: provided data does "
                            f"not appear to be a protobuf message, expected prefix {list(MAGIC)}")
    envelope = MESSAGES["Unknown"]()
    try:
        envelope.ParseFromString(body[len(MAGIC):])
    except message.DecodeError as err:
        raise ApiError(400, f"the body of the request was in an unknown format: {err}") from err
    api_version, kind = envelope.typeMeta.apiVersion, envelope.typeMeta.kind
    if envelope.contentEncoding:
        raise ApiError(415, f"unsupported protobuf content encoding {envelope.contentEncoding!r}")
    name = kind if kind in OPTIONS else KINDS.get((api_version, kind))
    if name is None:
        supported = ", ".join(f"{v}/{k}" for v, k in sorted(KINDS))
        raise ApiError(415, f"the server reads protobuf bodies of {supported} only, not "
                            f"{api_version}/{kind}: send it as application/json")
    obj = MESSAGES[name]()
    try:
        obj.ParseFromString(envelope.raw)
    except message.DecodeError as err:
        raise ApiError(400, f"the body of the request was in an unknown format: {err}") from err
    return {"apiVersion": api_version, "kind": kind, **to_json(obj)}


def to_json(msg: message.Message) -> dict:
    """A decoded message as Kubernetes' JSON shows it: set fields only, times as RFC 3339,
    bytes as base64, FieldsV1 as the JSON it carries."""
    out = {}
    for field, value in msg.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            out[field.name] = {k: _scalar(v) for k, v in value.items()}
        elif field.is_repeated:
            out[field.name] = [_value(v) for v in value]
        else:
            out[field.name] = _value(value)
    return out


def _value(value: object) -> object:
    if not isinstance(value, message.Message):
        return _scalar(value)
    name = value.DESCRIPTOR.name
    if name == "Time":
        return datetime.fromtimestamp(value.seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if name == "FieldsV1":
        return json.loads(value.Raw or b"{}")
    return to_json(value)


def _scalar(value: object) -> object:
    return base64.b64encode(value).decode() if isinstance(value, bytes) else value
