"""Mergeable state for binary and multiclass classification metrics of one window."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from stream.metrics.sketch import roc_auc_error_bound, roc_auc_from_histograms, score_bin

Metrics = dict[str, tuple[float, int]]

OTHER_CLASS = "__other__"
"""Class that absorbs every class discovered after the first ``max_classes``."""

_P_MIN = 1e-15
CALIBRATION_BINS = 10
"""Equal-width score bins of the expected calibration error (``ece``), as sklearn's ``calibration_curve``."""
NOT_POSITIVE = "__not_positive__"
"""Binary classification: the class of every label that is not the positive class."""


def as_labels(values: np.ndarray) -> np.ndarray:
    """Class labels as a numpy str array (labels are compared as strings)."""
    return np.asarray(values).astype(str)


def label_mask(values: np.ndarray, label: str) -> np.ndarray:
    """Where ``str(value) == label``; skips the string conversion when values already are strings."""
    if values.dtype.kind == "U" or (values.dtype.kind == "O" and set(map(type, values)) <= {str}):
        return np.asarray(values == label, dtype=bool)
    return as_labels(values) == label


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def calibration_bin(scores: np.ndarray, bins: int = CALIBRATION_BINS) -> np.ndarray:
    """Equal-width calibration bin of each score in [0, 1]; a score on an inner edge goes to the lower bin
    (``np.searchsorted`` over the inner edges, as sklearn's ``calibration_curve``)."""
    return np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], np.clip(scores, 0.0, 1.0)).astype(np.intp)


def expected_calibration_error(calibration: np.ndarray) -> float:
    """ECE from per-bin ``[count, score sum, positives]`` rows: ``sum_b n_b/n |mean score_b - positive rate_b|``.

    >>> expected_calibration_error(np.array([[2.0, 2.0], [0.4, 1.6], [1.0, 1.0]]))  # 0.2 vs 0.5, 0.8 vs 0.5
    0.3
    """
    count, score_sum, positives = calibration
    n = float(count.sum())
    return round(float(np.abs(score_sum - positives).sum()) / n, 15) if n else math.nan


def average_precision_from_histograms(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve as a step function, sklearn's
    ``average_precision_score``) from score histograms; scores sharing a bin count as one threshold.
    NaN without positives."""
    pos, neg = positives[::-1].astype(np.float64), negatives[::-1].astype(np.float64)
    present = (pos + neg) > 0
    tps, fps = np.cumsum(pos)[present], np.cumsum(neg)[present]
    if not tps.size or tps[-1] == 0:
        return math.nan
    recall_step = np.diff(tps, prepend=0.0) / tps[-1]
    return float(np.dot(recall_step, tps / (tps + fps)))


class ScoreStats:
    """Histogram on the grid ``k / bins`` plus the exact sum of probability scores (non-finite skipped)."""

    def __init__(self, bins: int) -> None:
        self.bins = bins
        self.hist = np.zeros(bins + 1, np.int64)
        self.total = 0.0

    def add(self, scores: np.ndarray) -> None:
        finite = scores[np.isfinite(scores)]
        self.hist += np.bincount(score_bin(finite, self.bins), minlength=self.bins + 1)
        self.total += float(finite.sum())

    def merge(self, other: ScoreStats) -> None:
        self.hist += other.hist
        self.total += other.total

    def mean(self) -> tuple[float, int]:
        n = int(self.hist.sum())
        return _ratio(self.total, n), n

    def to_array(self) -> np.ndarray:
        return np.concatenate([[self.total], self.hist.astype(np.float64)])

    def load(self, array: np.ndarray) -> None:
        self.total = float(array[0])
        self.hist = array[1:].astype(np.int64)


class BinaryState:
    """Confusion matrix, score histograms of positives/negatives and log-loss sum for one positive class."""

    def __init__(self, positive_class: str, bins: int) -> None:
        self.positive_class = positive_class
        self.bins = bins
        self.predicted = np.zeros(2, np.int64)  # [all predictions, predicted positive]
        self.confusion = np.zeros(4, np.int64)  # [tp, fp, tn, fn]
        self.outcome_hist = np.zeros((2, bins + 1), np.int64)  # row 0: negatives, row 1: positives
        self.log_loss_sum = 0.0
        self.brier_sum = 0.0
        self.calibration = np.zeros((3, CALIBRATION_BINS))  # per bin: count, score sum, positives
        self.prediction_scores = ScoreStats(bins)
        self.positive_scores = np.zeros(bins + 1, np.int64)  # score histogram of predicted-positive predictions

    def add_predictions(self, predictions: np.ndarray, scores: np.ndarray | None) -> None:
        positive = label_mask(predictions, self.positive_class)
        self.predicted += (predictions.size, int(np.count_nonzero(positive)))
        if scores is not None:
            self.prediction_scores.add(scores)
            chosen = scores[positive]
            finite = chosen[np.isfinite(chosen)]
            self.positive_scores += np.bincount(score_bin(finite, self.bins), minlength=self.bins + 1)

    def add_outcomes(self, y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None) -> None:
        actual = label_mask(y_true, self.positive_class)
        predicted = label_mask(y_pred, self.positive_class)
        self.confusion += np.bincount((~predicted).astype(np.intp) * 2 + (actual != predicted), minlength=4)
        if scores is None:
            return
        finite = np.isfinite(scores)
        score, label = scores[finite], actual[finite]
        flat = label.astype(np.intp) * (self.bins + 1) + score_bin(score, self.bins)
        self.outcome_hist += np.bincount(flat, minlength=2 * (self.bins + 1)).reshape(2, -1)
        p = np.clip(score, _P_MIN, 1.0 - _P_MIN)
        self.log_loss_sum -= float(np.log(np.where(label, p, 1.0 - p)).sum())
        clipped = np.clip(score, 0.0, 1.0)
        self.brier_sum += float(np.square(clipped - label).sum())
        cal = calibration_bin(clipped)
        self.calibration += np.stack([
            np.bincount(cal, minlength=CALIBRATION_BINS),
            np.bincount(cal, weights=clipped, minlength=CALIBRATION_BINS),
            np.bincount(cal, weights=label, minlength=CALIBRATION_BINS),
        ])

    def merge(self, other: BinaryState) -> None:
        self.predicted += other.predicted
        self.confusion += other.confusion
        self.outcome_hist += other.outcome_hist
        self.log_loss_sum += other.log_loss_sum
        self.brier_sum += other.brier_sum
        self.calibration += other.calibration
        self.prediction_scores.merge(other.prediction_scores)
        self.positive_scores += other.positive_scores

    def roc_auc_error_bound(self) -> float:
        return roc_auc_error_bound(self.outcome_hist[1], self.outcome_hist[0])

    def metrics(self, out: Metrics) -> None:
        tp, fp, tn, fn = (int(v) for v in self.confusion)
        n = tp + fp + tn + fn
        out["accuracy"] = (_ratio(tp + tn, n), n)
        out["precision"] = (_ratio(tp, tp + fp), tp + fp)
        out["recall"] = (_ratio(tp, tp + fn), tp + fn)
        out["f1"] = (_ratio(2 * tp, 2 * tp + fp + fn), n)
        out["fpr"] = (_ratio(fp, fp + tn), fp + tn)
        out[f"precision:{self.positive_class}"] = out["precision"]
        out[f"recall:{self.positive_class}"] = out["recall"]
        out[f"precision:{NOT_POSITIVE}"] = (_ratio(tn, tn + fn), tn + fn)
        out[f"recall:{NOT_POSITIVE}"] = (_ratio(tn, tn + fp), tn + fp)
        for name, value in (("tp", tp), ("fp", fp), ("tn", tn), ("fn", fn)):
            out[name] = (float(value), n)
        scored = int(self.outcome_hist.sum())
        out["roc_auc"] = (roc_auc_from_histograms(self.outcome_hist[1], self.outcome_hist[0]), scored)
        out["log_loss"] = (_ratio(self.log_loss_sum, scored), scored)
        out["pr_auc"] = (average_precision_from_histograms(self.outcome_hist[1], self.outcome_hist[0]), scored)
        out["brier"] = (_ratio(self.brier_sum, scored), scored)
        out["ece"] = (expected_calibration_error(self.calibration), scored)
        total, positive = (int(v) for v in self.predicted)
        out["positive_rate"] = (_ratio(positive, total), total)
        out["score_mean"] = self.prediction_scores.mean()

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "predicted": self.predicted,
            "confusion": self.confusion,
            "outcome_hist": self.outcome_hist,
            "log_loss_sum": np.array([self.log_loss_sum]),
            "brier_sum": np.array([self.brier_sum]),
            "calibration": self.calibration,
            "prediction_scores": self.prediction_scores.to_array(),
            "positive_scores": self.positive_scores,
        }

    def load(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.predicted = arrays["predicted"].astype(np.int64)
        self.confusion = arrays["confusion"].astype(np.int64)
        self.outcome_hist = arrays["outcome_hist"].astype(np.int64)
        self.log_loss_sum = float(arrays["log_loss_sum"][0])
        self.prediction_scores.load(arrays["prediction_scores"])
        if "brier_sum" in arrays:  # state written before these existed lacks them: they start at zero
            self.brier_sum = float(arrays["brier_sum"][0])
            self.calibration = arrays["calibration"].astype(np.float64).reshape(3, CALIBRATION_BINS)
            self.positive_scores = arrays["positive_scores"].astype(np.int64)


class ClassIndex:
    """Dense codes for class labels discovered on the fly; past ``max_classes`` they map to `OTHER_CLASS`."""

    def __init__(self, max_classes: int) -> None:
        self.max_classes = max_classes
        self.names: list[str] = []
        self._codes: dict[str, int] = {}

    def code(self, name: str) -> int:
        found = self._codes.get(name)
        if found is not None:
            return found
        if len(self.names) >= self.max_classes and name != OTHER_CLASS:
            return self.code(OTHER_CLASS)
        self._codes[name] = len(self.names)
        self.names.append(name)
        return self._codes[name]

    def encode(self, labels: np.ndarray) -> np.ndarray:
        """Codes of ``labels`` (a str array); one dict lookup per distinct label, not per event."""
        unique, inverse = np.unique(labels, return_inverse=True)
        return np.array([self.code(str(u)) for u in unique], np.intp)[inverse.reshape(-1)]


class MulticlassState:
    """Per-class counts (predicted, true positives, true, predicted among outcomes) over dynamic classes."""

    PRED, TP, TRUE, OUT_PRED = range(4)

    def __init__(self, bins: int, max_classes: int) -> None:
        self.classes = ClassIndex(max_classes)
        self.counts = np.zeros((4, 0), np.int64)
        self.prediction_scores = ScoreStats(bins)

    def _grow(self) -> None:
        missing = len(self.classes.names) - self.counts.shape[1]
        if missing > 0:
            self.counts = np.pad(self.counts, ((0, 0), (0, missing)))

    def _count(self, row: int, codes: np.ndarray) -> None:
        self.counts[row] += np.bincount(codes, minlength=self.counts.shape[1])

    def add_predictions(self, predictions: np.ndarray, scores: np.ndarray | None) -> None:
        codes = self.classes.encode(as_labels(predictions))
        self._grow()
        self._count(self.PRED, codes)
        if scores is not None:
            self.prediction_scores.add(scores)

    def add_outcomes(self, y_true: np.ndarray, y_pred: np.ndarray) -> None:
        codes = self.classes.encode(np.concatenate([as_labels(y_true), as_labels(y_pred)]))
        self._grow()
        true, pred = codes[: y_true.size], codes[y_true.size :]
        self._count(self.TRUE, true)
        self._count(self.OUT_PRED, pred)
        self._count(self.TP, true[true == pred])

    def merge(self, other: MulticlassState) -> None:
        codes = np.array([self.classes.code(name) for name in other.classes.names], np.intp)
        self._grow()
        np.add.at(self.counts.T, codes, other.counts.T)
        self.prediction_scores.merge(other.prediction_scores)

    def metrics(self, out: Metrics) -> None:
        tp, true, out_pred = self.counts[self.TP], self.counts[self.TRUE], self.counts[self.OUT_PRED]
        n = int(true.sum())
        out["accuracy"] = (_ratio(int(tp.sum()), n), n)
        present = (true + out_pred) > 0
        f1 = 2 * tp[present] / (true + out_pred)[present]
        out["macro_f1"] = (float(f1.mean()) if f1.size else math.nan, n)
        out["micro_f1"] = (_ratio(2 * int(tp.sum()), int((true + out_pred).sum())), n)
        for name, hits, n_true, n_pred in zip(self.classes.names, tp.tolist(), true.tolist(), out_pred.tolist(),
                                              strict=True):
            out[f"precision:{name}"] = (_ratio(hits, n_pred), n_pred)
            out[f"recall:{name}"] = (_ratio(hits, n_true), n_true)
        predicted = self.counts[self.PRED]
        total = int(predicted.sum())
        for name, count in zip(self.classes.names, predicted.tolist(), strict=True):
            out[f"pred_rate:{name}"] = (_ratio(count, total), total)

    def distribution(self) -> dict[str, int]:
        return {name: int(c) for name, c in zip(self.classes.names, self.counts[self.PRED], strict=True)}

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts, "prediction_scores": self.prediction_scores.to_array()}

    def load(self, arrays: Mapping[str, np.ndarray], classes: list[str]) -> None:
        for name in classes:
            self.classes.code(name)
        self.counts = arrays["counts"].astype(np.int64).reshape(4, len(classes))
        self.prediction_scores.load(arrays["prediction_scores"])
