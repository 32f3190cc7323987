"""A challenger (shadow) model scoring the same requests as its champion, with the same prediction_ids, on
the real broker and engine: one label per request reaches both models, each gets its own outcomes and
window metrics, the window's paired comparison lands in model_comparisons and a rule on its verdict fires."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from scipy.stats import chi2

from stream.alerts.rules import DEFAULT_RULES
from stream.contracts.events import ModelSpec
from stream.contracts.registry import RegisteredModel, encode
from stream.kafka.embedded import EmbeddedBroker
from tests.helpers import wait_until
from tests.integration.test_alerts_flow import _send

pytestmark = pytest.mark.integration

WINDOW_MS = 10_000
PER_WINDOW = 200
T0 = 1_767_225_600_000
LABELLED = PER_WINDOW - PER_WINDOW // 20  # the champion's: the labels naming the challenger do not reach it


def spec(model_id: str, champion: str | None = None) -> dict[str, Any]:
    return {
        "model_id": model_id, "version": "1", "task": "binary_classification", "positive_class": "yes",
        "features": [{"name": "x", "type": "numeric"}], "champion": champion,
        "monitor": {"window_seconds": 10, "allowed_lateness_seconds": 0, "max_label_delay_seconds": 3600},
        "rules": [{"disable": rule["name"]} for rule in DEFAULT_RULES] + ([] if champion else [
            {"kind": "threshold", "name": "champion-wins", "metric": "challenger_verdict:churn-next", "op": "<=",
             "value": -1, "min_samples": 30}]),
    }


def truth(i: int) -> str:
    return "yes" if i % 2 else "no"


def events(window: int) -> list[tuple[str, bytes, bytes]]:
    """The champion is right on 90% of the requests, the challenger on 60%; every label names no model, but
    every 20th, which names the challenger (it still reaches only the challenger)."""
    out = []
    for i in range(PER_WINDOW):
        pid = f"w{window}-{i}"
        ts = T0 + window * WINDOW_MS + i * (WINDOW_MS // PER_WINDOW)
        flip = {"yes": "no", "no": "yes"}
        for model, right in (("churn", i % 10 != 0), ("churn-next", i % 10 < 6)):
            out.append(("predictions", pid.encode(), orjson.dumps({
                "prediction_id": pid, "model_id": model, "timestamp": ts, "features": {"x": float(i)},
                "prediction": truth(i) if right else flip[truth(i)]})))
        if window == 0:
            label: dict[str, Any] = {"prediction_id": pid, "label": truth(i), "timestamp": ts + 1000}
            if i % 20 == 0:
                label["model_id"] = "churn-next"
            out.append(("ground_truth", pid.encode(), orjson.dumps(label)))
    return out


def test_shadow_model_gets_its_own_outcomes(make_worker: Any) -> None:
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        worker = make_worker("champion", DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
                             DRIFTWARDEN_KAFKA_FLAVOR="tansu", DRIFTWARDEN_UNREGISTERED_MODEL="reject").start()
        models = [encode(RegisteredModel(spec=ModelSpec.model_validate(s)))
                  for s in (spec("churn"), spec("churn-next", champion="churn"))]
        asyncio.run(_send(bootstrap, [("models", k, v) for k, v in models]))
        wait_until(lambda: len(worker.sql("SELECT model_id FROM driftwarden.models FINAL")) == 2, 30,
                   what="registration")
        asyncio.run(_send(bootstrap, events(0) + events(1)))  # window 1 closes window 0
        def all_outcomes() -> list[dict[str, Any]]:
            rows = worker.sql("SELECT model_id, count() AS n, countIf(prediction = label) AS right FROM "
                              "driftwarden.outcomes FINAL GROUP BY model_id ORDER BY model_id")
            return rows if [r["n"] for r in rows] == [LABELLED, PER_WINDOW] else []

        def accuracies() -> list[dict[str, Any]]:
            rows = worker.sql("SELECT model_id, value, samples FROM driftwarden.window_metrics FINAL WHERE metric = "
                              f"'accuracy' AND segment = '' AND toUnixTimestamp64Milli(window_start) = {T0} "
                              "ORDER BY model_id")
            return rows if [r["samples"] for r in rows] == [LABELLED, PER_WINDOW] else []

        def comparison() -> list[dict[str, Any]]:
            rows = worker.sql("SELECT * FROM driftwarden.model_comparisons FINAL")
            return rows if [r["pairs"] for r in rows] == [LABELLED] else []

        counts = wait_until(all_outcomes, 60, 0.5, "the outcomes of both models")
        compared = wait_until(comparison, 30, 0.5, "the comparison")
        alerts = wait_until(lambda: worker.sql("SELECT rule, state, observed FROM driftwarden.alerts FINAL"), 30,
                            0.5, "the champion-wins alert")
        accuracy = wait_until(accuracies, 30, 0.5, "the accuracy of both models")
        dead = worker.sql("SELECT reason FROM driftwarden.dead_letters")
        assert worker.stop() == 0
    assert [(r["model_id"], r["n"]) for r in counts] == [("churn", LABELLED), ("churn-next", PER_WINDOW)]
    assert counts[0]["right"] == sum(1 for i in range(PER_WINDOW) if i % 20 and i % 10)
    assert counts[1]["right"] == sum(1 for i in range(PER_WINDOW) if i % 10 < 6)
    assert [(r["model_id"], r["samples"]) for r in accuracy] == [("churn", LABELLED), ("churn-next", PER_WINDOW)]
    assert dead == []
    champion_right = [i % 10 != 0 for i in range(PER_WINDOW) if i % 20]  # the pairs: labels naming no model
    challenger_right = [i % 10 < 6 for i in range(PER_WINDOW) if i % 20]
    b = sum(x and not y for x, y in zip(champion_right, challenger_right, strict=True))
    c = sum(y and not x for x, y in zip(champion_right, challenger_right, strict=True))
    row = compared[0]
    assert (row["champion_id"], row["challenger_id"], row["metric"], row["test"]) == (
        "churn", "churn-next", "accuracy", "mcnemar_chi2")
    assert (row["champion_only"], row["challenger_only"], row["verdict"]) == (b, c, "champion_better")
    assert row["difference"] == pytest.approx((sum(challenger_right) - sum(champion_right)) / LABELLED)
    assert row["p_value"] == pytest.approx(float(chi2.sf((abs(b - c) - 1) ** 2 / (b + c), 1)))
    assert [(a["rule"], a["state"], a["observed"]) for a in alerts] == [("champion-wins", "firing", -1.0)]
