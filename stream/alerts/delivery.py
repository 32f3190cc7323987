"""HTTP delivery shared by the alert senders (:mod:`stream.alerts.webhook`, :mod:`stream.alerts.alertmanager`).

:class:`HttpDelivery` owns one aiohttp session and one background task (``start``, ``flush``, ``close``), POSTs
that tell a failure worth retrying (:class:`Retryable`: connection errors, timeouts, HTTP 429 and 5xx) from a
final one (other 4xx, raised as ``ValueError``), and retries with exponential backoff. What is sent, when, and
what is counted and logged on success or give-up stay with each sender.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import ClassVar

import aiohttp

__all__ = ["HttpDelivery", "Retryable"]


class Retryable(Exception):
    """An attempt failed in a way worth retrying: connection error, timeout, HTTP 429 or 5xx."""


class HttpDelivery(ABC):
    """Session, background task, POST and retries of a sender; subclasses write ``_run`` and ``_drained``.

    Parameters
    ----------
    timeout
        Seconds per HTTP attempt (connect and read).
    retries
        Extra attempts after the first on :class:`Retryable` failures; each is counted in ``counts["retries"]``.
    backoff, max_backoff
        Delay before retry ``k`` (from 0) is ``min(backoff * 2**k, max_backoff)`` seconds.
    """

    task_name: ClassVar[str]
    """Name of the background task."""
    error_text_chars: ClassVar[int] = 0
    """How much of a 4xx/5xx answer's body a failure message quotes (0: none, the status only)."""

    counts: dict[str, int]

    def __init__(self, *, timeout: float, retries: int, backoff: float, max_backoff: float) -> None:
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    @abstractmethod
    async def _run(self) -> None:
        """The background loop; it must survive any error."""

    @abstractmethod
    async def _drained(self) -> None:
        """Return once everything submitted so far was delivered or given up."""

    async def start(self) -> None:
        """Start the background delivery task (idempotent)."""
        if self._task is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
            self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far was delivered or given up; False if ``timeout`` passed first."""
        try:
            await asyncio.wait_for(self._drained(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout: float = 5.0) -> None:
        """Deliver what is pending (up to ``timeout`` seconds), then stop the task and close the session."""
        if self._task is not None:
            await self.flush(timeout)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _with_retries(self, attempt: Callable[[], Awaitable[None]]) -> str | None:
        """Await ``attempt()`` until it succeeds (None) or fails for good; then the last error, in one line."""
        error = ""
        for k in range(self.retries + 1):
            if k:
                self.counts["retries"] += 1
                await asyncio.sleep(min(self.backoff * 2 ** (k - 1), self.max_backoff))
            try:
                await attempt()
            except Retryable as exc:
                error = str(exc)
                continue
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                break
            return None
        return error

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        """POST once; raise :class:`Retryable` or ``ValueError`` (other 4xx) when it failed."""
        assert self._session is not None
        chars = self.error_text_chars
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                status = response.status
                text = (await response.text())[:chars] if chars and status >= 400 else ""
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}") from exc
        answer = f"HTTP {status} {text}" if chars else f"HTTP {status}"
        if status == 429 or status >= 500:
            raise Retryable(answer)
        if status >= 400:
            raise ValueError(answer)
