"""The broker's epoch: which incarnation of the Kafka log a worker's checkpointed offsets belong to.

An in-memory broker (tansu's default storage) that restarts comes back empty, on the same address, and its
offsets start at 0 again; offsets checkpointed against the old log would make every new record look like a
replay. The first record of the one-partition ``<app id>-epoch`` topic names the log's incarnation: a worker
writes a random id there when the topic is empty, keeps it with its checkpoints, and stops when it changes.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from stream.kafka.clients import read_to_end
from stream.kafka.topics import epoch_topic, publish_record

__all__ = ["EPOCH_KEY", "broker_epoch", "epoch_topic", "offsets_of_epoch", "read_epoch"]

EPOCH_KEY = "__epoch__"  # the entry of a checkpoint's offsets that holds the epoch they belong to


async def read_epoch(bootstrap: str, topic: str, timeout: float = 10.0,
                     security: Mapping[str, Any] | None = None) -> int | None:
    """The epoch of the broker's log (the first record of ``topic``), or None if there is none yet."""
    for record in await read_to_end(bootstrap, topic, timeout, security):
        if record.value:
            return int(record.value)
    return None


async def broker_epoch(bootstrap: str, topic: str, timeout: float = 10.0,
                       security: Mapping[str, Any] | None = None) -> int:
    """The epoch of the broker's log, written first if it has none (if several workers race, the first
    record wins for all of them)."""
    found = await read_epoch(bootstrap, topic, timeout, security)
    if found is None:
        await publish_record(bootstrap, topic, b"epoch", str(secrets.randbits(62)).encode(), "the broker epoch",
                             timeout, security)
        found = await read_epoch(bootstrap, topic, timeout, security)
        assert found is not None, "the epoch record was acknowledged but cannot be read back"
    return found


def offsets_of_epoch(offsets: Mapping[str, int], epoch: int) -> dict[str, int]:
    """Checkpointed offsets if they belong to ``epoch`` (or carry none: written before epochs), else {}: the
    log they point into is gone.

    >>> offsets_of_epoch({"p": 5, EPOCH_KEY: 7}, 7), offsets_of_epoch({"p": 5, EPOCH_KEY: 7}, 8)
    ({'p': 5}, {})
    """
    found = offsets.get(EPOCH_KEY)
    if found is not None and found != epoch:
        return {}
    return {k: v for k, v in offsets.items() if k != EPOCH_KEY}
