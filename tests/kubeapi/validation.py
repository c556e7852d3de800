"""Validation of every write, reported the way the API server reports `422 Invalid`."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import jsonschema

from . import builtin_schemas as schemas
from . import structural
from .catalog import ResourceType

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
# Kinds whose names must be DNS-1123 labels rather than subdomains.
LABEL_NAMED_KINDS = {"Namespace", "Service"}
TOP_LEVEL_FIELDS = {"apiVersion", "kind", "metadata", "spec", "status"}


@dataclass(frozen=True)
class Cause:
    """One invalid field, as in a Status object's `details.causes`."""

    field: str
    reason: str
    message: str

    def as_dict(self) -> dict:
        return {"reason": self.reason, "message": self.message, "field": self.field}


def validate(rtype: ResourceType, obj: dict) -> list[Cause]:
    """All reasons the API server would reject `obj`; empty when it is valid."""
    causes = _metadata_causes(rtype, obj.get("metadata") or {})
    if rtype.schema_path:
        causes += _spec_schema_causes(rtype, obj)
    elif rtype.crd_schema is not None:
        causes += _crd_schema_causes(rtype, obj)
    elif not rtype.custom:
        causes += _builtin_causes(rtype, obj)
    return causes


def _metadata_causes(rtype: ResourceType, meta: dict) -> list[Cause]:
    causes = []
    name = meta.get("name")
    pattern = DNS1123_LABEL if rtype.kind in LABEL_NAMED_KINDS else DNS1123_SUBDOMAIN
    limit = 63 if rtype.kind in LABEL_NAMED_KINDS else 253
    if not name:
        causes.append(Cause("metadata.name", "FieldValueRequired",
                            "metadata.name: Required value: name or generateName is required"))
    elif not isinstance(name, str) or not pattern.match(name) or len(name) > limit:
        causes.append(Cause("metadata.name", "FieldValueInvalid",
                            f"metadata.name: Invalid value: {json.dumps(name)}: a lowercase RFC 1123 "
                            f"{'label' if limit == 63 else 'subdomain'} must consist of lower case "
                            "alphanumeric characters, '-' or '.', and must start and end with an "
                            "alphanumeric character"))
    for key, value in (meta.get("labels") or {}).items():
        if not _valid_qualified_name(key):
            causes.append(Cause(f"metadata.labels.{key}", "FieldValueInvalid",
                                f"metadata.labels: Invalid value: {json.dumps(key)}: name part must "
                                "consist of alphanumeric characters, '-', '_' or '.'"))
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            causes.append(Cause(f"metadata.labels.{key}", "FieldValueInvalid",
                                f"metadata.labels: Invalid value: {json.dumps(value)}: a valid label "
                                "must be an empty string or consist of alphanumeric characters, "
                                "'-', '_' or '.', and must start and end with an alphanumeric "
                                "character"))
    for key, value in (meta.get("annotations") or {}).items():
        if not isinstance(value, str):
            causes.append(Cause(f"metadata.annotations.{key}", "FieldValueInvalid",
                                f"metadata.annotations.{key}: Invalid value: {json.dumps(value)}: "
                                "annotation values must be strings"))
    return causes


def _valid_qualified_name(key: str) -> bool:
    prefix, _slash, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(LABEL_NAME.match(name))


def _builtin_causes(rtype: ResourceType, obj: dict) -> list[Cause]:
    validator = schemas.validator_for(rtype.kind, rtype.group, rtype.version)
    if validator is None:
        return []
    causes = [_cause_from_error(err) for err in validator.iter_errors(obj)]
    causes += _quantity_causes(obj, schemas.root_schema(rtype.kind, rtype.group, rtype.version), [])
    causes += SEMANTIC_CHECKS.get(rtype.kind, lambda o, v: [])(obj, rtype.version)
    return causes


def _quantity_causes(value, schema: dict | None, path: list) -> list[Cause]:
    """Kubernetes quantities ("100m", "128Mi") are plain strings in the schema: check their form."""
    if schema is None:
        return []
    if schemas.is_quantity(schema):
        if isinstance(value, str) and not QUANTITY.match(value):
            field = _dotted(path)
            return [Cause(field, "FieldValueInvalid",
                          f"{field}: Invalid value: {json.dumps(value)}: quantities must match the "
                          "regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
        return []
    causes = []
    if isinstance(value, dict):
        for key, child in value.items():
            if key != "metadata" or path:
                causes += _quantity_causes(child, schemas.property_schema(schema, key), [*path, key])
    elif isinstance(value, list):
        item = schemas.items_schema(schema)
        for index, child in enumerate(value):
            causes += _quantity_causes(child, item, [*path, index])
    return causes


@functools.cache
def _spec_validator(path: str) -> jsonschema.Validator:
    return jsonschema.Draft202012Validator(json.loads(Path(path).read_text()))


def _spec_schema_causes(rtype: ResourceType, obj: dict) -> list[Cause]:
    causes = [Cause(key, "FieldValueForbidden", f"{key}: Forbidden: field not declared in schema")
              for key in obj if key not in TOP_LEVEL_FIELDS]
    spec = obj.get("spec")
    if spec is None:
        return causes
    validator = _spec_validator(rtype.schema_path)
    return causes + [_cause_from_error(err, ["spec"]) for err in validator.iter_errors(spec)]


# Compiled CRD schemas by the id of the schema dict, kept with the dict so an id is never reused.
_crd_validators: dict[int, tuple[dict, jsonschema.Validator]] = {}


def _crd_schema_causes(rtype: ResourceType, obj: dict) -> list[Cause]:
    schema = rtype.crd_schema
    cached = _crd_validators.get(id(schema))
    if cached is None or cached[0] is not schema:
        cached = _crd_validators[id(schema)] = (schema, structural.validator(schema))
    body = {k: v for k, v in obj.items() if k != "metadata"}
    return [_cause_from_error(err) for err in cached[1].iter_errors(body)]


def _dotted(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _cause_from_error(err: jsonschema.ValidationError, prefix: list | None = None) -> Cause:
    """Translate a JSON-schema error into the field path and wording the API server uses."""
    path = [*(prefix or []), *err.absolute_path]
    field = _dotted(path) or "<root>"
    value = json.dumps(err.instance)[:200]
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties") or {}))
        names = ", ".join(_dotted([*path, name]) for name in extra) or field
        return Cause(_dotted([*path, extra[0]]) if extra else field, "FieldValueForbidden",
                     f"{names}: Forbidden: field not declared in schema (unknown field)")
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else ""
        missing_field = _dotted([*path, missing])
        return Cause(missing_field, "FieldValueRequired", f"{missing_field}: Required value")
    if err.validator == "enum":
        allowed = ", ".join(json.dumps(v) for v in err.validator_value if v is not None)
        return Cause(field, "FieldValueNotSupported",
                     f"{field}: Unsupported value: {value}: supported values: {allowed}")
    if err.validator == "type":
        expected = err.validator_value
        expected = [t for t in expected if t != "null"] if isinstance(expected, list) else [expected]
        return Cause(field, "FieldValueTypeInvalid",
                     f"{field}: Invalid value: {value}: {field} in body must be of type "
                     f"{' or '.join(expected)}: {json.dumps(type(err.instance).__name__)}")
    if err.validator == "pattern":
        return Cause(field, "FieldValueInvalid",
                     f"{field}: Invalid value: {value}: {field} in body should match "
                     f"'{err.validator_value}'")
    return Cause(field, "FieldValueInvalid", f"{field}: Invalid value: {value}: {err.message}")


# Counts the apps/v1 validation rejects below zero; the OpenAPI schemas state no minimum for them.
NONNEGATIVE_WORKLOAD_FIELDS = ("replicas", "minReadySeconds", "revisionHistoryLimit",
                               "progressDeadlineSeconds")


def _workload_checks(obj: dict, _version: str) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes = [Cause(f"spec.{name}", "FieldValueInvalid",
                    f"spec.{name}: Invalid value: {spec[name]}: must be greater than or equal to 0")
              for name in NONNEGATIVE_WORKLOAD_FIELDS
              if isinstance(spec.get(name), int) and spec[name] < 0]
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if selector and any(labels.get(k) != v for k, v in selector.items()):
        causes.append(Cause("spec.template.metadata.labels", "FieldValueInvalid",
                            f"spec.template.metadata.labels: Invalid value: {json.dumps(labels)}: "
                            "`selector` does not match template `labels`"))
    return causes


def _hpa_checks(obj: dict, version: str) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes = []
    min_replicas, max_replicas = spec.get("minReplicas", 1), spec.get("maxReplicas")
    if isinstance(min_replicas, int) and min_replicas < 1:
        causes.append(Cause("spec.minReplicas", "FieldValueInvalid",
                            f"spec.minReplicas: Invalid value: {min_replicas}: must be greater "
                            "than or equal to 1"))
    if isinstance(max_replicas, int) and isinstance(min_replicas, int) and max_replicas < min_replicas:
        causes.append(Cause("spec.maxReplicas", "FieldValueInvalid",
                            f"spec.maxReplicas: Invalid value: {max_replicas}: must be greater "
                            "than or equal to `minReplicas`"))
    if version == "v2":
        for direction in ("scaleUp", "scaleDown"):
            causes += _hpa_rules_checks((spec.get("behavior") or {}).get(direction),
                                        f"spec.behavior.{direction}")
    return causes


def _hpa_rules_checks(rules: dict | None, path: str) -> list[Cause]:
    if not isinstance(rules, dict):
        return []
    causes = []
    window = rules.get("stabilizationWindowSeconds")
    if isinstance(window, int) and not 0 <= window <= 3600:
        causes.append(Cause(f"{path}.stabilizationWindowSeconds", "FieldValueInvalid",
                            f"{path}.stabilizationWindowSeconds: Invalid value: {window}: must be "
                            "less than or equal to 3600"))
    for index, policy in enumerate(rules.get("policies") or []):
        value, period = policy.get("value"), policy.get("periodSeconds")
        if isinstance(value, int) and value <= 0:
            causes.append(Cause(f"{path}.policies[{index}].value", "FieldValueInvalid",
                                f"{path}.policies[{index}].value: Invalid value: {value}: must be "
                                "greater than zero"))
        if isinstance(period, int) and not 1 <= period <= 1800:
            causes.append(Cause(f"{path}.policies[{index}].periodSeconds", "FieldValueInvalid",
                                f"{path}.policies[{index}].periodSeconds: Invalid value: {period}: "
                                "must be between 1 and 1800"))
    return causes


SEMANTIC_CHECKS = {
    "Deployment": _workload_checks,
    "StatefulSet": _workload_checks,
    "DaemonSet": _workload_checks,
    "ReplicaSet": _workload_checks,
    "HorizontalPodAutoscaler": _hpa_checks,
}
