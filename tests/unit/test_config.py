"""Settings from DRIFTWARDEN_* variables."""

from __future__ import annotations

import orjson
import pytest

from stream.config import Settings
from stream.contracts.registry import Registry
from stream.pipeline.ingest import Ingest, RawRecord


def test_size_limits_come_from_the_environment_and_reach_ingest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTWARDEN_MAX_FEATURES", "3")
    monkeypatch.setenv("DRIFTWARDEN_MAX_MESSAGE_BYTES", "400")
    settings = Settings()
    assert (settings.limits.max_features, settings.limits.max_message_bytes) == (3, 400)
    ingest = Ingest(Registry(), settings.limits, "predictions", "ground_truth", 1000)
    event = {"prediction_id": "p", "model_id": "m", "timestamp": 0, "prediction": 1.0,
             "features": {"a": 1, "b": 2, "c": 3, "d": 4}}
    big = {**event, "prediction_id": "q", "features": {"a": "x" * 500}}
    result = ingest.process([RawRecord("predictions", 0, 0, b"p", orjson.dumps(event)),
                             RawRecord("predictions", 0, 1, b"q", orjson.dumps(big))])
    assert [d.reason for d in result.dead_letters] == ["too_many_features", "too_large"]


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTWARDEN_CLICKHOUSE_DSN", "http://u:pw@h:8123/db")
    monkeypatch.setenv("DRIFTWARDEN_WEBHOOK_SECRET", "s3cret")
    shown = str(Settings().masked())
    assert "pw" not in shown.replace("password", "") and "s3cret" not in shown and "u:***@h:8123" in shown
