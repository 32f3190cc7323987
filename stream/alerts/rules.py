"""Alert rules: their specification, parsing and pure evaluation over one window.

A model spec carries ``rules: list[dict]``; :func:`parse_rules` turns them into :data:`RuleSpec` models
(a union discriminated on ``kind``) and adds :data:`DEFAULT_RULES`. :func:`evaluate` decides one rule over
one window (:class:`WindowInputs`) and the model's :class:`MetricHistory`, returning a :class:`Condition`.
State across windows (firing, hysteresis, cooldown) is kept by :mod:`stream.alerts.state`.

Default rules, applied to every model unless disabled with an entry ``{"disable": "<name>"}``:

============================  =================================================================
``default-label-coverage``    threshold: label_coverage < 0.5 (warning)
``default-accuracy-drop``     relative: accuracy drops more than 10% below its trailing 7-day mean
``default-f1-drop``           relative: f1 drops more than 10% below its trailing 7-day mean
``default-roc_auc-drop``      relative: roc_auc drops more than 10% below its trailing 7-day mean
``default-error-detector``    detector: any detector fires on the ``error`` signal (warning)
``default-feature-drift``     feature_drift: at least 3 features drifted, any test (warning)
``default-missing-rate``      data_quality: missing_rate > 0.2 for any feature (warning)
``default-no-data``           no_data: no prediction for 3 windows after the model sent some (warning)
============================  =================================================================

A user rule with the same name as a default replaces it. Every rule defaults to severity ``warning``,
``resolve_after=2`` and ``cooldown_windows=2``; metric rules ignore windows with fewer than ``min_samples``
(default 100) samples or a non-finite value (the condition is then None: not enough data). A trailing
baseline is the unweighted mean of the metric over the qualifying earlier windows, and needs at least
``min_baseline_windows`` (default 3) of them.
"""

from __future__ import annotations

import bisect
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Protocol

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "DEFAULT_RULES",
    "KINDS",
    "LABEL_DEPENDENT",
    "Condition",
    "DataQualityRule",
    "Detection",
    "DetectorHit",
    "DetectorRule",
    "DriftResult",
    "FeatureDrift",
    "FeatureDriftRule",
    "MetricHistory",
    "NoDataRule",
    "QualityCheck",
    "QualityRow",
    "RelativeRule",
    "RuleSpec",
    "RuleSpecError",
    "ThresholdRule",
    "WindowInputs",
    "evaluate",
    "evaluate_all",
    "needs_labels",
    "no_data",
    "parse_rules",
    "required_lookback",
]

Op = Literal["<", "<=", ">", ">="]
Severity = Literal["info", "warning", "critical"]
OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
LABEL_METRICS = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "mae", "rmse"})
LABEL_DEPENDENT = LABEL_METRICS | {"label_coverage", "labelled"}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _parse_duration(value: Any) -> Any:
    """Accept ``"7d"``, ``"12h"``, ``"30m"``, ``"45s"``, ``"2w"`` and numbers of seconds besides ISO 8601."""
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]
_CHECK_ALIASES = {"new_categories": "new_category_rate"}


class _Rule(BaseModel):
    """Fields common to every rule kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="", description="Rule name, unique per model; derived from the rule if empty.")
    severity: Severity = "warning"
    resolve_after: int = Field(default=2, ge=1, description="Consecutive false windows before resolving.")
    cooldown_windows: int = Field(default=2, ge=0, description="Windows after resolving before refiring.")

    def _default_name(self) -> str:
        raise NotImplementedError

    @model_validator(mode="after")
    def _named(self) -> _Rule:
        if not self.name:
            object.__setattr__(self, "name", self._default_name())
        return self


class ThresholdRule(_Rule):
    """Fires when ``metric op value`` holds in ``for_windows`` consecutive windows with enough samples."""

    kind: Literal["threshold"] = "threshold"
    metric: str = Field(min_length=1)
    op: Op
    value: float = Field(allow_inf_nan=False)
    for_windows: int = Field(default=1, ge=1)
    min_samples: int = Field(default=100, ge=0)

    def _default_name(self) -> str:
        suffix = f" for {self.for_windows} windows" if self.for_windows > 1 else ""
        return f"{self.metric} {self.op} {self.value:g}{suffix}"


class RelativeRule(_Rule):
    """Fires when ``metric`` drops (or rises) by more than ``by_percent`` % versus a baseline.

    The baseline is ``reference`` if given, else the mean of the metric over the windows of the trailing
    ``trailing`` duration (default 7 days) or ``trailing_windows`` windows before the current one.
    """

    kind: Literal["relative"] = "relative"
    metric: str = Field(min_length=1)
    direction: Literal["drop", "rise"] = "drop"
    by_percent: float = Field(gt=0, allow_inf_nan=False)
    reference: float | None = Field(default=None, allow_inf_nan=False)
    trailing: Duration | None = None
    trailing_windows: int | None = Field(default=None, ge=1)
    min_baseline_windows: int = Field(default=3, ge=1)
    min_samples: int = Field(default=100, ge=0)

    def _default_name(self) -> str:
        return f"{self.metric} {self.direction} > {self.by_percent:g}%"

    @model_validator(mode="after")
    def _check_baseline(self) -> RelativeRule:
        given = [n for n in ("reference", "trailing", "trailing_windows") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"give only one baseline of reference, trailing, trailing_windows; got {given}")
        if self.trailing is not None and self.trailing <= timedelta(0):
            raise ValueError("trailing must be a positive duration such as '7d'")
        return self

    def lookback(self, window: timedelta) -> timedelta:
        """Time span before the window that the trailing baseline covers."""
        if self.trailing_windows is not None:
            return window * self.trailing_windows
        return self.trailing if self.trailing is not None else timedelta(days=7)


class DetectorRule(_Rule):
    """Fires when a drift detector (``adwin``, ``page_hinkley`` or ``any``) detects on ``signal``."""

    kind: Literal["detector"] = "detector"
    detector: str = Field(default="any", min_length=1)
    signal: str = Field(default="error", min_length=1, description="Signal name, or 'any'.")

    def _default_name(self) -> str:
        return f"detector {self.detector} on {self.signal}"


class FeatureDriftRule(_Rule):
    """Fires when ``feature`` (or at least ``min_features`` features) drifted under ``test`` (or any)."""

    kind: Literal["feature_drift"] = "feature_drift"
    test: Literal["psi", "js", "ks", "chi2", "wasserstein", "pca_reconstruction", "any"] = "any"
    feature: str | None = None
    min_features: int = Field(default=1, ge=1)

    def _default_name(self) -> str:
        if self.feature is not None:
            return f"feature {self.feature} drifted ({self.test})"
        return f"{self.min_features}+ features drifted ({self.test})"

    @model_validator(mode="after")
    def _check_feature(self) -> FeatureDriftRule:
        if self.feature is not None and self.min_features > 1:
            raise ValueError("give either feature or min_features > 1, not both")
        return self


class DataQualityRule(_Rule):
    """Fires when a data-quality ``check`` of ``feature`` (or any feature) satisfies ``op value``."""

    kind: Literal["data_quality"] = "data_quality"
    check: Annotated[
        Literal[
            "missing_rate", "type_mismatch_rate", "out_of_range_rate", "new_category_rate", "constant",
            "never_present", "undeclared_feature",
        ],
        BeforeValidator(lambda v: _CHECK_ALIASES.get(v, v)),
    ]
    feature: str | None = None
    op: Op = ">"
    value: float = Field(allow_inf_nan=False)

    def _default_name(self) -> str:
        return f"{self.check} of {self.feature or 'any feature'} {self.op} {self.value:g}"


class NoDataRule(_Rule):
    """Fires when a model that sent predictions then sends none for ``windows`` windows of wall-clock time.

    It is not judged per window but by the wall clock, also while the stream is idle (a dead model server or
    a broken logger opens no window); it resolves at the first prediction after the silence.
    """

    kind: Literal["no_data"] = "no_data"
    windows: int = Field(default=3, ge=1, description="Windows (window_seconds each) without any prediction.")
    resolve_after: int = Field(default=1, ge=1, description="Consecutive false windows before resolving.")
    cooldown_windows: int = Field(default=0, ge=0, description="Windows after resolving before refiring.")

    def _default_name(self) -> str:
        return f"no data for {self.windows} windows"


AnyRule = ThresholdRule | RelativeRule | DetectorRule | FeatureDriftRule | DataQualityRule | NoDataRule
RuleSpec = Annotated[AnyRule, Field(discriminator="kind")]
"""A rule of any kind; use as a pydantic field type to parse rules inside another model."""

_BY_KIND: dict[str, type[_Rule]] = {
    "threshold": ThresholdRule,
    "relative": RelativeRule,
    "detector": DetectorRule,
    "feature_drift": FeatureDriftRule,
    "data_quality": DataQualityRule,
    "no_data": NoDataRule,
}
KINDS: tuple[str, ...] = tuple(_BY_KIND)

DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {"name": "default-label-coverage", "kind": "threshold", "metric": "label_coverage", "op": "<",
     "value": 0.5},
    *(
        {"name": f"default-{m}-drop", "kind": "relative", "metric": m, "direction": "drop", "by_percent": 10}
        for m in ("accuracy", "f1", "roc_auc")
    ),
    {"name": "default-error-detector", "kind": "detector", "detector": "any", "signal": "error"},
    {"name": "default-feature-drift", "kind": "feature_drift", "min_features": 3},
    {"name": "default-missing-rate", "kind": "data_quality", "check": "missing_rate", "op": ">",
     "value": 0.2},
    {"name": "default-no-data", "kind": "no_data", "windows": 3},
)


class RuleSpecError(ValueError):
    """A rule spec is invalid; the message is one line naming the rule and what is wrong."""


def _explain(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in error["loc"])
        msg = error["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def _parse_one(number: int, spec: Any) -> AnyRule:
    if not isinstance(spec, Mapping):
        raise RuleSpecError(f"rule {number}: expected a mapping, got {type(spec).__name__}")
    kind = spec.get("kind")
    label = f"rule {number}" + (f" ({spec['name']!r})" if isinstance(spec.get("name"), str) else "")
    if kind is None:
        raise RuleSpecError(f"{label}: missing 'kind'; expected one of {', '.join(KINDS)}")
    if kind not in _BY_KIND:
        raise RuleSpecError(f"{label}: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    try:
        rule = _BY_KIND[kind].model_validate(dict(spec))
    except ValidationError as exc:
        raise RuleSpecError(f"{label}: {_explain(exc)}") from None
    assert isinstance(rule, AnyRule)
    return rule


def parse_rules(specs: Iterable[Any] | None, *, defaults: bool = True) -> list[AnyRule]:
    """Parse a model spec's rules (numbered from 1 in errors) and add the default rules.

    A rule named like a default replaces it; an entry ``{"disable": "<default name>"}`` removes a default.
    Raises :class:`RuleSpecError` with a one-line message for the first bad rule.
    """
    own: list[AnyRule] = []
    disabled: set[str] = set()
    default_names = {d["name"] for d in DEFAULT_RULES}
    for number, spec in enumerate(specs or (), start=1):
        if isinstance(spec, Mapping) and set(spec) == {"disable"}:
            name = spec["disable"]
            if name not in default_names:
                names = ", ".join(sorted(default_names))
                raise RuleSpecError(f"rule {number}: cannot disable {name!r}; default rules are {names}")
            disabled.add(name)
            continue
        own.append(_parse_one(number, spec))
    seen: set[str] = set()
    for number, rule in enumerate(own, start=1):
        if rule.name in seen:
            raise RuleSpecError(f"rule {number}: duplicate rule name {rule.name!r}; names must be unique")
        seen.add(rule.name)
    base = [_parse_one(0, d) for d in DEFAULT_RULES] if defaults else []
    return [r for r in base if r.name not in seen and r.name not in disabled] + own


class FeatureDrift(Protocol):
    """One feature's distribution-test result in a window (the attributes evaluation reads)."""

    @property
    def feature(self) -> str: ...
    @property
    def test(self) -> str: ...
    @property
    def statistic(self) -> float: ...
    @property
    def drifted(self) -> bool: ...


class Detection(Protocol):
    """A drift detector firing in a window."""

    @property
    def detector(self) -> str: ...
    @property
    def signal(self) -> str: ...


class QualityCheck(Protocol):
    """One data-quality measurement of a feature in a window."""

    @property
    def feature(self) -> str: ...
    @property
    def check(self) -> str: ...
    @property
    def value(self) -> float: ...


@dataclass(frozen=True, slots=True)
class DriftResult:
    """A concrete :class:`FeatureDrift`."""

    feature: str
    test: str
    statistic: float
    p_value: float | None
    drifted: bool


@dataclass(frozen=True, slots=True)
class DetectorHit:
    """A concrete :class:`Detection`."""

    detector: str
    signal: str


@dataclass(frozen=True, slots=True)
class QualityRow:
    """A concrete :class:`QualityCheck`."""

    feature: str
    check: str
    value: float


@dataclass(frozen=True, slots=True)
class WindowInputs:
    """Everything the rules see about one window of one model version and segment.

    ``metrics`` maps a metric name to ``(value, samples)``; naive datetimes are taken as UTC.
    """

    model_id: str
    model_version: str
    segment: str
    window_start: datetime
    window_end: datetime
    metrics: Mapping[str, tuple[float, int]] = field(default_factory=dict)
    drift: Sequence[FeatureDrift] = ()
    detections: Sequence[Detection] = ()
    quality: Sequence[QualityCheck] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "window_start", _utc(self.window_start))
        object.__setattr__(self, "window_end", _utc(self.window_end))
        if self.window_end <= self.window_start:
            raise ValueError(f"window_end {self.window_end} is not after window_start {self.window_start}")

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model_id, self.model_version, self.segment)

    @property
    def size(self) -> timedelta:
        return self.window_end - self.window_start


@dataclass(frozen=True, slots=True)
class Condition:
    """Outcome of one rule on one window.

    ``active`` is None when there is not enough data to decide (missing metric, too few samples, NaN,
    too short a baseline); ``details`` names drifted features, violating features or detectors.
    """

    rule: AnyRule
    active: bool | None
    metric: str
    observed: float | None = None
    threshold: float | None = None
    samples: int | None = None
    baseline: float | None = None
    details: tuple[str, ...] = ()


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class MetricHistory:
    """Past window metrics per (model, version, segment), keyed by window start; a revised window replaces.

    Windows older than ``retention`` before the newest window of their key are dropped; make ``retention``
    at least :func:`required_lookback` of the rules in use. ``metrics`` limits what is kept (None: all);
    :meth:`for_rules` sets both from a rule list.
    """

    def __init__(
        self, retention: timedelta = timedelta(days=8), metrics: Iterable[str] | None = None
    ) -> None:
        self.retention = retention
        self.metrics = None if metrics is None else frozenset(metrics)
        self._starts: dict[tuple[str, str, str], list[datetime]] = {}
        self._rows: dict[tuple[str, str, str], dict[datetime, dict[str, tuple[float, int]]]] = {}

    def record(self, inputs: WindowInputs) -> None:
        """Store (or replace) the metrics of a window."""
        starts = self._starts.setdefault(inputs.key, [])
        rows = self._rows.setdefault(inputs.key, {})
        start = inputs.window_start
        if start not in rows:
            bisect.insort(starts, start)
        keep = self.metrics
        rows[start] = {
            k: (float(v), int(n)) for k, (v, n) in inputs.metrics.items() if keep is None or k in keep
        }
        cut = bisect.bisect_left(starts, starts[-1] - self.retention)
        for old in starts[:cut]:
            del rows[old]
        del starts[:cut]

    @classmethod
    def for_rules(cls, rules: Iterable[AnyRule], window: timedelta) -> MetricHistory:
        """A history keeping only the metrics, and the time span, that ``rules`` read."""
        rules = list(rules)
        needed = [r for r in rules if required_lookback(r, window) > timedelta(0)]
        lookback = max((required_lookback(r, window) for r in needed), default=timedelta(0))
        metrics = {r.metric for r in needed if isinstance(r, ThresholdRule | RelativeRule)}
        return cls(lookback + window, metrics)

    def get(self, key: tuple[str, str, str], start: datetime, metric: str) -> tuple[float, int] | None:
        """Value and samples of ``metric`` in the window starting at ``start``, if recorded."""
        row = self._rows.get(key, {}).get(start)
        return None if row is None else row.get(metric)

    def values(
        self, key: tuple[str, str, str], metric: str, since: datetime, before: datetime, min_samples: int
    ) -> list[float]:
        """Finite values of ``metric`` in windows starting in ``[since, before)`` with enough samples."""
        starts = self._starts.get(key, [])
        rows = self._rows.get(key, {})
        out = []
        for start in starts[bisect.bisect_left(starts, since) : bisect.bisect_left(starts, before)]:
            got = rows[start].get(metric)
            if got is not None and got[1] >= min_samples and math.isfinite(got[0]):
                out.append(got[0])
        return out

    def to_bytes(self) -> bytes:
        """Serialise (JSON) for restarts."""
        keys = []
        for key, starts in self._starts.items():
            rows = self._rows[key]
            windows = [[s.isoformat(), {m: [v, n] for m, (v, n) in rows[s].items()}] for s in starts]
            keys.append([list(key), windows])
        metrics = None if self.metrics is None else sorted(self.metrics)
        data = {"retention": self.retention.total_seconds(), "metrics": metrics, "keys": keys}
        return orjson.dumps(data)

    @classmethod
    def from_bytes(cls, raw: bytes) -> MetricHistory:
        """Inverse of :meth:`to_bytes`."""
        data = orjson.loads(raw)
        history = cls(timedelta(seconds=data["retention"]), data.get("metrics"))
        for key_list, windows in data["keys"]:
            key = (key_list[0], key_list[1], key_list[2])
            starts = [datetime.fromisoformat(s) for s, _ in windows]
            history._starts[key] = starts
            history._rows[key] = {
                start: {m: (math.nan if v is None else float(v), int(n)) for m, (v, n) in metrics.items()}
                for start, (_, metrics) in zip(starts, windows, strict=True)
            }
        return history


def required_lookback(rule: AnyRule, window: timedelta) -> timedelta:
    """How much history before a window ``rule`` reads."""
    if isinstance(rule, ThresholdRule):
        return window * (rule.for_windows - 1)
    if isinstance(rule, RelativeRule) and rule.reference is None:
        return rule.lookback(window)
    return timedelta(0)


def _current(rule: ThresholdRule | RelativeRule, inputs: WindowInputs) -> tuple[float, int] | None:
    got = inputs.metrics.get(rule.metric)
    if got is None:
        return None
    value, samples = float(got[0]), int(got[1])
    if samples < rule.min_samples or not math.isfinite(value):
        return None
    return value, samples


def _threshold(rule: ThresholdRule, inputs: WindowInputs, history: MetricHistory) -> Condition:
    got = inputs.metrics.get(rule.metric)
    cur = _current(rule, inputs)
    if cur is None:
        observed = None if got is None else float(got[0])
        return Condition(rule, None, rule.metric, observed, rule.value, None if got is None else int(got[1]))
    value, samples = cur
    compare = OPS[rule.op]
    active = compare(value, rule.value)
    for k in range(1, rule.for_windows if active else 1):
        past = history.get(inputs.key, inputs.window_start - k * inputs.size, rule.metric)
        if past is None or past[1] < rule.min_samples or not compare(past[0], rule.value):
            active = False
            break
    return Condition(rule, active, rule.metric, value, rule.value, samples)


def _relative(rule: RelativeRule, inputs: WindowInputs, history: MetricHistory) -> Condition:
    cur = _current(rule, inputs)
    if rule.reference is not None:
        baseline: float | None = rule.reference
    else:
        start = inputs.window_start
        since = start - rule.lookback(inputs.size)
        past = history.values(inputs.key, rule.metric, since, start, rule.min_samples)
        baseline = sum(past) / len(past) if len(past) >= rule.min_baseline_windows else None
    threshold = None
    if baseline is not None:
        delta = abs(baseline) * rule.by_percent / 100.0
        threshold = baseline - delta if rule.direction == "drop" else baseline + delta
    if cur is None or threshold is None:
        return Condition(
            rule, None, rule.metric, None if cur is None else cur[0], threshold,
            None if cur is None else cur[1], baseline,
        )
    value, samples = cur
    active = value < threshold if rule.direction == "drop" else value > threshold
    return Condition(rule, active, rule.metric, value, threshold, samples, baseline)


def _detector(rule: DetectorRule, inputs: WindowInputs) -> Condition:
    hits = sorted(
        {
            f"{d.detector}:{d.signal}"
            for d in inputs.detections
            if rule.detector in ("any", d.detector) and rule.signal in ("any", d.signal)
        }
    )
    return Condition(rule, bool(hits), rule.signal, float(len(hits)), 1.0, None, None, tuple(hits))


def _feature_drift(rule: FeatureDriftRule, inputs: WindowInputs) -> Condition:
    """Results with a non-finite statistic (a test without enough samples) are left out."""
    results = [
        d
        for d in inputs.drift
        if rule.test in ("any", d.test)
        and (rule.feature is None or d.feature == rule.feature)
        and math.isfinite(d.statistic)
    ]
    metric = f"drift:{rule.test}" if rule.feature is None else f"drift:{rule.feature}:{rule.test}"
    if not results:
        return Condition(rule, None, metric, None, float(rule.min_features))
    drifted = tuple(sorted({d.feature for d in results if d.drifted}))
    return Condition(
        rule, len(drifted) >= rule.min_features, metric, float(len(drifted)), float(rule.min_features),
        None, None, drifted,
    )


def _data_quality(rule: DataQualityRule, inputs: WindowInputs) -> Condition:
    rows = [
        q
        for q in inputs.quality
        if _CHECK_ALIASES.get(q.check, q.check) == rule.check
        and (rule.feature is None or q.feature == rule.feature)
        and math.isfinite(q.value)
    ]
    metric = f"{rule.check}:{rule.feature}" if rule.feature is not None else rule.check
    if not rows:
        return Condition(rule, None, metric, None, rule.value)
    compare = OPS[rule.op]
    worst = max if rule.op in (">", ">=") else min
    observed = float(worst(q.value for q in rows))
    violating = tuple(sorted({q.feature for q in rows if compare(q.value, rule.value)}))
    return Condition(rule, bool(violating), metric, observed, rule.value, None, None, violating)


def needs_labels(rule: AnyRule) -> bool:
    """Whether ``rule`` judges label coverage or performance, and so waits until a window's labels are due."""
    return isinstance(rule, ThresholdRule | RelativeRule) and rule.metric in LABEL_DEPENDENT


def no_data(rule: NoDataRule, silence: timedelta, window: timedelta) -> Condition:
    """Decide a no-data rule: ``silence`` is the wall-clock time since the model's last prediction arrived."""
    limit = window * rule.windows
    return Condition(rule, silence >= limit, "predictions", silence.total_seconds(), limit.total_seconds())


def evaluate(rule: AnyRule, inputs: WindowInputs, history: MetricHistory) -> Condition:
    """Decide ``rule`` on one window; ``history`` supplies earlier windows (the current one is not read).

    A :class:`NoDataRule` is not decided per window (see :func:`no_data`): its condition here is None.
    """
    if isinstance(rule, NoDataRule):
        return Condition(rule, None, "predictions")
    if isinstance(rule, ThresholdRule):
        return _threshold(rule, inputs, history)
    if isinstance(rule, RelativeRule):
        return _relative(rule, inputs, history)
    if isinstance(rule, DetectorRule):
        return _detector(rule, inputs)
    if isinstance(rule, FeatureDriftRule):
        return _feature_drift(rule, inputs)
    return _data_quality(rule, inputs)


def evaluate_all(
    rules: Sequence[AnyRule], inputs: WindowInputs, history: MetricHistory, *, record: bool = True
) -> list[Condition]:
    """Evaluate every rule on a window, then (by default) record the window in ``history``."""
    conditions = [evaluate(rule, inputs, history) for rule in rules]
    if record:
        history.record(inputs)
    return conditions
