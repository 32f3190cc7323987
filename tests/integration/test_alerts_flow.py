"""Accuracy falls, then recovers: exactly one firing and one resolved event on the alerts topic, with the worker
restarted in between."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from stream.alerts.rules import DEFAULT_RULES
from stream.contracts.events import AlertEvent, ModelSpec
from stream.contracts.registry import RegisteredModel, encode
from stream.kafka.embedded import EmbeddedBroker
from tests.helpers import wait_until
from tests.integration.test_ingest_wire import _read_all

pytestmark = pytest.mark.integration

WINDOW_MS = 10_000
PER_WINDOW = 120
T0 = 1_767_225_600_000
SPEC = {
    "model_id": "fraud", "version": "1", "task": "binary_classification", "positive_class": "fraud",
    "features": [{"name": "amount", "type": "numeric"}],
    "monitor": {"window_seconds": 10, "allowed_lateness_seconds": 0, "max_label_delay_seconds": 3600},
    "rules": [{"disable": rule["name"]} for rule in DEFAULT_RULES] + [
        {"kind": "threshold", "name": "accuracy-floor", "metric": "accuracy", "op": "<", "value": 0.8,
         "min_samples": 100, "resolve_after": 2, "cooldown_windows": 0, "severity": "critical"}],
}


def window_events(window: int, accuracy: float) -> list[tuple[str, bytes, bytes]]:
    """One window of predictions, each followed by its label; ``accuracy`` of them are right."""
    out = []
    right = int(PER_WINDOW * accuracy)
    for i in range(PER_WINDOW):
        pid = f"w{window}-{i}"
        ts = T0 + window * WINDOW_MS + i * (WINDOW_MS // PER_WINDOW)
        prediction = "fraud" if i % 2 else "ok"
        label = prediction if i < right else ("ok" if prediction == "fraud" else "fraud")
        out.append(("predictions", pid.encode(), orjson.dumps({
            "prediction_id": pid, "model_id": "fraud", "model_version": "1", "timestamp": ts,
            "features": {"amount": float(i)}, "prediction": prediction, "score": 0.9 if i % 2 else 0.1})))
        out.append(("ground_truth", pid.encode(), orjson.dumps(
            {"prediction_id": pid, "label": label, "timestamp": ts + 1})))
    return out


async def _send(bootstrap: str, messages: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for topic, key, value in messages:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def _labelled(worker: Any, window: int) -> float:
    rows = worker.sql(
        "SELECT value FROM driftwarden.window_metrics FINAL WHERE model_id = 'fraud' AND segment = '' "
        f"AND metric = 'labelled' AND toUnixTimestamp64Milli(window_start) = {T0 + window * WINDOW_MS}")
    return rows[0]["value"] if rows else 0.0


def _feed(worker: Any, bootstrap: str, windows: list[tuple[int, float]]) -> None:
    for window, accuracy in windows:
        asyncio.run(_send(bootstrap, window_events(window, accuracy)))
        def labelled(w: int = window) -> bool:
            return _labelled(worker, w) == PER_WINDOW

        wait_until(labelled, 60, 0.2, f"window {window} labelled")


def _alerts(bootstrap: str, expected: int) -> list[AlertEvent]:
    records = asyncio.run(_read_all(bootstrap, "alerts", expected, timeout=5))
    return [AlertEvent.model_validate_json(r.value) for r in records]


def test_accuracy_drop_fires_once_and_resolves_once_across_a_restart(make_worker: Any) -> None:
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        env = {"DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DRIFTWARDEN_KAFKA_FLAVOR": "tansu",
               "DRIFTWARDEN_UNREGISTERED_MODEL": "reject", "DRIFTWARDEN_IDLE_CLOSE_SECONDS": "600"}
        worker = make_worker("alerts", **env).start()
        key, value = encode(RegisteredModel(spec=ModelSpec.model_validate(SPEC)))
        asyncio.run(_send(bootstrap, [("models", key, value)]))
        wait_until(lambda: worker.sql("SELECT model_id FROM driftwarden.models FINAL"), 30, what="registration")

        # good, good, good, bad, bad (window 5 closes when window 6 starts)
        _feed(worker, bootstrap, [(0, 0.95), (1, 0.95), (2, 0.95), (3, 0.5), (4, 0.5), (5, 0.95)])
        wait_until(lambda: _alerts(bootstrap, 1), 60, 0.5, "the firing alert")
        assert worker.stop() == 0

        worker.start()
        # recovery: windows 5, 6 good -> resolved after two false windows; window 7 closes window 6
        _feed(worker, bootstrap, [(6, 0.95), (7, 0.95), (8, 0.95)])
        wait_until(lambda: len(_alerts(bootstrap, 2)) >= 2, 60, 0.5, "the resolved alert")
        rows = worker.sql("SELECT alert_id, state FROM driftwarden.alerts FINAL ORDER BY time")
        assert worker.stop() == 0
        on_topic = _alerts(bootstrap, 3)  # waits its whole timeout for a third event that must not come

    assert [(a.state, a.rule, a.severity) for a in on_topic] == [
        ("firing", "accuracy-floor", "critical"), ("resolved", "accuracy-floor", "critical")]
    assert on_topic[0].alert_id == on_topic[1].alert_id
    assert on_topic[0].observed == pytest.approx(0.5, abs=0.01) and on_topic[0].threshold == 0.8
    assert "accuracy of fraud v1" in on_topic[0].message and "FROM driftwarden." in on_topic[0].evidence_sql
    assert [(r["alert_id"], r["state"]) for r in rows] == [(a.alert_id, a.state) for a in on_topic]
