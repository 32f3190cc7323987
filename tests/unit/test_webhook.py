from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
from aiohttp import web

from stream.alerts.webhook import WebhookSender, WebhookTarget
from stream.client import verify_webhook
from stream.contracts.events import AlertEvent

SECRET = "s3cret"


def event(alert_id: str = "a1", severity: str = "warning") -> AlertEvent:
    return AlertEvent.model_validate(
        {
            "alert_id": alert_id,
            "state": "firing",
            "severity": severity,
            "model_id": "credit-risk",
            "model_version": "3",
            "rule": "acc",
            "metric": "accuracy",
            "observed": 0.71,
            "threshold": 0.8,
            "time": datetime(2024, 5, 1, tzinfo=UTC),
            "message": "accuracy fell",
            "evidence_sql": "SELECT 1",
        }
    )


class Receiver:
    """A local webhook receiver answering with the queued statuses (then 200)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[bytes, dict[str, str]]] = []
        self.hang = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((body, dict(request.headers)))
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 0:  # never answer
            await self.hang.wait()
        return web.Response(status=status)


Serve = Callable[[list[int]], Awaitable[tuple[Receiver, str]]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(statuses: list[int]) -> tuple[Receiver, str]:
        receiver = Receiver(statuses)
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        return receiver, f"http://{host}:{port}/hook"

    yield start
    for runner in runners:
        await runner.cleanup()


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


async def test_retries_on_5xx_then_delivers_once_with_a_valid_signature(serve: Serve) -> None:
    receiver, url = await serve([500, 500, 200])
    sender = WebhookSender([WebhookTarget(url, "warning", SECRET)], retries=3, backoff=0.001)
    await sender.start()
    sender.submit(event())
    assert await sender.flush(timeout=10)
    await sender.close()
    assert sender.counts == {"delivered": 1, "failed": 0, "retries": 2, "dropped": 0}
    assert len(receiver.requests) == 3
    body, headers = receiver.requests[-1]
    assert verify_webhook(body, headers, SECRET).alert_id == "a1"
    assert json.loads(body)["alert_id"] == "a1"
    ids = {h["webhook-id"] for _, h in receiver.requests}
    assert ids == {"a1.firing"}  # the same message id on every retry


async def test_dead_url_is_counted_as_failed_without_raising(serve: Serve) -> None:
    receiver, url = await serve([400])
    sender = WebhookSender(
        [WebhookTarget(dead_url(), "info"), WebhookTarget(url, "info")], retries=2, backoff=0.001, timeout=2
    )
    await sender.start()
    sender.submit(event())
    assert await sender.flush(timeout=10)
    await sender.close()
    # the dead URL is retried twice; the 400 is not retried
    assert sender.counts == {"delivered": 0, "failed": 2, "retries": 2, "dropped": 0}
    assert len(receiver.requests) == 1
    assert "webhook-signature" not in receiver.requests[0][1]  # no secret, no signature


async def test_timeout_is_retried_then_delivers(serve: Serve) -> None:
    receiver, url = await serve([0, 200])
    sender = WebhookSender([WebhookTarget(url)], retries=1, backoff=0.0, timeout=0.2)
    await sender.start()
    sender.submit(event())
    assert await sender.flush(timeout=10)
    receiver.hang.set()
    await sender.close()
    assert sender.counts == {"delivered": 1, "failed": 0, "retries": 1, "dropped": 0}


async def test_severity_filter_and_drop_oldest_when_full(serve: Serve) -> None:
    receiver, url = await serve([])
    sender = WebhookSender([WebhookTarget(url, "warning", SECRET)], queue_size=2, backoff=0.0)
    sender.submit(event("info", "info"))  # below min_severity: never queued
    for name in ("e1", "e2", "e3"):
        sender.submit(event(name, "critical"))
    assert sender.counts["dropped"] == 1
    await sender.start()
    assert await sender.flush(timeout=10)
    await sender.close()
    assert [json.loads(b)["alert_id"] for b, _ in receiver.requests] == ["e2", "e3"]
    assert sender.counts["delivered"] == 2


def test_target_validation() -> None:
    with pytest.raises(ValueError, match="min_severity"):
        WebhookTarget("http://x", "loud")
    with pytest.raises(ValueError, match="must start with"):
        WebhookTarget("ftp://x")


async def test_give_ups_are_logged_once_per_event_and_target_without_credentials(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    _, url = await serve([400, 429, 503])
    secret_url = url.replace("http://", "http://bob:pw@")
    sender = WebhookSender([WebhookTarget(secret_url, "info")], retries=1, backoff=0.0)
    await sender.start()
    with caplog.at_level("WARNING", logger="stream.alerts.webhook"):
        sender.submit(event("a1"))  # 400: not retried
        assert await sender.flush(timeout=10)
        sender.submit(event("a2"))  # 429, then 503: retried once, then given up
        assert await sender.flush(timeout=10)
    await sender.close()
    assert sender.counts == {"delivered": 0, "failed": 2, "retries": 1, "dropped": 0}
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("stream.alerts.webhook", "WARNING", f"webhook {url}: alert a1 not delivered: ValueError: HTTP 400"),
        ("stream.alerts.webhook", "WARNING", f"webhook {url}: alert a2 not delivered: HTTP 503"),
    ]
    assert "bob" not in caplog.text and "pw@" not in caplog.text


async def test_an_unreachable_target_logs_the_connection_error(caplog: pytest.LogCaptureFixture) -> None:
    url = dead_url()
    sender = WebhookSender([WebhookTarget(url, "info")], retries=0, timeout=2)
    await sender.start()
    with caplog.at_level("WARNING", logger="stream.alerts.webhook"):
        sender.submit(event())
        assert await sender.flush(timeout=10)
    await sender.close()
    (record,) = caplog.records
    assert record.getMessage().startswith(f"webhook {url}: alert a1 not delivered: ClientConnectorError: ")
