"""A restored input partition's join clock goes on from its checkpoint: waiting predictions expire after a
restart even when nothing more is read from that partition (the crash test saw them wait forever)."""

from __future__ import annotations

import time

import orjson

from stream.contracts.events import Limits
from stream.contracts.registry import Registry
from stream.pipeline.ingest import GROUND_TRUTH, PREDICTIONS, Ingest, RawRecord

T0 = 1_767_225_600_000
DELAY_MS = 60_000


def _ingest() -> Ingest:
    return Ingest(Registry(), Limits(), "predictions", "ground_truth", max_delay_ms=DELAY_MS)


def _prediction(pid: str, ts: int) -> RawRecord:
    value = orjson.dumps({"prediction_id": pid, "model_id": "m", "timestamp": ts, "prediction": "yes",
                          "features": {"x": 1.0}})
    return RawRecord("predictions", 0, 0 if pid == "old" else 1, pid.encode(), value)


def _label(pid: str, ts: int) -> RawRecord:
    return RawRecord("ground_truth", 0, 0, pid.encode(),
                     orjson.dumps({"prediction_id": pid, "label": "yes", "timestamp": ts}))


def test_restored_partition_expires_what_waits_without_reading_more() -> None:
    first = _ingest()
    first.process([_prediction("old", T0 - 2 * DELAY_MS), _prediction("new", T0)])
    first.process([_label("other", T0 + 5)])
    assert first.join_clock(0, time.time() * 1000) == T0
    offsets, state = first.checkpoint(0)
    assert (first.joins[0].n_waiting_predictions, first.joins[0].stats.expired_predictions) == (2, 0)

    restarted = _ingest()
    restarted.restore(0, offsets, state)
    assert restarted.join_clock(0, time.time() * 1000) == T0
    assert restarted.joins[0].read_until == [T0, T0 + 5]
    restarted.expire(0, time.time() * 1000)
    # "old" waited longer than the maximum delay at the clock the first life had reached
    assert restarted.joins[0].stats.expired_predictions == 1
    assert restarted.joins[0].n_waiting_predictions == 1


def test_a_fresh_or_forgotten_partition_holds_the_clock_at_zero() -> None:
    ingest = _ingest()
    ingest.process([_prediction("new", T0)])
    assert ingest.join_clock(0, time.time() * 1000) == 0  # no label read yet: the clock waits for that side
    ingest.forget(0)
    assert (0, PREDICTIONS) not in ingest.read_at and (0, GROUND_TRUTH) not in ingest.read_at
