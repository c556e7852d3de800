# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Envoy configuration checked against the Envoy API before it is written into an EnvoyFilter.

The EnvoyFilter CRD keeps its patch values as free-form objects, so the API server and istiod let a
misspelt or mistyped Envoy field through; Envoy then rejects the config at runtime and the mesh
silently keeps the old one. `check_config` walks a config (proto3 JSON, as EnvoyFilter patches
hold it) through the Envoy API's own message types, from the `envoy-data-plane` package (the Envoy
data-plane API as Python classes): every field name, type, enum value and oneof is checked,
and Any values are followed through their `@type`. Each problem names the field's path.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import warnings

from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption

try:
    # The generated classes use pydantic forms that newer pydantic deprecates: not the user's concern.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from envoy_data_plane import message_pool
        from envoy_data_plane.envoy.extensions.filters.http.local_ratelimit.v3 import LocalRateLimit
        from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import HttpFilter
        from envoy_data_plane.envoy.type.v3 import StatusCode

    ENVOY_API_IMPORT_ERROR = None
except ImportError as err:  # reported by the module through missing_required_lib
    ENVOY_API_IMPORT_ERROR = err
    LocalRateLimit = HttpFilter = StatusCode = None

ENVOY_API_LIBRARY = "envoy-data-plane"
TYPE_URL_PREFIX = "type.googleapis.com/"
INT_RANGES = {
    "int32": (-2 ** 31, 2 ** 31 - 1), "sint32": (-2 ** 31, 2 ** 31 - 1), "sfixed32": (-2 ** 31, 2 ** 31 - 1),
    "uint32": (0, 2 ** 32 - 1), "fixed32": (0, 2 ** 32 - 1),
    "int64": (-2 ** 63, 2 ** 63 - 1), "sint64": (-2 ** 63, 2 ** 63 - 1), "sfixed64": (-2 ** 63, 2 ** 63 - 1),
    "uint64": (0, 2 ** 64 - 1), "fixed64": (0, 2 ** 64 - 1),
}
# proto3 JSON: 64-bit integers may also be written as decimal strings.
INT64_TYPES = ("int64", "sint64", "sfixed64", "uint64", "fixed64")
# proto3 JSON durations: seconds with up to nine decimals and an `s`, at most 10,000 years.
PROTO_DURATION_RE = re.compile(r"\A-?[0-9]+(\.[0-9]{1,9})?s\Z")
MAX_DURATION_SECONDS = 315576000000
WRAPPERS = {"google.protobuf.BoolValue": "bool", "google.protobuf.StringValue": "string",
            "google.protobuf.BytesValue": "bytes", "google.protobuf.Int32Value": "int32",
            "google.protobuf.UInt32Value": "uint32", "google.protobuf.Int64Value": "int64",
            "google.protobuf.UInt64Value": "uint64", "google.protobuf.FloatValue": "float",
            "google.protobuf.DoubleValue": "double"}


def full_name(cls):
    """The protobuf name of a message class, such as envoy.type.v3.TokenBucket."""
    url = message_pool.default_message_pool.type_to_url.get(cls, "")
    return url[len(TYPE_URL_PREFIX):] if url.startswith(TYPE_URL_PREFIX) else cls.__name__


def _join(path, name):
    return f"{path}.{name}" if path else name


def _fields_by_json_name(cls):
    """Field metadata by every name proto3 JSON accepts: the proto name and its lowerCamelCase."""
    names = {}
    for name, meta in cls._betterproto.meta_by_field_name.items():
        head, *rest = name.split("_")
        names[name] = names[head + "".join(word[:1].upper() + word[1:] for word in rest)] = (name, meta)
    return names


def check_config(path, cls, value):
    """Check `value` (proto3 JSON) as a message of type `cls`; InvalidOption names the first bad field.

    After the field-by-field walk the library parses the value too, for the constraints its types
    carry (value ranges, string checks).
    """
    _check_message(path, cls, value)
    try:
        cls.from_dict(value)
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidOption(path, f"a valid {full_name(cls)} ({_first_line(error)})", value) from error


def check_http_filter(path, value):
    """An HTTP filter of an HTTP connection manager (envoy.extensions.filters.network.
    http_connection_manager.v3.HttpFilter), its typed config included."""
    check_config(path, HttpFilter, value)
    return value


def _first_line(error):
    text = str(error).strip("'\"")
    return text.splitlines()[0] if text else type(error).__name__


def _check_message(path, cls, value):
    name = full_name(cls)
    if name.startswith("google.protobuf."):
        _check_well_known(path, name, value)
        return
    if not isinstance(value, dict):
        raise InvalidOption(path, f"a {name} object", value)
    fields = _fields_by_json_name(cls)
    groups = {}
    for key, item in value.items():
        if key not in fields:
            known = ", ".join(cls._betterproto.meta_by_field_name)
            raise InvalidOption(_join(path, key), f"a field of {name} ({known})", item)
        field, meta = fields[key]
        if meta.group is not None:
            groups.setdefault(meta.group, []).append(key)
        _check_field(_join(path, key), cls, field, meta, item)
    for group, keys in groups.items():
        if len(keys) > 1:
            raise InvalidOption(_join(path, keys[1]), f"one field of the oneof {name}.{group}, not "
                                f"{' and '.join(keys)}", value[keys[1]])


def _check_field(path, cls, field, meta, value):
    if meta.proto_type == "map":
        if not isinstance(value, dict):
            raise InvalidOption(path, "a map (JSON object)", value)
        value_cls, value_meta = cls._betterproto.cls_by_field[f"{field}.value"], meta.map_meta[1]
        for key, item in value.items():
            _check_single(f"{path}.{key}", value_cls, value_meta, item)
        return
    if meta.repeated:
        if not isinstance(value, list):
            raise InvalidOption(path, "a list", value)
        for index, item in enumerate(value):
            _check_single(f"{path}[{index}]", cls._betterproto.cls_by_field[field], meta, item)
        return
    _check_single(path, cls._betterproto.cls_by_field[field], meta, value)


def _check_single(path, field_cls, meta, value):
    proto_type = meta.proto_type
    if proto_type == "message":
        if meta.unwrap is not None:
            _check_message(path, meta.unwrap(), value)
        else:
            _check_message(path, field_cls, value)
    elif proto_type == "enum":
        _check_enum(path, field_cls, value)
    else:
        _check_scalar(path, proto_type, value)


def _check_enum(path, enum_cls, value):
    renamed = enum_cls.betterproto_value_to_renamed_proto_names() \
        if hasattr(enum_cls, "betterproto_value_to_renamed_proto_names") else {}
    names = [renamed.get(member.value, name) for name, member in enum_cls.__members__.items()]
    if isinstance(value, str) and value in names:
        return
    if isinstance(value, int) and not isinstance(value, bool) and \
            value in {member.value for member in enum_cls.__members__.values()}:
        return
    raise InvalidOption(path, f"one of {', '.join(names)}", value)


def _check_scalar(path, proto_type, value):
    if proto_type == "string":
        ok = isinstance(value, str)
    elif proto_type == "bytes":
        ok = isinstance(value, str)  # base64 in proto3 JSON
    elif proto_type == "bool":
        ok = isinstance(value, bool)
    elif proto_type in ("float", "double"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif proto_type in INT_RANGES:
        number = value
        if proto_type in INT64_TYPES and isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
            number = int(value)
        low, high = INT_RANGES[proto_type]
        ok = isinstance(number, int) and not isinstance(number, bool) and low <= number <= high
        if not ok:
            raise InvalidOption(path, f"an integer {low} to {high} ({proto_type})", value)
    else:
        raise InvalidOption(path, f"a field of a type meshtune can check (not {proto_type})", value)
    if not ok:
        raise InvalidOption(path, f"a {proto_type}", value)


def _check_well_known(path, name, value):
    """google.protobuf types, which proto3 JSON writes in their own forms."""
    if name in WRAPPERS:
        _check_scalar(path, WRAPPERS[name], value)
    elif name == "google.protobuf.Duration":
        if not isinstance(value, str) or not PROTO_DURATION_RE.match(value) or \
                abs(float(value[:-1])) > MAX_DURATION_SECONDS:
            raise InvalidOption(path, "a duration in seconds such as 1s or 0.05s", value)
    elif name == "google.protobuf.Any":
        _check_any(path, value)
    elif name == "google.protobuf.Struct" and not isinstance(value, dict):
        raise InvalidOption(path, "a JSON object", value)
    elif name not in ("google.protobuf.Struct", "google.protobuf.Value"):
        raise InvalidOption(path, f"a field of a type meshtune can check (not {name})", value)


def _check_any(path, value):
    """An Any: its `@type` names a message of the Envoy API, and the rest is that message."""
    if not isinstance(value, dict) or not isinstance(value.get("@type"), str):
        raise InvalidOption(path, "an object with an @type such as "
                            f"{TYPE_URL_PREFIX}{full_name(LocalRateLimit)}", value)
    cls = message_pool.default_message_pool.url_to_type.get(value["@type"])
    if cls is None:
        raise InvalidOption(f"{path}.@type", "the type URL of a message of the Envoy API", value["@type"])
    _check_message(path, cls, {key: item for key, item in value.items() if key != "@type"})


def status_codes():
    """The HTTP status codes Envoy's HttpStatus takes (envoy.type.v3.StatusCode), by number."""
    return {member.value: name for name, member in StatusCode.__members__.items() if member.value}
