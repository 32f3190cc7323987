"""Alertmanager payloads and delivery failures (the real Alertmanager is in tests/integration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stream.alerts.alertmanager import AlertmanagerSender, alertmanager_alert
from stream.config import Settings
from stream.contracts.events import AlertEvent
from tests.helpers import free_port

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def event(state: str = "firing", segment: str = "", observed: float | None = 0.25) -> AlertEvent:
    return AlertEvent(
        alert_id="a1", state=state, severity="warning", model_id="fraud/eu", model_version="3",  # type: ignore[arg-type]
        segment=segment, rule="default-label-coverage", metric="label_coverage", observed=observed,
        threshold=0.5, window_start=T0, window_end=T0 + timedelta(minutes=5), time=T0, message="coverage fell",
        evidence_sql="SELECT 2",
    )


def test_payload_has_the_labels_annotations_and_times_alertmanager_expects() -> None:
    alert = alertmanager_alert(event(segment="region=eu"), "http://dw:6066/", T0, T0 + timedelta(minutes=4))
    assert alert == {
        "labels": {"alertname": "default-label-coverage", "model": "fraud/eu", "version": "3",
                   "rule": "default-label-coverage", "severity": "warning", "segment": "region=eu"},
        "annotations": {"summary": "coverage fell", "evidence_sql": "SELECT 2",
                        "link": "http://dw:6066/models/fraud%2Feu", "alert_id": "a1", "metric": "label_coverage",
                        "observed": "0.25", "threshold": "0.5"},
        "startsAt": "2026-01-02T03:04:05Z",
        "endsAt": "2026-01-02T03:08:05Z",
        "generatorURL": "http://dw:6066/models/fraud%2Feu",
    }
    whole = alertmanager_alert(event(observed=None), "http://dw:6066", T0, T0)
    assert "segment" not in whole["labels"] and "observed" not in whole["annotations"]


async def test_firing_is_kept_until_resolved_and_resolved_carries_ends_at() -> None:
    sender = AlertmanagerSender(["http://127.0.0.1:1"], "http://x", resend_seconds=10)
    sender.submit(event())
    assert set(sender.firing) == {"a1"}
    ends = datetime.fromisoformat(sender._changed["a1"]["endsAt"])
    assert ends - datetime.now(UTC) > timedelta(seconds=39)  # 4 re-send intervals ahead
    resolved = event("resolved").model_copy(update={"time": T0 + timedelta(minutes=10)})
    sender.submit(resolved)
    assert not sender.firing
    assert sender._changed["a1"]["startsAt"] == "2026-01-02T03:04:05Z"
    assert sender._changed["a1"]["endsAt"] == "2026-01-02T03:14:05Z"


async def test_an_unreachable_alertmanager_is_retried_and_counted_without_raising() -> None:
    sender = AlertmanagerSender([f"http://127.0.0.1:{free_port()}"], "http://x", retries=1, backoff=0.01)
    await sender.start()
    try:
        sender.submit(event())
        assert await sender.flush(10)
        assert sender.counts["failed"] == 1 and sender.counts["retries"] == 1 and sender.counts["posts"] == 0
        assert "a1" in sender.firing and "a1" in sender._changed  # kept for the next attempt
    finally:
        await sender.close()


def test_bad_settings_fail_with_one_line() -> None:
    with pytest.raises(ValueError, match="must start with http"):
        AlertmanagerSender(["alertmanager:9093"], "http://x")
    with pytest.raises(ValueError, match="at least one"):
        AlertmanagerSender([], "http://x")


def test_settings_split_urls_and_default_the_public_url_to_the_web_address() -> None:
    s = Settings(alertmanager_url="http://a:9093, http://b:9093/", web_host="0.0.0.0", web_port=7000)
    assert s.alertmanager_urls == ["http://a:9093", "http://b:9093/"]
    assert s.public_base_url == "http://127.0.0.1:7000"
    assert Settings(public_url="https://dw.example.com/").public_base_url == "https://dw.example.com"
    assert Settings().alertmanager_urls == []
