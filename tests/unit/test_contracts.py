"""Tests of the event contracts: parsing, limits, reason codes and helpers."""

from __future__ import annotations

import calendar
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from stream.contracts.events import (
    REASONS,
    AlertEvent,
    ContractError,
    DeadLetter,
    FeatureSpec,
    GroundTruthEvent,
    Limits,
    ModelSpec,
    MonitorSettings,
    PredictionEvent,
    Rejection,
    dead_letter,
    decode_ground_truth,
    decode_predictions,
    to_epoch_ms,
    validate_ground_truth,
    validate_prediction,
)

# 2024-05-01T12:00:00.123Z, computed independently of datetime arithmetic.
EPOCH_MS = calendar.timegm((2024, 5, 1, 12, 0, 0)) * 1000 + 123
EXPECTED = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)


def prediction(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "prediction_id": "p-1",
        "model_id": "churn",
        "timestamp": EPOCH_MS,
        "features": {"age": 41, "income": 52000.5, "plan": "gold", "active": True, "missing": None},
        "prediction": "churn",
        "score": 0.8,
    }
    event.update(overrides)
    return event


def encode(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def decode_one(obj: Any, limits: Limits | None = None) -> Rejection:
    raw = obj if isinstance(obj, bytes) else encode(obj)
    events, rejections = decode_predictions([raw], limits or Limits())
    assert events == []
    assert len(rejections) == 1
    return rejections[0]


def test_valid_prediction_keeps_values_and_types() -> None:
    events, rejections = decode_predictions([encode(prediction())])
    assert rejections == []
    (event,) = events
    assert event.prediction_id == "p-1"
    assert event.model_version == "1"
    assert event.timestamp == EXPECTED
    assert event.features == {"age": 41, "income": 52000.5, "plan": "gold", "active": True, "missing": None}
    assert [type(v) for v in event.features.values()] == [int, float, str, bool, type(None)]
    assert event.segment == {} and event.scores is None and event.latency_ms is None


@pytest.mark.parametrize(("value", "kind"), [(1, int), (1.5, float), ("1", str), (True, bool), (False, bool)])
def test_prediction_union_keeps_json_type(value: Any, kind: type) -> None:
    (event,), _ = decode_predictions([encode(prediction(prediction=value))])
    assert type(event.prediction) is kind
    assert event.prediction == value


@pytest.mark.parametrize(
    "timestamp",
    [
        EPOCH_MS,
        float(EPOCH_MS),
        "2024-05-01T12:00:00.123Z",
        "2024-05-01T12:00:00.123+00:00",
        "2024-05-01T14:00:00.123+02:00",
        "2024-05-01T07:30:00.123-04:30",
        "2024-05-01T12:00:00.123",
    ],
)
def test_timestamp_forms_give_same_utc_datetime(timestamp: Any) -> None:
    (event,), rejections = decode_predictions([encode(prediction(timestamp=timestamp))])
    assert rejections == []
    assert event.timestamp == EXPECTED
    assert event.timestamp.tzinfo is UTC


def test_naive_python_datetime_is_taken_as_utc() -> None:
    event = validate_prediction(prediction(timestamp=datetime(2024, 5, 1, 12, 0, 0, 123000)))
    assert event.timestamp == EXPECTED
    assert event.timestamp.tzinfo is UTC
    offset = datetime(2024, 5, 1, 13, 0, 0, 123000, tzinfo=timezone(timedelta(hours=1)))
    assert validate_prediction(prediction(timestamp=offset)).timestamp.tzinfo is UTC


def test_fractional_epoch_milliseconds_keep_microseconds() -> None:
    event = validate_prediction(prediction(timestamp=EPOCH_MS + 0.5))
    assert event.timestamp == EXPECTED + timedelta(microseconds=500)


def test_to_epoch_ms_matches_timegm_and_round_trips() -> None:
    assert to_epoch_ms(EXPECTED) == EPOCH_MS
    assert to_epoch_ms(EXPECTED.replace(tzinfo=None)) == EPOCH_MS
    assert to_epoch_ms(EXPECTED.astimezone(timezone(timedelta(hours=-7)))) == EPOCH_MS
    assert to_epoch_ms(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    # Floors, also before 1970: -0.5 ms is in millisecond -1.
    assert to_epoch_ms(datetime(1970, 1, 1, tzinfo=UTC) - timedelta(microseconds=500)) == -1
    assert to_epoch_ms(validate_prediction(prediction(timestamp=EPOCH_MS)).timestamp) == EPOCH_MS


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json at all", "not_json"),
        (b'{"prediction_id": "p-1",', "not_json"),
        (b'{"a": 1} trailing', "not_json"),
        (b"\xff\xfe\x00garbage", "not_json"),
        (b"", "not_json"),
        (b"[1, 2]", "wrong_type"),
        (b'"a string"', "wrong_type"),
        (b"null", "wrong_type"),
    ],
)
def test_message_level_reasons(raw: bytes, reason: str) -> None:
    rejection = decode_one(raw)
    assert rejection.reason == reason
    assert "\n" not in rejection.error


@pytest.mark.parametrize(
    ("overrides", "reason", "field"),
    [
        ({"prediction_id": None}, "wrong_type", "prediction_id"),
        ({"prediction_id": 17}, "wrong_type", "prediction_id"),
        ({"timestamp": "yesterday"}, "wrong_type", "timestamp"),
        ({"timestamp": [2024, 5, 1]}, "wrong_type", "timestamp"),
        ({"prediction": [1, 0]}, "wrong_type", "prediction"),
        ({"prediction": {"class": 1}}, "wrong_type", "prediction"),
        ({"features": [1, 2, 3]}, "wrong_type", "features"),
        ({"features": {"age": [41]}}, "wrong_type", "features.age"),
        ({"segment": {"region": 3}}, "wrong_type", "segment.region"),
        ({"score": "high"}, "wrong_type", "score"),
        ({"score": "0.5"}, "wrong_type", "score"),
        ({"score": True}, "wrong_type", "score"),
        ({"latency_ms": "3"}, "wrong_type", "latency_ms"),
        ({"timestamp": True}, "wrong_type", "timestamp"),
        ({"features": {"plan": "9" * 1025}}, "string_too_long", "features.plan"),
        ({"prediction": "9" * 1025}, "string_too_long", "prediction"),
        ({"score": 1.5}, "invalid_value", "score"),
        ({"score": -0.01}, "invalid_value", "score"),
        ({"scores": {"a": 2.0}}, "invalid_value", "scores.a"),
        ({"latency_ms": -1}, "invalid_value", "latency_ms"),
        ({"model_id": "-starts-with-dash"}, "invalid_value", "model_id"),
        ({"model_id": "has space"}, "invalid_value", "model_id"),
        ({"model_id": "m" * 129}, "string_too_long", "model_id"),
        ({"prediction_id": ""}, "invalid_value", "prediction_id"),
        ({"prediction_id": "p" * 129}, "string_too_long", "prediction_id"),
        ({"features": {"plan": "x" * 1025}}, "string_too_long", "features.plan"),
        ({"features": {"f" * 1025: 1}}, "string_too_long", "features.fffff"),
        ({"segment": {"region": "x" * 1025}}, "string_too_long", "segment.region"),
        ({"prediction": "x" * 1025}, "string_too_long", "prediction"),
        ({"features": {f"f{i}": i for i in range(501)}}, "too_many_features", "features"),
    ],
)
def test_field_reasons_and_messages(overrides: dict[str, Any], reason: str, field: str) -> None:
    rejection = decode_one(prediction(**overrides))
    assert rejection.reason == reason
    assert rejection.error.startswith(f"field '{field}")
    assert "\n" not in rejection.error
    assert len(rejection.error) < 200
    with pytest.raises(ContractError) as caught:
        validate_prediction(prediction(**overrides))
    assert caught.value.reason == reason
    assert str(caught.value).startswith(f"field '{field}")


@pytest.mark.parametrize("field", ["prediction_id", "model_id", "timestamp", "prediction"])
def test_missing_required_field(field: str) -> None:
    event = prediction()
    del event[field]
    rejection = decode_one(event)
    assert rejection.reason == "missing_field"
    assert rejection.error == f"field '{field}': field required"


def test_error_message_names_field_and_problem() -> None:
    rejection = decode_one(prediction(timestamp="yesterday"))
    assert rejection.error.startswith("field 'timestamp': input should be a valid datetime")


def test_prediction_nan_is_invalid_but_feature_nan_is_kept() -> None:
    raw = encode(prediction(prediction=math.nan))  # json.dumps writes the NaN token
    assert decode_one(raw).reason == "invalid_value"
    (event,), _ = decode_predictions([encode(prediction(features={"x": math.nan, "y": math.inf}))])
    x, y = event.features["x"], event.features["y"]
    assert isinstance(x, float) and math.isnan(x)
    assert y == math.inf


def test_too_large_is_checked_on_bytes_before_parsing() -> None:
    limits = Limits(max_message_bytes=300)
    small = encode(prediction())
    padded = small + b" " * (300 - len(small))
    assert len(padded) == 300
    events, rejections = decode_predictions([padded, padded + b" ", b"x" * 301], limits)
    assert len(events) == 1
    assert [(r.index, r.reason) for r in rejections] == [(1, "too_large"), (2, "too_large")]
    assert rejections[0].error == "message is 301 bytes, above the limit of 300 bytes"


def test_limits_are_inclusive_at_the_boundary() -> None:
    at_limit = prediction(
        prediction_id="p" * 128,
        features={**{f"f{i}": i for i in range(499)}, "s": "x" * 1024},
    )
    assert len(at_limit["features"]) == 500
    events, rejections = decode_predictions([encode(at_limit)])
    assert rejections == [] and len(events) == 1


def test_custom_limits_can_be_tighter_or_looser() -> None:
    tight = Limits(max_features=2, max_string_length=8, max_id_length=4)
    assert decode_one(prediction(), tight).reason == "too_many_features"
    assert decode_one(prediction(features={}, prediction_id="p-123"), tight).reason == "string_too_long"
    assert decode_one(prediction(features={"a": "abcdefghi"}), tight).reason == "string_too_long"
    assert decode_one(prediction(features={"a": "1" * 9}), tight).reason == "string_too_long"
    loose = Limits(max_features=1000, max_string_length=5000, max_id_length=300, max_message_bytes=1 << 21)
    big = prediction(prediction_id="p" * 300, features={f"f{i}": "v" * 2000 for i in range(600)})
    events, rejections = decode_predictions([encode(big)], loose)
    assert rejections == []
    assert isinstance(events[0], PredictionEvent)
    assert len(events[0].features) == 600
    assert decode_one(big).reason == "too_large"  # default limits


def test_batch_keeps_order_and_indices() -> None:
    raws = [
        encode(prediction(prediction_id="a")),
        b"{",
        encode(prediction(prediction_id="b")),
        encode(prediction(score=3)),
        encode(prediction(prediction_id="c")),
    ]
    events, rejections = decode_predictions(raws)
    assert [e.prediction_id for e in events] == ["a", "b", "c"]
    assert [(r.index, r.reason) for r in rejections] == [(1, "not_json"), (3, "invalid_value")]


def test_empty_batch() -> None:
    assert decode_predictions([]) == ([], [])
    assert decode_ground_truth([]) == ([], [])


def test_extra_fields_are_ignored() -> None:
    (event,), _ = decode_predictions([encode(prediction(schema_version=2))])
    assert "schema_version" not in event.model_dump()


def test_ground_truth_decoding() -> None:
    raws = [
        encode({"prediction_id": "p-1", "label": 1, "timestamp": EPOCH_MS, "business": {"revenue": 12.5}}),
        encode({"prediction_id": "p-2", "label": "spam", "timestamp": "2024-05-01T12:00:00.123Z"}),
        encode({"prediction_id": "p-3", "timestamp": EPOCH_MS}),
        encode({"prediction_id": "p-4", "label": 1, "timestamp": EPOCH_MS, "business": {"revenue": "a lot"}}),
        encode({"prediction_id": "p-5", "label": 1, "timestamp": EPOCH_MS, "model_id": "bad id"}),
    ]
    events, rejections = decode_ground_truth(raws)
    assert [(e.prediction_id, e.label, e.timestamp) for e in events] == [
        ("p-1", 1, EXPECTED),
        ("p-2", "spam", EXPECTED),
    ]
    assert events[0].business == {"revenue": 12.5} and events[1].model_id is None
    assert [(r.index, r.reason) for r in rejections] == [
        (2, "missing_field"),
        (3, "wrong_type"),
        (4, "invalid_value"),
    ]
    assert rejections[1].error.startswith("field 'business.revenue': ")
    with pytest.raises(ContractError) as caught:
        validate_ground_truth({"prediction_id": "p", "label": "x" * 1025, "timestamp": 0})
    assert caught.value.reason == "string_too_long"


def test_validate_prediction_contract_error() -> None:
    assert validate_prediction(prediction()).timestamp == EXPECTED
    with pytest.raises(
        ValueError, match=r"^field 'score': input should be less than or equal to 1$"
    ) as caught:
        validate_prediction(prediction(score=2))
    assert isinstance(caught.value, ContractError) and caught.value.reason == "invalid_value"
    with pytest.raises(ContractError) as not_mapping:
        validate_prediction([1, 2])  # type: ignore[arg-type]
    assert not_mapping.value.reason == "wrong_type"


def test_reasons() -> None:
    assert set(REASONS) == {
        "not_json",
        "missing_field",
        "wrong_type",
        "too_large",
        "too_many_features",
        "string_too_long",
        "unregistered_model",
        "duplicate_prediction_id",
        "invalid_value",
        "null_value",
        "empty_value",
        "headers_only",
        "null_key",
        "timestamp_out_of_range",
        "timestamp_in_future",
        "wrong_prediction_kind",
        "too_many_models",
        "too_many_model_features",
        "processing_error",
        "undecodable",
    }


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_features"):
        Limits(max_features=0)


def test_dead_letter_truncates_and_replaces_invalid_utf8() -> None:
    limits = Limits(dead_letter_raw_bytes=8)
    raw = b"\xffabcdefghijkl"
    letter = dead_letter("predictions", 3, 42, b"k\xfe", raw, "not_json", "message is not valid JSON", limits)
    assert letter.raw == "\ufffdabcdefg"
    assert letter.key == "k\ufffd"
    assert (letter.topic, letter.partition, letter.offset, letter.reason) == (
        "predictions",
        3,
        42,
        "not_json",
    )
    assert letter.time.tzinfo is UTC
    assert abs(letter.time - datetime.now(UTC)) < timedelta(minutes=1)
    short = dead_letter("t", 0, 0, None, b"{}", "not_json", "e", time=EXPECTED)
    assert short.raw == "{}" and short.key is None and short.time == EXPECTED
    with pytest.raises(ValidationError):
        dead_letter("t", 0, 0, None, b"", "no_such_reason", "e")  # type: ignore[arg-type]


def spec(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "model_id": "churn",
        "task": "binary_classification",
        "positive_class": "yes",
        "features": [
            {"name": "age", "type": "numeric", "range": [0, 120]},
            {"name": "plan", "type": "categorical"},
        ],
    }
    value.update(overrides)
    return value


def test_model_spec_defaults_and_validators() -> None:
    model = ModelSpec.model_validate(spec())
    assert model.version == "1"
    assert model.monitor == MonitorSettings()
    assert (model.monitor.window_seconds, model.monitor.max_label_delay_seconds) == (300, 604800)
    assert (model.monitor.psi_threshold, model.monitor.js_threshold, model.monitor.p_value) == (
        0.2,
        0.1,
        0.005,
    )
    assert (model.monitor.min_samples, model.monitor.reference_events) == (30, 1000)
    assert model.features[0].range == (0.0, 120.0)
    assert model.rules == [] and model.segment_fields == []
    ModelSpec.model_validate(spec(task="regression", positive_class=None))
    for bad in [
        spec(positive_class=None),
        spec(classes=["a", "b"]),
        spec(features=[{"name": "x", "type": "numeric"}, {"name": "x", "type": "categorical"}]),
        spec(model_id="bad id"),
        spec(monitor={"window_seconds": 0}),
        spec(unknown_key=1),
    ]:
        with pytest.raises(ValidationError):
            ModelSpec.model_validate(bad)


def test_feature_spec_validators() -> None:
    with pytest.raises(ValidationError, match="above high"):
        FeatureSpec(name="x", type="numeric", range=(2.0, 1.0))
    with pytest.raises(ValidationError, match="only for numeric"):
        FeatureSpec(name="x", type="categorical", range=(0.0, 1.0))
    with pytest.raises(ValidationError, match="only for categorical"):
        FeatureSpec(name="x", type="numeric", categories=["a"])


def test_alert_event_round_trips_through_json() -> None:
    alert = AlertEvent(
        alert_id="a1",
        state="firing",
        severity="critical",
        model_id="churn",
        model_version="3",
        rule="accuracy-drop",
        metric="accuracy",
        observed=0.61,
        threshold=0.8,
        window_start=EPOCH_MS,  # type: ignore[arg-type]
        window_end=EXPECTED + timedelta(minutes=5),
        time=EXPECTED + timedelta(minutes=6),
        message="Accuracy of churn v3 fell to 0.61 (threshold 0.8).",
        evidence_sql="SELECT 1",
    )
    assert alert.segment == "" and alert.window_start == EXPECTED
    wire = json.loads(alert.model_dump_json())
    assert wire["time"] == "2024-05-01T12:06:00.123000Z"
    assert AlertEvent.model_validate_json(alert.model_dump_json()) == alert


@pytest.mark.parametrize(
    "model",
    [PredictionEvent, GroundTruthEvent, FeatureSpec, MonitorSettings, ModelSpec, AlertEvent, DeadLetter],
)
def test_every_field_has_a_description(model: type[BaseModel]) -> None:
    undocumented = [name for name, field in model.model_fields.items() if not field.description]
    assert undocumented == []
