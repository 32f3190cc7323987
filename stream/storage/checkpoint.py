"""Checkpoints of the stateful stages, stored in ClickHouse next to the data they produce.

A checkpoint is one row per (stage, partition): the stage's state and the next offset to read of each input
partition it reflects. A stage saves a checkpoint, waits until it is written, and only then acks the records
it covers, so Faust never commits past a checkpoint; after a crash the stage restores the checkpoint and skips
re-delivered records below its offsets. Checkpoints are written and read only by Driftwarden itself.
"""

from __future__ import annotations

import datetime as dt
import time

import orjson

from stream.storage.clickhouse import ClickHouse
from stream.storage.sink import Sink

CHECKPOINT_COLUMNS = ("stage", "partition", "offsets", "state", "version", "saved_at")


class CheckpointStore:
    """Save and load stage checkpoints through the sink (writes) and the client (reads)."""

    def __init__(self, ch: ClickHouse, sink: Sink) -> None:
        self.ch = ch
        self.sink = sink
        self.saved = 0

    def load(self, stage: str, partition: int) -> tuple[dict[str, int], bytes] | None:
        """The latest checkpoint of a stage partition, or None (blocking: call it in a thread)."""
        rows = self.ch.query_rows(
            f"SELECT offsets, state FROM {self.ch.database}.checkpoints FINAL "
            "WHERE stage = {stage:String} AND partition = {partition:UInt32}",
            parameters={"stage": stage, "partition": partition}, column_formats={"state": "bytes"},
        )[1]
        if not rows:
            return None
        offsets, state = rows[0]
        return {str(k): int(v) for k, v in orjson.loads(offsets).items()}, bytes(state)

    async def save(self, stage: str, states: list[tuple[int, dict[str, int], bytes]]) -> None:
        """Write the checkpoints of some partitions of a stage, and wait until ClickHouse has them."""
        if not states:
            return
        now, version = dt.datetime.now(dt.UTC), time.time_ns()
        rows = [(stage, partition, orjson.dumps(offsets).decode(), state, version, now)
                for partition, offsets, state in states]
        sequence = await self.sink.submit("checkpoints", CHECKPOINT_COLUMNS, rows)
        while not await self.sink.await_written(sequence, timeout=30):
            pass  # ClickHouse is down: the sink retries; the records stay un-acked meanwhile
        self.saved += len(rows)
