"""Event contracts: the pydantic models of every message on every topic, and their fast bulk decoding.

Producers publish :class:`PredictionEvent` and :class:`GroundTruthEvent` as JSON objects. Timestamps are
RFC 3339 strings or Unix epoch milliseconds (int or float); naive timestamps are taken as UTC and every
timestamp is normalised to a ``datetime`` in ``datetime.UTC``. Size limits (:class:`Limits`) are enforced by
validation; a message that fails becomes a :class:`Rejection` (bulk path) or a :class:`ContractError`
(single event), each carrying one of the :data:`REASONS` codes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictFloat,
    StrictStr,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import ErrorDetails

__all__ = [
    "REASONS",
    "AlertEvent",
    "ContractError",
    "DeadLetter",
    "FeatureSpec",
    "GroundTruthEvent",
    "Limits",
    "ModelSpec",
    "MonitorSettings",
    "PredictionEvent",
    "Reason",
    "Rejection",
    "dead_letter",
    "decode_ground_truth",
    "decode_predictions",
    "epoch_ms",
    "to_epoch_ms",
    "validate_ground_truth",
    "validate_prediction",
]

Reason = Literal[
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
]
REASONS: tuple[Reason, ...] = get_args(Reason)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MODEL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits on incoming messages; strings are measured in characters, messages in bytes."""

    max_message_bytes: int = 65536
    max_string_length: int = 1024
    max_features: int = 500
    max_id_length: int = 128
    dead_letter_raw_bytes: int = 4096

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) < 1:
                raise ValueError(f"limit {name} must be a positive integer, got {getattr(self, name)}")


DEFAULT_LIMITS = Limits()


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if value.tzinfo is UTC:
        return value
    return value.astimezone(UTC)


Timestamp = Annotated[
    datetime,
    AfterValidator(_as_utc),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time", "description": "RFC 3339; no offset means UTC"},
                {"type": "number", "description": "Unix epoch milliseconds"},
            ]
        },
        mode="validation",
    ),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]
"""A UTC datetime; validates RFC 3339 strings and epoch milliseconds (needs ``val_temporal_unit``)."""

# Event times every later stage can hold: epoch milliseconds as int64, ClickHouse DateTime64(3) (1900-2299) and
# Python datetimes (years 1-9999). Narrower bounds around the time a record was received are the ingest
# stage's (DRIFTWARDEN_MAX_FUTURE_SKEW_SECONDS, DRIFTWARDEN_MAX_EVENT_AGE_DAYS).
EARLIEST_EVENT_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_EVENT_TIME = datetime(2200, 1, 1, tzinfo=UTC)


def _event_time(value: datetime) -> datetime:
    value = _as_utc(value)
    if not EARLIEST_EVENT_TIME <= value < LATEST_EVENT_TIME:
        raise ValueError(f"timestamp {value.isoformat()} is outside {EARLIEST_EVENT_TIME.year}-"
                         f"{LATEST_EVENT_TIME.year - 1}")
    return value


EventTime = Annotated[Timestamp, AfterValidator(_event_time)]
"""A `Timestamp` of an input event, within [1970, 2200)."""

# Numbers are strict (no strings or booleans coerced to numbers, ints are accepted), and so are the members
# of the unions, so that an over-long string of digits is rejected rather than parsed as a number.
# Integers fit 64 bits (numpy, orjson and ClickHouse all need that); a larger integer is read as a float (all
# these fields are numbers: 2**70 is 1.1805916207174113e21), one beyond a float's range is `invalid_value`.
FiniteFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Probability = Annotated[float, Strict(), Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Int64 = Annotated[int, Strict(), Field(ge=-(2**63), le=2**63 - 1)]
Value = FiniteFloat | Int64 | StrictStr | StrictBool
FeatureValue = StrictFloat | Int64 | StrictStr | StrictBool | None
FeatureName = Annotated[str, Field(min_length=1)]

_EVENT_CONFIG = ConfigDict(
    val_temporal_unit="milliseconds",
    str_max_length=DEFAULT_LIMITS.max_string_length,
    extra="ignore",
)

_D_PREDICTION_ID = "Unique id of the prediction; the Kafka message key and the join key with ground truth."
_D_FEATURES = (
    "Feature values by feature name: number, string, boolean or null (missing). NaN and Infinity "
    "(non-standard JSON tokens, as Python's json module writes them) are accepted."
)
_D_TIMESTAMP = "When the prediction was made: RFC 3339 string (no offset means UTC) or epoch milliseconds."


class PredictionEvent(BaseModel):
    """A prediction made by a model in production (topic "predictions", keyed by prediction_id)."""

    model_config = _EVENT_CONFIG

    prediction_id: str = Field(
        min_length=1, max_length=DEFAULT_LIMITS.max_id_length, description=_D_PREDICTION_ID
    )
    model_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=_MODEL_ID_PATTERN,
        description="Registered model id: letters, digits, '.', '_' and '-'; starts with a letter or digit.",
    )
    model_version: str = Field(default="1", min_length=1, description="Model version, as a string.")
    timestamp: EventTime = Field(description=_D_TIMESTAMP)
    features: dict[FeatureName, FeatureValue] = Field(
        default_factory=dict, max_length=DEFAULT_LIMITS.max_features, description=_D_FEATURES
    )
    prediction: Value = Field(
        description="The model output: class label (string, integer or boolean) or regression value."
    )
    score: Probability | None = Field(
        default=None, description="Probability of the positive class (binary classification), in [0, 1]."
    )
    scores: dict[str, Probability] | None = Field(
        default=None, description="Per-class probabilities (multiclass classification), by class label."
    )
    segment: dict[str, str] = Field(
        default_factory=dict, description='Segment tags used to slice metrics, e.g. {"region": "eu"}.'
    )
    latency_ms: Annotated[float, Strict(), Field(ge=0.0, allow_inf_nan=False)] | None = Field(
        default=None, description="Model serving latency in milliseconds."
    )


class GroundTruthEvent(BaseModel):
    """The true outcome of a prediction (topic "ground_truth", keyed by prediction_id)."""

    model_config = _EVENT_CONFIG

    prediction_id: str = Field(
        min_length=1, max_length=DEFAULT_LIMITS.max_id_length, description=_D_PREDICTION_ID
    )
    label: Value = Field(description="The true label (class) or target value.")
    timestamp: EventTime = Field(
        description="When the outcome became known: RFC 3339 string (no offset: UTC) or epoch milliseconds."
    )
    model_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=_MODEL_ID_PATTERN,
        description="Model id, if the label source knows it (otherwise taken from the joined prediction).",
    )
    business: dict[str, FiniteFloat] = Field(
        default_factory=dict, description='Numeric business values of the outcome, e.g. {"revenue": 12.5}.'
    )


class FeatureSpec(BaseModel):
    """One input feature of a model."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Feature name, as in PredictionEvent.features.")
    type: Literal["numeric", "categorical"] = Field(description="Feature type.")
    range: tuple[FiniteFloat, FiniteFloat] | None = Field(
        default=None, description="Expected [low, high] of a numeric feature; values outside are flagged."
    )
    categories: list[str] | None = Field(
        default=None, description="Expected categories of a categorical feature; others are unexpected."
    )
    psi_threshold: float | None = Field(
        default=None, gt=0, description="PSI threshold of this feature; None uses the model's monitor setting."
    )
    js_threshold: float | None = Field(
        default=None, gt=0, le=1, description="Jensen-Shannon distance threshold; None uses the model's."
    )
    p_value: float | None = Field(
        default=None, gt=0, lt=1, description="KS / chi-square significance level; None uses the model's."
    )

    @model_validator(mode="after")
    def _check(self) -> FeatureSpec:
        if self.range is not None:
            if self.type != "numeric":
                raise ValueError(f"feature {self.name!r}: range is only for numeric features")
            if self.range[0] > self.range[1]:
                low, high = self.range
                raise ValueError(f"feature {self.name!r}: range low {low} is above high {high}")
        if self.categories is not None and self.type != "categorical":
            raise ValueError(f"feature {self.name!r}: categories are only for categorical features")
        return self


class MonitorSettings(BaseModel):
    """Windowing, label-join and drift-test settings of one model."""

    model_config = ConfigDict(extra="forbid")

    window_seconds: int = Field(default=300, gt=0, description="Length of the tumbling event-time windows.")
    max_label_delay_seconds: int = Field(
        default=7 * 24 * 3600, ge=0, description="How long a prediction waits for its label before expiring."
    )
    allowed_lateness_seconds: int = Field(
        default=60, ge=0, description="How long after its end a window still accepts late events."
    )
    reference_events: int = Field(
        default=1000,
        ge=1,
        description="Events used to build a reference profile when no reference file is given.",
    )
    psi_threshold: float = Field(default=0.2, gt=0, description="Population stability index alarm threshold.")
    js_threshold: float = Field(
        default=0.1, gt=0, le=1, description="Jensen-Shannon distance (base 2) alarm threshold."
    )
    p_value: float = Field(
        default=0.01, gt=0, lt=1, description="Significance level of the KS and chi-square tests."
    )
    min_samples: int = Field(default=30, ge=1, description="Fewest samples in a window for a test to be run.")
    label_delay_seconds: int | None = Field(
        default=None, ge=0,
        description="Expected delay of labels after their predictions. Label coverage and performance rules judge "
        "a window only this long after it closed, then again as more labels arrive. None (default): learned, the "
        "95th percentile of the model's recently observed label delays (one hour until a label was seen).",
    )
    # --- champion/challenger (issue 17)
    comparison_p_value: float = Field(
        default=0.05, gt=0, lt=1, description="Significance level of the paired champion/challenger tests "
        "(McNemar, paired t) for a challenger_better or champion_better verdict."
    )
    comparison_min_pairs: int = Field(
        default=30, ge=1, description="Fewest labelled requests scored by both models before a window's "
        "champion/challenger comparison gives a verdict."
    )
    # --- fairness (issue 17)
    fairness_min_group: int = Field(
        default=100, ge=1, description="Fewest predictions (labelled outcomes for TPR/FPR) a protected group needs "
        "to be compared in the fairness metrics."
    )
    # --- segments (issue 17)
    segment_top_k: int = Field(
        default=10, ge=0, le=1000,
        description="Drift statistics and data quality are kept per segment for the K values of each segment field "
        "(and declared intersection) with the most predictions; the rest count in '<field>=__other__'. 0 turns "
        "per-segment drift and quality off (window metrics keep their segments).",
    )


RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An alert rule (parsed by stream.alerts.rules; its kind-specific fields such as metric, op, "
    "value, by_percent are described in the README), or {\"disable\": \"<default rule name>\"}. The parameters "
    "listed here decide whether a rule can fire.",
    "properties": {
        "kind": {"enum": ["threshold", "relative", "detector", "feature_drift", "data_quality", "no_data"],
                 "description": "Rule kind."},
        "name": {"type": "string", "description": "Unique per model; a default rule's name replaces that default."},
        "disable": {"type": "string", "description": "Name of a default rule to remove (the entry's only key)."},
        "severity": {"enum": ["info", "warning", "critical"], "default": "warning", "description": "Severity."},
        "min_samples": {
            "type": "integer", "minimum": 0, "default": 100,
            "description": "threshold and relative rules: a window with fewer samples (labelled outcomes for "
            "performance metrics, predictions otherwise) is not judged: the rule neither fires nor resolves on it.",
        },
        "for_windows": {
            "type": "integer", "minimum": 1, "default": 1,
            "description": "threshold rules: consecutive breaching windows before the rule fires.",
        },
        "resolve_after": {
            "type": "integer", "minimum": 1, "default": 2,
            "description": "Consecutive windows without the condition before a firing alert resolves (no_data: "
            "default 1). Windows not judged (too few samples) neither count nor reset.",
        },
        "cooldown_windows": {
            "type": "integer", "minimum": 0, "default": 2,
            "description": "Windows after resolving during which the rule cannot fire again (no_data: default 0).",
        },
        "windows": {
            "type": "integer", "minimum": 1, "default": 3,
            "description": "no_data rules: windows (wall clock) without any prediction before the rule fires.",
        },
    },
    "additionalProperties": True,
}
"""JSON Schema of one entry of ``ModelSpec.rules`` (a test keeps it equal to the rule models' defaults)."""


class ModelSpec(BaseModel):
    """Registration of a monitored model: task, features, segments and monitor settings."""

    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(min_length=1, max_length=128, pattern=_MODEL_ID_PATTERN, description="Model id.")
    version: str = Field(default="1", min_length=1, description="Model version this spec describes.")
    task: Literal["binary_classification", "multiclass_classification", "regression"] = Field(
        description="Learning task; decides which quality metrics are computed."
    )
    positive_class: str | None = Field(
        default=None, description="Label of the positive class (required for binary classification)."
    )
    classes: list[str] | None = Field(default=None, description="All class labels, if known.")
    features: list[FeatureSpec] = Field(default_factory=list, description="Monitored input features.")
    segment_fields: list[str] = Field(
        default_factory=list, description="Keys of PredictionEvent.segment to compute metrics per segment."
    )
    protected_attributes: list[str] = Field(
        default_factory=list, description="Segment fields used for fairness metrics."
    )
    segment_intersections: list[list[str]] = Field(
        default_factory=list,
        description="Pairs of segment fields (or protected attributes) whose combinations get their own drift and "
        "quality segments ('a=x&b=y', top-K by volume like a single field).",
    )
    business_values: list[str] = Field(
        default_factory=list, description="Keys of GroundTruthEvent.business to aggregate."
    )
    monitor: MonitorSettings = Field(default_factory=MonitorSettings, description="Monitor settings.")
    rules: list[dict[str, Any]] = Field(
        default_factory=list, description="Alert rules (their format is defined by stream.alerts.rules).",
        json_schema_extra={"items": RULE_SCHEMA},
    )
    champion: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=_MODEL_ID_PATTERN,
        description="Model id of the champion this model (a challenger or shadow) is compared with: both score "
        "the same requests, with the same prediction_id; labels without a model_id reach both.",
    )

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.champion == self.model_id:
            raise ValueError(f"model {self.model_id!r}: champion must name another model, not itself")
        if self.task == "binary_classification" and self.positive_class is None:
            raise ValueError(f"model {self.model_id!r}: binary_classification needs positive_class")
        positive = self.positive_class
        if self.classes is not None and positive is not None and positive not in self.classes:
            raise ValueError(f"model {self.model_id!r}: positive_class {positive!r} is not in classes")
        declared = {*self.segment_fields, *self.protected_attributes}
        for pair in self.segment_intersections:
            if len(pair) != 2 or pair[0] == pair[1] or not set(pair) <= declared:
                raise ValueError(f"model {self.model_id!r}: segment_intersections entry {pair!r} must name two "
                                 "different segment_fields or protected_attributes")
        seen: set[str] = set()
        for feature in self.features:
            if feature.name in seen:
                raise ValueError(f"model {self.model_id!r}: feature {feature.name!r} is listed twice")
            seen.add(feature.name)
        return self


class AlertEvent(BaseModel):
    """An alert state change (topic "alerts"): a rule started firing or was resolved."""

    model_config = ConfigDict(val_temporal_unit="milliseconds")

    alert_id: str = Field(description="Deterministic id of the alert (same rule, model, segment and window).")
    state: Literal["firing", "resolved"] = Field(description="Whether the condition holds or has cleared.")
    severity: Literal["info", "warning", "critical"] = Field(description="Severity from the rule.")
    model_id: str = Field(description="Model id.")
    model_version: str = Field(description="Model version.")
    segment: str = Field(default="", description="Segment of the alert, e.g. 'region=eu'; '' means all.")
    rule: str = Field(description="Name of the rule that produced the alert.")
    metric: str = Field(description="Metric or detector the rule watches.")
    observed: float | None = Field(default=None, description="Observed value of the metric.")
    threshold: float | None = Field(default=None, description="Threshold the observed value was compared to.")
    window_start: Timestamp | None = Field(default=None, description="Start of the window evaluated.")
    window_end: Timestamp | None = Field(default=None, description="End of the window evaluated.")
    time: Timestamp = Field(description="When the alert changed state.")
    message: str = Field(description="One human-readable sentence describing the alert.")
    evidence_sql: str = Field(description="A ClickHouse SQL query showing the evidence.")


class DeadLetter(BaseModel):
    """A message that could not be processed (topic "dead_letters"), with the reason."""

    model_config = ConfigDict(val_temporal_unit="milliseconds")

    topic: str = Field(description="Topic the message was read from.")
    partition: int = Field(description="Partition the message was read from.")
    offset: int = Field(description="Offset of the message.")
    key: str | None = Field(default=None, description="Message key, decoded as UTF-8 (errors replaced).")
    raw: str = Field(description="Message value decoded as UTF-8 (errors replaced), truncated to the limit.")
    reason: Reason = Field(description="Reason code.")
    error: str = Field(description="What was wrong, in words.")
    time: Timestamp = Field(description="When the message was dead-lettered.")


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message of a batch that failed validation: its index in the batch, reason code and message."""

    index: int
    reason: Reason
    error: str


class ContractError(ValueError):
    """A message that does not satisfy its contract; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


@functools.cache
def _event_models(limits: Limits) -> tuple[type[PredictionEvent], type[GroundTruthEvent]]:
    """Return the event classes enforcing ``limits`` (subclasses of the defaults when they differ)."""
    if limits == DEFAULT_LIMITS:
        return PredictionEvent, GroundTruthEvent
    config = ConfigDict(str_max_length=limits.max_string_length)

    class _Prediction(PredictionEvent):
        model_config = config
        prediction_id: str = Field(
            min_length=1, max_length=limits.max_id_length, description=_D_PREDICTION_ID
        )
        features: dict[FeatureName, FeatureValue] = Field(
            default_factory=dict, max_length=limits.max_features, description=_D_FEATURES
        )

    class _GroundTruth(GroundTruthEvent):
        model_config = config
        prediction_id: str = Field(
            min_length=1, max_length=limits.max_id_length, description=_D_PREDICTION_ID
        )

    _Prediction.__name__ = _Prediction.__qualname__ = "PredictionEvent"
    _GroundTruth.__name__ = _GroundTruth.__qualname__ = "GroundTruthEvent"
    return _Prediction, _GroundTruth


_DICT_FIELDS = frozenset({"features", "scores", "segment", "business"})
_RANK: dict[Reason, int] = {
    "not_json": 0,
    "too_many_features": 0,
    "string_too_long": 1,
    "missing_field": 2,
    "invalid_value": 3,
    "wrong_type": 4,
    "timestamp_out_of_range": 3,
}


def _reason_of(error: ErrorDetails) -> Reason:
    kind = error["type"]
    if kind == "json_invalid":
        return "not_json"
    if kind == "missing":
        return "missing_field"
    if kind == "string_too_long":
        return "string_too_long"
    if kind == "value_error" and error["loc"][:1] == ("timestamp",):
        return "timestamp_out_of_range"
    if kind == "too_long":
        return "too_many_features" if error["loc"] == ("features",) else "invalid_value"
    if kind.endswith(("_type", "_parsing")) or kind in ("int_from_float", "is_instance_of"):
        return "wrong_type"
    return "invalid_value"


def _field_path(loc: tuple[int | str, ...]) -> str:
    """Name the field of an error location, dropping union-member tags such as ``'float'``."""
    if not loc:
        return "message"
    keep = 2 if loc[0] in _DICT_FIELDS and len(loc) > 1 else 1
    parts = []
    for part in loc[:keep]:
        text = str(part).replace("\n", " ").replace("\r", " ")
        parts.append(text if len(text) <= 64 else text[:61] + "...")
    return ".".join(parts)


def _explain(exc: ValidationError) -> tuple[Reason, str]:
    errors = exc.errors(include_url=False, include_input=False, include_context=True)
    best = min(errors, key=lambda e: _RANK[_reason_of(e)])
    reason = _reason_of(best)
    path = _field_path(best["loc"])
    if reason == "not_json":
        return reason, f"message is not valid JSON: {(best.get('ctx') or {}).get('error', best['msg'])}"
    if not best["loc"] and reason == "wrong_type":
        return reason, "message should be a JSON object"
    if reason == "too_many_features":
        max_length = (best.get("ctx") or {}).get("max_length")
        return reason, f"field 'features': more than {max_length} features"
    if (best.get("ctx") or {}).get("le") == 2**63 - 1 or (best.get("ctx") or {}).get("ge") == -(2**63):
        # an int that no float holds either (an int beyond 64 bits but within a float's range is a float)
        return reason, f"field '{path}': integer beyond the range of a number (about ±1.8e308)"
    message = best["msg"].replace("\n", " ")
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    message = message[:1].lower() + message[1:]
    return reason, f"field '{path}': {message}"


def _decode(
    raws: Sequence[bytes], model: type[BaseModel], limits: Limits
) -> tuple[list[Any], list[Rejection]]:
    events: list[Any] = []
    rejections: list[Rejection] = []
    validate_json = model.model_validate_json
    max_bytes = limits.max_message_bytes
    for index, raw in enumerate(raws):
        if len(raw) > max_bytes:
            error = f"message is {len(raw)} bytes, above the limit of {max_bytes} bytes"
            rejections.append(Rejection(index, "too_large", error))
            continue
        try:
            events.append(validate_json(raw))
        except ValidationError as exc:
            reason, error = _explain(exc)
            rejections.append(Rejection(index, reason, error))
    return events, rejections


def decode_predictions(
    raws: Sequence[bytes], limits: Limits = DEFAULT_LIMITS
) -> tuple[list[PredictionEvent], list[Rejection]]:
    """Decode and validate a batch of prediction messages.

    Parameters
    ----------
    raws
        Message values (UTF-8 JSON objects).
    limits
        Size limits to enforce.

    Returns
    -------
    events, rejections
        Valid events in batch order (rejected indices skipped) and one :class:`Rejection` per bad message.
    """
    return _decode(raws, _event_models(limits)[0], limits)


def decode_ground_truth(
    raws: Sequence[bytes], limits: Limits = DEFAULT_LIMITS
) -> tuple[list[GroundTruthEvent], list[Rejection]]:
    """Decode and validate a batch of ground-truth messages; see :func:`decode_predictions`."""
    return _decode(raws, _event_models(limits)[1], limits)


def _validate_one(obj: Mapping[str, Any], model: type[BaseModel]) -> Any:
    if not isinstance(obj, Mapping):
        raise ContractError("wrong_type", f"message should be a mapping, not {type(obj).__name__}")
    try:
        return model.model_validate(obj if isinstance(obj, dict) else dict(obj))
    except ValidationError as exc:
        reason, error = _explain(exc)
        raise ContractError(reason, error) from None


def validate_prediction(obj: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> PredictionEvent:
    """Validate one prediction given as a mapping; raise :class:`ContractError` if it is invalid."""
    event: PredictionEvent = _validate_one(obj, _event_models(limits)[0])
    return event


def validate_ground_truth(obj: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> GroundTruthEvent:
    """Validate one ground-truth event given as a mapping; raise :class:`ContractError` if it is invalid."""
    event: GroundTruthEvent = _validate_one(obj, _event_models(limits)[1])
    return event


_MS = timedelta(milliseconds=1)


def epoch_ms(times: Sequence[datetime]) -> list[int]:
    """`to_epoch_ms` of many validated event times at once (they are UTC-aware already)."""
    return [(t - _EPOCH) // _MS if t.tzinfo is not None else to_epoch_ms(t) for t in times]


def to_epoch_ms(dt: datetime) -> int:
    """Return ``dt`` as whole Unix epoch milliseconds (rounded down); a naive ``dt`` is taken as UTC.

    Examples
    --------
    >>> from datetime import datetime
    >>> to_epoch_ms(datetime(2024, 1, 1, 0, 0, 0, 123999))
    1704067200123
    """
    return (_as_utc(dt) - _EPOCH) // timedelta(milliseconds=1)


def dead_letter(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    raw: bytes | None,
    reason: Reason,
    error: str,
    limits: Limits = DEFAULT_LIMITS,
    time: datetime | None = None,
) -> DeadLetter:
    """Build the dead letter of a message, keeping at most ``limits.dead_letter_raw_bytes`` bytes of it.

    ``time`` defaults to now (UTC); a null ``raw`` (a tombstone) is kept as an empty string.
    """
    return DeadLetter(
        topic=topic,
        partition=partition,
        offset=offset,
        key=None if key is None else key[: limits.dead_letter_raw_bytes].decode("utf-8", errors="replace"),
        raw="" if raw is None else raw[: limits.dead_letter_raw_bytes].decode("utf-8", errors="replace"),
        reason=reason,
        error=error,
        time=datetime.now(UTC) if time is None else time,
    )
