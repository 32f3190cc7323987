"""Mergeable, serialisable, bounded-memory metric accumulator for one model/version/segment window.

Predictions are counted when they arrive (`WindowAccumulator.add_predictions`), labelled pairs when the label
joins them (`WindowAccumulator.add_outcomes`), possibly days later. Memory does not grow with the number of
events: quantiles use `stream.metrics.sketch.LogSketch` (1% relative error) and ROC AUC a histogram on the
score grid ``k / score_bins`` (exact for scores on the grid, otherwise within `roc_auc_error_bound`).

Examples
--------
>>> import numpy as np
>>> acc = WindowAccumulator("binary_classification", positive_class="yes")
>>> acc.add_predictions(np.array(["yes", "no", "yes"]), latency_ms=np.array([10.0, 20.0, np.nan]))
>>> acc.add_outcomes(np.array(["yes", "no"]), np.array(["yes", "yes"]), scores=np.array([0.9, 0.6]))
>>> acc.metrics()["precision"], acc.metrics()["label_coverage"], acc.metrics()["roc_auc"]
((0.5, 2), (0.6666666666666666, 3), (1.0, 2))
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast, get_args

import numpy as np
import orjson

from stream.metrics.classification import BinaryState, Metrics, MulticlassState
from stream.metrics.regression import RegressionState
from stream.metrics.sketch import LogSketch, score_bin_edges

Task = Literal["binary_classification", "multiclass_classification", "regression"]

_FORMAT = 1
_LATENCY_QUANTILES = (("latency_p50", 0.50), ("latency_p95", 0.95), ("latency_p99", 0.99))


def _column(name: str, values: Any, n: int | None, dtype: Any) -> np.ndarray:
    array = np.asarray(values, dtype=dtype).reshape(-1)
    if n is not None and array.size != n:
        raise ValueError(
            f"{name} has {array.size} values for a batch of {n}; pass one per event (NaN if absent)"
        )
    return array


class WindowAccumulator:
    """Metrics of one window over predictions, labelled outcomes and orphan labels; see `metrics`.

    Parameters
    ----------
    task
        Model task; decides which metrics are kept.
    positive_class
        Required for binary classification; labels are compared as strings.
    business_keys
        Business values expected in `add_outcomes`, reported as ``<key>_sum`` and ``<key>_mean``.
    score_bins
        Resolution of the score histograms (grid ``k / score_bins``); accumulators merge only when equal.
    max_classes
        Multiclass only: classes seen after this many are counted as ``__other__``.
    """

    def __init__(
        self,
        task: Task,
        positive_class: str | None = None,
        business_keys: Sequence[str] = (),
        *,
        score_bins: int = 1000,
        max_classes: int = 1000,
    ) -> None:
        if task not in get_args(Task):
            raise ValueError(f"unknown task {task!r}; use one of {', '.join(get_args(Task))}")
        if task == "binary_classification" and positive_class is None:
            raise ValueError("binary_classification needs positive_class (the label that counts as positive)")
        self.task: Task = task
        self.positive_class = None if positive_class is None else str(positive_class)
        self.business_keys = tuple(business_keys)
        self.score_bins = score_bins
        self.max_classes = max_classes
        self.counts = np.zeros(3, np.int64)  # predictions, labelled, orphans
        self.latency = LogSketch()
        self.latency_sum = 0.0
        self.business = np.zeros((2, len(self.business_keys)), np.float64)  # sums, counts
        self.model: BinaryState | MulticlassState | RegressionState
        if task == "binary_classification":
            self.model = BinaryState(cast(str, self.positive_class), score_bins)
        elif task == "multiclass_classification":
            self.model = MulticlassState(score_bins, max_classes)
        else:
            self.model = RegressionState()

    def _label_dtype(self) -> Any:
        return np.float64 if self.task == "regression" else None

    def add_predictions(
        self, predictions: Any, scores: Any | None = None, latency_ms: Any | None = None
    ) -> None:
        """Count a batch of predictions: class labels (float64 for regression), positive-class scores
        and latencies in milliseconds, NaN where not given. Negative latencies count as 0; regression
        ignores scores.
        """
        preds = _column("predictions", predictions, None, self._label_dtype())
        n = preds.size
        score = None if scores is None else _column("scores", scores, n, np.float64)
        self.counts[0] += n
        if latency_ms is not None:
            latency = _column("latency_ms", latency_ms, n, np.float64)
            latency = np.maximum(latency[np.isfinite(latency)], 0.0)
            self.latency.add(latency)
            self.latency_sum += float(latency.sum())
        if isinstance(self.model, RegressionState):
            self.model.add_predictions(preds)
        else:
            self.model.add_predictions(preds, score)

    def add_outcomes(
        self,
        y_true: Any,
        y_pred: Any,
        scores: Any | None = None,
        business: Mapping[str, Any] | None = None,
    ) -> None:
        """Count a batch of labelled pairs; ``scores`` are positive-class probabilities (binary only) and
        ``business`` maps declared keys to float64 arrays, NaN where absent. Undeclared keys are ignored.
        """
        true = _column("y_true", y_true, None, self._label_dtype())
        n = true.size
        pred = _column("y_pred", y_pred, n, self._label_dtype())
        self.counts[1] += n
        if isinstance(self.model, BinaryState):
            self.model.add_outcomes(
                true, pred, None if scores is None else _column("scores", scores, n, np.float64)
            )
        else:
            self.model.add_outcomes(true, pred)
        for i, key in enumerate(self.business_keys):
            if business is not None and key in business:
                values = _column(f"business[{key!r}]", business[key], n, np.float64)
                values = values[np.isfinite(values)]
                self.business[:, i] += (values.sum(), values.size)

    def add_orphans(self, n: int) -> None:
        """Count ``n`` labels whose prediction never arrived."""
        self.counts[2] += n

    def _check_compatible(self, other: WindowAccumulator) -> None:
        mine = (self.task, self.positive_class, self.business_keys, self.score_bins)
        theirs = (other.task, other.positive_class, other.business_keys, other.score_bins)
        if mine != theirs:
            raise ValueError(f"cannot merge accumulators configured differently: {mine} vs {theirs}")

    def merge(self, other: WindowAccumulator) -> None:
        """Add ``other`` (same task, positive class, business keys and score bins) into this accumulator."""
        self._check_compatible(other)
        self.counts += other.counts
        self.latency.merge(other.latency)
        self.latency_sum += other.latency_sum
        self.business += other.business
        self.model.merge(other.model)  # type: ignore[arg-type]

    def metrics(self) -> dict[str, tuple[float, int]]:
        """Metric name -> (value, number of samples it is computed from); value NaN when undefined."""
        predictions, labelled, orphans = (int(c) for c in self.counts)
        out: Metrics = {
            "predictions": (float(predictions), predictions),
            "labelled": (float(labelled), labelled),
            "label_coverage": (labelled / predictions if predictions else math.nan, predictions),
            "orphans": (float(orphans), orphans),
        }
        n_latency = self.latency.count
        out["latency_mean"] = (self.latency_sum / n_latency if n_latency else math.nan, n_latency)
        quantiles = self.latency.quantiles(np.array([q for _, q in _LATENCY_QUANTILES]))
        for (name, _), value in zip(_LATENCY_QUANTILES, quantiles.tolist(), strict=True):
            out[name] = (value, n_latency)
        self.model.metrics(out)
        for i, key in enumerate(self.business_keys):
            total, n = float(self.business[0, i]), int(self.business[1, i])
            out[f"{key}_sum"] = (total, n)
            out[f"{key}_mean"] = (total / n if n else math.nan, n)
        return out

    def score_histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """Classification: edges (``score_bins + 2``) and counts (``score_bins + 1``) of prediction scores."""
        if isinstance(self.model, RegressionState):
            raise ValueError(
                "regression has no scores; use prediction_quantiles for the prediction distribution"
            )
        return score_bin_edges(self.score_bins), self.model.prediction_scores.hist.copy()

    def distribution(self) -> dict[str, int]:
        """Predictions per class (classification); for binary: the positive class and ``__not_positive__``."""
        if isinstance(self.model, MulticlassState):
            return self.model.distribution()
        if isinstance(self.model, BinaryState):
            total, positive = (int(v) for v in self.model.predicted)
            return {self.model.positive_class: positive, "__not_positive__": total - positive}
        raise ValueError(
            "regression has no classes; use prediction_quantiles for the prediction distribution"
        )

    def prediction_quantiles(self, qs: Sequence[float]) -> np.ndarray:
        """Regression: quantiles ``qs`` of the predictions, within 1% relative error; NaN when empty."""
        if not isinstance(self.model, RegressionState):
            raise ValueError("prediction_quantiles is for regression; use distribution or score_histogram")
        return self.model.prediction_sketch.quantiles(np.asarray(qs, np.float64))

    def roc_auc_error_bound(self) -> float:
        """Binary: largest possible error of ``roc_auc`` from binning (0 when scores lie on the grid)."""
        if not isinstance(self.model, BinaryState):
            raise ValueError("roc_auc is only kept for binary_classification")
        return self.model.roc_auc_error_bound()

    def to_bytes(self) -> bytes:
        """Serialise the state (a compressed ``.npz`` with a JSON header, no pickle)."""
        header = {
            "format": _FORMAT,
            "task": self.task,
            "positive_class": self.positive_class,
            "business_keys": list(self.business_keys),
            "score_bins": self.score_bins,
            "max_classes": self.max_classes,
            "classes": self.model.classes.names if isinstance(self.model, MulticlassState) else [],
        }
        arrays: dict[str, Any] = {f"model.{name}": value for name, value in self.model.to_arrays().items()}
        arrays.update(
            header=np.frombuffer(orjson.dumps(header), np.uint8),
            counts=self.counts,
            latency=self.latency.to_array(),
            latency_sum=np.array([self.latency_sum]),
            business=self.business,
        )
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # uncompressed: checkpoints run every few seconds, size matters less
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> WindowAccumulator:
        """Restore an accumulator written by `to_bytes`."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            header = orjson.loads(arrays["header"].tobytes())
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, orjson.JSONDecodeError) as exc:
            raise ValueError(
                f"not a serialised WindowAccumulator ({exc}); was it written by to_bytes?"
            ) from exc
        if header.get("format") != _FORMAT:
            raise ValueError(
                f"WindowAccumulator state format {header.get('format')} is not {_FORMAT}; cannot load"
            )
        acc = cls(
            header["task"],
            header["positive_class"],
            header["business_keys"],
            score_bins=header["score_bins"],
            max_classes=header["max_classes"],
        )
        acc.counts = arrays["counts"].astype(np.int64)
        acc.latency = LogSketch.from_array(arrays["latency"])
        acc.latency_sum = float(arrays["latency_sum"][0])
        acc.business = arrays["business"].astype(np.float64).reshape(2, len(acc.business_keys))
        model = {name.removeprefix("model."): v for name, v in arrays.items() if name.startswith("model.")}
        if isinstance(acc.model, MulticlassState):
            acc.model.load(model, header["classes"])
        else:
            acc.model.load(model)
        return acc
