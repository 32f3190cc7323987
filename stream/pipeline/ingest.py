"""The ingest stage, pure: raw Kafka records in, dead letters and per-model batches of joined outcomes out.

One batch record per model and ingest batch crosses the internal topic (keyed by model id), not one message
per event, which keeps Faust's per-message cost off the hot path. Each item carries the topic and offset of
the record that produced it, so the aggregator can drop items it has already applied when a batch is replayed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream.contracts.events import (
    ContractError,
    DeadLetter,
    GroundTruthEvent,
    Limits,
    ModelSpec,
    PredictionEvent,
    Reason,
    Rejection,
    dead_letter,
    decode_ground_truth,
    decode_predictions,
    epoch_ms,
    validate_ground_truth,
    validate_prediction,
)
from stream.contracts.registry import RegisteredModel, Registry, infer_spec
from stream.pipeline.barrier import StageFailure, describe, isolate
from stream.pipeline.join import JoinResult, JoinState

PREDICTIONS, GROUND_TRUTH = 0, 1

PayloadDecoder = Callable[[bytes], Any]
"""Turns one record value into a mapping for the event contracts, raising ValueError with the reason when it
cannot; `stream.kafka.payloads` builds them from the settings (schema-registry formats, field mapping)."""


@dataclass(frozen=True, slots=True)
class IngestBounds:
    """What the ingest stage accepts beyond the event contracts (settings in `stream.config`)."""

    max_future_skew_ms: int = 300_000  # event time at most this far after the record was received
    max_event_age_ms: int = 3650 * 86_400_000  # ... and at most this far before it (0: no limit)
    max_models: int = 1000  # models registered (auto-registration stops there)
    max_features_per_model: int = 500  # features of an auto-registered model


@dataclass(slots=True, unsafe_hash=True)  # not frozen: a frozen dataclass's __init__ cost 3.7 µs a record, this 0.7
class RawRecord:
    """One Kafka record as the ingest stage reads it (treat it as immutable)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None  # None: a tombstone (or a headers-only record)
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp_ms: int = 0  # the Kafka record's timestamp (when it was received); 0: unknown, use the wall clock


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
    sides = [side for side in ("preds", "outs", "cmp") if side in batch]
    n = max(len(batch[side]["off"]) for side in sides)
    if n <= max_items:
        return [batch]
    return [{**batch, **{side: {k: v[lo:lo + max_items] for k, v in batch[side].items()} for side in sides}}
            for lo in range(0, n, max_items)]


def batch_items(batch: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Every item of a batch record as ("preds" or "outs", index)."""
    return [("preds", i) for i in range(len(batch["preds"]["off"]))] + [
        ("outs", i) for i in range(len(batch["outs"]["off"]))]


def select_items(batch: Mapping[str, Any], items: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """The batch record restricted to ``items`` (see `batch_items`).

    >>> b = {"model_id": "m", "partition": 0, "preds": {"off": [5, 6]}, "outs": {"off": [7]}}
    >>> s = select_items(b, [("preds", 1), ("outs", 0)]); s["preds"]["off"], s["outs"]["off"]
    ([6], [7])
    """
    picked: dict[str, list[int]] = {"preds": [], "outs": []}
    for side, i in items:
        picked[side].append(i)
    return {**batch, **{side: {column: [values[i] for i in picked[side]] for column, values in batch[side].items()}
                        for side in ("preds", "outs")}}


def item_dead_letter(batch: Mapping[str, Any], side: str, i: int, topics: tuple[str, str], error: str,
                     limits: Limits) -> DeadLetter:
    """The dead letter of one item of a batch record a later stage failed on (``topics``: predictions, labels)."""
    item = {column: values[i] for column, values in batch[side].items()}
    topic = topics[0] if side == "preds" or item.get("src") == PREDICTIONS else topics[1]
    try:
        raw = orjson.dumps({"model_id": batch["model_id"], **item}, default=str)
    except TypeError:
        raw = repr(item).encode()
    return dead_letter(topic, int(batch["partition"]), int(item["off"]), str(item["pid"]).encode(), raw,
                       "processing_error", error, limits)


def _new_cmp() -> dict[str, list[Any]]:
    """The ``cmp`` section of a champion's batch record: labelled outcomes of its group, for the pairing."""
    return {"mid": [], "off": [], "pid": [], "ts": [], "label": [], "pred": []}


def _new_batch(model_id: str, partition: int) -> dict[str, Any]:
    return {
        "model_id": model_id, "partition": partition,
        "preds": {"off": [], "pid": [], "ver": [], "seg": [], "ts": [], "pred": [], "score": [], "lat": [], "feat": [],
                  "probs": []},
        "outs": {"src": [], "off": [], "pid": [], "lts": [], "ver": [], "seg": [], "ts": [], "label": [], "pred": [],
                 "score": [], "biz": []},
    }


class Ingest:
    """Validates, registers and joins; one `JoinState` per input partition."""

    def __init__(self, registry: Registry, limits: Limits, topic_predictions: str, topic_ground_truth: str,
                 max_delay_ms: int, duplicate_policy: str = "first", auto_register: bool = True,
                 bounds: IngestBounds | None = None, payloads: Mapping[str, PayloadDecoder] | None = None) -> None:
        self.registry = registry
        self.payloads = dict(payloads or {})  # topic -> decoder of non-JSON payloads (or mapped field names)
        self.bounds = bounds or IngestBounds()
        self._poison: list[DeadLetter] = []
        self.limits = limits
        self.topic_predictions = topic_predictions
        self.topic_ground_truth = topic_ground_truth
        self.max_delay_ms = max_delay_ms
        self.duplicate_policy = duplicate_policy
        self.sources = 0  # partitions of the input topics, when known: the aggregate stage waits for them all
        self.auto_register = auto_register
        self.joins: dict[int, JoinState] = {}
        self.next_offsets: dict[int, dict[str, int]] = {}  # partition -> topic -> next offset to apply
        # (partition, side) -> wall clock when last read; how far in event time: the join's read_until
        self.read_at: dict[tuple[int, int], float] = {}
        self.replayed = 0
        self.started_ms = time.time() * 1000

    def restore(self, partition: int, offsets: dict[str, int], state: bytes) -> None:
        """Continue from a checkpoint: its join state, and the offsets below which records are replays."""
        join = self.joins[partition] = JoinState.restore(state)
        self.next_offsets[partition] = dict(offsets)
        now = time.time() * 1000
        for side, ts in enumerate(join.read_until):
            if ts > 0:  # the join clock goes on where it was, as if that side had just been read
                self.read_at[(partition, side)] = now

    def _regression(self, model_id: str) -> bool:
        model = self.registry.get(model_id)
        return model is not None and model.spec.task == "regression"

    def _advance(self, partition: int, side: int, max_ts: int) -> None:
        self.read_at[(partition, side)] = time.time() * 1000
        join = self.join_for(partition)
        join.read_until[side] = max(join.read_until[side], max_ts)

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
        join = self.joins.get(partition)
        read = join.read_until if join is not None else [0, 0]
        # a side not read yet (0) holds the clock back, until it stays silent too long
        live = [read[side] for side in (PREDICTIONS, GROUND_TRUTH)
                if now_ms - self.read_at.get((partition, side), self.started_ms) <= self.max_delay_ms]
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
        for side in (PREDICTIONS, GROUND_TRUTH):
            self.read_at.pop((partition, side), None)

    def _share(self, join: JoinState) -> None:
        """Tell the join which models share requests (champions and challengers, from the registry)."""
        shared = self.registry.shared()
        if join.shared is not shared:
            join.set_shared(shared)

    def join_for(self, partition: int) -> JoinState:
        state = self.joins.get(partition)
        if state is None:
            state = self.joins[partition] = JoinState(self.max_delay_ms, self.duplicate_policy)  # type: ignore[arg-type]
        return state

    def process(self, records: Sequence[RawRecord]) -> IngestResult:
        """Validate, register and join a batch. Whatever one record does becomes its dead letter (the batch is
        split to find it, `stream.pipeline.barrier`); an error after state changed raises `StageFailure`."""
        now_ms = int(time.time() * 1000)
        results = isolate(records, lambda part: self._process(part, now_ms), self._poisoned)
        result = results[0] if len(results) == 1 else _merged(results)
        result.dead_letters.extend(self._poison)
        self._poison = []
        for batch in result.batches.values():
            batch["sources"] = self.sources
            # how far both inputs of the partition were read: the aggregate stage evicts no window after it
            batch["joined_until"] = self.join_clock(int(batch["partition"]), now_ms)
        result.processed = len(records)
        return result

    def _poisoned(self, record: RawRecord, exc: Exception) -> None:
        self._poison.append(dead_letter(record.topic, record.partition, record.offset, record.key, record.value,
                                        "processing_error", f"ingest: {describe(exc)}", self.limits))

    def _process(self, records: Sequence[RawRecord], now_ms: int) -> IngestResult:
        """Screen every record first (nothing changes), then apply the accepted ones."""
        result = IngestResult()
        by_source: dict[tuple[str, int], list[RawRecord]] = defaultdict(list)
        unkept: list[RawRecord] = []  # dead-lettered before decoding: their offsets still advance
        replayed = 0
        for record in records:
            position = self.next_offsets.get(record.partition, {}).get(record.topic, 0)
            if record.offset < position:
                replayed += 1  # already in the restored checkpoint
                continue
            if not record.value or record.key is None:
                why = unusable(record)
                if why is not None:
                    self._reject(result, record, *why)
                    unkept.append(record)
                    continue
            by_source[(record.topic, record.partition)].append(record)
        screened: list[tuple[int, str, Any]] = []
        pending: dict[str, ModelSpec] = {}  # models first seen in this batch, registered once one is accepted
        for (topic, partition), items in by_source.items():
            if topic == self.topic_predictions:
                screened.append((partition, topic, self._screen_predictions(items, result, pending, now_ms)))
            elif topic == self.topic_ground_truth:
                screened.append((partition, topic, self._screen_labels(items, result, now_ms)))
        try:  # apply: from here on an error is not one record's fault
            self.replayed += replayed
            result.replayed += replayed
            for (topic, partition), items in by_source.items():
                positions = self.next_offsets.setdefault(partition, {})
                positions[topic] = max(positions.get(topic, 0), items[-1].offset + 1)
            for record in unkept:
                positions = self.next_offsets.setdefault(record.partition, {})
                positions[record.topic] = max(positions.get(record.topic, 0), record.offset + 1)
            for partition, topic, accepted in screened:
                if not accepted:
                    continue
                if topic == self.topic_predictions:
                    self._predictions(partition, accepted, result, pending)
                else:
                    self._labels(partition, accepted, result)
        except Exception as exc:
            raise StageFailure(f"the ingest stage failed while applying a batch: {describe(exc)}") from exc
        return result

    def _reject(self, result: IngestResult, record: RawRecord, reason: Reason, error: str) -> None:
        result.dead_letters.append(dead_letter(record.topic, record.partition, record.offset, record.key,
                                               record.value, reason, error, self.limits))

    def _decode_payloads(self, records: list[RawRecord], payload: PayloadDecoder,
                         validate: Any) -> tuple[list[Any], list[Rejection]]:
        """Decode with ``payload`` (a schema-registry format, or JSON with mapped field names), then validate
        with the same contracts as JSON; undecodable payloads are rejected with the decoder's reason."""
        events: list[Any] = []
        rejections: list[Rejection] = []
        max_bytes = self.limits.max_message_bytes
        for index, record in enumerate(records):
            value = record.value or b""
            if len(value) > max_bytes:
                rejections.append(Rejection(index, "too_large",
                                            f"message is {len(value)} bytes, above the limit of {max_bytes} bytes"))
                continue
            try:
                obj = payload(value)
            except ValueError as exc:
                rejections.append(Rejection(index, "undecodable", str(exc)[:1000]))
                continue
            try:
                events.append(validate(obj, self.limits))
            except ContractError as exc:
                rejections.append(Rejection(index, exc.reason, str(exc)))
        return events, rejections

    def _decoded(self, records: list[RawRecord], decode: Any, result: IngestResult,
                 now_ms: int) -> list[tuple[RawRecord, Any, int]]:
        """Valid events with their records and event times (epoch ms); the others become dead letters."""
        payload = self.payloads.get(records[0].topic)
        if payload is None:
            events, rejections = decode([r.value for r in records], self.limits)  # values are non-empty bytes
        else:
            validate = validate_prediction if decode is decode_predictions else validate_ground_truth
            events, rejections = self._decode_payloads(records, payload, validate)
        if rejections:
            rejected = {r.index for r in rejections}
            for r in rejections:
                self._reject(result, records[r.index], r.reason, r.error)
            good = [record for i, record in enumerate(records) if i not in rejected]
        else:
            good = records
        times = epoch_ms([e.timestamp for e in events])
        if not times:
            return []
        bounds = self.bounds
        received = [min(r.timestamp_ms, now_ms) if r.timestamp_ms > 0 else now_ms for r in good]
        # one check for the batch: its latest event within the skew of the earliest receipt, its earliest within
        # the age of the latest receipt; only a batch that fails it is checked record by record
        if max(times) <= min(received) + bounds.max_future_skew_ms and (
                not bounds.max_event_age_ms or min(times) >= max(received) - bounds.max_event_age_ms):
            return list(zip(good, events, times, strict=True))
        out = []
        for record, event, ts, at in zip(good, events, times, received, strict=True):
            if ts > at + bounds.max_future_skew_ms:
                self._reject(result, record, "timestamp_in_future",
                             f"timestamp {event.timestamp.isoformat()} is more than "
                             f"{bounds.max_future_skew_ms // 1000} s after the record was received "
                             "(DRIFTWARDEN_MAX_FUTURE_SKEW_SECONDS)")
            elif bounds.max_event_age_ms and ts < at - bounds.max_event_age_ms:
                self._reject(result, record, "timestamp_out_of_range",
                             f"timestamp {event.timestamp.isoformat()} is more than "
                             f"{bounds.max_event_age_ms // 86_400_000} days before the record was received "
                             "(DRIFTWARDEN_MAX_EVENT_AGE_DAYS)")
            else:
                out.append((record, event, ts))
        return out

    def _plain_models(self, model_ids: set[str | None]) -> bool:
        """Whether every model of a batch is registered and not a regression (then no event needs a per-event
        registry or task check), looked up once per model."""
        for model_id in model_ids:
            if model_id is None:
                continue
            model = self.registry.get(model_id)
            if model is None or model.spec.task == "regression":
                return False
        return True

    def _screen_predictions(self, records: list[RawRecord], result: IngestResult, pending: dict[str, ModelSpec],
                            now_ms: int) -> list[tuple[RawRecord, PredictionEvent, int]]:
        decoded: list[tuple[RawRecord, PredictionEvent, int]] = self._decoded(records, decode_predictions, result,
                                                                            now_ms)
        if self._plain_models({e.model_id for _, e, _ in decoded}):
            return decoded
        accepted: list[tuple[RawRecord, PredictionEvent, int]] = []
        for record, event, ts in decoded:
            model = self.registry.get(event.model_id)
            spec = model.spec if model is not None else pending.get(event.model_id)
            if spec is None:
                if not self.auto_register:
                    self._reject(result, record, "unregistered_model",
                                 f"model {event.model_id!r} is not registered: run `driftwarden models register`")
                    continue
                if len(self.registry) + len(pending) >= self.bounds.max_models:
                    self._reject(result, record, "too_many_models",
                                 f"model {event.model_id!r} would be model {len(self.registry) + len(pending) + 1}"
                                 f", above the limit of {self.bounds.max_models} (DRIFTWARDEN_MAX_MODELS)")
                    continue
                if len(event.features) > self.bounds.max_features_per_model:
                    self._reject(result, record, "too_many_model_features",
                                 f"{len(event.features)} features, above the limit of "
                                 f"{self.bounds.max_features_per_model} per model "
                                 "(DRIFTWARDEN_MAX_FEATURES_PER_MODEL)")
                    continue
                spec = pending[event.model_id] = infer_spec(event)
            if spec.task == "regression" and not _is_number(event.prediction):
                self._reject(result, record, "wrong_prediction_kind",
                             f"model {event.model_id!r} is a regression: its prediction must be a number, "
                             f"not {event.prediction!r}")
                continue
            accepted.append((record, event, ts))
        return accepted

    def _screen_labels(self, records: list[RawRecord], result: IngestResult,
                       now_ms: int) -> list[tuple[RawRecord, GroundTruthEvent, int]]:
        decoded: list[tuple[RawRecord, GroundTruthEvent, int]] = self._decoded(records, decode_ground_truth, result,
                                                                             now_ms)
        if self._plain_models({e.model_id for _, e, _ in decoded}):
            return decoded
        accepted = []
        for record, event, ts in decoded:
            model = self.registry.get(event.model_id) if event.model_id is not None else None
            if model is not None and model.spec.task == "regression" and not _is_number(event.label):
                self._reject(result, record, "wrong_prediction_kind",
                             f"model {event.model_id!r} is a regression: its label must be a number, "
                             f"not {event.label!r}")
                continue
            accepted.append((record, event, ts))
        return accepted

    def _predictions(self, partition: int, accepted: list[tuple[RawRecord, PredictionEvent, int]],
                     result: IngestResult, pending: dict[str, ModelSpec]) -> None:
        join = self.join_for(partition)
        self._share(join)
        records = [r for r, _, _ in accepted]
        events = [e for _, e, _ in accepted]
        ts = [t for _, _, t in accepted]
        intern = join.intern
        keys = [intern(e.model_id, e.model_version, _segment_text(e.segment) if e.segment else "") for e in events]
        self._advance(partition, PREDICTIONS, max(ts))
        preds = [p if type(p) is str or type(p) is float else _label_text(p) for p in [e.prediction for e in events]]
        nan = float("nan")
        scores = [nan if s is None else s for s in [e.score for e in events]]
        joined = join.add_predictions([e.prediction_id for e in events], keys, ts, preds, scores)
        duplicates = set(joined.rejected.tolist())
        for i in sorted(duplicates):
            self._reject(result, records[i], "duplicate_prediction_id",
                         f"prediction_id {events[i].prediction_id!r} was already received from model "
                         f"{events[i].model_id!r}: ids must be unique per model")
        model_ids = [e.model_id for e in events]
        for model_id, idx in _positions_by(model_ids, duplicates).items():  # models in order of first appearance
            spec = pending.pop(model_id, None)
            if spec is not None:  # the model's first accepted prediction registers it
                model = RegisteredModel(spec=spec, source="auto")
                self.registry.put(model)
                result.registered.append(model)
            p = result.batch(model_id, partition)["preds"]
            mine = events if len(idx) == len(events) else [events[i] for i in idx]
            p["off"].extend([records[i].offset for i in idx])
            p["pid"].extend([e.prediction_id for e in mine])
            p["ver"].extend([e.model_version for e in mine])
            p["seg"].extend([e.segment for e in mine])
            p["ts"].extend([ts[i] for i in idx])
            p["pred"].extend([preds[i] for i in idx])
            p["score"].extend([scores[i] for i in idx])
            p["lat"].extend([nan if v is None else v for v in [e.latency_ms for e in mine]])
            p["feat"].extend([e.features for e in mine])
            p["probs"].extend([e.scores for e in mine])  # per-class probabilities (multiclass CBPE); mostly None
        result.accepted += len(accepted) - len(duplicates)
        self._emit_pairs(joined, join, partition, result, source=PREDICTIONS, records=records)

    def _labels(self, partition: int, accepted: list[tuple[RawRecord, GroundTruthEvent, int]],
                result: IngestResult) -> None:
        result.accepted += len(accepted)
        join = self.join_for(partition)
        ts = [t for _, _, t in accepted]
        self._advance(partition, GROUND_TRUTH, max(ts))
        self._share(join)
        joined = join.add_labels(
            [e.prediction_id for _, e, _ in accepted],
            [v if type(v) is str or type(v) is float else _label_text(v) for v in [e.label for _, e, _ in accepted]],
            ts,
            [e.business for _, e, _ in accepted], [e.model_id for _, e, _ in accepted],
        )
        self._emit_pairs(joined, join, partition, result, source=GROUND_TRUTH,
                         records=[r for r, _, _ in accepted])

    def _emit_pairs(self, pairs: JoinResult, join: JoinState, partition: int, result: IngestResult, source: int,
                    records: list[RawRecord]) -> None:
        sign, model_key, index = pairs.sign.tolist(), pairs.model_key.tolist(), pairs.index.tolist()
        # per model key, once: its model, version, parsed segment (one dict shared by its outcomes) and task
        models: dict[int, tuple[str, str, dict[str, str], bool]] = {}
        for key in set(model_key):
            model_id, version, segment = join.lookup(key)
            models[key] = (model_id, version, orjson.loads(segment) if segment else {}, self._regression(model_id))
        skip: set[int] = set()
        if any(s < 0 for s in sign) or any(m[3] for m in models.values()):
            for i in range(len(pairs)):
                if sign[i] < 0:  # retraction under the "latest" policy; windows cannot subtract yet
                    result.retractions += 1
                    skip.add(i)
                    continue
                model_id = models[model_key[i]][0]
                if models[model_key[i]][3] and not (
                        isinstance(pairs.label[i], float) and isinstance(pairs.prediction[i], float)):
                    skip.add(i)
                    self._reject(result, records[index[i]], "wrong_prediction_kind",
                                 f"model {model_id!r} is a regression: the label {pairs.label[i]!r} of "
                                 f"prediction_id {pairs.ids[i]!r} (prediction {pairs.prediction[i]!r}) must be a "
                                 "number")
        ts_ms, label_ts_ms, score = pairs.ts_ms.tolist(), pairs.label_ts_ms.tolist(), pairs.score.tolist()
        key_models = [models[k][0] for k in model_key]
        champions, shared = self.registry.champions(), self.registry.shared()
        for model_id, idx in _positions_by(key_models, skip).items():
            o = result.batch(model_id, partition)["outs"]
            o["src"].extend([source] * len(idx))
            o["off"].extend([records[index[i]].offset for i in idx])
            o["pid"].extend([pairs.ids[i] for i in idx])
            o["ver"].extend([models[model_key[i]][1] for i in idx])
            o["seg"].extend([models[model_key[i]][2] for i in idx])
            o["ts"].extend([ts_ms[i] for i in idx])
            o["lts"].extend([label_ts_ms[i] for i in idx])
            o["label"].extend([pairs.label[i] for i in idx])
            o["pred"].extend([pairs.prediction[i] for i in idx])
            o["score"].extend([score[i] for i in idx])
            o["biz"].extend([dict(pairs.business[i]) for i in idx])
            if shared and model_id in shared:  # a champion/challenger group: pair it with the others' outcomes
                champion = champions.get(model_id, model_id)
                if champion in self.registry:
                    c = result.batch(champion, partition).setdefault("cmp", _new_cmp())
                    c["mid"].extend([model_id] * len(idx))
                    c["off"].extend(o["off"][-len(idx):])
                    c["pid"].extend(o["pid"][-len(idx):])
                    c["ts"].extend(o["ts"][-len(idx):])
                    c["label"].extend(o["label"][-len(idx):])
                    c["pred"].extend(o["pred"][-len(idx):])


def _positions_by(keys: Sequence[str], skip: set[int]) -> dict[str, Sequence[int]]:
    """Positions of ``keys`` grouped by key, in order of first appearance, leaving out ``skip``.

    >>> _positions_by(["a", "b", "a", "b"], {1})
    {'a': [0, 2], 'b': [3]}
    """
    if not skip and keys and keys.count(keys[0]) == len(keys):
        return {keys[0]: range(len(keys))}
    out: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        if i not in skip:
            found = out.get(key)
            if found is None:
                out[key] = [i]
            else:
                found.append(i)
    return dict(out)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _merged(results: list[IngestResult]) -> IngestResult:
    """One result of the parts of a batch the barrier split (their columns concatenated in order)."""
    out = IngestResult()
    for part in results:
        out.dead_letters.extend(part.dead_letters)
        out.registered.extend(part.registered)
        out.retractions += part.retractions
        out.accepted += part.accepted
        out.replayed += part.replayed
        for key, batch in part.batches.items():
            into = out.batch(*key)
            if "cmp" in batch:
                into.setdefault("cmp", _new_cmp())
            for side in ("preds", "outs", "cmp"):
                for column, values in batch.get(side, {}).items():
                    into[side][column].extend(values)
    return out


def _label_text(value: str | float | int | bool) -> str | float:
    """Classification labels compare as strings (``True`` -> ``"true"``); numbers stay numbers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return float(value)
    return value
