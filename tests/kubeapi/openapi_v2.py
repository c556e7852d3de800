"""`/openapi/v2`: the Swagger 2.0 document, as JSON or as gnostic's protobuf `openapi.v2.Document`.

client-go still reads it: kubectl's and Helm's field-validation check falls back to it when a
kind's group/version has no OpenAPI v3 document, and their client-side schema validation parses
its definitions with kube-openapi (every `$ref` must resolve, types are single primitive names).
It is built from the same kinds and schemas as the v3 documents (openapi.py).
"""

from __future__ import annotations

import functools
import re

import yaml
from google.protobuf import json_format

from . import builtin_schemas, openapi
from .catalog import ResourceType
from .protodesc import Table, message_classes

# What clients ask for (the "@" form is the older one) and the Content-Type the server answers with.
_PROTOBUF_SUBTYPES = ("com.github.proto-openapi.spec.v2@v1.0+protobuf",
                      "com.github.proto-openapi.spec.v2.v1.0+protobuf")
PROTOBUF_MEDIA_TYPE = "application/" + _PROTOBUF_SUBTYPES[1]
_PATCH_REF = "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
_STATUS_REF = "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Status"

_NAMED_ANY = (("name", 1, "string"), ("value", 2, "Any"))
_EXTENSIONS = "[]NamedAny"
# gnostic's OpenAPIv2.proto, the messages and fields this server sends.
TABLE: Table = {
    "Document": (("swagger", 1, "string"), ("info", 2, "Info"), ("consumes", 6, "[]string"),
                 ("produces", 7, "[]string"), ("paths", 8, "Paths"),
                 ("definitions", 9, "Definitions")),
    "Info": (("title", 1, "string"), ("version", 2, "string")),
    "Any": (("yaml", 2, "string"),),
    "NamedAny": _NAMED_ANY,
    "Paths": (("vendor_extension", 1, _EXTENSIONS), ("path", 2, "[]NamedPathItem")),
    "NamedPathItem": (("name", 1, "string"), ("value", 2, "PathItem")),
    "PathItem": (("get", 2, "Operation"), ("put", 3, "Operation"), ("post", 4, "Operation"),
                 ("delete", 5, "Operation"), ("patch", 8, "Operation"),
                 ("parameters", 9, "[]ParametersItem")),
    "Operation": (("description", 3, "string"), ("operation_id", 5, "string"),
                  ("produces", 6, "[]string"), ("consumes", 7, "[]string"),
                  ("parameters", 8, "[]ParametersItem"), ("responses", 9, "Responses"),
                  ("schemes", 10, "[]string"), ("vendor_extension", 13, _EXTENSIONS)),
    "ParametersItem": (("parameter", 1, "Parameter"),),
    "Parameter": (("body_parameter", 1, "BodyParameter"),
                  ("non_body_parameter", 2, "NonBodyParameter")),
    "BodyParameter": (("description", 1, "string"), ("name", 2, "string"), ("in", 3, "string"),
                      ("required", 4, "bool"), ("schema", 5, "Schema")),
    "NonBodyParameter": (("query_parameter_sub_schema", 3, "QueryParameterSubSchema"),
                         ("path_parameter_sub_schema", 4, "PathParameterSubSchema")),
    "QueryParameterSubSchema": (("required", 1, "bool"), ("in", 2, "string"),
                                ("description", 3, "string"), ("name", 4, "string"),
                                ("type", 6, "string"), ("unique_items", 20, "bool")),
    "PathParameterSubSchema": (("required", 1, "bool"), ("in", 2, "string"),
                               ("description", 3, "string"), ("name", 4, "string"),
                               ("type", 5, "string"), ("unique_items", 19, "bool")),
    "Responses": (("response_code", 1, "[]NamedResponseValue"),),
    "NamedResponseValue": (("name", 1, "string"), ("value", 2, "ResponseValue")),
    "ResponseValue": (("response", 1, "Response"),),
    "Response": (("description", 1, "string"), ("schema", 2, "SchemaItem")),
    "SchemaItem": (("schema", 1, "Schema"),),
    "Definitions": (("additional_properties", 1, "[]NamedSchema"),),
    "NamedSchema": (("name", 1, "string"), ("value", 2, "Schema")),
    "Properties": (("additional_properties", 1, "[]NamedSchema"),),
    "AdditionalPropertiesItem": (("schema", 1, "Schema"), ("boolean", 2, "bool")),
    "TypeItem": (("value", 1, "[]string"),),
    "ItemsItem": (("schema", 1, "[]Schema"),),
    "Schema": (("_ref", 1, "string"), ("format", 2, "string"), ("title", 3, "string"),
               ("description", 4, "string"), ("default", 5, "Any"), ("multiple_of", 6, "double"),
               ("maximum", 7, "double"), ("exclusive_maximum", 8, "bool"),
               ("minimum", 9, "double"), ("exclusive_minimum", 10, "bool"),
               ("max_length", 11, "int64"), ("min_length", 12, "int64"),
               ("pattern", 13, "string"), ("max_items", 14, "int64"), ("min_items", 15, "int64"),
               ("unique_items", 16, "bool"), ("max_properties", 17, "int64"),
               ("min_properties", 18, "int64"), ("required", 19, "[]string"),
               ("enum", 20, "[]Any"), ("additional_properties", 21, "AdditionalPropertiesItem"),
               ("type", 22, "TypeItem"), ("items", 23, "ItemsItem"),
               ("properties", 25, "Properties"), ("read_only", 27, "bool"),
               ("vendor_extension", 31, _EXTENSIONS)),
}

MESSAGES = message_classes("openapi.v2", TABLE)

# JSON-schema keywords copied as they are into a Schema message (under their snake_case name).
_SCHEMA_SCALARS = ("format", "title", "description", "multipleOf", "maximum", "exclusiveMaximum",
                   "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems",
                   "minItems", "uniqueItems", "maxProperties", "minProperties", "required",
                   "readOnly")


def negotiate(accept: str) -> str | None:
    """"json" or "protobuf": the first media type of the Accept header the server can send;
    None when there is none (406)."""
    for clause in (accept or "*/*").split(","):
        media = clause.split(";")[0].strip()
        kind, _slash, subtype = media.partition("/")
        if kind not in ("application", "*"):
            continue
        if subtype in ("json", "*"):
            return "json"
        if subtype in _PROTOBUF_SUBTYPES:
            return "protobuf"
    return None


# ---- the JSON document -------------------------------------------------------------------------

def _v2_schema(node: object) -> object:
    """A kubernetes-validate JSON schema node as Swagger 2.0 says it: `$ref`s into
    `#/definitions`, one type per schema (no "null"), IntOrString and Quantity as the strings the
    API server publishes, no `additionalProperties: false`."""
    if isinstance(node, list):
        return [_v2_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "$ref":
            out[key] = "#/definitions/" + value.rsplit("/", 1)[-1]
        elif key == "type" and isinstance(value, list):
            kept = [t for t in value if t != "null"]
            out[key] = kept[0] if len(kept) == 1 else kept
        elif key == "oneOf":
            alternatives = {t for alt in value for t in _types(alt)}
            out["type"] = "string"
            if "integer" in alternatives:
                out["format"] = "int-or-string"
        elif key == "additionalProperties" and value is False:
            continue
        elif key == "properties":
            out[key] = {name: _v2_schema(child) for name, child in value.items()}
        elif key.startswith("x-") or key in ("enum", "default"):
            out[key] = value
        else:
            out[key] = _v2_schema(value)
    return out


def _types(schema: dict) -> list[str]:
    value = schema.get("type", [])
    return [value] if isinstance(value, str) else list(value)


@functools.cache
def _builtin_definitions() -> dict:
    return {name: _v2_schema(schema)
            for name, schema in builtin_schemas.definitions()["$defs"].items()}


def _custom_definition(rtype: ResourceType) -> dict:
    """Custom kinds keep their fields open here, as in the v3 documents: the server validates them
    against their CRD or Istio schema, clients need only find the kind."""
    return {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
            "x-kubernetes-group-version-kind": [openapi.operation_gvk(rtype)]}


def _operation(rtype: ResourceType, path: str, action: str, definition: str) -> dict:
    params = [{"name": name, "in": "path", "required": True, "type": "string",
               "uniqueItems": True} for name in re.findall(r"\{(\w+)\}", path)]
    params += [{"name": name, "in": "query", "type": "string", "uniqueItems": True}
               for name in openapi.QUERY_PARAMS]
    if action in ("post", "put", "patch"):
        body_ref = _PATCH_REF if action == "patch" else f"#/definitions/{definition}"
        params.append({"name": "body", "in": "body", "required": True,
                       "schema": {"$ref": body_ref}})
    operation = {
        "operationId": f"{action}{rtype.kind}",
        "produces": ["application/json", "application/yaml"],
        "schemes": ["https"],
        "parameters": params,
        "responses": {"200": {"description": "OK", "schema": {
            "$ref": _STATUS_REF if action == "delete" else f"#/definitions/{definition}"}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": openapi.operation_gvk(rtype),
    }
    if action == "patch":
        operation["consumes"] = openapi.patch_types(rtype)
    return operation


def document(types: list[ResourceType]) -> dict:
    """The Swagger 2.0 document of every served kind."""
    definitions = dict(_builtin_definitions())
    paths = {}
    for rtype in sorted(types, key=lambda t: (t.group, t.version, t.plural)):
        name = None if rtype.custom else builtin_schemas.definition_name(
            rtype.kind, rtype.group, rtype.version)
        if name is None:
            name = openapi.custom_definition_name(rtype)
            definitions[name] = _custom_definition(rtype)
        for path, methods in openapi.resource_paths(rtype).items():
            paths[path] = {method: _operation(rtype, path, action, name)
                           for method, action in methods.items()}
    return {"swagger": "2.0",
            "info": {"title": "Kubernetes", "version": f"v{builtin_schemas.KUBERNETES_VERSION}.0"},
            "paths": paths, "definitions": definitions}


# ---- the protobuf document -----------------------------------------------------------------------

def _any(value: object) -> dict:
    """gnostic keeps every free-form value (extensions, enum members, defaults) as YAML text."""
    return {"yaml": yaml.safe_dump(value, default_flow_style=False)}


def _extensions(node: dict) -> list[dict]:
    return [{"name": key, "value": _any(value)} for key, value in node.items()
            if key.startswith("x-")]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _schema(node: dict) -> dict:
    out: dict = {}
    for key, value in node.items():
        if key == "$ref":
            out["_ref"] = value
        elif key in _SCHEMA_SCALARS:
            out[_snake(key)] = value
        elif key == "type":
            out["type"] = {"value": [value] if isinstance(value, str) else value}
        elif key == "items":
            out["items"] = {"schema": [_schema(value)]}
        elif key == "properties":
            out["properties"] = {"additional_properties": [
                {"name": name, "value": _schema(child)} for name, child in value.items()]}
        elif key == "additionalProperties":
            out["additional_properties"] = {"boolean": value} if isinstance(value, bool) \
                else {"schema": _schema(value)}
        elif key == "enum":
            out["enum"] = [_any(member) for member in value]
        elif key == "default":
            out["default"] = _any(value)
        elif not key.startswith("x-"):
            raise ValueError(f"no OpenAPI v2 protobuf field for schema keyword {key!r}")
    extensions = _extensions(node)
    if extensions:
        out["vendor_extension"] = extensions
    return out


def _parameter(param: dict) -> dict:
    if param["in"] == "body":
        body = {k: v for k, v in param.items() if k != "schema"}
        return {"parameter": {"body_parameter": {**body, "schema": _schema(param["schema"])}}}
    sub = {_snake(k): v for k, v in param.items()}
    which = "path_parameter_sub_schema" if param["in"] == "path" else "query_parameter_sub_schema"
    return {"parameter": {"non_body_parameter": {which: sub}}}


def _proto_operation(operation: dict) -> dict:
    out = {"operation_id": operation["operationId"],
           "parameters": [_parameter(p) for p in operation["parameters"]],
           "responses": {"response_code": [
               {"name": code, "value": {"response": {
                   "description": response["description"],
                   "schema": {"schema": _schema(response["schema"])}}}}
               for code, response in operation["responses"].items()]},
           "vendor_extension": _extensions(operation)}
    for key in ("produces", "consumes", "schemes"):
        if key in operation:
            out[key] = operation[key]
    return out


@functools.lru_cache(maxsize=8)
def protobuf_document(types: tuple[ResourceType, ...]) -> bytes:
    """The encoded document of these kinds, built once per set of served kinds (it takes a
    third of a second and clients fetch it on every run)."""
    return to_protobuf(document(list(types)))


def to_protobuf(doc: dict) -> bytes:
    """The document as gnostic's `openapi.v2.Document`, the form client-go asks for."""
    message = {
        "swagger": doc["swagger"], "info": doc["info"],
        "paths": {"path": [{"name": path, "value": {method: _proto_operation(op)
                                                    for method, op in item.items()}}
                           for path, item in doc["paths"].items()]},
        "definitions": {"additional_properties": [
            {"name": name, "value": _schema(schema)}
            for name, schema in doc["definitions"].items()]},
    }
    return json_format.ParseDict(message, MESSAGES["Document"]()).SerializeToString()
