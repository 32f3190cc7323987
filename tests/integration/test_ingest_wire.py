"""Bad input on the wire: every record is either processed or dead-lettered with its reason; a plain Kafka
client with hand-written JSON works; the embedded mode keeps its windows across a restart."""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream.contracts.events import ModelSpec
from stream.contracts.registry import RegisteredModel, encode
from stream.kafka.embedded import EmbeddedBroker
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SPEC = {"model_id": "churn", "version": "2", "task": "binary_classification", "positive_class": "yes",
        "features": [{"name": "age", "type": "numeric"}, {"name": "plan", "type": "categorical"}],
        "monitor": {"window_seconds": 60}}


def prediction(pid: str, ts: Any, **extra: Any) -> dict[str, Any]:
    event = {"prediction_id": pid, "model_id": "churn", "model_version": "2", "timestamp": ts,
             "features": {"age": 40, "plan": "pro"}, "prediction": "yes", "score": 0.9}
    event.update(extra)
    return event


def bad_predictions() -> list[tuple[str, bytes]]:
    """(expected reason, raw message) for every bad-input class."""
    base = prediction("bad", T0)
    return [
        ("not_json", b"{this is not json"),
        ("missing_field", orjson.dumps({k: v for k, v in base.items() if k != "timestamp"})),
        ("wrong_type", orjson.dumps({**base, "prediction_id": "b1", "score": "high"})),
        ("too_large", orjson.dumps({**base, "prediction_id": "b2", "features": {"blob": "x" * 70_000}})),
        ("too_many_features", orjson.dumps({**base, "prediction_id": "b3",
                                            "features": {f"f{i}": i for i in range(501)}})),
        ("string_too_long", orjson.dumps({**base, "prediction_id": "b4", "features": {"plan": "p" * 2000}})),
        ("invalid_value", orjson.dumps({**base, "prediction_id": "b5", "score": 1.5})),
        ("unregistered_model", orjson.dumps({**base, "prediction_id": "b6", "model_id": "nobody"})),
    ]


async def _send(bootstrap: str, messages: list[tuple[str, bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=2_000_000)
    await producer.start()
    try:
        for topic, key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def _read_all(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(records) < expected and loop.time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


def test_bad_input_is_dead_lettered_and_good_input_from_a_plain_client_is_processed(make_worker: Any) -> None:
    with EmbeddedBroker() as broker:
        worker = make_worker(DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
                             DRIFTWARDEN_KAFKA_FLAVOR="tansu", DRIFTWARDEN_UNREGISTERED_MODEL="reject").start()
        key, value = encode(RegisteredModel(spec=ModelSpec.model_validate(SPEC)))
        asyncio.run(_send(broker.bootstrap_servers, [("models", key, value)]))
        wait_until(lambda: worker.sql("SELECT model_id FROM driftwarden.models FINAL"), 30, what="registration")

        good = [
            # hand-written JSON, as a producer in another language would send it: epoch ms and RFC 3339
            b'{"prediction_id":"g1","model_id":"churn","model_version":"2","timestamp":1767225600000,'
            b'"features":{"age":31,"plan":"free"},"prediction":"yes","score":0.8}',
            b'{"prediction_id":"g2","model_id":"churn","model_version":"2","timestamp":"2026-01-01T00:00:10Z",'
            b'"features":{"age":52,"plan":"pro","extra":null},"prediction":"no","score":0.2}',
            b'{"prediction_id":"g3","model_id":"churn","timestamp":"2026-01-01T00:00:20+00:00",'
            b'"features":{},"prediction":"yes","model_version":"2"}',
        ]
        labels = [b'{"prediction_id":"g1","label":"yes","timestamp":1767225660000}',
                  b'{"prediction_id":"g2","label":"yes","timestamp":"2026-01-01T00:01:05Z"}',
                  b'{"prediction_id":"g1","label":"yes","timestamp":1767225661000}',  # duplicate label: counted
                  b'not json either']
        bad = bad_predictions()
        duplicate = orjson.dumps(prediction("g1", T0 + 5_000))
        messages: list[tuple[str, bytes | None, bytes]] = [("predictions", f"g{i}".encode(), v)
                                                           for i, v in enumerate(good, 1)]
        messages += [("predictions", f"bad{i}".encode(), raw) for i, (_, raw) in enumerate(bad)]
        messages += [("predictions", b"g1", duplicate)]
        messages += [("ground_truth", b"g1" if b'"g1"' in v else b"g2", v) for v in labels]
        asyncio.run(_send(broker.bootstrap_servers, messages))

        expected = {reason: 1 for reason, _ in bad}
        expected["duplicate_prediction_id"] = 1
        expected["not_json"] = 2  # one prediction, one label

        def dead_letters() -> dict[str, int]:
            rows = worker.sql("SELECT reason, count() AS n FROM driftwarden.dead_letters FINAL GROUP BY reason")
            return {row["reason"]: row["n"] for row in rows}

        wait_until(lambda: dead_letters() == expected, 60, 0.3, f"dead letters {expected}")

        def windows() -> dict[str, float]:
            rows = worker.sql("SELECT metric, sum(value) AS v FROM driftwarden.window_metrics FINAL "
                              "WHERE segment = '' AND metric IN ('predictions', 'labelled', 'accuracy') "
                              "GROUP BY metric")
            return {row["metric"]: row["v"] for row in rows}

        wait_until(lambda: windows().get("labelled") == 2 and windows().get("predictions") == 3, 60, 0.3,
                   "the good events in window_metrics")
        assert windows()["accuracy"] == pytest.approx(0.5)  # g1 right (yes/yes), g2 wrong (no/yes)

        letters = {(row["topic"], row["reason"]): row for row in worker.sql(
            "SELECT topic, partition, offset, key, reason, error, length(raw) AS raw_len "
            "FROM driftwarden.dead_letters FINAL")}
        assert "timestamp" in letters[("predictions", "missing_field")]["error"]
        assert "score" in letters[("predictions", "wrong_type")]["error"]
        assert letters[("predictions", "too_large")]["raw_len"] <= 4096
        assert "nobody" in letters[("predictions", "unregistered_model")]["error"]
        assert letters[("predictions", "duplicate_prediction_id")]["key"] == "g1"
        assert letters[("ground_truth", "not_json")]["topic"] == "ground_truth"

        on_topic = asyncio.run(_read_all(broker.bootstrap_servers, "dead_letters", sum(expected.values())))
        assert sorted(orjson.loads(r.value)["reason"] for r in on_topic) == sorted(
            reason for reason, n in expected.items() for _ in range(n))

        # every offset of the input topics was processed or dead-lettered: nothing vanished
        total_predictions = len(good) + len(bad) + 1
        dead_predictions = sum(1 for topic, _ in letters if topic == "predictions")
        assert 3 + dead_predictions == total_predictions

        with urllib.request.urlopen(worker.url + "/metrics") as response:
            metrics = response.read().decode()
        for reason, n in expected.items():
            assert f'driftwarden_dead_letters_total{{reason="{reason}"}} {float(n)}' in metrics


def test_embedded_worker_keeps_its_windows_across_a_restart(make_worker: Any) -> None:
    from stream.client import Producer

    worker = make_worker("embedded").start()
    bootstrap = worker.runtime()["bootstrap_servers"]
    with Producer(bootstrap) as producer:
        producer.send_predictions(prediction(f"a{i}", T0 + i) for i in range(50))
    wait_until(lambda: worker.sql("SELECT sum(value) AS v FROM driftwarden.window_metrics FINAL "
                                  "WHERE metric = 'predictions' AND segment = ''")[0]["v"] == 50, 60, 0.3,
               "the first 50 predictions")
    assert worker.stop() == 0

    worker.start()
    bootstrap = worker.runtime()["bootstrap_servers"]  # a new, empty embedded broker
    with Producer(bootstrap) as producer:
        producer.send_predictions(prediction(f"b{i}", T0 + 100 + i) for i in range(30))
    wait_until(lambda: worker.sql("SELECT sum(value) AS v FROM driftwarden.window_metrics FINAL "
                                  "WHERE metric = 'predictions' AND segment = ''")[0]["v"] == 80, 60, 0.3,
               "80 predictions: the restored window plus the new ones")
