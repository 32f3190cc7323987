"""Short-lived aiokafka clients for the CLI and the worker's side tasks: started with a one-line error when
Kafka cannot be reached (aiokafka's own connection errors are kept out of the terminal)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from stream.errors import UserError, quiet_logger


def unreachable(bootstrap: str, exc: BaseException) -> UserError:
    return UserError(f"cannot reach Kafka at {bootstrap} ({type(exc).__name__}): is `driftwarden up` running?")


async def start(client: Any, bootstrap: str, timeout: float) -> None:
    """Start an aiokafka producer, consumer or admin client within ``timeout`` seconds; if it cannot connect,
    release it and raise a one-line `UserError`."""
    try:
        with quiet_logger("aiokafka"):
            await asyncio.wait_for(client.start(), timeout)
    except (TimeoutError, KafkaError, OSError) as exc:
        with contextlib.suppress(Exception):
            await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())
        raise unreachable(bootstrap, exc) from None


async def started_reader(bootstrap: str, timeout: float) -> AIOKafkaConsumer:
    """A started consumer without a group (the caller assigns partitions and seeks), for reading topics."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
        fetch_max_wait_ms=100, request_timeout_ms=int(timeout * 1000),
    )
    await start(consumer, bootstrap, timeout)
    return consumer
