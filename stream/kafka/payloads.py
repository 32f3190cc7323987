"""Payload decoders of the input topics: schema-registry wire formats read with the writer schema from the
registry (Avro with fastavro and JSON Schema in `stream.kafka.registry_payloads`, Protobuf with protobuf's
descriptor pool in `stream.kafka.protobuf_payloads`), and field names mapped by configuration, so that topics
not written for Driftwarden feed the same event contracts. JSON without a field map keeps the fast path (no
decoder: pydantic parses the bytes directly)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from stream.config import Settings
from stream.errors import UserError

if TYPE_CHECKING:  # imported when a registry format is configured: it takes seconds to load
    from confluent_kafka.schema_registry import SchemaRegistryClient

Decoder = Callable[[bytes], Any]


def field_mapper(mapping: Mapping[str, str]) -> Callable[[Any], Any]:
    """A function renaming fields: ``{"prediction_id": "request_id", "features": "inputs.features"}`` takes
    each target field from a dotted path of the source record; the source top-level fields are dropped.

    >>> field_mapper({"prediction_id": "request_id", "features": "inputs.f"})(
    ...     {"request_id": "r1", "inputs": {"f": {"x": 1}}, "prediction": 1})
    {'prediction': 1, 'prediction_id': 'r1', 'features': {'x': 1}}
    """
    paths = {target: source.split(".") for target, source in mapping.items()}
    moved = {path[0] for path in paths.values()}

    def apply(obj: Any) -> Any:
        if not isinstance(obj, Mapping):
            return obj  # the contracts reject it with their own reason
        out = {k: v for k, v in obj.items() if k not in moved}
        for target, path in paths.items():
            value: Any = obj
            for part in path:
                value = value.get(part) if isinstance(value, Mapping) else None
            if value is not None:
                out[target] = value
        return out

    return apply


def _registry_reader(fmt: str, client: SchemaRegistryClient) -> Decoder:
    if fmt == "protobuf":
        from stream.kafka.protobuf_payloads import ProtobufDecoder

        return ProtobufDecoder(client)
    from stream.kafka.registry_payloads import AvroReader, JsonSchemaReader

    return AvroReader(client) if fmt == "avro" else JsonSchemaReader(client)


def decoder(fmt: str, topic: str, field_map: Mapping[str, str] | None = None,
            client: SchemaRegistryClient | None = None) -> Decoder | None:
    """The decoder of one topic, or None for plain JSON without a field map (the fast path)."""
    mapped = field_mapper(field_map) if field_map else None
    if fmt == "json":
        if mapped is None:
            return None

        def decode_json(value: bytes) -> Any:
            try:
                return mapped(orjson.loads(value))
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"message is not valid JSON: {exc}") from None

        return decode_json
    if client is None:
        raise UserError(f"payload format {fmt} needs DRIFTWARDEN_SCHEMA_REGISTRY_URL")
    read = _registry_reader(fmt, client)

    def decode_registry(value: bytes) -> Any:
        if value[:1] != b"\0":
            raise ValueError(f"not in the schema-registry wire format (no magic byte 0): is the topic {fmt}?")
        obj = read(value)  # raises ValueError with the reason
        return mapped(obj) if mapped else obj

    return decode_registry


def registry_client(s: Settings) -> SchemaRegistryClient | None:
    """The schema-registry client of the settings (``mock://`` gives confluent-kafka's in-memory one)."""
    if not s.schema_registry_url:
        return None
    from confluent_kafka.schema_registry import SchemaRegistryClient

    conf: dict[str, Any] = {"url": s.schema_registry_url}
    if s.schema_registry_username:
        conf["basic.auth.user.info"] = f"{s.schema_registry_username}:{s.schema_registry_password.get_secret_value()}"
    return SchemaRegistryClient.new_client(conf)


def payload_decoders(s: Settings, client: SchemaRegistryClient | None = None) -> dict[str, Decoder]:
    """Decoders of the input topics that need one (``client`` overrides the settings' registry, for tests)."""
    wanted = {s.topic_predictions: (s.payload_format_predictions, s.field_map_predictions),
              s.topic_ground_truth: (s.payload_format_ground_truth, s.field_map_ground_truth)}
    if client is None and any(fmt != "json" for fmt, _ in wanted.values()):
        client = registry_client(s)
    out = {}
    for topic, (fmt, field_map) in wanted.items():
        found = decoder(fmt, topic, field_map, client)
        if found is not None:
            out[topic] = found
    return out
