"""Topic administration and the compacted control topics (models, silences): create the topics Driftwarden
uses, publish one record and wait for its acknowledgement, read a control topic to its end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic import ValidationError

from stream.alerts.silences import SILENCES_TOPIC, Silence, Silences, encode
from stream.config import Settings
from stream.contracts.registry import RegisteredModel, Registry
from stream.contracts.registry import encode as encode_model
from stream.errors import UserError, quiet_logger
from stream.kafka.clients import read_to_end, start, start_errors, unreachable
from stream.kafka.security import check_tls

_TIMEOUT = 15.0
_TOPIC_EXISTS = 36  # Kafka error code TOPIC_ALREADY_EXISTS


async def ensure_topics(bootstrap: str, settings: Settings, timeout: float = 10.0,
                        security: Mapping[str, Any] | None = None) -> None:
    """Create the topics Driftwarden uses, if absent; fail with one line when Kafka cannot be reached."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000),
                                **(security or {}))
    try:
        await check_tls(bootstrap, security or {})
        with quiet_logger("aiokafka"):  # it logs the connection error itself; ours is the one line shown
            await asyncio.wait_for(admin.start(), timeout)
    except (UserError, KafkaConnectionError, *start_errors(security)) as exc:
        with contextlib.suppress(Exception):
            await admin.close()
        if isinstance(exc, UserError):
            raise
        if security:
            raise unreachable(bootstrap, exc, security) from None
        raise UserError(
            f"cannot reach Kafka at {bootstrap} ({type(exc).__name__}): check DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS, "
            "or unset it to use the embedded broker"
        ) from exc
    try:
        existing = set(await admin.list_topics())
        p = settings.topic_partitions
        wanted = [
            NewTopic(settings.topic_predictions, p, 1), NewTopic(settings.topic_ground_truth, p, 1),
            NewTopic(settings.topic_outcomes, p, 1), NewTopic(settings.topic_dead_letters, p, 1),
            NewTopic(settings.topic_alerts, p, 1),
            NewTopic(settings.topic_models, 1, 1, topic_configs={"cleanup.policy": "compact"}),
            NewTopic(SILENCES_TOPIC, 1, 1, topic_configs={"cleanup.policy": "compact"}),
            NewTopic(epoch_topic(settings.app_id), 1, 1),  # see stream.kafka.epoch
        ]
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()


def epoch_topic(app_id: str) -> str:
    """The one-partition topic whose first record names the broker log's incarnation (`stream.kafka.epoch`)."""
    return f"{app_id}-epoch"


async def ensure_silences_topic(bootstrap: str, timeout: float = _TIMEOUT,
                                security: Mapping[str, Any] | None = None) -> None:
    """Create the compacted, one-partition silences topic if it is missing."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000),
                                **(security or {}))
    await start(admin, bootstrap, timeout, security)
    try:
        if SILENCES_TOPIC in await admin.list_topics():
            return
        response = await admin.create_topics(
            [NewTopic(SILENCES_TOPIC, 1, 1, topic_configs={"cleanup.policy": "compact"})])
        for name, code, *rest in response.topic_errors:
            if code not in (0, _TOPIC_EXISTS):
                detail = rest[0] if rest and rest[0] else f"error code {code}"
                raise UserError(f"cannot create topic {name!r} at {bootstrap}: {detail}")
    except KafkaError as exc:
        raise UserError(f"cannot create topic {SILENCES_TOPIC!r} at {bootstrap}: {exc!r}") from None
    finally:
        await admin.close()



async def publish_silence(bootstrap: str, silence: Silence, timeout: float = _TIMEOUT,
                          security: Mapping[str, Any] | None = None) -> None:
    """Create the silences topic if needed, publish one record and wait until Kafka acknowledges it."""
    await ensure_silences_topic(bootstrap, timeout, security)
    key, value = encode(silence)
    await publish_record(bootstrap, SILENCES_TOPIC, key, value, "the silence", timeout, security)



async def read_silences(bootstrap: str, timeout: float = _TIMEOUT,
                        security: Mapping[str, Any] | None = None) -> tuple[Silences, int]:
    """The latest silence record of every key on the silences topic, and how many bad records were skipped."""
    book, bad = Silences(), 0
    for record in await read_to_end(bootstrap, SILENCES_TOPIC, timeout, security):
        try:
            book.apply_message(record.key, record.value)
        except ValueError:
            bad += 1
    return book, bad


async def read_models(bootstrap: str, topic: str, timeout: float = _TIMEOUT,
                      security: Mapping[str, Any] | None = None) -> tuple[Registry, int]:
    """Read the models topic from its start to its high watermark; return the registry and bad records skipped."""
    registry, bad = Registry(), 0
    for record in await read_to_end(bootstrap, topic, timeout, security):
        try:
            registry.apply_message(record.key, record.value)
        except (ValidationError, ValueError):
            bad += 1
    return registry, bad



async def publish_model(bootstrap: str, topic: str, model: RegisteredModel, timeout: float = _TIMEOUT,
                        security: Mapping[str, Any] | None = None) -> None:
    """Publish one registration to the models topic and wait until Kafka acknowledges it."""
    key, value = encode_model(model)
    await publish_record(bootstrap, topic, key, value, f"model {model.spec.model_id!r}", timeout, security)



async def publish_record(bootstrap: str, topic: str, key: bytes, value: bytes, what: str,
                         timeout: float = _TIMEOUT, security: Mapping[str, Any] | None = None) -> None:
    """Publish one record and wait until every replica has it (acks=all); one-line errors."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all",
                                max_request_size=16 * 1024 * 1024, request_timeout_ms=int(timeout * 1000),
                                **(security or {}))
    await start(producer, bootstrap, timeout, security)
    try:
        await producer.send_and_wait(topic, value, key=key)
    except KafkaError as exc:
        raise UserError(f"publishing {what} to {topic!r} at {bootstrap} failed: {exc!r}") from None
    finally:
        await producer.stop()
