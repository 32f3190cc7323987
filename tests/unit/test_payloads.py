"""Payload decoders: JSON keeps the fast path, field maps rename, schema-registry payloads (Avro, Protobuf without
generated classes) decode or explain."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, wrappers_pb2
from google.protobuf.message_factory import GetMessageClass

from stream.config import Settings
from stream.contracts.events import Limits
from stream.contracts.registry import Registry
from stream.errors import UserError
from stream.kafka.payloads import decoder, payload_decoders
from stream.kafka.protobuf_payloads import ProtobufDecoder
from stream.kafka.registry_payloads import AvroReader, JsonSchemaReader
from stream.pipeline.barrier import StageFailure
from stream.pipeline.ingest import Ingest, RawRecord
from tests.protobuf_messages import F, scored_request, scored_request_type
from tests.schema_registry import running_registry

SCHEMA = """{"type": "record", "name": "P", "fields": [{"name": "id", "type": "string"},
  {"name": "model_id", "type": "string"}, {"name": "timestamp", "type": "long"},
  {"name": "prediction", "type": "double"}]}"""


def test_plain_json_needs_no_decoder() -> None:
    assert payload_decoders(Settings()) == {}


def test_json_with_a_field_map_and_its_errors() -> None:
    decode = decoder("json", "predictions", {"prediction_id": "id", "features": "in.f"})
    assert decode is not None
    assert decode(b'{"id": "a", "in": {"f": {"x": 1}}, "model_id": "m"}') == {
        "model_id": "m", "prediction_id": "a", "features": {"x": 1}}
    with pytest.raises(ValueError, match="not valid JSON"):
        decode(b"{nope")


def test_registry_formats_need_a_registry() -> None:
    with pytest.raises(UserError, match="payload format avro needs DRIFTWARDEN_SCHEMA_REGISTRY_URL"):
        payload_decoders(Settings(payload_format_predictions="avro"))


def test_avro_payloads_feed_the_contracts_and_undecodable_ones_are_dead_letters() -> None:
    client = SchemaRegistryClient.new_client({"url": "mock://unit"})
    value = AvroSerializer(client, SCHEMA)({"id": "p1", "model_id": "m", "timestamp": 1_767_225_600_000,
                                            "prediction": 2.5}, SerializationContext("predictions", MessageField.VALUE))
    decoders = payload_decoders(Settings(payload_format_predictions="avro", field_map_predictions={
        "prediction_id": "id"}), client)
    assert set(decoders) == {"predictions"}
    ingest = Ingest(Registry(), Limits(), "predictions", "ground_truth", 60_000, payloads=decoders)
    result = ingest.process([RawRecord("predictions", 0, 0, b"p1", value, (), 1_767_225_600_000),
                             RawRecord("predictions", 0, 1, b"p2", b'{"id": "p2"}', (), 1_767_225_600_000),
                             RawRecord("predictions", 0, 2, b"p3", value[:8], (), 1_767_225_600_000)])
    assert result.accepted == 1 and result.batches[("m", 0)]["preds"]["pid"] == ["p1"]
    letters = [(d.offset, d.reason) for d in result.dead_letters]
    assert letters == [(1, "undecodable"), (2, "undecodable")]
    assert "no magic byte" in result.dead_letters[0].error
    assert "avro payload could not be decoded" in result.dead_letters[1].error


def test_registry_password_is_masked() -> None:
    s = Settings(schema_registry_url="https://sr.example", schema_registry_username="k",
                 schema_registry_password="sekrit")
    assert s.masked()["schema_registry_password"] == "***" and "sekrit" not in str(s.masked())


def _protobuf_value(client: SchemaRegistryClient, record: dict[str, Any], at_ms: int | None = None) -> bytes:
    cls = scored_request_type()
    message = scored_request(cls, record)
    if at_ms is not None:
        message.at.FromMilliseconds(at_ms)
    serialize = ProtobufSerializer(cls, client, {"use.deprecated.format": False})
    return serialize(message, SerializationContext("predictions", MessageField.VALUE))  # type: ignore[no-any-return]


RECORD = {"request_id": "r1", "model": "m", "version": "3", "ts": 1_767_225_600_000, "prediction": "yes",
          "score": 0.0, "inputs": {"features": {"tenure": 3.0, "plan": "pro", "spend": None}}}


def test_protobuf_payloads_are_decoded_from_the_registry_schema_without_generated_classes() -> None:
    client = SchemaRegistryClient.new_client({"url": "mock://unit-protobuf"})
    value = _protobuf_value(client, RECORD, at_ms=1_767_225_600_123)
    assert value[5:7] == b"\x02\x02"  # message indexes [1]: the second message of its file
    decode = ProtobufDecoder(client)
    assert decode(value) == {"request_id": "r1", "model": "m", "version": "3", "ts": 1_767_225_600_000,
                             "inputs": {"features": {"tenure": 3.0, "plan": "pro", "spend": None}},
                             "prediction": "yes", "score": 0.0, "at": 1_767_225_600_123}
    assert decode(_protobuf_value(client, RECORD))["at"] is None  # an unset message field, not a zero time


def test_protobuf_scalars_enums_maps_lists_and_wrappers_become_plain_values() -> None:
    file = descriptor_pb2.FileDescriptorProto(name="k.proto", package="k", syntax="proto3",
                                              dependency=["google/protobuf/wrappers.proto"])
    kind = file.enum_type.add(name="Kind")
    kind.value.add(name="KIND_UNSET", number=0)
    kind.value.add(name="KIND_A", number=1)
    msg = file.message_type.add(name="M")
    entry = msg.nested_type.add(name="WEntry", options=descriptor_pb2.MessageOptions(map_entry=True))
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    msg.field.add(name="big", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    msg.field.add(name="kind", number=2, type=F.TYPE_ENUM, type_name=".k.Kind", label=F.LABEL_OPTIONAL)
    msg.field.add(name="w", number=3, type=F.TYPE_MESSAGE, type_name=".k.M.WEntry", label=F.LABEL_REPEATED)
    msg.field.add(name="xs", number=4, type=F.TYPE_FLOAT, label=F.LABEL_REPEATED)
    msg.field.add(name="maybe", number=5, type=F.TYPE_MESSAGE, type_name=".google.protobuf.DoubleValue",
                  label=F.LABEL_OPTIONAL)
    msg.field.add(name="opt", number=6, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL, proto3_optional=True,
                  oneof_index=0)
    msg.oneof_decl.add(name="_opt")
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    cls = GetMessageClass(pool.FindMessageTypeByName("k.M"))
    client = SchemaRegistryClient.new_client({"url": "mock://unit-protobuf-kinds"})
    serialize = ProtobufSerializer(cls, client, {"use.deprecated.format": False})
    context = SerializationContext("t", MessageField.VALUE)
    big = 2**62 + 1  # int64 stays an exact int (the protobuf JSON mapping would make it a string)
    value = serialize(cls(big=big, kind=1, w={"a": 0.5}, xs=[1.5, 2.0], maybe={"value": 0.25}), context)
    decode = ProtobufDecoder(client)
    assert decode(value) == {"big": big, "kind": "KIND_A", "w": {"a": 0.5}, "xs": [1.5, 2.0], "maybe": 0.25,
                             "opt": None}
    assert decode(serialize(cls(opt=""), context)) == {"big": 0, "kind": "KIND_UNSET", "w": {}, "xs": [],
                                                        "maybe": None, "opt": ""}


def test_undecodable_protobuf_payloads_are_dead_letters_with_the_reason() -> None:
    client = SchemaRegistryClient.new_client({"url": "mock://unit-protobuf-bad"})
    value = _protobuf_value(client, RECORD)
    avro = AvroSerializer(client, SCHEMA)({"id": "p1", "model_id": "m", "timestamp": 1, "prediction": 2.5},
                                          SerializationContext("other", MessageField.VALUE))
    decoders = payload_decoders(Settings(payload_format_predictions="protobuf", field_map_predictions={
        "prediction_id": "request_id", "model_id": "model", "timestamp": "ts", "features": "inputs.features"}),
        client)
    ingest = Ingest(Registry(), Limits(), "predictions", "ground_truth", 60_000, payloads=decoders)
    bad = {b'{"request_id": "x"}': "no magic byte 0",
           value[:-1]: "protobuf payload could not be decoded (schema id 1)",
           b"\0\0\0\0\x63\0abc": "schema id 99 could not be fetched from the registry",
           avro: "is AVRO, not PROTOBUF",
           value[:5] + b"\x02\x0a" + value[7:]: "message index 5 is not in schema id 1",
           value[:5] + b"\x81": "message indexes are truncated"}
    records = [RawRecord("predictions", 0, 0, b"r1", value, (), 1_767_225_600_000)]
    records += [RawRecord("predictions", 0, i, b"x", raw, (), 1_767_225_600_000) for i, raw in enumerate(bad, 1)]
    result = ingest.process(records)
    assert result.accepted == 1 and result.batches[("m", 0)]["preds"]["pid"] == ["r1"]
    assert [d.reason for d in result.dead_letters] == ["undecodable"] * len(bad)
    for letter, expected in zip(result.dead_letters, bad.values(), strict=True):
        assert expected in letter.error, (expected, letter.error)


def test_avro_and_json_schema_readers_match_confluent_kafkas_deserializers() -> None:
    client = SchemaRegistryClient.new_client({"url": "mock://unit-readers"})
    record = {"request_id": "r1", "model": "m", "version": "3", "ts": 1_767_225_600_000, "prediction": "yes",
              "score": 0.25, "inputs": {"features": {"tenure": 3.0, "plan": "pro", "spend": None}}}
    avro_schema = """{"type": "record", "name": "S", "fields": [{"name": "request_id", "type": "string"},
      {"name": "model", "type": "string"}, {"name": "version", "type": "string"},
      {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
      {"name": "inputs", "type": {"type": "record", "name": "I", "fields": [
        {"name": "features", "type": {"type": "map", "values": ["null", "double", "string"]}}]}},
      {"name": "prediction", "type": "string"}, {"name": "score", "type": "double"}]}"""
    json_schema = '{"type": "object", "properties": {"request_id": {"type": "string"}}, "required": ["request_id"]}'
    for topic, serializer, deserializer, read in (
            ("a", AvroSerializer(client, avro_schema), AvroDeserializer(client), AvroReader(client)),
            ("j", JSONSerializer(json_schema, client), JSONDeserializer(None, schema_registry_client=client),
             JsonSchemaReader(client))):
        context = SerializationContext(topic, MessageField.VALUE)
        value = serializer(record, context)
        assert read(value) == deserializer(value, context), topic
    assert str(AvroReader(client)(AvroSerializer(client, avro_schema)(record, SerializationContext(
        "a", MessageField.VALUE)))["ts"]) == "2026-01-01 00:00:00+00:00"
    with pytest.raises(ValueError, match="schema id 1 is AVRO, not JSON"):
        JsonSchemaReader(client)(b"\0\0\0\0\x01{}")
    with pytest.raises(ValueError, match="schema id 2 is JSON, not AVRO"):
        AvroReader(client)(b"\0\0\0\0\x02{}")
    with pytest.raises(ValueError, match="json_schema payload could not be decoded"):
        JsonSchemaReader(client)(b"\0\0\0\0\x02{nope")


@pytest.mark.parametrize("fmt", ["avro", "protobuf", "json_schema"])
def test_an_unreachable_or_refusing_registry_stops_the_stage_instead_of_dead_lettering(fmt: str) -> None:
    """An unknown schema id is the record's fault (dead letter); a registry that cannot be reached or refuses
    the credentials is not: the ingest stage raises StageFailure (the worker exits, restarts from its
    checkpoint, and the records are read again), so nothing is dead-lettered while the registry is away."""
    record = RawRecord("predictions", 0, 0, b"r1", b"\0\0\0\0\x01\0body", (), 1_767_225_600_000)
    with running_registry("user", "right") as (url, _):
        for password, expected in (("right", None), ("wrong", "401")):
            client = SchemaRegistryClient({"url": url, "basic.auth.user.info": f"user:{password}"})
            ingest = Ingest(Registry(), Limits(), "predictions", "ground_truth", 60_000,
                            payloads=payload_decoders(Settings(payload_format_predictions=fmt), client))
            if expected is None:  # reachable, id 1 unknown: a dead letter
                result = ingest.process([record])
                assert [d.reason for d in result.dead_letters] == ["undecodable"]
                assert "schema id 1 could not be fetched" in result.dead_letters[0].error
            else:
                with pytest.raises(StageFailure, match=f"did not answer for schema id 1 .*{expected}"):
                    ingest.process([record])
    closed = SchemaRegistryClient({"url": "http://127.0.0.1:1", "max.retries": 0})
    ingest = Ingest(Registry(), Limits(), "predictions", "ground_truth", 60_000,
                    payloads=payload_decoders(Settings(payload_format_predictions=fmt), closed))
    with pytest.raises(StageFailure, match=r"schema id 1 \(ConnectError.*DRIFTWARDEN_SCHEMA_REGISTRY_URL"):
        ingest.process([record])
