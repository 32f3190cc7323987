"""The ingest stage, pure: raw Kafka records in, dead letters and per-model batches of joined outcomes out.

One batch record per model and ingest batch crosses the internal topic (keyed by model id), not one message
per event, which keeps Faust's per-message cost off the hot path. Each item carries the topic and offset of
the record that produced it, so the aggregator can drop items it has already applied when a batch is replayed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream.contracts.events import (
    DeadLetter,
    GroundTruthEvent,
    Limits,
    PredictionEvent,
    Reason,
    dead_letter,
    decode_ground_truth,
    decode_predictions,
    epoch_ms,
)
from stream.contracts.registry import RegisteredModel, Registry, infer_spec
from stream.pipeline.join import JoinResult, JoinState

PREDICTIONS, GROUND_TRUTH = 0, 1


@dataclass(frozen=True, slots=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None  # None: a tombstone (or a headers-only record)
    headers: tuple[tuple[str, bytes | None], ...] = ()


def unusable(record: RawRecord) -> tuple[Reason, str] | None:
    """Why a record cannot be an event before its value is even read (no value, an empty one, no key), or None.

    A record without a key is dead-lettered: its partition was not chosen by ``prediction_id``, so its other
    side may sit in another partition and the pair would never be joined.

    >>> unusable(RawRecord("predictions", 0, 7, b"p-1", None))
    ('null_value', 'the record has a null value (a tombstone): an event must be a JSON object')
    >>> unusable(RawRecord("predictions", 0, 7, None, b"{}"))[0]
    'null_key'
    """
    value = record.value
    if value is None:
        if record.headers:
            return "headers_only", (f"the record has {len(record.headers)} header(s) and no value: "
                                    "an event must be in the value")
        return "null_value", "the record has a null value (a tombstone): an event must be a JSON object"
    if not value:
        return "empty_value", "the record value is empty (0 bytes): an event must be a JSON object"
    if record.key is None:
        return "null_key", ("the record has no key: key it by prediction_id (UTF-8) so that a prediction and "
                            "its label land in the same partition")
    return None


def _segment_text(segment: dict[str, str]) -> str:
    return orjson.dumps(segment, option=orjson.OPT_SORT_KEYS).decode() if segment else ""


@dataclass
class IngestResult:
    dead_letters: list[DeadLetter] = field(default_factory=list)
    batches: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    registered: list[RegisteredModel] = field(default_factory=list)
    processed: int = 0
    accepted: int = 0  # records that became events (the others are dead letters or replays)
    replayed: int = 0
    retractions: int = 0

    def batch(self, model_id: str, partition: int) -> dict[str, Any]:
        """The internal record of one model and input partition (replay filtering is per partition)."""
        found = self.batches.get((model_id, partition))
        if found is None:
            found = self.batches[(model_id, partition)] = _new_batch(model_id, partition)
        return found


def split_batch(batch: dict[str, Any], max_items: int = 1000) -> list[dict[str, Any]]:
    """Cut a batch record into records of at most ``max_items`` predictions and outcomes each, so that every
    Kafka message stays well under the usual 1 MB limit (a prediction with 20 features is about 500 bytes).

    >>> b = _new_batch("m", 0); b["preds"]["off"] = list(range(5)); b["outs"]["off"] = [7]
    >>> [(len(c["preds"]["off"]), len(c["outs"]["off"])) for c in split_batch(b, max_items=2)]
    [(2, 1), (2, 0), (1, 0)]
    """
    n = max(len(batch["preds"]["off"]), len(batch["outs"]["off"]))
    if n <= max_items:
        return [batch]
    return [
        {**batch, "preds": {k: v[lo:lo + max_items] for k, v in batch["preds"].items()},
         "outs": {k: v[lo:lo + max_items] for k, v in batch["outs"].items()}}
        for lo in range(0, n, max_items)
    ]


def _new_batch(model_id: str, partition: int) -> dict[str, Any]:
    return {
        "model_id": model_id, "partition": partition,
        "preds": {"off": [], "pid": [], "ver": [], "seg": [], "ts": [], "pred": [], "score": [], "lat": [], "feat": []},
        "outs": {"src": [], "off": [], "pid": [], "lts": [], "ver": [], "seg": [], "ts": [], "label": [], "pred": [],
                 "score": [], "biz": []},
    }


class Ingest:
    """Validates, registers and joins; one `JoinState` per input partition."""

    def __init__(self, registry: Registry, limits: Limits, topic_predictions: str, topic_ground_truth: str,
                 max_delay_ms: int, duplicate_policy: str = "first", auto_register: bool = True) -> None:
        self.registry = registry
        self.limits = limits
        self.topic_predictions = topic_predictions
        self.topic_ground_truth = topic_ground_truth
        self.max_delay_ms = max_delay_ms
        self.duplicate_policy = duplicate_policy
        self.sources = 0  # partitions of the input topics, when known: the aggregate stage waits for them all
        self.auto_register = auto_register
        self.joins: dict[int, JoinState] = {}
        self.next_offsets: dict[int, dict[str, int]] = {}  # partition -> topic -> next offset to apply
        self.watermarks: dict[tuple[int, int], tuple[int, float]] = {}  # (partition, side) -> (max ts, seen at)
        self.replayed = 0
        self.started_ms = time.time() * 1000

    def restore(self, partition: int, offsets: dict[str, int], state: bytes) -> None:
        """Continue from a checkpoint: its join state, and the offsets below which records are replays."""
        self.joins[partition] = JoinState.restore(state)
        self.next_offsets[partition] = dict(offsets)

    def _advance(self, partition: int, side: int, max_ts: int) -> None:
        previous = self.watermarks.get((partition, side), (0, 0.0))[0]
        self.watermarks[(partition, side)] = (max(previous, max_ts), time.time() * 1000)

    def join_clock(self, partition: int, now_ms: float) -> int:
        """Event time up to which both inputs of a partition have been read: the smaller of the two sides'
        max event time, so that one topic read ahead of the other does not expire what the other still holds.
        A side silent for a whole label delay (wall clock) stops holding the clock back; with both silent,
        the wall clock is used.

        >>> ingest = Ingest(Registry(), Limits(), "p", "g", max_delay_ms=1000)
        >>> ingest._advance(0, PREDICTIONS, 5000)
        >>> ingest.join_clock(0, now_ms=time.time() * 1000)  # no label read yet
        0
        >>> ingest._advance(0, GROUND_TRUTH, 3000)
        >>> ingest.join_clock(0, now_ms=time.time() * 1000)
        3000
        """
        unseen = (0, self.started_ms)  # a side not read yet holds the clock back, until it stays silent too long
        live = [ts for side in (PREDICTIONS, GROUND_TRUTH)
                for ts, seen in [self.watermarks.get((partition, side), unseen)] if now_ms - seen <= self.max_delay_ms]
        return min(live) if live else int(now_ms)

    def expire(self, partition: int, now_ms: float) -> None:
        """Expire waiting predictions and labels older than the maximum delay at the partition's join clock."""
        self.join_for(partition).expire(self.join_clock(partition, now_ms))

    def checkpoint(self, partition: int) -> tuple[dict[str, int], bytes]:
        return dict(self.next_offsets.get(partition, {})), self.join_for(partition).snapshot()

    def forget(self, partition: int) -> None:
        """Drop the state of a partition this worker no longer owns."""
        self.joins.pop(partition, None)
        self.next_offsets.pop(partition, None)

    def join_for(self, partition: int) -> JoinState:
        state = self.joins.get(partition)
        if state is None:
            state = self.joins[partition] = JoinState(self.max_delay_ms, self.duplicate_policy)  # type: ignore[arg-type]
        return state

    def process(self, records: Sequence[RawRecord]) -> IngestResult:
        result = IngestResult()
        by_source: dict[tuple[str, int], list[RawRecord]] = defaultdict(list)
        for record in records:
            positions = self.next_offsets.setdefault(record.partition, {})
            if record.offset < positions.get(record.topic, 0):
                self.replayed += 1  # already in the restored checkpoint
                result.replayed += 1
                continue
            positions[record.topic] = record.offset + 1
            if not record.value or record.key is None:
                why = unusable(record)
                if why is not None:
                    self._reject(result, record, *why)
                    continue
            by_source[(record.topic, record.partition)].append(record)
        for (topic, partition), items in by_source.items():
            if topic == self.topic_predictions:
                self._predictions(partition, items, result)
            elif topic == self.topic_ground_truth:
                self._labels(partition, items, result)
        for batch in result.batches.values():
            batch["sources"] = self.sources
        result.processed = len(records)
        return result

    def _reject(self, result: IngestResult, record: RawRecord, reason: Reason, error: str) -> None:
        result.dead_letters.append(dead_letter(record.topic, record.partition, record.offset, record.key,
                                               record.value, reason, error, self.limits))

    def _decoded(self, records: list[RawRecord], decode: Any, result: IngestResult) -> list[tuple[RawRecord, Any]]:
        """Valid events with their records; the others become dead letters."""
        events, rejections = decode([r.value for r in records], self.limits)  # values are non-empty bytes
        rejected = {r.index for r in rejections}
        for r in rejections:
            self._reject(result, records[r.index], r.reason, r.error)
        good = iter(events)
        return [(record, next(good)) for i, record in enumerate(records) if i not in rejected]

    def _predictions(self, partition: int, records: list[RawRecord], result: IngestResult) -> None:
        accepted: list[tuple[RawRecord, PredictionEvent]] = []
        for record, event in self._decoded(records, decode_predictions, result):
            if event.model_id not in self.registry:
                if not self.auto_register:
                    self._reject(result, record, "unregistered_model",
                                 f"model {event.model_id!r} is not registered: run `driftwarden models register`")
                    continue
                model = RegisteredModel(spec=infer_spec(event), source="auto")
                self.registry.put(model)
                result.registered.append(model)
            accepted.append((record, event))
        if not accepted:
            return
        join = self.join_for(partition)
        keys = [join.intern(e.model_id, e.model_version, _segment_text(e.segment)) for _, e in accepted]
        ts = epoch_ms([e.timestamp for _, e in accepted])
        self._advance(partition, PREDICTIONS, max(ts))
        preds = [_label_text(e.prediction) for _, e in accepted]
        scores = [float("nan") if e.score is None else e.score for _, e in accepted]
        joined = join.add_predictions([e.prediction_id for _, e in accepted], keys, ts, preds, scores)
        duplicates = set(joined.rejected.tolist())
        preds_of: dict[str, dict[str, list[Any]]] = {}  # model -> its batch's prediction columns
        for i, (record, event) in enumerate(accepted):
            if i in duplicates:
                self._reject(result, record, "duplicate_prediction_id",
                             f"prediction_id {event.prediction_id!r} was already received: ids must be unique")
                continue
            p = preds_of.get(event.model_id)
            if p is None:
                p = preds_of[event.model_id] = result.batch(event.model_id, partition)["preds"]
            p["off"].append(record.offset)
            p["pid"].append(event.prediction_id)
            p["ver"].append(event.model_version)
            p["seg"].append(event.segment)
            p["ts"].append(ts[i])
            p["pred"].append(preds[i])
            p["score"].append(scores[i])
            p["lat"].append(float("nan") if event.latency_ms is None else event.latency_ms)
            p["feat"].append(event.features)
        result.accepted += len(accepted) - len(duplicates)
        self._emit_pairs(joined, join, partition, result, source=PREDICTIONS,
                         offsets=[r.offset for r, _ in accepted])

    def _labels(self, partition: int, records: list[RawRecord], result: IngestResult) -> None:
        accepted: list[tuple[RawRecord, GroundTruthEvent]] = self._decoded(records, decode_ground_truth, result)
        if not accepted:
            return
        result.accepted += len(accepted)
        join = self.join_for(partition)
        ts = epoch_ms([e.timestamp for _, e in accepted])
        self._advance(partition, GROUND_TRUTH, max(ts))
        joined = join.add_labels(
            [e.prediction_id for _, e in accepted], [_label_text(e.label) for _, e in accepted], ts,
            [e.business for _, e in accepted],
        )
        self._emit_pairs(joined, join, partition, result, source=GROUND_TRUTH,
                         offsets=[r.offset for r, _ in accepted])

    def _emit_pairs(self, pairs: JoinResult, join: JoinState, partition: int, result: IngestResult, source: int,
                    offsets: list[int]) -> None:
        segments: dict[int, dict[str, str]] = {}  # one parsed segment per model key, shared by its outcomes
        outs_of: dict[str, dict[str, list[Any]]] = {}  # model -> its batch's outcome columns
        sign, model_key, index = pairs.sign.tolist(), pairs.model_key.tolist(), pairs.index.tolist()
        ts_ms, label_ts_ms, score = pairs.ts_ms.tolist(), pairs.label_ts_ms.tolist(), pairs.score.tolist()
        for i in range(len(pairs)):
            if sign[i] < 0:  # retraction under the "latest" policy; windows cannot subtract yet
                result.retractions += 1
                continue
            key = model_key[i]
            model_id, version, segment = join.lookup(key)
            if key not in segments:
                segments[key] = orjson.loads(segment) if segment else {}
            o = outs_of.get(model_id)
            if o is None:
                o = outs_of[model_id] = result.batch(model_id, partition)["outs"]
            o["src"].append(source)
            o["off"].append(offsets[index[i]])
            o["pid"].append(pairs.ids[i])
            o["ver"].append(version)
            o["seg"].append(segments[key])
            o["ts"].append(ts_ms[i])
            o["lts"].append(label_ts_ms[i])
            o["label"].append(pairs.label[i])
            o["pred"].append(pairs.prediction[i])
            o["score"].append(score[i])
            o["biz"].append(dict(pairs.business[i]))


def _label_text(value: str | float | int | bool) -> str | float:
    """Classification labels compare as strings (``True`` -> ``"true"``); numbers stay numbers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return float(value)
    return value
