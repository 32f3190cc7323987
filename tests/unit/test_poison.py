"""Poison messages through the pure stages (ingest, serialisation, aggregate, rows, window close): each becomes a
dead letter with its reason and the stages go on; the per-record barrier isolates what validation misses."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.contracts.events import DeadLetter, Limits
from stream.contracts.registry import Registry
from stream.pipeline import ingest as ingest_module
from stream.pipeline.aggregate import Aggregator
from stream.pipeline.barrier import StageFailure
from stream.pipeline.cardinality import OTHER
from stream.pipeline.ingest import Ingest, IngestBounds, RawRecord, item_dead_letter, split_batch
from stream.pipeline.rows import outcome_rows_of

NOW_MS = int(time.time() * 1000)
NOW = NOW_MS - NOW_MS % 1000
TOPICS = ("predictions", "ground_truth")


class Pipeline:
    """The pure stages wired as the runtime wires them, with every dead letter and every counted item kept."""

    def __init__(self, bounds: IngestBounds | None = None, max_versions: int = 50,
                 max_segment_values: int = 100) -> None:
        self.registry = Registry()
        self.ingest = Ingest(self.registry, Limits(), *TOPICS, max_delay_ms=3_600_000, bounds=bounds)
        self.aggregator = Aggregator(lambda m: self.registry.get(m).spec,  # type: ignore[union-attr]
                                     max_versions=max_versions, max_segment_values=max_segment_values)
        self.dead: list[DeadLetter] = []
        self.outcome_rows: list[tuple[Any, ...]] = []
        self.offsets = {t: 0 for t in TOPICS}

    def send(self, predictions: Sequence[dict[str, Any] | bytes] = (),
             labels: Sequence[dict[str, Any] | bytes] = ()) -> None:
        records = []
        for topic, values in zip(TOPICS, (predictions, labels), strict=True):
            for value in values:
                raw = value if isinstance(value, bytes) else orjson.dumps(value)
                records.append(RawRecord(topic, 0, self.offsets[topic], b"k", raw, timestamp_ms=NOW_MS))
                self.offsets[topic] += 1
        result = self.ingest.process(records)
        self.dead.extend(result.dead_letters)
        for batch in result.batches.values():
            for chunk in split_batch(batch):
                self.aggregator.apply(orjson.loads(orjson.dumps(chunk)))
            self.outcome_rows.extend(outcome_rows_of(batch))
        self.dead.extend(item_dead_letter(b, side, i, TOPICS, error, Limits())
                         for b, side, i, error in self.aggregator.poisoned)
        self.aggregator.poisoned.clear()
        self.aggregator.tick(NOW_MS, idle=True, close_all=True)
        self.aggregator.window_rows()

    def reasons(self) -> list[str]:
        return [d.reason for d in self.dead]


def prediction(pid: str, model: str = "m", prediction: Any = "yes", ts: Any = NOW, **extra: Any) -> dict[str, Any]:
    return {"prediction_id": pid, "model_id": model, "timestamp": ts, "prediction": prediction,
            "features": {"x": 1.0, "c": "a"}, **extra}


def label(pid: str, value: Any = "yes", ts: Any = NOW) -> dict[str, Any]:
    return {"prediction_id": pid, "label": value, "timestamp": ts}


def valid_pairs(pipeline: Pipeline, n: int, model: str = "m", prefix: str = "ok") -> None:
    pipeline.send([prediction(f"{prefix}{i}", model) for i in range(n)], [label(f"{prefix}{i}") for i in range(n)])


BIG = "1" + "0" * 400
POISON = [  # (name, predictions, labels, reason): the table
    ("prediction 1e400", [b'{"prediction_id":"p","model_id":"m","timestamp":%d,"prediction":%s}' % (NOW, BIG.encode())],
     [], "invalid_value"),
    ("label 1e400", [], [b'{"prediction_id":"p","timestamp":%d,"label":%s}' % (NOW, BIG.encode())], "invalid_value"),
    ("year 9999", [prediction("p", ts="9999-12-31T23:59:59.999Z")], [], "timestamp_out_of_range"),
    ("year 1", [], [label("p", ts="0001-01-01T00:00:00Z")], "timestamp_out_of_range"),
    ("empty feature name", [prediction("p", model="new", features={"": 1.0})], [], "invalid_value"),
]


@pytest.mark.parametrize(("name", "predictions", "labels", "reason"), POISON, ids=[p[0] for p in POISON])
def test_each_poison_message_is_dead_lettered_and_the_next_pairs_are_processed(
        name: str, predictions: list[Any], labels: list[Any], reason: str) -> None:
    pipeline = Pipeline()
    valid_pairs(pipeline, 5, prefix="before")
    pipeline.send(predictions, labels)
    assert pipeline.reasons() == [reason]
    valid_pairs(pipeline, 300)
    assert pipeline.aggregator.outcomes == 305 and len(pipeline.outcome_rows) == 305
    assert "new" not in pipeline.registry  # a rejected record registers nothing


def test_a_feature_of_2_to_the_70_is_a_float_and_serialises() -> None:
    pipeline = Pipeline()
    pipeline.send([json.dumps(prediction("p", features={"x": 2**70})).encode()], [label("p")])
    assert pipeline.dead == [] and pipeline.aggregator.outcomes == 1


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "decoded payload"])
def test_integers_beyond_64_bits_are_floats_and_beyond_a_float_invalid(as_json: bool) -> None:
    """JSON and already-decoded payloads (schema-registry formats, mapped fields) agree: a number is a number."""
    from stream.contracts.events import ContractError, decode_predictions, validate_prediction

    def validate(event: dict[str, Any]) -> Any:
        if not as_json:
            return validate_prediction(event)
        events, rejections = decode_predictions([json.dumps(event).encode()])
        if rejections:
            raise ContractError(rejections[0].reason, rejections[0].error)
        return events[0]

    event = validate(prediction("p", prediction=2**70, features={"x": 2**70, "y": -(2**64), "z": 2**63 - 1}))
    assert event.features == {"x": float(2**70), "y": -float(2**64), "z": 2**63 - 1}
    assert type(event.features["x"]) is float and type(event.features["z"]) is int
    assert event.prediction == float(2**70) and type(event.prediction) is float
    with pytest.raises(ContractError) as caught:
        validate(prediction("p", prediction=10**400))
    assert caught.value.reason == "invalid_value"
    if as_json:  # JSON reads 1e400 as a float: infinite, which a feature may be (like the token Infinity)
        assert validate(prediction("p", features={"x": 10**400})).features == {"x": float("inf")}
    else:  # an int object no float holds (JSON decoders never make one: orjson rejects the payload)
        with pytest.raises(ContractError) as caught:
            validate(prediction("p", features={"x": 10**400}))
        assert caught.value.reason == "invalid_value"
        assert "integer beyond the range of a number" in str(caught.value)


def test_a_regression_model_dead_letters_predictions_and_labels_of_the_wrong_kind() -> None:
    pipeline = Pipeline()
    pipeline.send([prediction("a", prediction=1.5)], [label("a", 2.0)])
    assert pipeline.registry.get("m").spec.task == "regression"  # type: ignore[union-attr]
    pipeline.send([prediction("b", prediction="yes"), prediction("c", prediction=1.0)],
                  [label("b", "yes"), label("c", "no"), {**label("d", "no"), "model_id": "m"}])
    assert pipeline.reasons() == ["wrong_prediction_kind"] * 3
    assert sorted((d.topic, d.offset) for d in pipeline.dead) == [
        ("ground_truth", 2), ("ground_truth", 3), ("predictions", 1)]
    pipeline.send([prediction(f"r{i}", prediction=float(i)) for i in range(300)],
                  [label(f"r{i}", float(i)) for i in range(300)])
    assert pipeline.aggregator.outcomes == 301


def test_a_prediction_dated_in_the_future_is_dead_lettered_and_drags_no_watermark() -> None:
    pipeline = Pipeline()
    future = NOW + 30 * 86_400_000
    pipeline.send([prediction(f"f{i}", ts=future) for i in range(4)])
    assert pipeline.reasons() == ["timestamp_in_future"] * 4
    assert "DRIFTWARDEN_MAX_FUTURE_SKEW_SECONDS" in pipeline.dead[0].error
    valid_pairs(pipeline, 600)
    assert pipeline.aggregator.outcomes == 600 and pipeline.aggregator.store.too_late == 0


def test_the_receive_time_is_the_kafka_record_time_capped_by_the_wall_clock() -> None:
    ingest = Ingest(Registry(), Limits(), *TOPICS, max_delay_ms=1000, bounds=IngestBounds(max_future_skew_ms=1000))
    old_record = NOW_MS - 86_400_000
    raw = orjson.dumps(prediction("p", ts=old_record + 5000))
    early = ingest.process([RawRecord("predictions", 0, 0, b"p", raw, timestamp_ms=old_record)])
    assert [d.reason for d in early.dead_letters] == ["timestamp_in_future"]
    liar = orjson.dumps(prediction("q", ts=NOW_MS + 86_400_000))
    lied = ingest.process([RawRecord("predictions", 0, 1, b"q", liar, timestamp_ms=NOW_MS + 2 * 86_400_000)])
    assert [d.reason for d in lied.dead_letters] == ["timestamp_in_future"]


def test_too_old_events_are_dead_lettered() -> None:
    pipeline = Pipeline(IngestBounds(max_event_age_ms=86_400_000))
    pipeline.send([prediction("p", ts=NOW - 2 * 86_400_000)])
    assert pipeline.reasons() == ["timestamp_out_of_range"]


def test_a_duplicate_registers_nothing_and_models_are_limited() -> None:
    pipeline = Pipeline(IngestBounds(max_models=2))
    pipeline.send([prediction("a", model="m1"), prediction("b", model="m2"), prediction("c", model="m3")])
    assert pipeline.reasons() == ["too_many_models"] and len(pipeline.registry) == 2
    pipeline = Pipeline()
    pipeline.send([prediction("a", model="m1")])
    pipeline.send([prediction("a", model="m1")])  # a duplicate (prediction id, model): rejected after the join
    assert pipeline.reasons() == ["duplicate_prediction_id"]
    pipeline.send([prediction("a", model="m9")])  # another model scoring the same request: a shadow, not a duplicate
    assert pipeline.reasons() == ["duplicate_prediction_id"] and "m9" in pipeline.registry


def test_features_per_auto_registered_model_are_limited() -> None:
    pipeline = Pipeline(IngestBounds(max_features_per_model=3))
    pipeline.send([prediction("a", features={f"f{i}": 1.0 for i in range(4)})])
    assert pipeline.reasons() == ["too_many_model_features"] and "m" not in pipeline.registry


def test_versions_and_segment_values_beyond_the_limits_fold_into_other() -> None:
    pipeline = Pipeline(max_versions=2, max_segment_values=3)
    pipeline.send([prediction("s", segment={"region": "r0"})], [label("s")])
    pipeline.send([prediction(f"p{i}", model_version=str(i % 4), segment={"region": f"r{i}"}) for i in range(10)],
                  [label(f"p{i}") for i in range(10)])
    segments = {k[2] for k in pipeline.aggregator.store.windows}
    versions = {k[1] for k in pipeline.aggregator.store.windows}
    assert versions == {"1", "0", OTHER}
    assert segments == {"", "region=r0", "region=r1", "region=r2", f"region={OTHER}"}
    assert pipeline.aggregator.outcomes == 11 and pipeline.dead == []
    restored = Aggregator.restore(pipeline.aggregator.snapshot(), pipeline.aggregator.spec_for,
                                  max_versions=2, max_segment_values=3)
    assert restored.segment_values.order == pipeline.aggregator.segment_values.order


def test_the_ingest_barrier_isolates_a_record_that_fails_unexpectedly(monkeypatch: pytest.MonkeyPatch) -> None:
    real = ingest_module.infer_spec

    def fails_on_bad(event: Any) -> Any:
        if event.model_id == "bad":
            raise RuntimeError("boom")
        return real(event)

    monkeypatch.setattr(ingest_module, "infer_spec", fails_on_bad)
    pipeline = Pipeline()
    preds = [prediction(f"p{i}") for i in range(50)]
    preds[17] = prediction("x", model="bad")
    pipeline.send(preds, [label(f"p{i}") for i in range(50)])
    assert pipeline.reasons() == ["processing_error"] and pipeline.dead[0].offset == 17
    assert pipeline.dead[0].error == "ingest: RuntimeError: boom"
    assert pipeline.aggregator.outcomes == 49 and "bad" not in pipeline.registry


def test_the_aggregate_barrier_isolates_an_item_and_a_failure_after_changes_is_fatal() -> None:
    pipeline = Pipeline()
    valid_pairs(pipeline, 3)
    batch: dict[str, Any] = {"model_id": "m", "partition": 0, "sources": 1,
                             "preds": {"off": [], "pid": [], "ver": [], "seg": [], "ts": [], "pred": [], "score": [],
                                       "lat": [], "feat": []},
                             "outs": {c: [] for c in ("src", "off", "pid", "lts", "ver", "seg", "ts", "label", "pred",
                                                      "score", "biz")}}
    for i in range(4):
        for column, value in (("src", 1), ("off", 10 + i), ("pid", f"z{i}"), ("lts", NOW), ("ver", "1"),
                              ("seg", {}), ("ts", NOW), ("label", "yes"), ("pred", "yes"), ("score", float("nan")),
                              ("biz", {})):
            batch["outs"][column].append(value)
    batch["outs"]["ts"][2] = "not a time"
    pipeline.aggregator.apply(batch)
    letters = [item_dead_letter(b, side, i, TOPICS, error, Limits())
               for b, side, i, error in pipeline.aggregator.poisoned]
    assert [(d.topic, d.offset, d.reason) for d in letters] == [("ground_truth", 12, "processing_error")]
    assert pipeline.aggregator.outcomes == 6
    pipeline.aggregator.monitor("m").add_outcomes = None  # type: ignore[method-assign,assignment]
    batch["outs"]["pid"] = [f"w{i}" for i in range(4)]
    batch["outs"]["ts"][2] = NOW
    with pytest.raises(StageFailure, match="aggregate stage failed"):
        pipeline.aggregator.apply(batch)


_text = st.text(min_size=1, max_size=20)
_number = st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False))
_feature = st.one_of(_number, st.floats(), _text, st.booleans(), st.none())
_ts = st.integers(NOW - 3650 * 86_400_000 + 86_400_000, NOW + 200_000)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["reg", "cls", "bin"]), _ts, _number, _text, _ts,
                          st.dictionaries(_text, _feature, max_size=4), st.sampled_from(["1", "2", "x" * 50]),
                          st.dictionaries(st.sampled_from(["region", "tier"]), _text, max_size=2),
                          st.booleans()), min_size=1, max_size=40))
def test_valid_but_extreme_events_never_raise_and_are_all_accounted_for(events: list[Any]) -> None:
    pipeline = Pipeline()
    pipeline.send([prediction("seed-reg", "reg", 1.0), prediction("seed-cls", "cls", "a"),
                   prediction("seed-bin", "bin", "yes", score=0.9)])
    preds, labels = [], []
    for i, (model, ts, number, text, lts, features, version, segment, numeric_label) in enumerate(events):
        value: Any = number if model == "reg" else text
        preds.append({**prediction(f"e{i}", model, value, ts), "features": features, "model_version": version,
                      "segment": segment, **({"score": 0.5} if model == "bin" else {})})
        labels.append(label(f"e{i}", number if numeric_label else text, lts))
    pipeline.send(preds, labels)
    pipeline.send(labels=[label(f"e{i}", 1.0) for i in range(len(events))])  # duplicates and kinds again
    dead_labels = sum(d.topic == "ground_truth" for d in pipeline.dead)
    dead_preds = sum(d.topic == "predictions" for d in pipeline.dead)
    aggregated = pipeline.aggregator.predictions
    assert aggregated + dead_preds == len(events) + 3  # every prediction counted or dead-lettered
    assert pipeline.aggregator.outcomes + dead_labels <= 2 * len(events)
    waiting = len(pipeline.ingest.join_for(0))
    assert pipeline.aggregator.outcomes + dead_labels + waiting >= len(events)
