"""Reading a whole topic in integration tests, the way tansu allows (high watermarks from fetches)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition


async def read_topic(bootstrap: str, topic: str) -> list[tuple[int, bytes, bytes]]:
    """Every record of ``topic`` as (partition, key, value), with a plain consumer, up to the high watermarks."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=100)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[tuple[int, bytes, bytes]] = []
        for _ in range(200):
            batches = await consumer.getmany(timeout_ms=200)
            out += [(r.partition, r.key, r.value) for tp in tps for r in batches.get(tp, [])]
            ends = [consumer.highwater(tp) for tp in tps]
            positions = [await consumer.position(tp) for tp in tps]
            if all(end is not None and pos >= end for pos, end in zip(positions, ends, strict=True)):
                return out
        raise AssertionError(f"did not reach the end of {topic}")
    finally:
        await consumer.stop()
