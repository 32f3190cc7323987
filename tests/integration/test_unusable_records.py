"""A third-party client (confluent-kafka / librdkafka) sends records that cannot be events (a tombstone, an
empty value, a null key, headers only) to both input topics of a running worker: each is dead-lettered with its
reason and counted, and the valid pairs sent after them are still processed."""

from __future__ import annotations

import urllib.request
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from tests.helpers import wait_until

pytestmark = pytest.mark.integration

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _prediction(pid: str, i: int) -> bytes:
    return orjson.dumps({"prediction_id": pid, "model_id": "rk", "model_version": "1", "timestamp": T0 + i * 1000,
                         "features": {"x": float(i)}, "prediction": "yes" if i % 2 else "no", "score": 0.7})


def _label(pid: str, i: int) -> bytes:
    return orjson.dumps({"prediction_id": pid, "label": "yes", "timestamp": T0 + i * 1000 + 500})


def test_tombstones_empty_values_and_null_keys_are_dead_lettered_and_the_worker_goes_on(make_worker: Any) -> None:
    worker = make_worker("embedded").start()
    bootstrap = worker.runtime()["bootstrap_servers"]
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False, "acks": "all",
                         "partitioner": "murmur2_random"})
    unusable = {"null_value": 0, "empty_value": 0, "null_key": 0, "headers_only": 0}
    for topic in ("predictions", "ground_truth"):
        producer.produce(topic, key=b"t-1", value=None)  # a tombstone
        producer.produce(topic, key=b"t-2", value=b"")
        producer.produce(topic, key=None, value=_prediction("t-3", 0) if topic == "predictions" else _label("t-3", 0))
        producer.produce(topic, key=b"t-4", value=None, headers=[("trace-id", b"abc")])
        for reason in unusable:
            unusable[reason] += 1
    assert producer.flush(30) == 0
    pairs = 10
    for i in range(pairs):  # valid pairs after the unusable records
        producer.produce("predictions", key=f"v{i}".encode(), value=_prediction(f"v{i}", i))
        producer.produce("ground_truth", key=f"v{i}".encode(), value=_label(f"v{i}", i))
    assert producer.flush(30) == 0

    def dead_letters() -> dict[tuple[str, str], int]:
        rows = worker.sql("SELECT topic, reason, count() AS n FROM driftwarden.dead_letters FINAL "
                          "GROUP BY topic, reason")
        return {(row["topic"], row["reason"]): row["n"] for row in rows}

    expected = {(topic, reason): 1 for topic in ("predictions", "ground_truth") for reason in unusable}
    wait_until(lambda: dead_letters() == expected, 60, 0.3, f"dead letters {expected}")

    def labelled() -> float:
        rows = worker.sql("SELECT sum(value) AS v FROM driftwarden.window_metrics FINAL "
                          "WHERE metric = 'labelled' AND segment = '' AND model_id = 'rk'")
        return float(rows[0]["v"] or 0) if rows else 0.0

    wait_until(lambda: labelled() == pairs, 60, 0.3, f"{pairs} labelled pairs in window_metrics")
    assert worker.process is not None and worker.process.poll() is None  # still running

    with urllib.request.urlopen(worker.url + "/metrics") as response:
        metrics = response.read().decode()
    for reason, n in unusable.items():
        assert f'driftwarden_dead_letters_total{{reason="{reason}"}} {float(n)}' in metrics
    tombstone = worker.sql("SELECT key, raw, error FROM driftwarden.dead_letters FINAL "
                           "WHERE reason = 'null_value' AND topic = 'predictions'")[0]
    assert tombstone["key"] == "t-1" and tombstone["raw"] == "" and "tombstone" in tombstone["error"]
