"""The ingest loop: predictions and ground truth read with aiokafka in batches, not through Faust's stream.

Faust costs about 150 µs per message on this path (tasks, acks, buffers per event), more than all of our
stages together; the ingest topics carry one message per event, so they are read with `getmany()` in batches
of thousands instead. The internal topic (one message per model and batch) stays a Faust agent.

Offsets are committed only after the checkpoint that covers them is in ClickHouse; on a rebalance the stage
checkpoints and commits what it read, then forgets the partitions it lost (their next owner restores them).
A range assignor gives one consumer partition *i* of both topics, which the join needs (co-partitioning).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from stream.kafka.tansu_compat import consumer_overrides
from stream.pipeline.barrier import StageFailure
from stream.pipeline.ingest import RawRecord

log = logging.getLogger(__name__)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: IngestConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.owner.revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("ingest partitions assigned: %s", sorted((tp.topic, tp.partition) for tp in assigned))


class IngestConsumer:
    """Reads the two input topics and hands batches to ``handle``; commits after ``checkpoint``."""

    def __init__(self, bootstrap: str, topics: tuple[str, str], group_id: str, tansu: bool,
                 handle: Callable[[list[RawRecord]], Awaitable[None]],
                 checkpoint: Callable[[], Awaitable[None]], forget: Callable[[set[int]], None],
                 lock: asyncio.Lock, batch: int = 5000, security: Mapping[str, Any] | None = None) -> None:
        self.topics = topics
        self.handle = handle
        self.checkpoint = checkpoint
        self.forget = forget
        self.lock = lock
        self.batch = batch
        self.positions: dict[TopicPartition, int] = {}  # next offset to read, per partition read since commit
        self.read_to: dict[TopicPartition, int] = {}  # next offset to read, per partition ever read here
        self.options: dict[str, Any] = dict(
            bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=batch, fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024, partition_assignment_strategy=(RangePartitionAssignor,),
            **consumer_overrides(tansu), **(security or {}),
        )
        self.consumer: AIOKafkaConsumer | None = None
        self.stopping = False
        self.partitions = 0  # of the input topics (co-partitioned), from the cluster's metadata
        self.progress_at = time.monotonic()  # when a batch was last handled (for /readyz)
        # every assigned partition read up to the high watermark of its last fetch: nothing waits to be read
        # (False until the first fetch after a start or a rebalance)
        self.drained = False

    async def run(self) -> None:
        self.consumer = AIOKafkaConsumer(**self.options)  # needs the running loop
        self.consumer.subscribe(list(self.topics), listener=_Rebalance(self))
        await self.consumer.start()
        try:
            while not self.stopping:
                fetched = await self.consumer.getmany(timeout_ms=100, max_records=self.batch)
                if not self.partitions:
                    self.partitions = len(self.consumer.partitions_for_topic(self.topics[0]) or ())
                async with self.lock:  # a rebalance (which takes the lock) may have revoked what was fetched
                    assigned = self.consumer.assignment()
                    fetched = {tp: messages for tp, messages in fetched.items() if tp in assigned and messages}
                    if not fetched:
                        self.drained = await self._at_high_watermarks(assigned)
                        continue
                    self.drained = False
                    for tp, messages in fetched.items():
                        if messages[0].offset < self.read_to.get(tp, 0):
                            raise StageFailure(
                                f"the offsets of {tp.topic}[{tp.partition}] went back from {self.read_to[tp]} to "
                                f"{messages[0].offset}: the Kafka broker was replaced or lost its data")
                    await self.handle([RawRecord(m.topic, m.partition, m.offset, m.key, m.value, tuple(m.headers),
                                                 max(m.timestamp or 0, 0))
                                       for messages in fetched.values() for m in messages])
                    for tp, messages in fetched.items():
                        self.positions[tp] = self.read_to[tp] = messages[-1].offset + 1
                    self.progress_at = time.monotonic()
        finally:
            await self.consumer.stop()

    def assigned_partitions(self) -> set[int]:
        """Input partitions assigned to this worker now (none before the consumer started)."""
        return set() if self.consumer is None else {tp.partition for tp in self.consumer.assignment()}

    async def _at_high_watermarks(self, assigned: set[TopicPartition]) -> bool:
        assert self.consumer is not None
        for tp in assigned:
            high = self.consumer.highwater(tp)
            if high is None or await self.consumer.position(tp) < high:
                return False
        return bool(assigned)

    def lag(self) -> dict[str, int]:
        """Records behind the high watermark of the last fetch, summed per topic (partitions read so far)."""
        out = dict.fromkeys(self.topics, 0)
        if self.consumer is None:
            return out
        for tp in self.consumer.assignment():
            high, read = self.consumer.highwater(tp), self.read_to.get(tp)
            if high is not None and read is not None:
                out[tp.topic] = out.get(tp.topic, 0) + max(0, high - read)
        return out

    def stalled_seconds(self) -> float:
        """For how long records have been waiting while nothing was handled (0 when nothing waits)."""
        if not any(self.lag().values()):
            self.progress_at = time.monotonic()
            return 0.0
        return time.monotonic() - self.progress_at

    async def commit(self) -> None:
        """Commit what the last checkpoint covers (call with the lock held, right after the checkpoint)."""
        if self.positions and self.consumer is not None:
            assigned = self.consumer.assignment()
            positions = {tp: offset for tp, offset in self.positions.items() if tp in assigned}
            self.positions = {}
            if positions:
                await self.consumer.commit(positions)

    async def revoked(self, partitions: set[int]) -> None:
        async with self.lock:
            await self.checkpoint()
            await self.commit()
            self.forget(partitions)
            self.read_to = {tp: o for tp, o in self.read_to.items() if tp.partition not in partitions}
