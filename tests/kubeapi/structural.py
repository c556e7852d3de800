"""Custom resources checked against their CRD's structural `openAPIV3Schema`, as the apiextensions
apiserver checks them under `fieldValidation=Strict` (what Helm and kubectl send): unknown fields,
types, `nullable`, `x-kubernetes-int-or-string`, enums, ranges, patterns, required fields and the
`oneOf`/`anyOf`/`not` value rules. CEL rules (`x-kubernetes-validations`) are not evaluated.

An OpenAPI v3.0 schema is JSON Schema draft 4 plus Kubernetes extensions; this module turns the
extensions into draft 4 so `jsonschema` can do the checking.
"""

from __future__ import annotations

import jsonschema

# Fields every object accepts at its root, whatever its schema says (apiserver adds them).
ROOT_FIELDS = {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
               "metadata": {"type": "object"}}
# Value-validation keywords: their subschemas only constrain values, never declare fields.
_VALUE_RULES = ("allOf", "anyOf", "oneOf", "not")


def draft4(schema: dict, root: bool = True) -> dict:
    """The draft 4 form of a structural schema node: closed objects unless the schema keeps
    unknown fields, nullable and int-or-string as types."""
    out = {key: value for key, value in schema.items()
           if not key.startswith("x-kubernetes-") and key != "nullable"}
    if schema.get("x-kubernetes-int-or-string") and "type" not in schema:
        out["type"] = ["integer", "string"]
    if schema.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    properties = {name: draft4(child, root=False)
                  for name, child in (schema.get("properties") or {}).items()}
    if root or schema.get("x-kubernetes-embedded-resource"):
        properties = {**ROOT_FIELDS, **properties}
    if properties:
        out["properties"] = properties
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = draft4(schema["additionalProperties"], root=False)
    elif schema.get("type") == "object" and "additionalProperties" not in schema and \
            not schema.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if isinstance(schema.get("items"), dict):
        out["items"] = draft4(schema["items"], root=False)
    for rule in _VALUE_RULES:
        if rule in schema:
            out[rule] = schema[rule]
    return out


def validator(schema: dict) -> jsonschema.Validator:
    return jsonschema.Draft4Validator(draft4({**schema, "type": schema.get("type", "object")}))
