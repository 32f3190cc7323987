"""Alert routing through Prometheus Alertmanager: its v2 API (``POST /api/v2/alerts``), never blocking the stage.

:meth:`AlertmanagerSender.submit` only records the event (no I/O). A background task posts what changed at
once, and re-posts every alert still firing each ``resend_seconds``: Alertmanager resolves an alert whose
``endsAt`` has passed, and a firing alert is posted with ``endsAt = now + 4 * resend_seconds`` (as Prometheus
does), so a stopped worker's alerts resolve on their own a few minutes later instead of firing forever. A
resolved event is posted with ``endsAt`` set to the time it resolved.

Labels: ``alertname`` (the rule), ``model``, ``version``, ``segment`` (left out for the whole model: an empty
label is no label to Alertmanager), ``rule``, ``severity``. Annotations: ``summary`` (the message),
``evidence_sql``, ``link`` (the model's page), ``alert_id``, ``metric``, ``observed``, ``threshold``.
``generatorURL`` is the model's page too. Failed posts are retried with exponential backoff (connection
errors, timeouts, 429, 5xx) and counted; changes stay queued until a post succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson

from stream.alerts.delivery import HttpDelivery
from stream.contracts.events import AlertEvent
from stream.contracts.redact import safe_url

__all__ = ["AlertmanagerSender", "alertmanager_alert", "model_page_url"]

log = logging.getLogger(__name__)

API_PATH = "/api/v2/alerts"
_HEADERS = {"Content-Type": "application/json"}


def model_page_url(public_url: str, model_id: str) -> str:
    """The model's page on the Driftwarden web server.

    >>> model_page_url("http://127.0.0.1:6066/", "fraud v2")
    'http://127.0.0.1:6066/models/fraud%20v2'
    """
    return f"{public_url.rstrip('/')}/models/{quote(model_id, safe='')}"


def _iso(value: datetime) -> str:
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")


def alertmanager_alert(
    event: AlertEvent, public_url: str, starts_at: datetime, ends_at: datetime
) -> dict[str, Any]:
    """One ``postableAlert`` of Alertmanager's v2 API for an alert event."""
    labels = {
        "alertname": event.rule,
        "model": event.model_id,
        "version": event.model_version,
        "rule": event.rule,
        "severity": event.severity,
    }
    if event.segment:
        labels["segment"] = event.segment
    link = model_page_url(public_url, event.model_id)
    annotations = {
        "summary": event.message,
        "evidence_sql": event.evidence_sql,
        "link": link,
        "alert_id": event.alert_id,
        "metric": event.metric,
    }
    if event.observed is not None:
        annotations["observed"] = f"{event.observed:g}"
    if event.threshold is not None:
        annotations["threshold"] = f"{event.threshold:g}"
    return {
        "labels": labels,
        "annotations": annotations,
        "startsAt": _iso(starts_at),
        "endsAt": _iso(ends_at),
        "generatorURL": link,
    }


class AlertmanagerSender(HttpDelivery):
    """Posts alert events to one or more Alertmanagers (each gets every alert, as Prometheus does for an HA pair).

    Parameters
    ----------
    urls
        Alertmanager base URLs, e.g. ``http://127.0.0.1:9093``.
    public_url
        Base URL of the Driftwarden web server, for the link to the model's page.
    resend_seconds
        How often alerts still firing are posted again (keep it well under Alertmanager's resolve_timeout).
    timeout, retries, backoff, max_backoff
        Per attempt timeout; extra attempts on retryable errors; delay before retry ``k`` is
        ``min(backoff * 2**k, max_backoff)`` seconds.

    ``counts`` holds ``posts`` (successful posts), ``alerts_sent``, ``failed`` (posts that gave up) and
    ``retries``.
    """

    task_name = "driftwarden-alertmanager"
    error_text_chars = 200

    def __init__(
        self,
        urls: list[str],
        public_url: str,
        *,
        resend_seconds: float = 60.0,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        if not urls:
            raise ValueError("give at least one Alertmanager URL")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"Alertmanager url {url!r} must start with http:// or https://")
        if resend_seconds <= 0 or timeout <= 0 or retries < 0 or backoff < 0:
            raise ValueError("Alertmanager sender needs resend_seconds > 0, timeout > 0, retries >= 0, backoff >= 0")
        super().__init__(timeout=timeout, retries=retries, backoff=backoff, max_backoff=max_backoff)
        self.urls = [u.rstrip("/") for u in urls]
        self.public_url = public_url
        self.resend_seconds = resend_seconds
        self.counts: dict[str, int] = {"posts": 0, "alerts_sent": 0, "failed": 0, "retries": 0}
        self.firing: dict[str, tuple[AlertEvent, datetime]] = {}  # alert id -> (event, startsAt)
        self._changed: dict[str, dict[str, Any]] = {}  # alert id -> postable alert, not yet delivered
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def _firing_alert(self, event: AlertEvent, starts_at: datetime) -> dict[str, Any]:
        ends = datetime.now(UTC) + timedelta(seconds=4 * self.resend_seconds)
        return alertmanager_alert(event, self.public_url, starts_at, ends)

    def submit(self, event: AlertEvent) -> None:
        """Record a firing or resolved event for delivery; never blocks, never raises on delivery problems."""
        if event.state == "firing":
            starts = event.time
            self.firing[event.alert_id] = (event, starts)
            self._changed[event.alert_id] = self._firing_alert(event, starts)
        else:
            fired = self.firing.pop(event.alert_id, None)
            starts = fired[1] if fired is not None else (event.window_start or event.time)
            self._changed[event.alert_id] = alertmanager_alert(event, self.public_url, starts, event.time)
        self._idle.clear()
        self._wake.set()

    def seed(self, events: list[AlertEvent]) -> None:
        """Take over alerts that fired before a restart (from the alerts table) and post them again at once.

        Without this a restarted worker would not re-send them and Alertmanager would resolve them when their
        ``endsAt`` passes, although they still fire. An alert already known (submitted since start) is kept.
        """
        for event in events:
            if event.state == "firing" and event.alert_id not in self.firing:
                self.firing[event.alert_id] = (event, event.time)
                self._changed[event.alert_id] = self._firing_alert(event, event.time)
        if events:
            self._idle.clear()
            self._wake.set()

    async def _drained(self) -> None:
        await self._idle.wait()

    async def _run(self) -> None:
        next_resend = time.monotonic() + self.resend_seconds
        while True:
            wait = max(0.0, next_resend - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
            batch = dict(self._changed)
            delivered = True
            if time.monotonic() >= next_resend:
                next_resend = time.monotonic() + self.resend_seconds
                for ident, (event, starts) in self.firing.items():
                    batch.setdefault(ident, self._firing_alert(event, starts))
            if batch:
                try:
                    delivered = await self._post_all(list(batch.values()))
                except Exception:  # the loop must survive anything
                    log.exception("posting %d alerts to Alertmanager crashed", len(batch))
                    delivered = False
                if delivered:
                    for ident, alert in batch.items():
                        if self._changed.get(ident) is alert:
                            del self._changed[ident]
                else:  # keep the changes; try again at the next wake-up or resend
                    next_resend = min(next_resend, time.monotonic() + max(self.backoff, 1.0))
            if not self._changed or not delivered:  # a dead Alertmanager must not hold flush() forever
                self._idle.set()

    async def _post_all(self, alerts: list[dict[str, Any]]) -> bool:
        """Post to every Alertmanager; True if at least one took them."""
        body = orjson.dumps(alerts)
        results = await asyncio.gather(*(self._post_with_retries(url, body) for url in self.urls))
        if any(results):
            self.counts["alerts_sent"] += len(alerts)
        return any(results)

    async def _post_with_retries(self, url: str, body: bytes) -> bool:
        error = await self._with_retries(lambda: self._post(url + API_PATH, body, _HEADERS))
        if error is None:
            self.counts["posts"] += 1
            return True
        self.counts["failed"] += 1
        log.warning("Alertmanager %s: alerts not delivered: %s", safe_url(url), error)
        return False
