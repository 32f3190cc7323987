"""Everything Driftwarden does differently because the embedded broker is tansu, in one place.

Switched on only for the embedded broker; against Apache Kafka every setting stays at its Kafka default.

- tansu holds a consumer-group join for half the session timeout, so group joins take seconds with Kafka's
  defaults: use short session, heartbeat and rebalance timeouts.
- InitProducerId v0 is rejected (no idempotent producer, no transactions): processing stays at_least_once
  (also the default everywhere in Driftwarden), and the replay filter in `stream.pipeline.aggregate` provides
  idempotence instead.
- ListOffsets(latest) returns a wrong end offset. Driftwarden keeps no Faust changelog tables, so table
  recovery (which would miss the last record of a changelog partition) is not affected; code that needs an
  end offset must read the high watermark of a Fetch response instead (`consumer.highwater(tp)` in aiokafka).
- Compaction and retention are never applied, and all data is lost when the broker stops.
"""

from __future__ import annotations

from typing import Any

TANSU_FAUST_SETTINGS: dict[str, Any] = {
    "broker_session_timeout": 6.0,
    "broker_heartbeat_interval": 1.5,
    "broker_rebalance_timeout": 6.0,
}

TANSU_AIOKAFKA_CONSUMER: dict[str, Any] = {
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1500,
    "rebalance_timeout_ms": 6000,
}


def faust_overrides(embedded: bool) -> dict[str, Any]:
    """Faust settings to add for the embedded broker (none for real Kafka)."""
    return dict(TANSU_FAUST_SETTINGS) if embedded else {}


def consumer_overrides(embedded: bool) -> dict[str, Any]:
    """aiokafka consumer settings to add for the embedded broker (none for real Kafka)."""
    return dict(TANSU_AIOKAFKA_CONSUMER) if embedded else {}
