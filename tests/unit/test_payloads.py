"""Payload decoders: JSON keeps the fast path, field maps rename, schema-registry payloads decode or explain."""

from __future__ import annotations

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from stream.config import Settings
from stream.contracts.events import Limits
from stream.contracts.registry import Registry
from stream.errors import UserError
from stream.kafka.payloads import decoder, payload_decoders
from stream.pipeline.ingest import Ingest, RawRecord

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
