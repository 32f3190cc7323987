"""Cost per prediction of the ingest stage (decode + validate) for each payload format of the input topics.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/payload_formats.py [--n 20000]``
(writes ``results/payload_formats.json``).

``n`` predictions in a model server's shape (15 numeric + 5 categorical features under ``inputs.features``,
``request_id``, ``ts``) are encoded as plain JSON in Driftwarden's field names (the default fast path), as the
same JSON with a field map, and in the schema-registry formats (confluent-kafka's Avro, Protobuf and JSON
Schema serializers, its in-memory ``mock://`` registry); each set goes through ``Ingest.process`` in batches
of 5,000, best of 3, in µs per prediction. Then the decode step alone per record (best of 3), Driftwarden's
readers next to confluent-kafka's own ``AvroDeserializer`` and ``JSONDeserializer`` on the same bytes (what
`stream.kafka.registry_payloads` replaced; its ``ProtobufDeserializer`` needs a generated class).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from stream.config import Settings
from stream.contracts.events import Limits
from stream.contracts.registry import Registry
from stream.kafka.payloads import payload_decoders
from stream.kafka.protobuf_payloads import ProtobufDecoder
from stream.kafka.registry_payloads import AvroReader, JsonSchemaReader
from stream.pipeline.ingest import Ingest, RawRecord
from tests.protobuf_messages import scored_request, scored_request_type

T0 = 1_767_225_600_000
BATCH = 5000
FIELD_MAP = {"prediction_id": "request_id", "model_id": "model", "model_version": "version", "timestamp": "ts",
             "features": "inputs.features"}
AVRO = """{"type": "record", "name": "ScoredRequest", "fields": [{"name": "request_id", "type": "string"},
  {"name": "model", "type": "string"}, {"name": "version", "type": "string"}, {"name": "ts", "type": "long"},
  {"name": "inputs", "type": {"type": "record", "name": "Inputs", "fields": [
    {"name": "features", "type": {"type": "map", "values": ["null", "double", "string"]}}]}},
  {"name": "prediction", "type": "string"}, {"name": "score", "type": "double"}]}"""
JSON_SCHEMA = '{"type": "object", "properties": {"request_id": {"type": "string"}, "ts": {"type": "integer"}}}'


def records(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        features: dict[str, Any] = {f"x{j}": float((i * (j + 3)) % 97) / 7 for j in range(15)}
        features.update({f"c{j}": ["a", "b", "c", "d"][(i + j) % 4] for j in range(5)})
        out.append({"request_id": f"r{i}", "model": "bench", "version": "1", "ts": T0 + i,
                    "inputs": {"features": features}, "prediction": "yes" if i % 3 else "no",
                    "score": (i % 100) / 100})
    return out


def as_json(r: dict[str, Any]) -> bytes:
    return orjson.dumps({"prediction_id": r["request_id"], "model_id": r["model"], "model_version": r["version"],
                         "timestamp": r["ts"], "features": r["inputs"]["features"], "prediction": r["prediction"],
                         "score": r["score"]})


def ingest_cost(values: list[bytes], decoders: dict[str, Any]) -> float:
    """µs per record of Ingest.process over ``values`` (best of 3); every record must be accepted."""
    best = float("inf")
    for _ in range(3):
        ingest = Ingest(Registry(), Limits(), "predictions", "ground_truth", 7 * 86_400_000, payloads=decoders)
        raws = [RawRecord("predictions", 0, i, f"r{i}".encode(), v, (), T0) for i, v in enumerate(values)]
        start = time.perf_counter()
        accepted = 0
        for a in range(0, len(raws), BATCH):
            accepted += ingest.process(raws[a:a + BATCH]).accepted
        best = min(best, time.perf_counter() - start)
        assert accepted == len(values), f"{accepted} of {len(values)} accepted"
    return best / len(values) * 1e6


def decode_cost(values: list[bytes], decode: Any, context: SerializationContext) -> float:
    start = time.perf_counter()
    for v in values:
        decode(v, context)
    return (time.perf_counter() - start) / len(values) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    data = records(args.n)
    client = SchemaRegistryClient.new_client({"url": "mock://bench"})
    context = SerializationContext("predictions", MessageField.VALUE)
    cls = scored_request_type()
    avro = AvroSerializer(client, AVRO)
    protobuf = ProtobufSerializer(cls, client, {"use.deprecated.format": False})
    json_schema = JSONSerializer(JSON_SCHEMA, client)
    encoded = {"json": [as_json(r) for r in data],
               "json + field map": [orjson.dumps(r) for r in data],
               "avro": [avro(r, context) for r in data],
               "protobuf": [protobuf(scored_request(cls, r), context) for r in data],
               "json_schema": [json_schema(r, SerializationContext("js", MessageField.VALUE)) for r in data]}
    formats = {"json": ("json", {}), "json + field map": ("json", FIELD_MAP), "avro": ("avro", FIELD_MAP),
               "protobuf": ("protobuf", FIELD_MAP), "json_schema": ("json_schema", FIELD_MAP)}
    results: dict[str, Any] = {"n": args.n, "ingest_us_per_prediction": {}}
    for name, (fmt, field_map) in formats.items():
        decoders = payload_decoders(Settings(payload_format_predictions=fmt, field_map_predictions=field_map),
                                    client)
        results["ingest_us_per_prediction"][name] = round(ingest_cost(encoded[name], decoders), 1)
    sample = slice(0, min(args.n, 5000))
    js_context = SerializationContext("js", MessageField.VALUE)
    readers = {"avro": (AvroReader(client), AvroDeserializer(client), context),
               "protobuf": (ProtobufDecoder(client), None, context),
               "json_schema": (JsonSchemaReader(client), JSONDeserializer(None, schema_registry_client=client),
                               js_context)}
    results["decode_only_us_per_record"] = {}
    for name, (ours, theirs, ctx) in readers.items():
        values = encoded[name][sample]
        results["decode_only_us_per_record"][name] = {
            "driftwarden": round(min(decode_cost(values, lambda v, _c, r=ours: r(v), ctx) for _ in range(3)), 1)}
        if theirs is not None:
            results["decode_only_us_per_record"][name]["confluent-kafka deserializer"] = round(
                min(decode_cost(values, theirs, ctx) for _ in range(3)), 1)
    print(json.dumps(results, indent=2))
    out = Path(__file__).parent / "results" / "payload_formats.json"
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
