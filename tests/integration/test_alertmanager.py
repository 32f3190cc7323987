"""Alert routing through a real Prometheus Alertmanager (Debian's ``prometheus-alertmanager``).

The test starts Alertmanager on 127.0.0.1 with a webhook receiver pointing at a local aiohttp server, posts
alerts with :class:`AlertmanagerSender`, and waits for the notifications Alertmanager sends: firing, grouped
(two alerts of one model in one notification) and resolved.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from stream.alerts.alertmanager import AlertmanagerSender
from stream.alerts.history import ACTIVE_COLUMNS, active_events
from stream.contracts.events import AlertEvent
from tests.helpers import free_port

pytestmark = pytest.mark.integration

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

CONFIG = """\
route:
  receiver: test
  group_by: [model]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: test
    webhook_configs:
      - url: {url}
        send_resolved: true
"""


class Receiver:
    """Collects the webhook notifications Alertmanager sends."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.notifications.append(await request.json())
        return web.Response(text="ok")


async def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)
    return found


@pytest.fixture
def alertmanager_binary() -> str:
    if BINARY is None:
        message = "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + ": CI must install it")
        pytest.skip(message)
    return BINARY


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    got = Receiver()
    app = web.Application()
    app.router.add_post("/hook", got.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield got, f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


@pytest.fixture
def alertmanager(
    alertmanager_binary: str, receiver: tuple[Receiver, str], tmp_path: Path
) -> Iterator[str]:
    """A real Alertmanager on a free port of 127.0.0.1, without clustering, storing in tmp_path."""
    config = tmp_path / "alertmanager.yml"
    config.write_text(CONFIG.format(url=receiver[1]))
    port = free_port()
    log = tmp_path / "alertmanager.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [alertmanager_binary, f"--config.file={config}", f"--storage.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


async def ready(url: str, timeout: float = 20.0) -> None:
    async def up() -> bool:
        try:
            async with aiohttp.ClientSession() as session, session.get(url + "/-/ready") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    deadline = time.monotonic() + timeout
    while not await up():
        if time.monotonic() > deadline:
            raise AssertionError(f"Alertmanager at {url} not ready after {timeout:.0f} s")
        await asyncio.sleep(0.1)


def event(state: str, rule: str, model: str = "fraud", segment: str = "") -> AlertEvent:
    now = datetime.now(UTC)
    return AlertEvent(
        alert_id=f"{model}-{rule}-{segment}", state=state, severity="critical", model_id=model,  # type: ignore[arg-type]
        model_version="2", segment=segment, rule=rule, metric="accuracy", observed=0.4, threshold=0.8,
        window_start=now, window_end=now, time=now, message=f"{rule} {state}",
        evidence_sql="SELECT 1",
    )


def alerts_of(notifications: list[dict[str, Any]], status: str) -> list[dict[str, Any]]:
    return [n for n in notifications if n["status"] == status]


async def test_firing_grouping_and_resolved_notifications_arrive(
    alertmanager: str, receiver: tuple[Receiver, str]
) -> None:
    got, _ = receiver
    await ready(alertmanager)
    sender = AlertmanagerSender([alertmanager], "http://dw.example:6066", resend_seconds=1.0, backoff=0.1)
    await sender.start()
    try:
        sender.submit(event("firing", "accuracy-low"))
        sender.submit(event("firing", "coverage-low", segment="region=eu"))
        sender.submit(event("firing", "accuracy-low", model="churn"))
        firing = await wait_for(
            lambda: [n for n in alerts_of(got.notifications, "firing")
                     if n["groupLabels"] == {"model": "fraud"} and len(n["alerts"]) == 2],
            30, "one firing notification holding both alerts of model fraud")
        alerts = {a["labels"]["rule"]: a for a in firing[0]["alerts"]}
        assert set(alerts) == {"accuracy-low", "coverage-low"}
        first = alerts["accuracy-low"]
        assert first["labels"] == {"alertname": "accuracy-low", "model": "fraud", "version": "2",
                                   "rule": "accuracy-low", "severity": "critical"}
        assert alerts["coverage-low"]["labels"]["segment"] == "region=eu"
        assert first["annotations"]["summary"] == "accuracy-low firing"
        assert first["annotations"]["evidence_sql"] == "SELECT 1"
        assert first["annotations"]["link"] == "http://dw.example:6066/models/fraud"
        assert first["generatorURL"] == "http://dw.example:6066/models/fraud"
        await wait_for(lambda: [n for n in got.notifications if n["groupLabels"] == {"model": "churn"}],
                       30, "the other model's notification, in its own group")

        # Re-sent while firing: several posts pass without a resolved notification.
        await wait_for(lambda: sender.counts["posts"] >= 3, 30, "periodic re-sends of the firing alerts")
        assert not alerts_of(got.notifications, "resolved")

        sender.submit(event("resolved", "accuracy-low"))
        sender.submit(event("resolved", "coverage-low", segment="region=eu"))
        resolved = await wait_for(
            lambda: [n for n in alerts_of(got.notifications, "resolved") if n["groupLabels"] == {"model": "fraud"}],
            30, "the resolved notification of model fraud")
        assert {a["labels"]["rule"] for a in resolved[0]["alerts"]} == {"accuracy-low", "coverage-low"}
        assert all(a["status"] == "resolved" for a in resolved[0]["alerts"])
        assert set(sender.firing) == {"churn-accuracy-low-"}
    finally:
        await sender.close()

    # A worker restart: the new sender knows only what the alerts table says fires (as `alerts active` reads it).
    # Without the seed, Alertmanager would resolve churn's alert once the last endsAt (4 re-sends ahead) passed.
    last_ends_at = datetime.now(UTC) + timedelta(seconds=4 * sender.resend_seconds)
    churn = event("firing", "accuracy-low", model="churn")
    row = {**churn.model_dump(), "firing_since": str(churn.time.replace(tzinfo=None)),
           "window_start": str(churn.window_start)}
    restarted = AlertmanagerSender([alertmanager], "http://dw.example:6066", resend_seconds=1.0, backoff=0.1)
    restarted.seed(active_events(ACTIVE_COLUMNS, [tuple(row[c] for c in ACTIVE_COLUMNS)]))
    await restarted.start()
    try:
        await wait_for(lambda: datetime.now(UTC) > last_ends_at + timedelta(seconds=2), 30,
                       "the pre-restart endsAt to pass")
        async with aiohttp.ClientSession() as session, session.get(
                alertmanager + "/api/v2/alerts", params={"filter": 'model="churn"'}) as response:
            listed = await response.json()
        assert [a["status"]["state"] for a in listed] == ["active"], listed
        assert not [n for n in alerts_of(got.notifications, "resolved") if n["groupLabels"] == {"model": "churn"}]
    finally:
        await restarted.close()

