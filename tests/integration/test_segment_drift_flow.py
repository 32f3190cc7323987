"""A drift confined to one of ten segments is detected in that segment and not diluted away: through the real
broker and engine, the feature_drift row of the segment flags while the whole-model row does not, the
feature-drift rule fires for that segment on the alerts topic, and data quality has rows per segment."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import orjson
import pytest

from stream.alerts.rules import DEFAULT_RULES
from stream.contracts.events import AlertEvent, ModelSpec
from stream.contracts.registry import RegisteredModel, encode
from stream.kafka.embedded import EmbeddedBroker
from tests.helpers import wait_until
from tests.integration.test_alerts_flow import _send
from tests.integration.test_ingest_wire import _read_all

pytestmark = pytest.mark.integration

WINDOW_MS = 10_000
T0 = 1_767_225_600_000
SPEC = {
    "model_id": "shops", "version": "1", "task": "regression",
    "features": [{"name": "x", "type": "numeric"}], "segment_fields": ["store"],
    "monitor": {"window_seconds": 10, "allowed_lateness_seconds": 0, "max_label_delay_seconds": 3600,
                "reference_events": 1000},
    "rules": [*({"disable": rule["name"]} for rule in DEFAULT_RULES),
              {"name": "x-drift", "kind": "feature_drift", "feature": "x", "test": "ks"}],
}


def window_events(window: int, n: int, shifted: str | None, rng: np.random.Generator) -> list[tuple[str, bytes,
                                                                                                    bytes]]:
    """Ten stores; x ~ N(0, 1), shifted by one standard deviation in store ``shifted`` only."""
    out = []
    for i in range(n):
        pid = f"w{window}-{i}"
        store = f"s{i % 10}"
        x = float(rng.normal()) + (1.0 if store == shifted else 0.0)
        out.append(("predictions", pid.encode(), orjson.dumps({
            "prediction_id": pid, "model_id": "shops", "model_version": "1",
            "timestamp": T0 + window * WINDOW_MS + i * (WINDOW_MS // n), "features": {"x": x},
            "segment": {"store": store}, "prediction": float(rng.normal())})))
    return out


def test_a_drift_confined_to_one_segment_is_detected_in_that_segment(make_worker: Any) -> None:
    rng = np.random.default_rng(17)
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        worker = make_worker("segments", DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
                             DRIFTWARDEN_KAFKA_FLAVOR="tansu", DRIFTWARDEN_UNREGISTERED_MODEL="reject").start()
        key, value = encode(RegisteredModel(spec=ModelSpec.model_validate(SPEC)))
        asyncio.run(_send(bootstrap, [("models", key, value)]))
        wait_until(lambda: worker.sql("SELECT model_id FROM driftwarden.models FINAL"), 30, what="registration")
        # window 0 builds the reference, window 1 has the shift in store s3, window 2 closes window 1
        asyncio.run(_send(bootstrap, window_events(0, 1000, None, rng) + window_events(1, 3000, "s3", rng)
                          + window_events(2, 10, None, rng)))
        records = wait_until(lambda: asyncio.run(_read_all(bootstrap, "alerts", 1, timeout=2)), 60, 0.5,
                             "the segment's drift alert")
        w1 = f"toUnixTimestamp64Milli(window_start) = {T0 + WINDOW_MS}"
        rows = wait_until(lambda: worker.sql(
            "SELECT segment, drifted, p_value, samples FROM driftwarden.feature_drift FINAL "
            f"WHERE model_id = 'shops' AND feature = 'x' AND test = 'ks' AND {w1}"), 30, 0.5, "the drift rows")
        quality = worker.sql("SELECT DISTINCT segment FROM driftwarden.data_quality FINAL "
                             f"WHERE model_id = 'shops' AND {w1}")
        assert worker.stop() == 0
    alert = AlertEvent.model_validate_json(records[0].value)
    assert (alert.rule, alert.state, alert.segment) == ("x-drift", "firing", "store=s3")
    got = {r["segment"]: r for r in rows}
    assert set(got) == {"", *(f"store=s{i}" for i in range(10))}
    # the first 1,000 events to arrive build the reference (partitions interleave windows 0 and 1)
    assert got["store=s3"]["drifted"] == 1 and got["store=s3"]["samples"] > 150
    assert sum(r["samples"] for s, r in got.items() if s) == got[""]["samples"]
    assert got[""]["drifted"] == 0 and got[""]["p_value"] > 1e3 * got["store=s3"]["p_value"]
    assert [s for s, r in got.items() if r["drifted"]] == ["store=s3"]
    assert {r["segment"] for r in quality} == set(got)
