"""The test API server's `/openapi/v2`: what client-go's field-validation check and kube-openapi's
model parser need from it, in JSON and in gnostic's protobuf form."""

from __future__ import annotations

import pytest
import yaml

from tests.kubeapi import openapi_v2
from tests.kubeapi.api import KubeAPI, Request
from tests.kubeapi.errors import ApiError

PRIMITIVES = {"string", "integer", "number", "boolean"}
# What client-go's discovery client sends for the OpenAPI v2 document.
CLIENT_GO_ACCEPT = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


@pytest.fixture(scope="module")
def api() -> KubeAPI:
    return KubeAPI()


@pytest.fixture(scope="module")
def doc(api) -> dict:
    return api.handle(Request("GET", "/openapi/v2", {}, accept="application/json")).body


def model_errors(schema: dict, definitions: dict, path: str) -> list[str]:
    """The rules kube-openapi's NewOpenAPIData applies to each definition."""
    if "$ref" in schema:
        ref = schema["$ref"]
        errors = [f"{path}: $ref with a type or properties"] \
            if "type" in schema or "properties" in schema else []
        if not ref.startswith("#/definitions/") or ref[len("#/definitions/"):] not in definitions:
            errors.append(f"{path}: unresolved {ref}")
        return errors
    kind = schema.get("type")
    if isinstance(kind, list):
        return [f"{path}: several types {kind}"]
    if kind == "array":
        return model_errors(schema["items"], definitions, path + "[]") if "items" in schema \
            else [f"{path}: array without items"]
    if kind not in (None, "object", *PRIMITIVES):
        return [f"{path}: unknown type {kind!r}"]
    errors = []
    for name, child in (schema.get("properties") or {}).items():
        errors += model_errors(child, definitions, f"{path}.{name}")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        errors += model_errors(extra, definitions, path + "{}")
    return errors


def test_definitions_parse_as_kube_openapi_models(doc):
    definitions = doc["definitions"]
    errors = [e for name, schema in definitions.items()
              for e in model_errors(schema, definitions, name)]
    assert errors == []
    assert definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] == {
        "type": "string", "format": "int-or-string"}


def patch_operations(doc: dict) -> dict[tuple[str, str, str], dict]:
    found = {}
    for item in doc["paths"].values():
        if "patch" in item:
            gvk = item["patch"]["x-kubernetes-group-version-kind"]
            found[(gvk["group"], gvk["version"], gvk["kind"])] = item["patch"]
    return found


def test_every_served_kind_declares_server_side_field_validation(api, doc):
    operations = patch_operations(doc)
    served = {(t.group, t.version, t.kind) for t in api.catalog.types()}
    assert served <= set(operations)
    for gvk in [("", "v1", "Secret"), ("networking.istio.io", "v1", "DestinationRule")]:
        names = [p["name"] for p in operations[gvk]["parameters"] if p["in"] == "query"]
        assert "fieldValidation" in names


def test_custom_kinds_get_an_open_definition(doc):
    rule = doc["definitions"]["io.istio.networking.v1.DestinationRule"]
    assert rule["x-kubernetes-group-version-kind"] == [
        {"group": "networking.istio.io", "version": "v1", "kind": "DestinationRule"}]
    assert "properties" not in rule


def test_protobuf_document_carries_paths_and_definitions(api):
    response = api.handle(Request("GET", "/openapi/v2", {}, accept=CLIENT_GO_ACCEPT))
    assert response.headers["Content-Type"] == openapi_v2.PROTOBUF_MEDIA_TYPE
    document = openapi_v2.MESSAGES["Document"]()
    document.ParseFromString(response.body)
    assert document.swagger == "2.0"

    secret_patch = None
    for named in document.paths.path:
        patch = named.value.patch
        extensions = {e.name: yaml.safe_load(e.value.yaml) for e in patch.vendor_extension}
        if extensions.get("x-kubernetes-group-version-kind") == {
                "group": "", "version": "v1", "kind": "Secret"}:
            secret_patch = patch
    assert secret_patch is not None
    query = [p.parameter.non_body_parameter.query_parameter_sub_schema.name
             for p in secret_patch.parameters]
    assert "fieldValidation" in query

    definitions = {d.name: d.value for d in document.definitions.additional_properties}
    secret = definitions["io.k8s.api.core.v1.Secret"]
    assert list(secret.type.value) == ["object"]
    properties = {p.name: p.value for p in secret.properties.additional_properties}
    assert properties["metadata"]._ref == "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    assert list(properties["data"].additional_properties.schema.type.value) == ["string"]


@pytest.mark.parametrize(("accept", "wanted"), [
    ("", "json"), ("application/json", "json"), ("*/*", "json"),
    ("application/com.github.proto-openapi.spec.v2.v1.0+protobuf", "protobuf"),
    ("text/html", None)])
def test_content_negotiation(accept, wanted):
    assert openapi_v2.negotiate(accept) == wanted


def test_unacceptable_media_type_is_406(api):
    with pytest.raises(ApiError) as err:
        api.handle(Request("GET", "/openapi/v2", {}, accept="text/html"))
    assert err.value.code == 406
