"""Kafka side of `driftwarden bench`: pre-produce the bench events fast, and measure the raw consume ceiling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream.contracts.events import ModelSpec
from stream.contracts.registry import RegisteredModel, encode
from stream.demo.synthetic import bench_specs
from stream.kafka.clients import at_end

_ID_HEAD = b'{"prediction_id":"'


def prediction_id_of(value: bytes) -> bytes:
    """The ``prediction_id`` of an encoded event, as key bytes: sliced when it is the first key and plain,
    else decoded with orjson.

    >>> prediction_id_of(b'{"prediction_id":"p-1","label":1}'), prediction_id_of(b'{"label":1,"prediction_id":"q"}')
    (b'p-1', b'q')
    """
    if value.startswith(_ID_HEAD):
        end = value.find(b'"', len(_ID_HEAD))
        found = value[len(_ID_HEAD):end]
        if end > 0 and b"\\" not in found:
            return found
    return str(orjson.loads(value)["prediction_id"]).encode()


@dataclass
class Produced:
    predictions: int
    labels: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        return (self.predictions + self.labels) / self.seconds if self.seconds > 0 else 0.0


def murmur2_partitions(keys: Sequence[bytes], n_partitions: int) -> np.ndarray:
    """Partition of each key under Kafka's default partitioner (murmur2 of the key bytes, as the Java client,
    aiokafka and our SDK compute it), vectorised over keys of equal length.

    >>> murmur2_partitions([b"a", b"b", b"c", b"p-1", b"hello", b"kafka"], 7).tolist()
    [5, 6, 0, 6, 4, 3]
    """
    m = np.uint32(0x5BD1E995)
    out = np.empty(len(keys), dtype=np.int64)
    lengths = np.fromiter((len(k) for k in keys), dtype=np.int64, count=len(keys))
    for length in np.unique(lengths).tolist():
        idx = np.flatnonzero(lengths == length)
        data = np.frombuffer(b"".join(keys[i] for i in idx.tolist()), dtype=np.uint8).reshape(idx.size, length)
        data = data.astype(np.uint32)
        h = np.full(idx.size, 0x9747B28C ^ length, dtype=np.uint32)
        for i in range(0, length - length % 4, 4):
            k = data[:, i] | (data[:, i + 1] << 8) | (data[:, i + 2] << 16) | (data[:, i + 3] << 24)
            k *= m
            k ^= k >> 24
            k *= m
            h *= m
            h ^= k
        tail = length & ~3
        if length % 4 >= 3:
            h ^= data[:, tail + 2] << 16
        if length % 4 >= 2:
            h ^= data[:, tail + 1] << 8
        if length % 4 >= 1:
            h ^= data[:, tail]
            h *= m
        h ^= h >> 13
        h *= m
        h ^= h >> 15
        out[idx] = (h & np.uint32(0x7FFFFFFF)).astype(np.int64) % n_partitions
    return out


async def produce(bootstrap: str, topics: tuple[str, str, str], predictions: Sequence[bytes],
                  labels: Sequence[bytes]) -> Produced:
    """Register the bench models on the models topic, then send every prediction and label keyed by its
    prediction_id, to the partition Kafka's default partitioner picks. ``topics``: (models, predictions,
    ground truth). Records go out in large batches built per partition (setup, not measured as throughput)."""
    models, topic_p, topic_g = topics
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=1 << 20,
                                max_request_size=8 << 20)
    await producer.start()
    try:
        for spec in bench_specs():
            key, value = encode(RegisteredModel(spec=ModelSpec.model_validate(spec)))
            await producer.send_and_wait(models, value, key=key)
        began = time.perf_counter()
        futures: list[asyncio.Future[object]] = []
        for topic, values in ((topic_p, predictions), (topic_g, labels)):
            n_partitions = len(await producer.partitions_for(topic))
            keys = [prediction_id_of(v) for v in values]
            parts = murmur2_partitions(keys, n_partitions)
            for partition in range(n_partitions):
                batch = producer.create_batch()
                for i in np.flatnonzero(parts == partition).tolist():
                    if batch.append(key=keys[i], value=values[i], timestamp=None) is None:
                        futures.append(await producer.send_batch(batch, topic, partition=partition))
                        batch = producer.create_batch()
                        batch.append(key=keys[i], value=values[i], timestamp=None)
                if batch.record_count():
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
        await producer.flush()
        await asyncio.gather(*futures)  # raises the first failed send
        seconds = time.perf_counter() - began
    finally:
        await producer.stop()
    return Produced(len(predictions), len(labels), seconds)


@dataclass
class Ceiling:
    events: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


async def consume_ceiling(bootstrap: str, topics: Sequence[str], timeout: float = 120.0,
                          progress: Callable[[int], None] = lambda _: None) -> Ceiling:
    """Read every partition of ``topics`` from the start to its end with a plain consumer (no group) and decode
    each value with orjson. The end is the high watermark of the fetch responses (tansu's ListOffsets(latest)
    is wrong)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_bytes=64 << 20,
                                max_partition_fetch_bytes=16 << 20)
    await consumer.start()
    try:
        await consumer.topics()  # loads metadata
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        count = 0
        began = time.perf_counter()
        deadline = began + timeout
        while time.perf_counter() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=50_000)
            for messages in batches.values():
                for message in messages:
                    orjson.loads(message.value)  # type: ignore[arg-type]
                count += len(messages)
            progress(count)
            if await at_end(consumer, tps):
                break
        seconds = time.perf_counter() - began
    finally:
        await consumer.stop()
    return Ceiling(count, seconds)
