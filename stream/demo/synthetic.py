"""Synthetic predictions and delayed ground truth for the demo and the benchmark, with drift injected on cue.

Events are the wire format: plain dicts ready for ``orjson.dumps`` (timestamps in epoch milliseconds).

Two demo models (:data:`DEMO_MODELS`, specs as plain dicts matching ``stream.contracts.events.ModelSpec``):

``credit-risk`` v3 (binary classification, positive class ``"default"``, negative ``"repaid"``)
    Features income (lognormal), age, debt_ratio, utilisation (1 % missing, sent as ``None``), employment,
    channel; segment ``region`` and the protected attribute ``sex`` (``f``/``m`` from a hash of the
    prediction id, independent of the features: fairness metrics per group, with parity). The true label is
    drawn from a hidden logistic model; the deployed model is
    that same logistic model (missing utilisation imputed with its mean), so before drift its accuracy is
    about 0.85. Ground truth carries ``business.revenue``: 8 % of the loan (a quarter of the income) if the
    model approved (predicted ``"repaid"``) and the loan was repaid, minus half the loan if it defaulted, 0 if
    declined.
``credit-risk-next`` v1 (with ``shadow=True``: a challenger of ``credit-risk``, champion named in its spec)
    Scores every credit-risk request (same prediction_id, features and label) with the same logistic model
    without the debt_ratio term: a little worse than its champion before the drift, better after it (the
    champion's debt_ratio coefficient then has the wrong sign), so the paired comparison flips.
``delivery-eta`` v1 (regression, minutes)
    Features distance_km, items, hour, courier_type, weather; segment ``region``. The true ETA is linear in
    the features plus N(0, 2²) noise; the model knows the coefficients, so MAE before drift is about 1.6.

From ``drift_at_ms`` on (prediction timestamp ``>= drift_at_ms``) both kinds of drift start at once:

* data drift (:data:`DRIFTED_FEATURES`): income + 1.5 of its standard deviations and channel frequencies
  move from web-heavy to app-heavy; distance_km × 1.8.
* concept drift: the true coefficient of debt_ratio flips sign (accuracy falls to about 0.67, mean revenue
  turns negative); the true ETA gains a weather effect (+8 min rain, +20 min snow) the model does not know
  (MAE rises to about 4).

Labels arrive after an exponential delay (capped), a fraction never arrive and a fraction are sent twice
(an identical copy released a little later). Everything is deterministic given the seed and the sequence of
calls. :func:`bench_events` is a separate vectorised bulk path that returns encoded messages.
"""

from __future__ import annotations

import copy
import gc
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

__all__ = [
    "DEMO_MODELS",
    "DRIFTED_FEATURES",
    "SHADOW_MODELS",
    "Scenario",
    "bench_events",
    "bench_specs",
    "demo_specs",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_MONITOR: dict[str, Any] = {"window_seconds": 60, "max_label_delay_seconds": 120}

_REGIONS = np.array(["eu", "us", "apac"])
_REGION_P = np.array([0.5, 0.3, 0.2])

# credit-risk: hidden true model, shared by the deployed model before drift
_INCOME_MU, _INCOME_SIGMA = 10.6, 0.5
_INCOME_STD = float(np.exp(_INCOME_MU + _INCOME_SIGMA**2 / 2) * np.sqrt(np.expm1(_INCOME_SIGMA**2)))
_EMPLOYMENT = np.array(["salaried", "self-employed", "unemployed", "retired"])
_EMPLOYMENT_P = np.array([0.6, 0.2, 0.1, 0.1])
_EMPLOYMENT_LOGIT = np.array([0.0, 0.4, 1.6, 0.3])
_CHANNEL = np.array(["web", "branch", "partner", "app"])
_CHANNEL_P = np.array([0.45, 0.25, 0.15, 0.15])
_CHANNEL_P_DRIFT = np.array([0.15, 0.10, 0.15, 0.60])
_CREDIT_INTERCEPT = -1.6
_COEF_INCOME, _COEF_AGE, _COEF_DEBT, _COEF_UTIL = -1.0, -0.3, 2.2, 0.8
_DEBT_MEAN, _DEBT_STD = 2 / 7, float(np.sqrt(2 * 5 / (7**2 * 8)))
_UTIL_MEAN, _UTIL_STD = 0.4, 0.2
_UTIL_MISSING = 0.01

# delivery-eta
_COURIER = np.array(["bike", "scooter", "car"])
_COURIER_P = np.array([0.4, 0.4, 0.2])
_COURIER_MIN = np.array([3.0, 0.0, -2.0])
_WEATHER = np.array(["clear", "rain", "snow"])
_WEATHER_P = np.array([0.7, 0.25, 0.05])
_WEATHER_MIN_DRIFT = np.array([0.0, 8.0, 20.0])
_HOUR_W = np.array([1, 1, 1, 1, 1, 1, 2, 3, 4, 4, 5, 8, 10, 8, 5, 4, 5, 7, 10, 10, 8, 5, 3, 2], dtype=float)
_PEAK_HOURS = np.array([11, 12, 13, 18, 19, 20])
_DISTANCE_DRIFT = 1.8
_ETA_NOISE = 2.0


def _credit_spec() -> dict[str, Any]:
    return {
        "model_id": "credit-risk",
        "version": "3",
        "task": "binary_classification",
        "positive_class": "default",
        "classes": ["repaid", "default"],
        "features": [
            {"name": "income", "type": "numeric", "range": [0.0, 2_000_000.0], "categories": None},
            {"name": "age", "type": "numeric", "range": [18.0, 100.0], "categories": None},
            {"name": "debt_ratio", "type": "numeric", "range": [0.0, 1.0], "categories": None},
            {"name": "utilisation", "type": "numeric", "range": [0.0, 1.0], "categories": None},
            {"name": "employment", "type": "categorical", "range": None, "categories": _EMPLOYMENT.tolist()},
            {"name": "channel", "type": "categorical", "range": None, "categories": _CHANNEL.tolist()},
        ],
        "segment_fields": ["region"],
        "protected_attributes": ["sex"],
        "business_values": ["revenue"],
        "monitor": dict(_MONITOR),
    }


def _eta_spec() -> dict[str, Any]:
    return {
        "model_id": "delivery-eta",
        "version": "1",
        "task": "regression",
        "positive_class": None,
        "classes": None,
        "features": [
            {"name": "distance_km", "type": "numeric", "range": [0.0, 200.0], "categories": None},
            {"name": "items", "type": "numeric", "range": [1.0, 50.0], "categories": None},
            {"name": "hour", "type": "numeric", "range": [0.0, 23.0], "categories": None},
            {"name": "courier_type", "type": "categorical", "range": None, "categories": _COURIER.tolist()},
            {"name": "weather", "type": "categorical", "range": None, "categories": _WEATHER.tolist()},
        ],
        "segment_fields": ["region"],
        "protected_attributes": [],
        "business_values": [],
        "monitor": dict(_MONITOR),
    }


def _credit_next_spec() -> dict[str, Any]:
    return {**_credit_spec(), "model_id": "credit-risk-next", "version": "1", "champion": "credit-risk"}


DEMO_MODELS: dict[str, dict[str, Any]] = {"credit-risk": _credit_spec(), "delivery-eta": _eta_spec()}
SHADOW_MODELS: dict[str, dict[str, Any]] = {"credit-risk-next": _credit_next_spec()}
"""The challenger of a demo model (``Scenario(shadow=True)``), by model id."""
"""ModelSpec dicts of the demo models by model id (read-only by convention; :func:`demo_specs` copies)."""

DRIFTED_FEATURES: dict[str, list[str]] = {
    "credit-risk": ["income", "channel"],
    "delivery-eta": ["distance_km"],
}
"""Features whose distribution changes at ``drift_at_ms`` (data drift); the others keep theirs."""


def _segment(model_id: str, prediction_id: str, region: str) -> dict[str, str]:
    """An event's segment: its region and, for models with the protected attribute, ``sex`` drawn from a hash of
    the prediction id (no random draw, so the other data stay as they were; independent of the features, so a
    group's inputs do not differ from the whole model's reference)."""
    if not DEMO_MODELS[model_id]["protected_attributes"]:
        return {"region": region}
    return {"region": region, "sex": "fm"[zlib.crc32(prediction_id.encode()) & 1]}


def demo_specs(models: Sequence[str] = ("credit-risk", "delivery-eta")) -> list[dict[str, Any]]:
    """Return deep copies of the ModelSpec dicts of ``models``."""
    return [copy.deepcopy(DEMO_MODELS[_check_model(m)]) for m in models]


def _check_model(model_id: str) -> str:
    if model_id not in DEMO_MODELS:
        raise ValueError(f"unknown demo model {model_id!r}; choose from {sorted(DEMO_MODELS)}")
    return model_id


def _uuids(rng: np.random.Generator, n: int) -> list[str]:
    """Random version-4-shaped UUID strings drawn from ``rng``."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    h = raw.tobytes().hex()
    return [
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-{h[i + 16 : i + 20]}-{h[i + 20 : i + 32]}"
        for i in range(0, 32 * n, 32)
    ]


def _sigmoid(x: FloatArray) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-x))


def _numeric_list(values: FloatArray, decimals: int) -> list[float | None]:
    """Round to ``decimals`` and convert to a list, NaN becoming None."""
    out: list[float | None] = np.round(values, decimals).tolist()
    for i in np.flatnonzero(np.isnan(values)).tolist():
        out[i] = None
    return out


def _categorical(
    rng: np.random.Generator, p: FloatArray, p_drift: FloatArray | None, drifted: BoolArray
) -> npt.NDArray[np.intp]:
    codes = rng.choice(len(p), size=drifted.size, p=p)
    if p_drift is not None and drifted.any():
        codes[drifted] = rng.choice(len(p_drift), size=int(drifted.sum()), p=p_drift)
    return codes


@dataclass(frozen=True, slots=True)
class _Generated:
    """Columns of one model's batch: features as lists ready for JSON, outputs and truth."""

    features: dict[str, list[Any]]
    prediction: list[Any]
    score: list[float] | None
    label: list[Any]
    revenue: list[float] | None
    shadow_prediction: list[Any] | None = None
    shadow_score: list[float] | None = None


def _credit(rng: np.random.Generator, drifted: BoolArray) -> _Generated:
    n = drifted.size
    income = rng.lognormal(_INCOME_MU, _INCOME_SIGMA, n)
    income[drifted] += 1.5 * _INCOME_STD
    age = np.round(np.clip(rng.normal(42.0, 12.0, n), 18.0, 90.0)).astype(np.float64)
    debt = rng.beta(2.0, 5.0, n)
    util = rng.beta(2.0, 3.0, n)
    employment = _categorical(rng, _EMPLOYMENT_P, None, drifted)
    channel = _categorical(rng, _CHANNEL_P, _CHANNEL_P_DRIFT, drifted)
    util_seen = np.where(rng.random(n) < _UTIL_MISSING, np.nan, util)

    z_income = (np.log(income) - _INCOME_MU) / _INCOME_SIGMA
    base = (
        _CREDIT_INTERCEPT
        + _COEF_INCOME * z_income
        + _COEF_AGE * (age - 42.0) / 12.0
        + _EMPLOYMENT_LOGIT[employment]
    )
    z_debt = (debt - _DEBT_MEAN) / _DEBT_STD
    true_coef_debt = np.where(drifted, -_COEF_DEBT, _COEF_DEBT)
    true_logit = base + true_coef_debt * z_debt + _COEF_UTIL * (util - _UTIL_MEAN) / _UTIL_STD
    is_default = rng.random(n) < _sigmoid(true_logit)
    model_util = np.where(np.isnan(util_seen), _UTIL_MEAN, util_seen)
    score = _sigmoid(base + _COEF_DEBT * z_debt + _COEF_UTIL * (model_util - _UTIL_MEAN) / _UTIL_STD)
    predicted_default = score >= 0.5

    shadow = _sigmoid(base + _COEF_UTIL * (model_util - _UTIL_MEAN) / _UTIL_STD)  # the challenger: no debt term
    loan = 0.25 * income
    revenue = np.where(predicted_default, 0.0, np.where(is_default, -0.5 * loan, 0.08 * loan))
    outcome = np.array(["repaid", "default"])
    return _Generated(
        features={
            "income": _numeric_list(income, 2),
            "age": _numeric_list(age, 0),
            "debt_ratio": _numeric_list(debt, 4),
            "utilisation": _numeric_list(util_seen, 4),
            "employment": _EMPLOYMENT[employment].tolist(),
            "channel": _CHANNEL[channel].tolist(),
        },
        prediction=outcome[predicted_default.astype(np.intp)].tolist(),
        score=np.round(score, 6).tolist(),
        label=outcome[is_default.astype(np.intp)].tolist(),
        revenue=np.round(revenue, 2).tolist(),
        shadow_prediction=outcome[(shadow >= 0.5).astype(np.intp)].tolist(),
        shadow_score=np.round(shadow, 6).tolist(),
    )


def _eta(rng: np.random.Generator, drifted: BoolArray) -> _Generated:
    n = drifted.size
    distance = rng.gamma(2.0, 2.5, n)
    distance[drifted] *= _DISTANCE_DRIFT
    items = 1.0 + rng.poisson(2.0, n)
    hour = rng.choice(24, size=n, p=_HOUR_W / _HOUR_W.sum()).astype(float)
    courier = _categorical(rng, _COURIER_P, None, drifted)
    weather = _categorical(rng, _WEATHER_P, None, drifted)

    predicted = 10.0 + 3.2 * distance + 1.0 * items + 4.0 * np.isin(hour, _PEAK_HOURS) + _COURIER_MIN[courier]
    truth = predicted + rng.normal(0.0, _ETA_NOISE, n) + np.where(drifted, _WEATHER_MIN_DRIFT[weather], 0.0)
    return _Generated(
        features={
            "distance_km": _numeric_list(distance, 3),
            "items": items.tolist(),
            "hour": hour.tolist(),
            "courier_type": _COURIER[courier].tolist(),
            "weather": _WEATHER[weather].tolist(),
        },
        prediction=np.round(predicted, 2).tolist(),
        score=None,
        label=np.round(truth, 2).tolist(),
        revenue=None,
    )


_GENERATORS = {"credit-risk": _credit, "delivery-eta": _eta}
_LATENCY_MEDIAN_MS = {"credit-risk": 12.0, "delivery-eta": 6.0}


class Scenario:
    """A seeded stream of demo predictions with delayed, lossy, duplicated ground truth and optional drift.

    Parameters
    ----------
    models
        Demo model ids; events are assigned to them round-robin.
    seed
        Seed of every random draw; the same seed and call sequence give the same events.
    start_ms
        Timestamp (epoch ms) of the first prediction when :meth:`predictions` gets no ``start_ms``;
        None means the wall clock at construction.
    drift_at_ms
        Predictions with ``timestamp >= drift_at_ms`` are drifted (data and concept); None means no drift.
    label_delay_mean_ms
        Mean of the exponential label delay, which is at least 1 ms and at most ``label_delay_cap_ms``.
    label_fraction
        Probability that a prediction ever gets a label.
    duplicate_label_fraction
        Probability that a label is also sent a second time (identical payload, released up to 2 s later).
    label_delay_cap_ms
        Largest label delay; None means five times the mean.
    max_pending_labels
        Bound on labels held for release; beyond it the earliest-due are dropped and counted in
        ``dropped_labels`` (only if the caller generates far ahead of ``due_labels``).
    """

    def __init__(
        self,
        models: Sequence[str] = ("credit-risk", "delivery-eta"),
        seed: int = 7,
        start_ms: int | None = None,
        drift_at_ms: int | None = None,
        label_delay_mean_ms: float = 5000,
        label_fraction: float = 0.9,
        duplicate_label_fraction: float = 0.02,
        *,
        label_delay_cap_ms: float | None = None,
        max_pending_labels: int = 1_000_000,
        shadow: bool = False,
    ) -> None:
        if not models:
            raise ValueError("models is empty; give at least one of " + ", ".join(sorted(DEMO_MODELS)))
        self.models = tuple(_check_model(m) for m in models)
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"models lists a model twice: {list(models)}")
        if not 0.0 <= label_fraction <= 1.0 or not 0.0 <= duplicate_label_fraction <= 1.0:
            raise ValueError("label_fraction and duplicate_label_fraction must be between 0 and 1")
        if label_delay_mean_ms < 0:
            raise ValueError(f"label_delay_mean_ms must be >= 0, got {label_delay_mean_ms}")
        self.shadow = shadow and "credit-risk" in self.models  # credit-risk-next scores credit-risk's requests
        self.drift_at_ms = drift_at_ms
        self.label_delay_mean_ms = float(label_delay_mean_ms)
        self.label_delay_cap_ms = float(
            5 * label_delay_mean_ms if label_delay_cap_ms is None else label_delay_cap_ms
        )
        self.label_fraction = label_fraction
        self.duplicate_label_fraction = duplicate_label_fraction
        self.max_pending_labels = max_pending_labels
        self.dropped_labels = 0
        self._next_ms = int(time.time() * 1000) if start_ms is None else int(start_ms)
        self._turn = 0
        streams = np.random.SeedSequence(seed).spawn(len(self.models) + 2)
        self._model_rng = {m: np.random.default_rng(s) for m, s in zip(self.models, streams, strict=False)}
        self._id_rng = np.random.default_rng(streams[-2])
        self._label_rng = np.random.default_rng(streams[-1])
        self._pending: list[tuple[npt.NDArray[np.int64], list[dict[str, Any]]]] = []
        self._shadows: dict[str, tuple[dict[str, Any]]] = {}  # prediction_id -> the challenger's prediction

    def specs(self) -> list[dict[str, Any]]:
        """Return copies of the ModelSpec dicts of this scenario's models (and of the challenger)."""
        return demo_specs(self.models) + ([copy.deepcopy(SHADOW_MODELS["credit-risk-next"])] if self.shadow else [])

    @property
    def pending_labels(self) -> int:
        """Number of labels (duplicates included) generated but not yet released."""
        return sum(len(chunk) for _, chunk in self._pending)

    def predictions(
        self, n: int, start_ms: int | None = None, rate_per_s: float = 100.0
    ) -> list[dict[str, Any]]:
        """Generate ``n`` predictions (models in turn), ``1000 / rate_per_s`` ms apart from ``start_ms``.

        ``start_ms`` None continues where the previous batch ended. The labels of these predictions are
        queued for :meth:`due_labels`. With ``shadow``, each credit-risk prediction is followed by the
        challenger's for the same request (so more than ``n`` events), and its label names no model.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be positive, got {rate_per_s}")
        start = self._next_ms if start_ms is None else int(start_ms)
        ts = start + np.floor(np.arange(n) * (1000.0 / rate_per_s)).astype(np.int64)
        self._next_ms = start + int(np.floor(n * 1000.0 / rate_per_s))
        if n == 0:
            return []
        owner = (np.arange(n) + self._turn) % len(self.models)
        self._turn = int((self._turn + n) % len(self.models))
        ids = _uuids(self._id_rng, n)
        events: list[dict[str, Any]] = [{} for _ in range(n)]
        labels: list[dict[str, Any]] = [{} for _ in range(n)]
        for k, model_id in enumerate(self.models):
            idx = np.flatnonzero(owner == k)
            if idx.size == 0:
                continue
            self._fill(model_id, idx, ts[idx], ids, events, labels)
        self._queue_labels(ts, labels)
        if self.shadow:
            return [e for event in events for e in (event, *self._shadows.pop(event["prediction_id"], ()))]
        return events

    def _fill(
        self,
        model_id: str,
        idx: npt.NDArray[np.intp],
        ts: npt.NDArray[np.int64],
        ids: list[str],
        events: list[dict[str, Any]],
        labels: list[dict[str, Any]],
    ) -> None:
        rng = self._model_rng[model_id]
        drifted = ts >= self.drift_at_ms if self.drift_at_ms is not None else np.zeros(ts.size, dtype=bool)
        gen = _GENERATORS[model_id](rng, drifted)
        region = _REGIONS[rng.choice(_REGIONS.size, size=ts.size, p=_REGION_P)].tolist()
        latency = np.round(rng.lognormal(np.log(_LATENCY_MEDIAN_MS[model_id]), 0.35, ts.size), 3).tolist()
        version = DEMO_MODELS[model_id]["version"]
        names = list(gen.features)
        rows = zip(*(gen.features[name] for name in names), strict=True)
        for j, (i, t, row) in enumerate(zip(idx.tolist(), ts.tolist(), rows, strict=True)):
            event = {
                "prediction_id": ids[i],
                "model_id": model_id,
                "model_version": version,
                "timestamp": t,
                "features": dict(zip(names, row, strict=True)),
                "prediction": gen.prediction[j],
                "segment": _segment(model_id, ids[i], region[j]),
                "latency_ms": latency[j],
            }
            if gen.score is not None:
                event["score"] = gen.score[j]
            events[i] = event
            if self.shadow and gen.shadow_prediction is not None and gen.shadow_score is not None:
                self._shadows[ids[i]] = ({**event, "model_id": "credit-risk-next", "model_version": "1",
                                          "prediction": gen.shadow_prediction[j], "score": gen.shadow_score[j]},)
            labels[i] = {
                "prediction_id": ids[i],
                "label": gen.label[j],
                "timestamp": t,
                "model_id": model_id,
                "business": {} if gen.revenue is None else {"revenue": gen.revenue[j]},
            }
            if self.shadow and model_id == "credit-risk":  # one label for the champion and its challenger
                del labels[i]["model_id"]

    def _queue_labels(self, ts: npt.NDArray[np.int64], labels: list[dict[str, Any]]) -> None:
        rng = self._label_rng
        n = ts.size
        delay = np.minimum(
            1.0 + rng.exponential(self.label_delay_mean_ms, n), max(self.label_delay_cap_ms, 1.0)
        )
        keep = rng.random(n) < self.label_fraction
        dup = keep & (rng.random(n) < self.duplicate_label_fraction)
        dup_extra = 1.0 + rng.uniform(0.0, 2000.0, n)
        label_ts = ts + delay.astype(np.int64)
        kept = np.flatnonzero(keep)
        chunk: list[dict[str, Any]] = []
        for i, t in zip(kept.tolist(), label_ts[kept].tolist(), strict=True):
            labels[i]["timestamp"] = t
            chunk.append(labels[i])
        dups = np.flatnonzero(dup)
        chunk.extend(dict(labels[i]) for i in dups.tolist())
        release = np.concatenate([label_ts[kept], label_ts[dups] + dup_extra[dups].astype(np.int64)])
        order = np.argsort(release, kind="stable")
        self._pending.append((release[order], [chunk[i] for i in order.tolist()]))
        self._enforce_bound()

    def _enforce_bound(self) -> None:
        excess = self.pending_labels - self.max_pending_labels
        while excess > 0 and self._pending:
            release, chunk = self._pending[0]
            cut = min(excess, len(chunk))
            self.dropped_labels += cut
            excess -= cut
            if cut == len(chunk):
                self._pending.pop(0)
            else:
                self._pending[0] = (release[cut:], chunk[cut:])

    def due_labels(self, now_ms: int) -> list[dict[str, Any]]:
        """Release the queued labels due by ``now_ms`` (release time ``<= now_ms``), in release order."""
        return self._release(lambda release: int(np.searchsorted(release, now_ms, side="right")))

    def all_labels(self) -> list[dict[str, Any]]:
        """Release every queued label, in release order."""
        return self._release(len)

    def _release(self, count: Callable[[npt.NDArray[np.int64]], int]) -> list[dict[str, Any]]:
        times: list[npt.NDArray[np.int64]] = []
        out: list[dict[str, Any]] = []
        remaining = []
        for release, chunk in self._pending:
            k = count(release)
            times.append(release[:k])
            out.extend(chunk[:k])
            if k < len(chunk):
                remaining.append((release[k:], chunk[k:]))
        self._pending = remaining
        if not out:
            return []
        order = np.argsort(np.concatenate(times), kind="stable")
        return [out[i] for i in order.tolist()]


_BENCH_MODELS = (("bench-classifier", "binary_classification"), ("bench-regressor", "regression"))
_BENCH_CATEGORIES = 5
_BENCH_CHUNK = 4096


def _bench_names(n_numeric: int, n_categorical: int) -> tuple[list[str], list[str]]:
    return [f"num_{i:02d}" for i in range(n_numeric)], [f"cat_{i:02d}" for i in range(n_categorical)]


def bench_specs(n_numeric: int = 15, n_categorical: int = 5) -> list[dict[str, Any]]:
    """Return the ModelSpec dicts of the two :func:`bench_events` models (same feature counts as it)."""
    numeric, categorical = _bench_names(n_numeric, n_categorical)
    features: list[dict[str, Any]] = [
        {"name": f, "type": "numeric", "range": [-10.0, 10.0], "categories": None} for f in numeric
    ]
    features += [
        {
            "name": f,
            "type": "categorical",
            "range": None,
            "categories": [f"v{k}" for k in range(_BENCH_CATEGORIES)],
        }
        for f in categorical
    ]
    specs = []
    for model_id, task in _BENCH_MODELS:
        clf = task == "binary_classification"
        specs.append(
            {
                "model_id": model_id,
                "version": "1",
                "task": task,
                "positive_class": "pos" if clf else None,
                "classes": ["neg", "pos"] if clf else None,
                "features": copy.deepcopy(features),
                "segment_fields": ["segment"],
                "protected_attributes": [],
                "business_values": ["revenue"] if clf else [],
                "monitor": dict(_MONITOR),
            }
        )
    return specs


def bench_events(
    n: int,
    seed: int,
    n_numeric: int = 15,
    n_categorical: int = 5,
    n_segments: int = 10,
    label_fraction: float = 0.9,
    max_shuffle_delay_ms: int = 30_000,
    *,
    start_ms: int = 1_700_000_000_000,
    rate_per_s: float = 10_000.0,
) -> tuple[list[bytes], list[bytes]]:
    """Generate ``n`` encoded predictions for two models and the encoded labels of a fraction of them.

    Predictions alternate between ``bench-classifier`` and ``bench-regressor`` (:func:`bench_specs`),
    ``1000 / rate_per_s`` ms apart from ``start_ms``, with ``n_numeric`` standard-normal features
    ``num_XX``, ``n_categorical`` features ``cat_XX`` (5 categories ``v0``-``v4``) and segment field
    ``segment`` (``s0``, ``s1``, ...). Each prediction gets a label with probability ``label_fraction``,
    timestamped ``prediction time + U[1, max_shuffle_delay_ms]`` ms; labels are ordered by that time, so
    they arrive shuffled relative to their predictions. No duplicates, no missing values, no drift.
    """
    if n < 0 or n_numeric < 0 or n_categorical < 0 or n_segments < 1:
        raise ValueError("n, n_numeric and n_categorical must be >= 0 and n_segments >= 1")
    rng = np.random.default_rng(seed)
    numeric, categorical = _bench_names(n_numeric, n_categorical)
    x = rng.standard_normal((n, n_numeric))
    codes = rng.integers(0, _BENCH_CATEGORIES, size=(n, n_categorical))
    segment_codes = rng.integers(0, n_segments, size=n)
    ids = _uuids(rng, n)
    ts = start_ms + np.floor(np.arange(n) * (1000.0 / rate_per_s)).astype(np.int64)
    is_clf = np.arange(n) % 2 == 0

    w = rng.normal(0.0, 1.0, n_numeric) / np.sqrt(max(n_numeric, 1))
    cat_effect = rng.normal(0.0, 0.5, (max(n_categorical, 1), _BENCH_CATEGORIES))
    signal = x @ w * 2.5 + (cat_effect[np.arange(n_categorical), codes].sum(axis=1) if n_categorical else 0.0)
    score = _sigmoid(signal)
    positive = rng.random(n) < score
    regression_truth = 50.0 + 10.0 * signal + rng.normal(0.0, 3.0, n)
    regression_pred = 50.0 + 10.0 * signal
    revenue = np.where(score < 0.5, np.where(positive, -50.0, 10.0), 0.0)

    x = np.round(x, 4)
    cat_codes = np.array([f"v{k}" for k in range(_BENCH_CATEGORIES)])[codes]
    segments = np.array([f"s{k}" for k in range(n_segments)])[segment_codes]
    model_ids = np.where(is_clf, "bench-classifier", "bench-regressor")
    clf_pred = np.where(score >= 0.5, "pos", "neg")
    labels: list[Any] = np.where(
        is_clf, np.where(positive, "pos", "neg").astype(object), np.round(regression_truth, 3).astype(object)
    ).tolist()
    latency = np.round(rng.lognormal(np.log(5.0), 0.3, n), 3)
    labelled = rng.random(n) < label_fraction
    label_ts = ts + rng.integers(1, max(max_shuffle_delay_ms, 1) + 1, size=n)

    names = numeric + categorical
    predictions: list[bytes] = []
    truths: list[bytes] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of acyclic objects: collections would only cost time
    try:
        for lo in range(0, n, _BENCH_CHUNK):
            hi = min(lo + _BENCH_CHUNK, n)
            chunk = zip(
                ids[lo:hi],
                model_ids[lo:hi].tolist(),
                ts[lo:hi].tolist(),
                x[lo:hi].tolist(),
                cat_codes[lo:hi].tolist(),
                clf_pred[lo:hi].tolist(),
                np.round(regression_pred[lo:hi], 3).tolist(),
                np.round(score[lo:hi], 6).tolist(),
                segments[lo:hi].tolist(),
                latency[lo:hi].tolist(),
                labelled[lo:hi].tolist(),
                labels[lo:hi],
                label_ts[lo:hi].tolist(),
                revenue[lo:hi].tolist(),
                strict=True,
            )
            events: list[dict[str, Any]] = []
            outcomes: list[dict[str, Any]] = []
            for pid, model_id, t, nums, cats, cpred, rpred, p, seg, lat, has_label, label, lt, rev in chunk:
                clf = model_id == "bench-classifier"
                event: dict[str, Any] = {
                    "prediction_id": pid,
                    "model_id": model_id,
                    "model_version": "1",
                    "timestamp": t,
                    "features": dict(zip(names, nums + cats, strict=True)),
                    "prediction": cpred if clf else rpred,
                    "segment": {"segment": seg},
                    "latency_ms": lat,
                }
                if clf:
                    event["score"] = p
                events.append(event)
                if has_label:
                    outcomes.append(
                        {
                            "prediction_id": pid,
                            "label": label,
                            "timestamp": lt,
                            "model_id": model_id,
                            "business": {"revenue": rev} if clf else {},
                        }
                    )
            predictions.extend(_encode_many(events))
            truths.extend(_encode_many(outcomes))
    finally:
        if gc_was_enabled:
            gc.enable()
    order = np.argsort(label_ts[labelled], kind="stable")
    return predictions, [truths[i] for i in order.tolist()]


def _encode_many(events: list[dict[str, Any]]) -> list[bytes]:
    """``[orjson.dumps(e) for e in events]`` for events whose first key is ``prediction_id``, 4x faster.

    One ``orjson.dumps`` of the whole list avoids a buffer allocation per event; it is split where an object
    starts with that key, which no value of the bench events (numbers, uuids, short names) can contain.
    """
    if not events:
        return []
    head = b'{"prediction_id":'
    parts = orjson.dumps(events)[1:-1].split(b"," + head)
    return [parts[0], *[head + part for part in parts[1:]]]
