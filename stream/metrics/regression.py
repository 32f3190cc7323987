"""Mergeable state for regression metrics of one window."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from stream.metrics.sketch import LogSketch, SignedLogSketch

Metrics = dict[str, tuple[float, int]]


class Moments:
    """Count, mean, sum of squared deviations, min and max, merged with Chan's parallel formula."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, values: np.ndarray) -> None:
        """Add finite ``values`` (the caller filters them)."""
        if values.size:
            mean = float(values.mean())
            batch = Moments()
            batch.n, batch.mean, batch.m2 = values.size, mean, float(np.square(values - mean).sum())
            batch.min, batch.max = float(values.min()), float(values.max())
            self.merge(batch)

    def merge(self, other: Moments) -> None:
        if other.n == 0:
            return
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean += delta * other.n / n
        self.m2 += other.m2 + delta * delta * self.n * other.n / n
        self.n = n
        self.min, self.max = min(self.min, other.min), max(self.max, other.max)

    def to_array(self) -> np.ndarray:
        return np.array([self.n, self.mean, self.m2, self.min, self.max], np.float64)

    @classmethod
    def from_array(cls, array: np.ndarray) -> Moments:
        moments = cls()
        moments.n = int(array[0])
        moments.mean, moments.m2, moments.min, moments.max = (float(v) for v in array[1:])
        return moments


class RegressionState:
    """Error sums over labelled pairs, moments of targets and predictions, and a prediction sketch."""

    N, ERR, ABS, SQ, APE, APE_N = range(6)

    def __init__(self) -> None:
        self.predictions = Moments()
        self.prediction_sketch = SignedLogSketch()
        self.targets = Moments()
        self.errors = np.zeros(6, np.float64)

    def add_predictions(self, predictions: np.ndarray) -> None:
        finite = predictions[np.isfinite(predictions)]
        self.predictions.add(finite)
        self.prediction_sketch.add(finite)

    def add_outcomes(self, y_true: np.ndarray, y_pred: np.ndarray) -> None:
        finite = np.isfinite(y_true) & np.isfinite(y_pred)
        true, pred = y_true[finite], y_pred[finite]
        error = pred - true
        nonzero = true != 0
        with np.errstate(over="ignore"):  # |y_true| near the smallest float makes the percentage error inf
            self.errors += (
                true.size,
                error.sum(),
                np.abs(error).sum(),
                np.square(error).sum(),
                np.abs(error[nonzero] / true[nonzero]).sum(),
                np.count_nonzero(nonzero),
            )
        self.targets.add(true)

    def merge(self, other: RegressionState) -> None:
        self.predictions.merge(other.predictions)
        self.prediction_sketch.merge(other.prediction_sketch)
        self.targets.merge(other.targets)
        with np.errstate(over="ignore"):
            self.errors += other.errors

    def metrics(self, out: Metrics) -> None:
        e = self.errors
        n = int(e[self.N])
        mean_sq = e[self.SQ] / n if n else math.nan
        out["mae"] = (e[self.ABS] / n if n else math.nan, n)
        out["rmse"] = (math.sqrt(mean_sq), n)
        n_ape = int(e[self.APE_N])
        out["mape"] = (e[self.APE] / n_ape if n_ape else math.nan, n_ape)
        constant = self.targets.n < 2 or self.targets.min == self.targets.max or self.targets.m2 <= 0
        out["r2"] = (math.nan if constant else 1.0 - e[self.SQ] / self.targets.m2, n)
        out["mean_error"] = (e[self.ERR] / n if n else math.nan, n)
        p = self.predictions
        out["prediction_mean"] = (p.mean if p.n else math.nan, p.n)
        out["prediction_std"] = (math.sqrt(max(p.m2, 0.0) / p.n) if p.n else math.nan, p.n)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "predictions": self.predictions.to_array(),
            "targets": self.targets.to_array(),
            "errors": self.errors,
            "sketch_pos": self.prediction_sketch.positive.to_array(),
            "sketch_neg": self.prediction_sketch.negative.to_array(),
        }

    def load(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.predictions = Moments.from_array(arrays["predictions"])
        self.targets = Moments.from_array(arrays["targets"])
        self.errors = arrays["errors"].astype(np.float64)
        self.prediction_sketch.positive = LogSketch.from_array(arrays["sketch_pos"])
        self.prediction_sketch.negative = LogSketch.from_array(arrays["sketch_neg"])
