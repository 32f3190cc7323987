"""Protobuf payloads in the schema-registry wire format decoded without generated classes.

confluent-kafka's ``ProtobufDeserializer`` needs the producer's generated message class. Driftwarden reads
topics whose ``.proto`` it never saw, so it does what that deserializer does with the writer schema: fetch the
schema by the id in the record (the registry's ``serialized`` format, a ``FileDescriptorProto``, with its
references), build it in a protobuf ``DescriptorPool`` and take the message class from protobuf's
``message_factory``. Each (schema id, message indexes) is built once; per record the cost is the framing, one
``ParseFromString`` and a converter made once per message type (plain Python values: int64 stays an int,
``google.protobuf.Timestamp`` becomes epoch milliseconds, wrappers and unset optional fields become None).
"""

from __future__ import annotations

import base64
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from stream.kafka.registry_payloads import fetch_failure

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

Convert = Callable[[Any], Any]
_WRAPPERS = {f"google.protobuf.{name}Value" for name in
             ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")}


def _builtin_file(name: str) -> descriptor_pb2.FileDescriptorProto | None:
    """A well-known file (google/protobuf/*, google/type/*, confluent/*) from the Python modules that ship it."""
    module = name.removesuffix(".proto").replace("/", ".") + "_pb2"
    if module.startswith("confluent."):
        module = "confluent_kafka.schema_registry." + module
    try:
        importlib.import_module(module)
        found = descriptor_pool.Default().FindFileByName(name)
    except (ImportError, KeyError):
        return None
    proto = descriptor_pb2.FileDescriptorProto()
    found.CopyToProto(proto)
    return proto


def _parse_file(schema_str: str, name: str) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    try:
        proto.ParseFromString(base64.standard_b64decode(schema_str))
    except (ValueError, DecodeError) as exc:
        raise ValueError(f"registry schema is not a serialized protobuf file descriptor ({exc})") from None
    proto.name = proto.name or name
    return proto


class ProtobufDecoder:
    """Decode ``value`` bytes (magic byte 0, schema id, message indexes, protobuf message) into a dict."""

    def __init__(self, client: SchemaRegistryClient) -> None:
        self._client = client
        self._types: dict[tuple[int, tuple[int, ...]], tuple[type[Message], Convert]] = {}
        self._pools: dict[int, tuple[descriptor_pool.DescriptorPool, descriptor_pb2.FileDescriptorProto]] = {}

    def __call__(self, value: bytes) -> Any:
        if len(value) < 6 or value[0] != 0:
            raise ValueError("not in the schema-registry wire format (no magic byte 0): is the topic protobuf?")
        schema_id = int.from_bytes(value[1:5], "big")
        if value[5] == 0:  # the common case: message indexes [0], one byte
            indexes: tuple[int, ...] = (0,)
            body = value[6:]
        else:
            indexes, body = _message_indexes(value)
        found = self._types.get((schema_id, indexes))
        if found is None:
            found = self._types[(schema_id, indexes)] = self._message_type(schema_id, indexes)
        cls, convert = found
        message = cls()
        try:
            message.ParseFromString(body)
        except DecodeError as exc:
            raise ValueError(f"protobuf payload could not be decoded (schema id {schema_id}): {exc}") from None
        return convert(message)

    def _message_type(self, schema_id: int, indexes: tuple[int, ...]) -> tuple[type[Message], Convert]:
        pool, file = self._pool(schema_id)
        path: list[str] = []
        messages = file.message_type
        for index in indexes:
            if not 0 <= index < len(messages):
                raise ValueError(f"message index {index} is not in schema id {schema_id}")
            path.append(messages[index].name)
            messages = messages[index].nested_type
        name = ".".join(([file.package] if file.package else []) + path)
        descriptor = pool.FindMessageTypeByName(name)
        return GetMessageClass(descriptor), _converter(descriptor, {})

    def _pool(self, schema_id: int) -> tuple[descriptor_pool.DescriptorPool, descriptor_pb2.FileDescriptorProto]:
        if schema_id in self._pools:
            return self._pools[schema_id]
        try:
            schema = self._client.get_schema(schema_id, fmt="serialized")
            references = self._references(schema)
        except Exception as exc:  # SchemaRegistryError (unknown id, HTTP errors), httpx2 transport errors
            raise fetch_failure(exc, schema_id) from None
        if schema.schema_type != "PROTOBUF":
            raise ValueError(f"schema id {schema_id} is {schema.schema_type}, not PROTOBUF")
        pool = descriptor_pool.DescriptorPool()
        file = _parse_file(schema.schema_str or "", f"schema-{schema_id}.proto")
        try:
            self._add(pool, file, references, set())
        except (TypeError, KeyError) as exc:  # a descriptor that does not build (missing or clashing types)
            raise ValueError(f"schema id {schema_id} does not build: {exc}") from None
        except ValueError:
            raise
        except Exception as exc:  # fetching a nested reference
            raise fetch_failure(exc, schema_id) from None
        self._pools[schema_id] = (pool, file)
        return pool, file

    def _references(self, schema: Schema) -> dict[str, Schema]:
        out: dict[str, Schema] = {}
        for ref in schema.references or []:
            if ref.name and ref.subject and ref.version is not None:
                out[ref.name] = self._client.get_version(ref.subject, ref.version, fmt="serialized").schema
        return out

    def _add(self, pool: descriptor_pool.DescriptorPool, file: descriptor_pb2.FileDescriptorProto,
             references: dict[str, Schema], added: set[str]) -> None:
        """Add ``file`` after its dependencies (registry references first, else well-known files)."""
        for dependency in file.dependency:
            if dependency in added:
                continue
            added.add(dependency)
            ref = references.get(dependency)
            if ref is not None:
                self._add(pool, _parse_file(ref.schema_str or "", dependency), self._references(ref), added)
                continue
            builtin = _builtin_file(dependency)
            if builtin is None:
                raise ValueError(f"the registry schema imports {dependency}, which it does not reference")
            self._add(pool, builtin, {}, added)
        pool.Add(file)


def _varint(value: bytes, at: int) -> tuple[int, int]:
    """A zigzag varint at ``at`` of ``value``: (number, next position)."""
    shift = result = 0
    while True:
        if at >= len(value) or shift > 63:
            raise ValueError("protobuf message indexes are truncated (not in the schema-registry wire format?)")
        byte = value[at]
        result |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), at
        shift += 7


def _message_indexes(value: bytes) -> tuple[tuple[int, ...], bytes]:
    """The message indexes after the schema id (a count, then that many indexes: zigzag varints) and the body."""
    count, at = _varint(value, 5)
    if not 0 < count <= 100:
        raise ValueError(f"protobuf message index count {count} is out of range")
    indexes = []
    for _ in range(count):
        index, at = _varint(value, at)
        indexes.append(index)
    return tuple(indexes), value[at:]


def _value(message: Any) -> Any:
    """A ``google.protobuf.Value`` as JSON-like Python (null, number, string, bool, struct, list)."""
    kind = message.WhichOneof("kind")
    if kind == "number_value":
        return message.number_value
    if kind == "string_value":
        return message.string_value
    if kind is None or kind == "null_value":
        return None
    if kind == "struct_value":
        return _struct(message.struct_value)
    if kind == "list_value":
        return _list_value(message.list_value)
    return getattr(message, kind)


def _struct(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in message.fields.items():  # _value inlined for the common kinds: features are many
        kind = item.WhichOneof("kind")
        if kind == "number_value":
            out[key] = item.number_value
        elif kind == "string_value":
            out[key] = item.string_value
        else:
            out[key] = _value(item)
    return out


def _list_value(message: Any) -> list[Any]:
    return [_value(item) for item in message.values]


def _field(field: FieldDescriptor, cache: dict[str, Convert]) -> Convert | None:
    """How to turn one field's value into plain Python (None: take it as it is)."""
    if field.enum_type is not None:
        names = {v.number: v.name for v in field.enum_type.values}
        return lambda number: names.get(number, number)
    if field.message_type is None:
        return None
    return _converter(field.message_type, cache)


def _converter(descriptor: Descriptor, cache: dict[str, Convert]) -> Convert:
    """A function from a message of ``descriptor`` to a dict (made once per message type)."""
    full_name = descriptor.full_name
    if full_name in cache:
        return lambda message: cache[full_name](message)  # recursive types: resolved at call time
    if full_name == "google.protobuf.Timestamp":
        return lambda message: message.ToMilliseconds()
    if full_name in _WRAPPERS:
        return lambda message: message.value
    if full_name == "google.protobuf.Struct":
        return _struct
    if full_name == "google.protobuf.Value":
        return _value
    if full_name == "google.protobuf.ListValue":
        return _list_value
    cache[full_name] = lambda message: convert(message)  # placeholder while the fields are compiled
    fields: list[tuple[str, Convert | None, str]] = []
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = _field(field.message_type.fields_by_name["value"], cache)
            kind = "map"
        else:
            value = _field(field, cache)
            kind = "list" if field.is_repeated else ("optional" if field.has_presence else "plain")
        fields.append((field.name, value, kind))

    def convert(message: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value, kind in fields:
            if kind == "optional":
                if not message.HasField(name):
                    out[name] = None
                    continue
                item = getattr(message, name)
                out[name] = value(item) if value else item
            elif kind == "plain":
                item = getattr(message, name)
                out[name] = value(item) if value else item
            elif kind == "map":
                items = getattr(message, name)
                out[name] = {k: value(v) for k, v in items.items()} if value else dict(items)
            else:
                items = getattr(message, name)
                out[name] = [value(v) for v in items] if value else list(items)
        return out

    cache[full_name] = convert
    return convert
