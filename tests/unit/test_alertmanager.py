"""Alertmanager payloads and delivery failures (the real Alertmanager is in tests/integration)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from stream.alerts.alertmanager import AlertmanagerSender, alertmanager_alert
from stream.alerts.history import ACTIVE_COLUMNS, active_events, active_query
from stream.config import Settings
from stream.contracts.events import AlertEvent
from stream.runtime.agents import Runtime
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


async def serve_alertmanager(
    handle: Callable[[web.Request], Awaitable[web.Response]],
) -> tuple[web.AppRunner, int]:
    """A local stand-in for Alertmanager's ``POST /api/v2/alerts``; returns its runner (to clean up) and port."""
    app = web.Application()
    app.router.add_post("/api/v2/alerts", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


async def test_failed_posts_are_logged_with_the_status_and_the_start_of_the_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = [(400, "bad alert"), (429, "slow down"), (503, "x" * 300)]

    async def take(request: web.Request) -> web.Response:
        status, text = answers.pop(0)
        return web.Response(status=status, text=text)

    runner, port = await serve_alertmanager(take)
    sender = AlertmanagerSender([f"http://bob:pw@127.0.0.1:{port}/"], "http://x", retries=1, backoff=0.0)
    await sender.start()
    try:
        with caplog.at_level("WARNING", logger="stream.alerts.alertmanager"):
            sender.submit(event())  # 400: not retried
            assert await sender.flush(10)
            sender.submit(event("resolved"))  # 429, then 503: retried once, then given up
            assert await sender.flush(10)
        assert sender.counts == {"posts": 0, "alerts_sent": 0, "failed": 2, "retries": 1}
        prefix = f"Alertmanager http://127.0.0.1:{port}: alerts not delivered: "
        assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
            ("stream.alerts.alertmanager", "WARNING", prefix + "ValueError: HTTP 400 bad alert"),
            ("stream.alerts.alertmanager", "WARNING", prefix + "HTTP 503 " + "x" * 200),
        ]
    finally:
        await sender.close()
        await runner.cleanup()


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


def active_row(alert_id: str = "a9", since: str = "2026-01-01 12:09:00.000") -> tuple[Any, ...]:
    """One row of ``active_query`` as ClickHouse returns it (timestamps are strings there)."""
    values = {"firing_since": since, "severity": "critical", "model_id": "churn", "model_version": "1", "segment": "",
              "rule": "cov", "metric": "label_coverage", "observed": 0.6, "threshold": 0.8,
              "window_start": "2026-01-01 12:00:00.000", "message": "a9 firing", "evidence_sql": "SELECT 9",
              "alert_id": alert_id}
    return tuple(values[c] for c in ACTIVE_COLUMNS)


def test_active_rows_become_firing_events_since_they_fired() -> None:
    (seeded,) = active_events(ACTIVE_COLUMNS, [active_row()])
    assert seeded.state == "firing" and seeded.alert_id == "a9" and seeded.model_id == "churn"
    assert seeded.time == datetime(2026, 1, 1, 12, 9, tzinfo=UTC)
    assert seeded.window_start == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert (seeded.observed, seeded.threshold, seeded.evidence_sql) == (0.6, 0.8, "SELECT 9")
    no_window = (*active_row()[:9], None, *active_row()[10:])
    assert active_events(ACTIVE_COLUMNS, [no_window])[0].window_start is None


async def test_seeded_alerts_are_posted_at_once_and_re_sent_while_firing() -> None:
    posts: list[list[dict[str, Any]]] = []

    async def take(request: web.Request) -> web.Response:
        posts.append(await request.json())
        return web.Response(status=200)

    runner, port = await serve_alertmanager(take)
    sender = AlertmanagerSender([f"http://127.0.0.1:{port}"], "http://x", resend_seconds=0.2)
    try:
        sender.submit(event())  # known since start: the seed must not replace it
        sender.seed(active_events(ACTIVE_COLUMNS, [active_row(), active_row("a1")]))
        assert set(sender.firing) == {"a1", "a9"} and sender.firing["a1"][1] == T0
        await sender.start()
        deadline = time.monotonic() + 20
        while sum(any(a["annotations"]["alert_id"] == "a9" for a in body) for body in posts) < 3:
            assert time.monotonic() < deadline, f"seeded alert not re-sent: {posts}"
            await asyncio.sleep(0.05)
        seeded = [a for body in posts for a in body if a["annotations"]["alert_id"] == "a9"]
        assert all(a["startsAt"] == "2026-01-01T12:09:00Z" for a in seeded)
        assert all(datetime.fromisoformat(a["endsAt"]) > datetime.now(UTC) for a in seeded[-1:])
        assert seeded[0]["labels"] == {"alertname": "cov", "model": "churn", "version": "1", "rule": "cov",
                                       "severity": "critical"}
        sender.submit(active_events(ACTIVE_COLUMNS, [active_row()])[0].model_copy(
            update={"state": "resolved", "time": T0 + timedelta(days=1)}))
        assert sender._changed["a9"]["startsAt"] == "2026-01-01T12:09:00Z" and "a9" not in sender.firing
    finally:
        await sender.close()
        await runner.cleanup()


def test_config_output_hides_the_alertmanager_user_info() -> None:
    masked = Settings(alertmanager_url="http://bob:s3cret@am:9093, http://am2:9093").masked()
    assert masked["alertmanager_url"] == "http://am:9093,http://am2:9093"
    assert "s3cret" not in str(masked) and "bob" not in str(masked)
    assert Settings().masked()["alertmanager_url"] is None


async def test_the_runtime_seeds_the_sender_from_the_active_alerts_query() -> None:
    queries: list[str] = []

    class Table:  # answers like ClickHouse.aquery_rows; the query text must be `alerts active`'s
        database = "dw"

        async def aquery_rows(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
            queries.append(sql)
            if len(queries) > 1:
                raise RuntimeError("table gone\nstack")
            return list(ACTIVE_COLUMNS), [active_row()]

    runtime = SimpleNamespace(ch=Table())
    sender = AlertmanagerSender(["http://127.0.0.1:1"], "http://x")
    await Runtime.seed_alertmanager(runtime, sender)  # type: ignore[arg-type]
    assert queries == [active_query("dw")] and set(sender.firing) == {"a9"}
    again = AlertmanagerSender(["http://127.0.0.1:1"], "http://x")
    await Runtime.seed_alertmanager(runtime, again)  # type: ignore[arg-type]  # unreadable: the stream runs on
    assert not again.firing
