"""Batched ClickHouse writes from a writer thread with a bounded queue.

The event loop hands rows over with :meth:`Sink.submit`; when the queue is full it waits (back-pressure, never
unbounded memory). The thread groups rows per table and inserts at most about once per ``flush_seconds``.
An insert that fails (ClickHouse down) is retried with exponential backoff and the rows are kept: nothing is
dropped. Tables are ReplacingMergeTrees with deterministic keys, so a retried or replayed insert is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

InsertFn = Callable[[str, list[Sequence[Any]], Sequence[str]], None]
OnWritten = Callable[[str, float], None]  # (table, seconds from submit, or from `since`, to written)
_Item = tuple[int, str, tuple[str, ...], list[Sequence[Any]], float]
_HURRY = "hurry"  # queued by a waiter: write what was collected now instead of at the end of the flush interval


@dataclass
class SinkStats:
    rows_written: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    inserts: int = 0
    failures: int = 0
    last_error: str = ""


class Sink:
    """Writer thread in front of an ``insert(table, rows, column_names)`` function."""

    def __init__(self, insert: InsertFn, flush_seconds: float = 1.0, max_batches: int = 64,
                 max_backoff: float = 10.0, on_written: OnWritten | None = None) -> None:
        self._insert = insert
        self._on_written = on_written
        self.flush_seconds = flush_seconds
        self.max_backoff = max_backoff
        self._max_batches = max_batches
        self._queue: queue.Queue[_Item | str | None] = queue.Queue(max_batches)
        self._submitted = 0
        self._written = 0
        self._done = threading.Condition()
        self.stats = SinkStats()
        self._thread = threading.Thread(target=self._run, name="driftwarden-sink", daemon=True)
        self._stopping = threading.Event()

    def start(self) -> Sink:
        self._thread.start()
        return self

    @property
    def pending(self) -> int:
        return self._submitted - self._written

    def submit_nowait(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Queue rows, blocking the calling thread while the queue is full; returns the batch sequence."""
        if not rows:
            return self._submitted
        self._submitted += 1
        self._queue.put((self._submitted, table, tuple(columns), list(rows), time.monotonic()))
        return self._submitted

    async def submit(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                     since: float | None = None) -> int:
        """Queue rows from the event loop; awaits (off the loop) while the queue is full. ``since`` (a
        ``time.monotonic()``, default now) is when the rows' data was read, for the latency reported to
        ``on_written``."""
        if not rows:
            return self._submitted
        self._submitted += 1
        item = (self._submitted, table, tuple(columns), list(rows), time.monotonic() if since is None else since)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            await asyncio.to_thread(self._queue.put, item)
        return self._submitted

    def wait_written(self, sequence: int | None = None, timeout: float = 30.0) -> bool:
        """Block until batch ``sequence`` (default: everything submitted so far) is in ClickHouse; the writer
        inserts what it holds at once rather than at the end of its flush interval (a checkpoint waits here
        with its stage's lock held)."""
        target = self._submitted if sequence is None else sequence
        with self._done:
            if self._written >= target:
                return True
        with contextlib.suppress(queue.Full):  # a full queue is written without waiting for the interval anyway
            self._queue.put_nowait(_HURRY)
        with self._done:
            return self._done.wait_for(lambda: self._written >= target, timeout)

    async def await_written(self, sequence: int | None = None, timeout: float = 30.0) -> bool:
        return await asyncio.to_thread(self.wait_written, sequence, timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, then end the thread."""
        if not self._thread.is_alive():
            return
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        stop = False
        while not stop:
            deadline = time.monotonic() + self.flush_seconds
            batches: list[_Item] = []
            while len(batches) < self._max_batches:  # bounded: what waits beyond it waits in the queue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if isinstance(item, str):  # _HURRY
                    break
                if item is None:
                    stop = True
                    while True:  # drain what was queued before the stop
                        try:
                            rest = self._queue.get_nowait()
                        except queue.Empty:
                            break
                        if rest is not None and not isinstance(rest, str):
                            batches.append(rest)
                    break
                batches.append(item)
            if batches:
                self._write(batches)

    def _write(self, batches: list[_Item]) -> None:
        grouped: dict[tuple[str, tuple[str, ...]], list[Sequence[Any]]] = defaultdict(list)
        oldest: dict[str, float] = {}
        for _, table, columns, rows, since in batches:
            grouped[(table, columns)].extend(rows)
            oldest[table] = min(since, oldest.get(table, since))
        for (table, columns), rows in grouped.items():
            backoff = 0.25
            while True:
                try:
                    self._insert(table, rows, columns)
                    break
                except Exception as exc:
                    self.stats.failures += 1
                    self.stats.last_error = f"{table}: {str(exc).splitlines()[0][:300] if str(exc) else exc!r}"
                    log.warning("ClickHouse insert into %s failed (%s); retrying in %.1f s",
                                table, self.stats.last_error, backoff)
                    time.sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
            self.stats.inserts += 1
            self.stats.rows_written[table] += len(rows)
            if self._on_written is not None:
                self._on_written(table, time.monotonic() - oldest[table])
        with self._done:
            self._written = max(seq for seq, *_ in batches)
            self._done.notify_all()
