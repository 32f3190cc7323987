"""Schema-registry payloads: a prediction stream in a model server's own shape (registered schema, produced
with confluent-kafka's AvroSerializer, ProtobufSerializer or JSONSerializer to the real broker, field names
mapped by configuration) yields the same window metrics as the same events in JSON, and undecodable payloads
are dead letters.

The format tests use confluent-kafka's in-memory registry (``mock://``). Its state lives in one client object,
not shared between processes, so the pipeline stages (ingest with the decoder, join, aggregate) run there in
the test process, reading the records back from the broker. The worker test runs `driftwarden up` as its own
process against a registry over HTTP (`tests.schema_registry`, a double of the registry's REST API, since no
registry server can run here) that the producer's serializers and the worker both reach.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from stream.config import Settings
from stream.contracts.events import Limits
from stream.contracts.registry import Registry
from stream.kafka.clients import read_to_end
from stream.kafka.embedded import EmbeddedBroker
from stream.kafka.payloads import payload_decoders
from stream.pipeline.aggregate import Aggregator
from stream.pipeline.ingest import Ingest, RawRecord
from tests.helpers import free_port, wait_until
from tests.protobuf_messages import scored_request, scored_request_type
from tests.schema_registry import running_registry

pytestmark = pytest.mark.integration

SCHEMA = """{"type": "record", "name": "ScoredRequest", "namespace": "shop.ml", "fields": [
  {"name": "request_id", "type": "string"}, {"name": "model", "type": "string"},
  {"name": "version", "type": "string"},
  {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "inputs", "type": {"type": "record", "name": "Inputs", "fields": [
    {"name": "features", "type": {"type": "map", "values": ["null", "double", "string"]}}]}},
  {"name": "prediction", "type": "string"}, {"name": "score", "type": "double"}]}"""
JSON_SCHEMA = """{"$schema": "http://json-schema.org/draft-07/schema#", "title": "ScoredRequest", "type": "object",
  "properties": {"request_id": {"type": "string"}, "model": {"type": "string"}, "version": {"type": "string"},
    "ts": {"type": "integer"}, "prediction": {"type": "string"}, "score": {"type": "number"},
    "inputs": {"type": "object", "properties": {"features": {"type": "object",
      "additionalProperties": {"type": ["number", "string", "null"]}}}, "required": ["features"]}},
  "required": ["request_id", "model", "version", "ts", "inputs", "prediction", "score"]}"""
FIELD_MAP = {"prediction_id": "request_id", "model_id": "model", "model_version": "version", "timestamp": "ts",
             "features": "inputs.features"}
N = 300


def _events(t0: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Predictions in a model server's shape and their labels ("1"/"0": whichever prediction a worker sees first,
    the positive class it infers for the auto-registered model is "1")."""
    predictions, labels = [], []
    for i in range(N):
        score = (i * 37 % 100) / 100
        predictions.append({"request_id": f"r{i}", "model": "avro-churn", "version": "3", "ts": t0 + i * 1000,
                            "inputs": {"features": {"tenure": float(i % 24), "plan": ["free", "pro"][i % 2],
                                                    "spend": None if i % 7 == 0 else i * 1.5}},
                            "prediction": "1" if score >= 0.5 else "0", "score": score})
        if i % 5:
            labels.append({"prediction_id": f"r{i}", "label": "1" if (i * 13) % 3 else "0",
                           "timestamp": t0 + i * 1000 + 30_000})
    return predictions, labels


def _as_json(p: dict[str, Any]) -> bytes:
    return orjson.dumps({"prediction_id": p["request_id"], "model_id": p["model"], "model_version": p["version"],
                         "timestamp": p["ts"], "features": p["inputs"]["features"], "prediction": p["prediction"],
                         "score": p["score"]})


def _windows(bootstrap: str, topics: tuple[str, str], settings: Settings,
             registry_client: SchemaRegistryClient | None) -> tuple[dict[tuple[Any, ...], float], dict[str, int]]:
    """Run ingest, join and aggregate over everything on ``topics``; window metrics and dead-letter reasons."""
    records = []
    for topic in topics:
        records += [RawRecord(topic, r.partition, r.offset, r.key, r.value, tuple(r.headers), r.timestamp)
                    for r in asyncio.run(read_to_end(bootstrap, topic, 30))]
    registry = Registry()
    decoders = payload_decoders(settings, registry_client) if registry_client else {}
    ingest = Ingest(registry, Limits(), topics[0], topics[1], 7 * 86_400_000, payloads=decoders)
    result = ingest.process(records)
    dead: dict[str, int] = {}
    for letter in result.dead_letters:
        dead[letter.reason] = dead.get(letter.reason, 0) + 1
    aggregator = Aggregator(lambda model_id: registry.get(model_id).spec)  # type: ignore[union-attr]
    for offset, batch in enumerate(result.batches.values()):
        aggregator.apply(orjson.loads(orjson.dumps({**batch, "sources": 0})), offset)
    aggregator.tick(int(time.time() * 1000), idle=True, close_all=True)
    rows = {tuple(row[:6]): row[6] for row in aggregator.window_rows()}
    return rows, dead


def _serializer(fmt: str, client: SchemaRegistryClient) -> Any:
    """A function from a model-server record to the registry-framed bytes of ``fmt``."""
    context = SerializationContext("predictions", MessageField.VALUE)
    if fmt == "avro":
        avro = AvroSerializer(client, SCHEMA)
        return lambda p: avro(p, context)
    if fmt == "json_schema":
        json_schema = JSONSerializer(JSON_SCHEMA, client)
        return lambda p: json_schema(p, context)
    cls = scored_request_type()
    protobuf = ProtobufSerializer(cls, client, {"use.deprecated.format": False})
    return lambda p: protobuf(scored_request(cls, p), context)


@pytest.mark.parametrize("fmt", ["avro", "protobuf", "json_schema"])
def test_registry_payloads_yield_the_same_windows_as_json(fmt: str) -> None:
    t0 = (int(time.time() * 1000) // 3_600_000 - 2) * 3_600_000  # two hours ago, on the hour
    predictions, labels = _events(t0)
    client = SchemaRegistryClient.new_client({"url": f"mock://driftwarden-test-{fmt}"})
    serialize = _serializer(fmt, client)
    with EmbeddedBroker() as broker:
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "enable.idempotence": False,
                             "partitioner": "murmur2_random"})
        for p in predictions:
            key = p["request_id"].encode()
            producer.produce("predictions", key=key,
                             value=serialize(p))
            producer.produce("predictions_json", key=key, value=_as_json(p))
        producer.produce("predictions", key=b"bad-1", value=b'{"request_id": "bad-1"}')  # no registry framing
        producer.produce("predictions", key=b"bad-2", value=b"\0\0\0\0\x63garbage")  # unknown schema id
        good = serialize(predictions[0])
        producer.produce("predictions", key=b"bad-3", value=good[:-1])  # cut short
        for label in labels:
            for topic in ("ground_truth", "ground_truth_json"):
                producer.produce(topic, key=label["prediction_id"].encode(), value=orjson.dumps(label))
        assert producer.flush(30) == 0
        assert (client.get_latest_version("predictions-value").schema_id or 0) >= 1  # the schema was registered

        settings = Settings(schema_registry_url=f"mock://driftwarden-test-{fmt}", payload_format_predictions=fmt,
                            field_map_predictions=FIELD_MAP)
        decoded, decoded_dead = _windows(broker.bootstrap_servers, ("predictions", "ground_truth"), settings, client)
        json_rows, json_dead = _windows(broker.bootstrap_servers, ("predictions_json", "ground_truth_json"),
                                        Settings(), None)

    assert json_dead == {} and decoded_dead == {"undecodable": 3}
    metrics = {key[5] for key in json_rows}
    assert {"predictions", "labelled", "accuracy", "roc_auc"} <= metrics
    assert sum(v for k, v in json_rows.items() if k[5] == "predictions" and k[2] == "") == N
    assert decoded.keys() == json_rows.keys()
    for key, value in json_rows.items():
        assert (math.isnan(value) and math.isnan(decoded[key])) or decoded[key] == value, key


LABEL_SCHEMA = """{"type": "record", "name": "Label", "namespace": "shop.ml", "fields": [
  {"name": "prediction_id", "type": "string"}, {"name": "label", "type": "string"},
  {"name": "timestamp", "type": "long"}]}"""


def _expected_windows(predictions: list[dict[str, Any]], labels: list[dict[str, Any]]) -> dict[tuple[Any, ...], float]:
    """Window metrics of the same events as JSON, through the stages in this process (no registry)."""
    records = [RawRecord("predictions", 0, i, p["request_id"].encode(), _as_json(p), (), p["ts"])
               for i, p in enumerate(predictions)]
    records += [RawRecord("ground_truth", 0, i, g["prediction_id"].encode(), orjson.dumps(g), (), g["timestamp"])
                for i, g in enumerate(labels)]
    registry = Registry()
    result = Ingest(registry, Limits(), "predictions", "ground_truth", 7 * 86_400_000).process(records)
    assert not result.dead_letters
    aggregator = Aggregator(lambda model_id: registry.get(model_id).spec)  # type: ignore[union-attr]
    for offset, batch in enumerate(result.batches.values()):
        aggregator.apply(orjson.loads(orjson.dumps({**batch, "sources": 0})), offset)
    aggregator.tick(int(time.time() * 1000), idle=True, close_all=True)
    return {(row[1], row[2], _ms(row[3]), row[5]): row[6] for row in aggregator.window_rows()}


def _ms(value: Any) -> int:
    return int(value.timestamp() * 1000) if hasattr(value, "timestamp") else int(value)


def test_a_worker_process_decodes_protobuf_and_avro_through_a_registry_over_http(make_worker: Any) -> None:
    """The worker runs as its own process: the registry is the HTTP double (with basic auth), which both the
    producer's serializers and the worker reach. Predictions are Protobuf, labels Avro; the worker's window
    metrics in ClickHouse equal those of the same events as JSON, and a record with an unknown schema id is a
    dead letter."""
    t0 = (int(time.time() * 1000) // 3_600_000 - 2) * 3_600_000
    predictions, labels = _events(t0)
    expected = _expected_windows(predictions, labels)
    with running_registry("sr-user", "sr-secret") as (url, double):
        worker = make_worker(
            "registry", DRIFTWARDEN_SCHEMA_REGISTRY_URL=url, DRIFTWARDEN_SCHEMA_REGISTRY_USERNAME="sr-user",
            DRIFTWARDEN_SCHEMA_REGISTRY_PASSWORD="sr-secret", DRIFTWARDEN_PAYLOAD_FORMAT_PREDICTIONS="protobuf",
            DRIFTWARDEN_PAYLOAD_FORMAT_GROUND_TRUTH="avro",
            DRIFTWARDEN_FIELD_MAP_PREDICTIONS=orjson.dumps(FIELD_MAP).decode()).start()
        client = SchemaRegistryClient({"url": url, "basic.auth.user.info": "sr-user:sr-secret"})
        cls = scored_request_type()
        protobuf = ProtobufSerializer(cls, client, {"use.deprecated.format": False})
        avro = AvroSerializer(client, LABEL_SCHEMA)
        producer = Producer({"bootstrap.servers": worker.runtime()["bootstrap_servers"], "enable.idempotence": False,
                             "partitioner": "murmur2_random"})
        for p in predictions:
            producer.produce("predictions", key=p["request_id"].encode(), value=protobuf(
                scored_request(cls, p), SerializationContext("predictions", MessageField.VALUE)))
        producer.produce("predictions", key=b"bad", value=b"\0\0\0\0\x63\0")  # a schema id nobody registered
        for g in labels:
            producer.produce("ground_truth", key=g["prediction_id"].encode(),
                             value=avro(g, SerializationContext("ground_truth", MessageField.VALUE)))
        assert producer.flush(30) == 0
        assert sorted(double.subjects) == ["ground_truth-value", "predictions-value"]

        def windows() -> dict[tuple[Any, ...], float]:
            rows = worker.sql("SELECT model_version, segment, toUnixTimestamp64Milli(window_start) AS ws, metric, "
                              "value FROM driftwarden.window_metrics FINAL WHERE model_id = 'avro-churn'")
            return {(r["model_version"], r["segment"], int(r["ws"]), r["metric"]):  # NaN comes back as null
                    math.nan if r["value"] is None else r["value"] for r in rows}

        def labelled() -> float:
            return sum(v for k, v in windows().items() if k[3] == "labelled" and k[1] == "")

        wait_until(lambda: labelled() == len(labels), 60, 0.3, f"{len(labels)} labelled pairs in window_metrics")
        wait_until(lambda: windows().keys() >= expected.keys(), 30, 0.3, "every expected window metric")
        got = windows()
        for key, value in expected.items():
            assert (math.isnan(value) and math.isnan(got[key])) or got[key] == pytest.approx(value, rel=1e-12), key
        dead = worker.sql("SELECT reason, error FROM driftwarden.dead_letters FINAL WHERE topic = 'predictions'")
        assert [d["reason"] for d in dead] == ["undecodable"]
        assert "schema id 99 could not be fetched" in dead[0]["error"]
        assert any(r.startswith("GET /schemas/ids/") for r in double.requests)  # the worker asked the registry
        assert worker.stop() == 0


def test_a_worker_stops_with_one_line_when_the_registry_is_unreachable(make_worker: Any) -> None:
    """Records are not dead-lettered while the registry is away: the worker exits (code 70, one line naming
    the registry) and, restarted by its supervisor, reads them again from its checkpoint."""
    worker = make_worker("no-registry", DRIFTWARDEN_SCHEMA_REGISTRY_URL=f"http://127.0.0.1:{free_port()}",
                         DRIFTWARDEN_PAYLOAD_FORMAT_PREDICTIONS="avro").start()
    producer = Producer({"bootstrap.servers": worker.runtime()["bootstrap_servers"], "enable.idempotence": False})
    producer.produce("predictions", key=b"r1", value=b"\0\0\0\0\x01\x02r1")
    assert producer.flush(30) == 0
    assert worker.process is not None
    code = worker.process.wait(60)
    lines = [line for line in worker.output().splitlines() if "schema registry" in line]
    assert code == 70 and lines, worker.output()[-2000:]
    assert "did not answer for schema id 1 (ConnectError" in lines[-1], lines
    assert "Traceback" not in worker.output()
