"""A model stops sending: one no-data alert fires by the wall clock while the stream is idle, and resolves when
its traffic resumes (a real `driftwarden up` worker on the embedded broker)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from stream.alerts.rules import DEFAULT_RULES
from stream.contracts.events import ModelSpec
from stream.contracts.registry import RegisteredModel, encode
from stream.kafka.embedded import EmbeddedBroker
from tests.helpers import wait_until
from tests.integration.conftest import http_json
from tests.integration.test_alerts_flow import _send

pytestmark = pytest.mark.integration

WINDOW_SECONDS = 2
NO_DATA_WINDOWS = 3
SPEC = {
    "model_id": "scorer", "version": "1", "task": "regression",
    "features": [{"name": "x", "type": "numeric"}],
    "monitor": {"window_seconds": WINDOW_SECONDS, "allowed_lateness_seconds": 0},
    "rules": [{"disable": r["name"]} for r in DEFAULT_RULES if r["name"] != "default-no-data"]
    + [{"name": "default-no-data", "kind": "no_data", "windows": NO_DATA_WINDOWS}],
}


def predictions(batch: int, n: int = 20) -> list[tuple[str, bytes, bytes]]:
    now = int(time.time() * 1000)
    return [("predictions", f"b{batch}-{i}".encode(), orjson.dumps({
        "prediction_id": f"b{batch}-{i}", "model_id": "scorer", "model_version": "1", "timestamp": now,
        "features": {"x": float(i)}, "prediction": float(i)})) for i in range(n)]


def alerts(worker: Any) -> list[dict[str, Any]]:
    return worker.sql("SELECT alert_id, state, rule, time, message FROM driftwarden.alerts FINAL "
                      "WHERE model_id = 'scorer' ORDER BY time")


def test_a_model_that_stops_sending_fires_one_no_data_alert_then_resolves_when_it_resumes(make_worker: Any) -> None:
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        worker = make_worker("nodata", DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
                             DRIFTWARDEN_KAFKA_FLAVOR="tansu", DRIFTWARDEN_UNREGISTERED_MODEL="reject").start()
        key, value = encode(RegisteredModel(spec=ModelSpec.model_validate(SPEC)))
        asyncio.run(_send(bootstrap, [("models", key, value)]))
        wait_until(lambda: worker.sql("SELECT model_id FROM driftwarden.models FINAL"), 30, what="registration")

        asyncio.run(_send(bootstrap, predictions(0)))
        last_sent = time.time()
        wait_until(lambda: worker.sql("SELECT 1 FROM driftwarden.window_metrics WHERE model_id = 'scorer' "
                                      "AND metric = 'predictions' LIMIT 1"), 30, 0.2, "the predictions counted")
        fired = wait_until(lambda: alerts(worker), 60, 0.2, "the no-data alert")
        assert [(a["state"], a["rule"]) for a in fired] == [("firing", "default-no-data")]
        fired_at = datetime.fromisoformat(str(fired[0]["time"])).replace(tzinfo=UTC).timestamp()
        silence = NO_DATA_WINDOWS * WINDOW_SECONDS
        # Documented: it fires between N windows and N windows + one timer tick after the last prediction
        # arrived; arrival is after sending, and a loaded machine may delay the tick (hence the slack).
        assert last_sent + silence <= fired_at <= last_sent + silence + 10, fired_at - last_sent
        assert "no predictions from scorer" in fired[0]["message"]
        status, active = http_json(worker.url + "/alerts/active")
        assert status == 200 and active["firing"] == 1, active
        first = active["alerts"][0]
        assert (first["alert_id"], first["rule"]) == (fired[0]["alert_id"], "default-no-data")
        assert "metric = 'predictions'" in first["evidence_sql"]

        asyncio.run(_send(bootstrap, predictions(1)))
        both = wait_until(lambda: [a for a in alerts(worker) if a["state"] == "resolved"] and alerts(worker),
                          60, 0.2, "the resolved alert")
        assert [(a["state"], a["alert_id"]) for a in both] == [
            ("firing", fired[0]["alert_id"]), ("resolved", fired[0]["alert_id"])]
        assert http_json(worker.url + "/alerts/active?model=scorer") == (200, {"firing": 0, "alerts": []})
        assert worker.stop() == 0
