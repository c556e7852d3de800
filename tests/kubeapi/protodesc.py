"""Protobuf message classes built at run time from compact field tables.

Two wire formats of a real API server are protobuf: Kubernetes objects (`protobuf.py`) and the
OpenAPI v2 document (`openapi_v2.py`). Each needs a few dozen messages; a table of field names,
numbers and types, written from the published `.proto` files, is shorter to review than generated
code and needs no `protoc` step. The `protobuf` package does the encoding.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

# name, field number, type: a scalar ("string", "bytes", "bool", "int32", "int64", "double"), the
# name of another message of the same table, "[]T" for a repeated field, or "map<string,T>".
Field = tuple[str, int, str]
Table = dict[str, tuple[Field, ...]]

_FDP = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "string": _FDP.TYPE_STRING, "bytes": _FDP.TYPE_BYTES, "bool": _FDP.TYPE_BOOL,
    "int32": _FDP.TYPE_INT32, "int64": _FDP.TYPE_INT64, "double": _FDP.TYPE_DOUBLE,
}


def _set_type(field: descriptor_pb2.FieldDescriptorProto, package: str, type_name: str) -> None:
    if type_name in _SCALARS:
        field.type = _SCALARS[type_name]
    else:
        field.type = _FDP.TYPE_MESSAGE
        field.type_name = f".{package}.{type_name}"


def _add_field(msg: descriptor_pb2.DescriptorProto, package: str, spec: Field) -> None:
    name, number, type_name = spec
    field = msg.field.add(name=name, number=number, json_name=name)
    if type_name.startswith("map<"):
        key_type, value_type = (t.strip() for t in type_name[4:-1].split(","))
        entry = msg.nested_type.add(name=name[0].upper() + name[1:] + "Entry")
        entry.options.map_entry = True
        for entry_name, entry_number, entry_type in (("key", 1, key_type), ("value", 2, value_type)):
            entry_field = entry.field.add(name=entry_name, number=entry_number, json_name=entry_name,
                                          label=_FDP.LABEL_OPTIONAL)
            _set_type(entry_field, package, entry_type)
        field.label = _FDP.LABEL_REPEATED
        field.type = _FDP.TYPE_MESSAGE
        field.type_name = f".{package}.{msg.name}.{entry.name}"
    elif type_name.startswith("[]"):
        field.label = _FDP.LABEL_REPEATED
        _set_type(field, package, type_name[2:])
    else:
        field.label = _FDP.LABEL_OPTIONAL
        _set_type(field, package, type_name)


def message_classes(package: str, table: Table) -> dict[str, type[message.Message]]:
    """One class per message of `table`, all in protobuf package `package`.

    proto2 syntax, as Kubernetes' own definitions: a field set to its zero value is still sent,
    so `immutable: false` survives a round trip. The wire format of proto3 peers is the same.
    """
    file_proto = descriptor_pb2.FileDescriptorProto(
        name=f"{package.replace('.', '/')}/meshtune_table.proto", package=package, syntax="proto2")
    for name, fields in table.items():
        msg = file_proto.message_type.add(name=name)
        for spec in fields:
            _add_field(msg, package, spec)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(file_proto.SerializeToString())
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
            for name in table}
