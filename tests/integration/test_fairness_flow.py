"""A protected group selected at half the rate of another (disparate impact 0.5 < 0.8) fires the default
four-fifths rule on the alerts topic; the fairness metrics land in window_metrics."""

from __future__ import annotations

import asyncio
from typing import Any

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
PER_WINDOW = 400
T0 = 1_767_225_600_000
SPEC = {
    "model_id": "loans", "version": "1", "task": "binary_classification", "positive_class": "approve",
    "features": [{"name": "income", "type": "numeric"}], "protected_attributes": ["sex"],
    "monitor": {"window_seconds": 10, "allowed_lateness_seconds": 0, "max_label_delay_seconds": 3600},
    "rules": [{"disable": rule["name"]} for rule in DEFAULT_RULES],
}


def window_events(window: int) -> list[tuple[str, bytes, bytes]]:
    """Group m is approved 80% of the time, group f 40%."""
    out = []
    for i in range(PER_WINDOW):
        pid = f"w{window}-{i}"
        sex = "f" if i % 2 else "m"
        approve = (i // 2) % 10 < (4 if sex == "f" else 8)
        out.append(("predictions", pid.encode(), orjson.dumps({
            "prediction_id": pid, "model_id": "loans", "model_version": "1",
            "timestamp": T0 + window * WINDOW_MS + i * (WINDOW_MS // PER_WINDOW), "features": {"income": float(i)},
            "segment": {"sex": sex}, "prediction": "approve" if approve else "deny"})))
    return out


def test_disparate_impact_below_four_fifths_fires_the_fairness_rule(make_worker: Any) -> None:
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        worker = make_worker("fairness", DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
                             DRIFTWARDEN_KAFKA_FLAVOR="tansu", DRIFTWARDEN_UNREGISTERED_MODEL="reject").start()
        key, value = encode(RegisteredModel(spec=ModelSpec.model_validate(SPEC)))
        asyncio.run(_send(bootstrap, [("models", key, value)]))
        wait_until(lambda: worker.sql("SELECT model_id FROM driftwarden.models FINAL"), 30, what="registration")
        asyncio.run(_send(bootstrap, window_events(0) + window_events(1)))  # window 1 closes window 0
        records = wait_until(lambda: asyncio.run(_read_all(bootstrap, "alerts", 1, timeout=2)), 60, 0.5,
                             "the fairness alert")
        rows = wait_until(lambda: worker.sql(
            "SELECT metric, value, samples FROM driftwarden.window_metrics FINAL WHERE model_id = 'loans' "
            f"AND segment = '' AND toUnixTimestamp64Milli(window_start) = {T0} AND metric LIKE '%:sex'"), 30,
            0.5, "the fairness metrics")
        assert worker.stop() == 0
    alert = AlertEvent.model_validate_json(records[0].value)
    assert (alert.rule, alert.state, alert.metric) == ("default-disparate-impact:sex", "firing",
                                                        "disparate_impact:sex")
    assert alert.observed == pytest.approx(0.5) and alert.threshold == 0.8
    got = {r["metric"]: (r["value"], r["samples"]) for r in rows}
    assert got["disparate_impact:sex"] == (pytest.approx(0.5), 200)
    assert got["demographic_parity_difference:sex"] == (pytest.approx(0.4), 200)
