"""Label maturity on a real worker: predictions first, then labels within the declared label delay -> no coverage
alert; labels that never arrive -> the coverage alert fires once the window's labels are due."""

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
from tests.integration.test_alerts_flow import _send

pytestmark = pytest.mark.integration

LABEL_DELAY = 8
N = 120  # above the rules' min_samples (100)


def spec(model_id: str) -> dict[str, Any]:
    keep = {"default-label-coverage"}
    return {
        "model_id": model_id, "version": "1", "task": "binary_classification", "positive_class": "1",
        "features": [{"name": "x", "type": "numeric"}],
        "monitor": {"window_seconds": 2, "allowed_lateness_seconds": 0, "label_delay_seconds": LABEL_DELAY},
        "rules": [{"disable": r["name"]} for r in DEFAULT_RULES if r["name"] not in keep] + [
            # fires when the window is judged with its labels in: proof that the judgement happened
            {"name": "judged-with-labels", "kind": "threshold", "metric": "label_coverage", "op": ">", "value": 0.5,
             "severity": "info"}],
    }


def predictions(model_id: str, ts: int) -> list[tuple[str, bytes, bytes]]:
    return [("predictions", f"{model_id}-{i}".encode(), orjson.dumps({
        "prediction_id": f"{model_id}-{i}", "model_id": model_id, "model_version": "1", "timestamp": ts,
        "features": {"x": float(i)}, "prediction": "1", "score": 0.9})) for i in range(N)]


def labels(model_id: str, ts: int) -> list[tuple[str, bytes, bytes]]:
    return [("ground_truth", f"{model_id}-{i}".encode(), orjson.dumps(
        {"prediction_id": f"{model_id}-{i}", "label": "1", "timestamp": ts})) for i in range(N)]


def alerts(worker: Any) -> list[dict[str, Any]]:
    return worker.sql("SELECT model_id, rule, state, time, observed FROM driftwarden.alerts FINAL ORDER BY time")


def test_coverage_waits_for_the_declared_label_delay(make_worker: Any) -> None:
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        worker = make_worker("maturity", DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
                             DRIFTWARDEN_KAFKA_FLAVOR="tansu", DRIFTWARDEN_UNREGISTERED_MODEL="reject").start()
        models = [encode(RegisteredModel(spec=ModelSpec.model_validate(spec(m)))) for m in ("labelled", "unlabelled")]
        asyncio.run(_send(bootstrap, [("models", k, v) for k, v in models]))
        wait_until(lambda: len(worker.sql("SELECT model_id FROM driftwarden.models FINAL")) == 2, 30,
                   what="registration")

        now = int(time.time() * 1000)
        asyncio.run(_send(bootstrap, predictions("labelled", now) + predictions("unlabelled", now)))
        sent = time.time()
        # Both windows close (idle timer; data-quality rows are written at the close) with no label yet.
        wait_until(lambda: len(worker.sql("SELECT DISTINCT model_id FROM driftwarden.data_quality")) == 2, 30, 0.2,
                   "both windows closed")
        assert alerts(worker) == []  # closed without labels: coverage not judged
        asyncio.run(_send(bootstrap, labels("labelled", now + 3000)))  # well within the label delay

        def judged() -> list[dict[str, Any]]:
            got = alerts(worker)
            rules = {(a["model_id"], a["rule"]) for a in got}
            done = {("labelled", "judged-with-labels"), ("unlabelled", "default-label-coverage")} <= rules
            return got if done else []

        got = wait_until(judged, 60, 0.2, "both windows judged at maturity")
        assert [(a["model_id"], a["rule"], a["state"], a["observed"]) for a in got
                if a["rule"] == "default-label-coverage"] == [("unlabelled", "default-label-coverage", "firing", 0.0)]
        fired = next(a for a in got if a["model_id"] == "unlabelled")
        fired_at = datetime.fromisoformat(str(fired["time"])).replace(tzinfo=UTC).timestamp()
        assert fired_at >= sent + LABEL_DELAY, fired_at - sent  # not before its labels were due
        assert worker.stop() == 0
