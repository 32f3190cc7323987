"""Webhook delivery of alert events: signed POSTs, retries with backoff, never blocking the pipeline.

:meth:`WebhookSender.submit` only enqueues (a bounded queue; when full the oldest event is dropped and
counted). A background task POSTs each event's JSON to every target whose ``min_severity`` it meets, signed
with the target's secret by the Standard Webhooks scheme (:mod:`stream.alerts.signing`: ``webhook-id`` =
``<alert id>.<state>``, ``webhook-timestamp`` of each attempt, ``webhook-signature``); receivers check it with
``stream.client.verify_webhook``, which rejects stale timestamps (replays).
Connection errors, timeouts, HTTP 429 and 5xx are retried with exponential backoff; other 4xx fail at once.
Failures are logged and counted, never raised to the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from stream.alerts.delivery import HttpDelivery
from stream.alerts.signing import sign_headers
from stream.contracts.events import AlertEvent
from stream.contracts.redact import safe_url

__all__ = ["WebhookSender", "WebhookTarget", "message_id"]

log = logging.getLogger(__name__)

_RANK = {"info": 0, "warning": 1, "critical": 2}


def message_id(event: AlertEvent) -> str:
    """The ``webhook-id`` of an event: the same on every retry, different for firing and resolved."""
    return f"{event.alert_id}.{event.state}"


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A receiver URL, the lowest severity it gets, and its signing secret (empty: unsigned)."""

    url: str
    min_severity: str = "warning"
    secret: str = ""

    def __post_init__(self) -> None:
        if self.min_severity not in _RANK:
            severity = self.min_severity
            raise ValueError(f"webhook {self.url}: min_severity {severity!r} is not info|warning|critical")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url {self.url!r} must start with http:// or https://")
        if self.secret:
            sign_headers(b"", self.secret, "check")  # a bad whsec_ secret fails here, in one line

    def wants(self, severity: str) -> bool:
        return _RANK.get(severity, 0) >= _RANK[self.min_severity]


class WebhookSender(HttpDelivery):
    """Delivers alert events to webhook targets in the background.

    Parameters
    ----------
    targets
        Receivers; an event goes to each target whose ``min_severity`` it meets.
    timeout
        Seconds per HTTP attempt (connect and read).
    retries
        Extra attempts after the first on connection errors, timeouts, 429 and 5xx.
    backoff, max_backoff
        Delay before retry ``k`` (from 0) is ``min(backoff * 2**k, max_backoff)`` seconds.
    queue_size
        Events waiting for delivery; when full, the oldest is dropped and counted in ``counts["dropped"]``.

    ``counts`` holds ``delivered`` and ``failed`` (per event and target), ``retries`` and ``dropped``.
    """

    task_name = "driftwarden-webhooks"

    def __init__(
        self,
        targets: list[WebhookTarget],
        *,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        queue_size: int = 1000,
    ) -> None:
        if queue_size < 1 or retries < 0 or timeout <= 0 or backoff < 0:
            raise ValueError("webhook sender needs queue_size >= 1, retries >= 0, timeout > 0, backoff >= 0")
        super().__init__(timeout=timeout, retries=retries, backoff=backoff, max_backoff=max_backoff)
        self.targets = list(targets)
        self.counts: dict[str, int] = {"delivered": 0, "failed": 0, "retries": 0, "dropped": 0}
        self._queue: asyncio.Queue[AlertEvent] = asyncio.Queue(maxsize=queue_size)

    def submit(self, event: AlertEvent) -> None:
        """Enqueue an event without blocking; drops the oldest queued event if the queue is full."""
        if not any(t.wants(event.severity) for t in self.targets):
            return
        while True:
            try:
                self._queue.put_nowait(event)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self._queue.get_nowait()
                    self._queue.task_done()
                    self.counts["dropped"] += 1
                    log.warning("webhook queue full: dropped the oldest alert event")

    async def _drained(self) -> None:
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                body = event.model_dump_json().encode()
                wanted = [t for t in self.targets if t.wants(event.severity)]
                await asyncio.gather(*(self._deliver(t, event, body) for t in wanted))
            except Exception:  # the loop must survive anything; _deliver already counts its failures
                log.exception("webhook delivery of alert %s crashed", event.alert_id)
            finally:
                self._queue.task_done()

    async def _deliver(self, target: WebhookTarget, event: AlertEvent, body: bytes) -> None:
        headers = {"Content-Type": "application/json", "X-Driftwarden-Alert-Id": event.alert_id}

        async def attempt() -> None:
            if target.secret:  # signed per attempt: the timestamp is the attempt's
                headers.update(sign_headers(body, target.secret, message_id(event)))
            await self._post(target.url, body, headers)

        error = await self._with_retries(attempt)
        if error is None:
            self.counts["delivered"] += 1
            return
        self.counts["failed"] += 1
        error = error.replace(target.url, safe_url(target.url))
        log.warning("webhook %s: alert %s not delivered: %s", safe_url(target.url), event.alert_id, error)
