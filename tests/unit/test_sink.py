"""The writer thread: batching, back-pressure, and a ClickHouse outage that delays rows but loses none."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

from stream.storage.sink import Sink


class FlakyClickHouse:
    """An insert function that fails while ``down`` is set, like a ClickHouse server that went away."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.rows: dict[str, list[Sequence[Any]]] = {}
        self.calls = 0
        self.failures = 0

    def insert(self, table: str, rows: list[Sequence[Any]], columns: Sequence[str]) -> None:
        self.calls += 1
        if self.down.is_set():
            self.failures += 1
            raise ConnectionError("Connection refused")
        self.rows.setdefault(table, []).extend(rows)


def test_rows_are_grouped_per_table_into_few_inserts() -> None:
    ch = FlakyClickHouse()
    sink = Sink(ch.insert, flush_seconds=0.2).start()
    for i in range(100):
        sink.submit_nowait("a" if i % 2 else "b", ("x",), [(i,)])
    assert sink.wait_written(timeout=10)
    sink.stop()
    assert sorted(r[0] for r in ch.rows["a"]) == list(range(1, 100, 2))
    assert sorted(r[0] for r in ch.rows["b"]) == list(range(0, 100, 2))
    assert ch.calls <= 6  # two tables, at most a few flush rounds, never one insert per submit


def test_an_outage_delays_writes_and_loses_none() -> None:
    ch = FlakyClickHouse()
    sink = Sink(ch.insert, flush_seconds=0.05, max_backoff=0.2).start()
    sink.submit_nowait("t", ("x",), [(0,)])
    assert sink.wait_written(timeout=10)
    ch.down.set()
    sequences = [sink.submit_nowait("t", ("x",), [(i,)]) for i in range(1, 50)]
    assert not sink.wait_written(sequences[-1], timeout=0.5), "written while ClickHouse was down"
    deadline = time.monotonic() + 10
    while ch.failures < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ch.failures >= 3 and sink.stats.failures >= 3 and "Connection refused" in sink.stats.last_error
    ch.down.clear()
    assert sink.wait_written(sequences[-1], timeout=10)
    sink.stop()
    assert sorted(r[0] for r in ch.rows["t"]) == list(range(50))


def test_a_full_queue_applies_back_pressure_to_the_event_loop() -> None:
    ch = FlakyClickHouse()
    ch.down.set()
    sink = Sink(ch.insert, flush_seconds=0.01, max_batches=4, max_backoff=0.05).start()

    async def produce() -> float:
        started = time.monotonic()
        for i in range(20):
            await sink.submit("t", ("x",), [(i,)])
        return time.monotonic() - started

    async def scenario() -> tuple[float, int]:
        task = asyncio.create_task(produce())
        await asyncio.sleep(0.3)
        pending_while_down = sink.pending
        ch.down.clear()
        await task
        return pending_while_down, sink.pending

    pending_while_down, _ = asyncio.run(scenario())
    assert pending_while_down <= 2 * 4 + 1  # bounded: the round being retried, the full queue, one waiting
    assert sink.wait_written(timeout=10)
    sink.stop()
    assert sorted(r[0] for r in ch.rows["t"]) == list(range(20))


def test_stop_writes_what_is_queued() -> None:
    ch = FlakyClickHouse()
    sink = Sink(ch.insert, flush_seconds=30).start()
    sink.submit_nowait("t", ("x",), [(1,), (2,)])
    sink.stop()
    assert ch.rows["t"] == [(1,), (2,)]


def test_on_written_reports_each_table_with_the_time_since_its_oldest_batch_was_read() -> None:
    ch = FlakyClickHouse()
    seen: list[tuple[str, float]] = []
    sink = Sink(ch.insert, flush_seconds=0.05, on_written=lambda table, s: seen.append((table, s))).start()

    async def submit() -> None:
        await sink.submit("outcomes", ("x",), [(1,)], since=time.monotonic() - 5.0)  # read 5 s ago
        await sink.submit("outcomes", ("x",), [(2,)])

    asyncio.run(submit())
    assert sink.wait_written(timeout=10)
    sink.stop()
    assert [t for t, _ in seen] == ["outcomes"] * len(seen) and seen
    assert 5.0 <= max(s for _, s in seen) < 60.0


def test_a_waiter_gets_its_rows_written_without_waiting_out_the_flush_interval() -> None:
    """A checkpoint waits for its rows with its stage's lock held: the writer inserts them at once, not at the
    end of a 60 s interval (the wait's own 20 s deadline is far below it)."""
    ch = FlakyClickHouse()
    sink = Sink(ch.insert, flush_seconds=60).start()
    try:
        sink.submit_nowait("outcomes", ("x",), [(1,)])
        sequence = sink.submit_nowait("checkpoints", ("x",), [(2,)])
        assert sink.wait_written(sequence, timeout=20)
        assert ch.rows == {"outcomes": [(1,)], "checkpoints": [(2,)]}
        sink.submit_nowait("outcomes", ("x",), [(3,)])
    finally:
        sink.stop()
    assert ch.rows["outcomes"] == [(1,), (3,)]
