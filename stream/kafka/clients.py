"""Short-lived aiokafka clients for the CLI and the worker's side tasks: started with a one-line error when
Kafka cannot be reached (aiokafka's own connection errors are kept out of the terminal)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from stream.errors import UserError, quiet_logger
from stream.kafka.security import check_tls


def unreachable(bootstrap: str, exc: BaseException, security: Mapping[str, Any] | None = None) -> UserError:
    if security and security.get("sasl_mechanism") == "OAUTHBEARER":
        return UserError(f"cannot connect to Kafka at {bootstrap} over {security['security_protocol']} with "
                         f"OAUTHBEARER ({type(exc).__name__}): check the address and the DRIFTWARDEN_KAFKA_OAUTH_* "
                         "settings (is the token accepted by the brokers?)")
    if security and "sasl_mechanism" in security:
        return UserError(f"cannot connect to Kafka at {bootstrap} over {security['security_protocol']} as "
                         f"{security['sasl_plain_username']!r} ({security['sasl_mechanism']}, {type(exc).__name__}): "
                         "check the address, DRIFTWARDEN_KAFKA_SASL_USERNAME and DRIFTWARDEN_KAFKA_SASL_PASSWORD")
    if security:
        return UserError(f"cannot connect to Kafka at {bootstrap} over {security['security_protocol']} "
                         f"({type(exc).__name__}): check the address and the DRIFTWARDEN_KAFKA_SSL_* settings")
    return UserError(f"cannot reach Kafka at {bootstrap} ({type(exc).__name__}): is `driftwarden up` running?")


def start_errors(security: Mapping[str, Any] | None) -> tuple[type[BaseException], ...]:
    """What starting a client raises when it cannot connect. With SASL, aiokafka's SCRAM exchange also raises
    KeyError or ValueError when the server refuses the credentials (its final message has no signature)."""
    errors: tuple[type[BaseException], ...] = (TimeoutError, KafkaError, OSError)
    return (*errors, KeyError, ValueError) if security and "sasl_mechanism" in security else errors


async def start(client: Any, bootstrap: str, timeout: float, security: Mapping[str, Any] | None = None) -> None:
    """Start an aiokafka producer, consumer or admin client within ``timeout`` seconds; if it cannot connect,
    release it and raise a one-line `UserError` (naming the TLS problem when a handshake shows one)."""
    try:
        await check_tls(bootstrap, security or {})
        with quiet_logger("aiokafka"):
            await asyncio.wait_for(client.start(), timeout)
    except UserError:
        await _release(client)
        raise
    except start_errors(security) as exc:
        await _release(client)
        raise unreachable(bootstrap, exc, security) from None


async def _release(client: Any) -> None:
    with contextlib.suppress(Exception):
        await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())


async def started_reader(bootstrap: str, timeout: float, security: Mapping[str, Any] | None = None) -> AIOKafkaConsumer:
    """A started consumer without a group (the caller assigns partitions and seeks), for reading topics;
    ``security``: `stream.kafka.security.client_options`."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
        fetch_max_wait_ms=100, request_timeout_ms=int(timeout * 1000), **(security or {}),
    )
    await start(consumer, bootstrap, timeout, security)
    return consumer


async def at_end(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> bool:
    """Whether the consumer's position has reached the high watermark of every partition in ``tps`` (as seen
    in the last fetch responses: tansu's ListOffsets(latest) is not reliable)."""
    for tp in tps:
        high = consumer.highwater(tp)
        if high is None or await consumer.position(tp) < high:
            return False
    return True


async def read_to_end(bootstrap: str, topic: str, timeout: float,
                      security: Mapping[str, Any] | None = None) -> list[ConsumerRecord[Any, Any]]:
    """Every record of ``topic`` from its start to its high watermarks, in partition then offset order.

    A missing topic reads as empty.
    """
    consumer = await started_reader(bootstrap, timeout, security)
    out: dict[TopicPartition, list[ConsumerRecord[Any, Any]]] = {}
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while True:
            batches = await consumer.getmany(*tps, timeout_ms=200)
            for tp, records in batches.items():
                out.setdefault(tp, []).extend(records)
            if await at_end(consumer, tps):
                return [r for tp in tps for r in out.get(tp, [])]
            if time.monotonic() > deadline:
                raise UserError(f"reading topic {topic!r} at {bootstrap} did not finish within {timeout:.0f} s")
    finally:
        await consumer.stop()


async def follow(bootstrap: str, topic: str, from_beginning: bool = False, timeout: float = 15.0,
                 on_ready: Callable[[], None] | None = None,
                 security: Mapping[str, Any] | None = None) -> AsyncGenerator[ConsumerRecord[Any, Any], None]:
    """Yield the records of every partition of ``topic`` as they arrive, forever, without a consumer group.

    Starts at the high watermarks read from Fetch responses (records already there are skipped) unless
    ``from_beginning``; ``on_ready`` is called once positioned. Use with ``contextlib.aclosing`` so the consumer
    is stopped when the caller stops early.
    """
    consumer = await started_reader(bootstrap, timeout, security)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise UserError(f"no topic {topic!r} at {bootstrap}: start `driftwarden up` once to create it")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        if not from_beginning:
            deadline = time.monotonic() + timeout
            while any(consumer.highwater(tp) is None for tp in tps):
                await consumer.getmany(*tps, timeout_ms=100)  # only to learn the high watermarks
                if time.monotonic() > deadline:
                    raise UserError(f"topic {topic!r} at {bootstrap} did not answer within {timeout:.0f} s")
            for tp in tps:
                end = consumer.highwater(tp)
                assert end is not None
                consumer.seek(tp, end)
        if on_ready is not None:
            on_ready()
        while True:
            batches = await consumer.getmany(*tps, timeout_ms=500)
            records = [r for tp in tps for r in batches.get(tp, [])]
            records.sort(key=lambda r: (r.timestamp, r.partition, r.offset))
            for record in records:
                yield record
    finally:
        await consumer.stop()
