"""Performance estimated before labels arrive: confidence-based performance estimation (CBPE) for binary
classifiers, with an online score calibrator and analytic confidence bands; multiclass CBPE one-vs-rest from
the class-probability scores (`MulticlassScores`, `estimate_multiclass`); direct loss estimation of the MAE
for regression (`ErrorModel`).

CBPE (the method NannyML publishes) reads each prediction's calibrated probability ``c = P(y=1 | score)`` as
the chance that a label, once it arrives, is positive. Summing ``c`` over the predicted positives gives the
expected true positives, ``1 - c`` the expected false positives, and likewise for the predicted negatives; any
confusion-matrix metric follows, and ROC AUC from the score histograms weighted by ``c`` and ``1 - c``. The
window already keeps the score histogram of all and of predicted-positive predictions, so an estimate costs
O(score bins) per window and nothing per event.

Bands: given the scores, each label is an independent Bernoulli(``c``), so the realised true positives (and
false negatives) have variance ``sum c (1 - c)`` over the predicted positives (negatives). Accuracy and
precision are linear in them; recall and F1 use the delta method; ROC AUC uses Hanley and McNeil's standard
error with the expected class counts. The band is ``estimate ± z·se`` (z = 1.96), clipped to [0, 1]; it
covers the sampling noise of the labels, not an error in the calibration. That error is watched instead:
:class:`ScoreCalibrator` checks every labelled batch against the calibration *before* learning from it
(prequential), and the estimate is marked unreliable (``estimate_reliable`` 0) while the recent labels
disagree with it significantly (chi-square over calibration bins) and materially (ECE above a tolerance).

Examples
--------
>>> import numpy as np
>>> cal = ScoreCalibrator(min_labels=0)
>>> cal.add(np.array([0.2, 0.2, 0.8, 0.8]), np.array([False, True, True, True]))
>>> [round(float(p), 2) for p in cal.probabilities(4)]  # grid 0, 0.25, 0.5, 0.75, 1
[0.5, 0.54, 0.75, 0.96, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import chi2

from stream.metrics.classification import (
    CALIBRATION_BINS,
    BinaryState,
    Metrics,
    calibration_bin,
    expected_calibration_error,
)
from stream.metrics.regression import RegressionState
from stream.metrics.sketch import roc_auc_from_histograms, score_bin

Z_95 = 1.959963984540054
ESTIMATED = ("accuracy", "precision", "recall", "f1", "roc_auc")
"""Metrics CBPE estimates; each is reported as ``estimated_<m>``, ``estimated_<m>_lower`` and ``_upper``."""


def isotonic_fit(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least-squares non-decreasing fit (pool adjacent violators); ``weights`` must be positive.

    >>> isotonic_fit(np.array([1.0, 3.0, 2.0, 4.0]), np.array([1.0, 1.0, 1.0, 1.0])).tolist()
    [1.0, 2.5, 2.5, 4.0]
    """
    means: list[float] = []
    mass: list[float] = []
    sizes: list[int] = []
    for v, w in zip(values.tolist(), weights.tolist(), strict=True):
        means.append(v)
        mass.append(w)
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            m2, w2, s2 = means.pop(), mass.pop(), sizes.pop()
            total = mass[-1] + w2
            means[-1] = (means[-1] * mass[-1] + m2 * w2) / total
            mass[-1] = total
            sizes[-1] += s2
    return np.repeat(np.asarray(means), sizes)


class ScoreCalibrator:
    """Online isotonic calibration of positive-class scores from labelled outcomes, with a drift check.

    Labelled scores are counted in ``bins`` equal-width score bins (count, score sum, positives), decayed so
    that the last ``horizon`` labels dominate; the calibration map is the isotonic fit of the bins' positive
    rates, interpolated linearly between the bins' mean scores. Until ``min_labels`` labels were seen the map
    is the identity (scores taken as calibrated) and estimates are marked unreliable. State: numpy arrays and
    numbers only.

    Parameters
    ----------
    bins
        Score bins of the calibration.
    horizon
        Labels after which old ones weigh ``1/e``.
    min_labels
        Labels needed before the learned map is used.
    check_horizon
        Decay of the prequential calibration check, in labels.
    alpha, tolerance
        The estimate is unreliable while the check's chi-square p-value is below ``alpha`` and its expected
        calibration error above ``tolerance``.
    """

    def __init__(self, bins: int = 100, horizon: float = 20_000, min_labels: int = 500,
                 check_horizon: float = 2_000, alpha: float = 0.001, tolerance: float = 0.03) -> None:
        self.bins = bins
        self.horizon = float(horizon)
        self.min_labels = min_labels
        self.check_horizon = float(check_horizon)
        self.alpha = alpha
        self.tolerance = tolerance
        self.counts = np.zeros((3, bins))  # per score bin, decayed: count, score sum, positives
        self.check = np.zeros((4, CALIBRATION_BINS))  # per calibrated bin: count, sum c, positives, sum c(1-c)
        self.labels = 0
        self._cache: dict[int, np.ndarray] = {}

    @property
    def ready(self) -> bool:
        """Whether enough labels were seen for the learned map to be used."""
        return self.labels >= self.min_labels and bool(self.counts[0].sum() > 0)

    def add(self, scores: np.ndarray, positive: np.ndarray) -> None:
        """Check a batch of labelled scores against the current map, then learn from it (NaN scores skipped)."""
        finite = np.isfinite(scores)
        s, y = np.clip(scores[finite], 0.0, 1.0), positive[finite].astype(np.float64)
        if not s.size:
            return
        if self.ready:
            c = self.calibrate(s)
            cal = calibration_bin(c)
            self.check *= math.exp(-s.size / self.check_horizon)
            self.check += np.stack([np.bincount(cal, weights=w, minlength=CALIBRATION_BINS)
                                    for w in (np.ones_like(c), c, y, c * (1.0 - c))])
        bins = np.minimum((s * self.bins).astype(np.intp), self.bins - 1)
        self.counts *= math.exp(-s.size / self.horizon)
        self.counts += np.stack([np.bincount(bins, weights=w, minlength=self.bins) for w in (np.ones_like(s), s, y)])
        self.labels += int(s.size)
        self._cache.clear()

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probability of each score (the identity until `ready`)."""
        if not self.ready:
            return np.clip(scores, 0.0, 1.0)
        n, total, positives = self.counts
        used = n > 1e-9
        fitted = isotonic_fit(positives[used] / n[used], n[used])
        return np.clip(np.interp(scores, total[used] / n[used], fitted), 0.0, 1.0)

    def probabilities(self, grid_bins: int) -> np.ndarray:
        """Calibrated probability at each point ``k / grid_bins`` of the score grid (cached until `add`)."""
        found = self._cache.get(grid_bins)
        if found is None:
            found = self._cache[grid_bins] = self.calibrate(np.arange(grid_bins + 1) / grid_bins)
        return found

    def uncertainty(self, grid_bins: int) -> tuple[np.ndarray, np.ndarray]:
        """Calibration bin of each grid point and the variance of each bin's calibrated rate (binomial over the
        bin's decayed label count; 0 while not `ready`, when there is nothing to estimate it from)."""
        grid = np.arange(grid_bins + 1) / grid_bins
        index = np.minimum((grid * self.bins).astype(np.intp), self.bins - 1)
        if not self.ready:
            return index, np.zeros(self.bins)
        n = self.counts[0]
        rate = np.clip(self.calibrate(self.counts[1] / np.maximum(n, 1e-12)), 0.0, 1.0)
        return index, np.where(n > 1e-9, rate * (1 - rate) / np.maximum(n, 1.0), 0.25)

    def check_result(self) -> tuple[float, float]:
        """(ECE, chi-square p-value) of the recent labels against the calibration they were checked with."""
        n, c_sum, positives, var = self.check
        if n.sum() < 1.0:
            return math.nan, math.nan
        used = var > 1e-9
        statistic = float(np.sum((positives[used] - c_sum[used]) ** 2 / var[used]))
        return expected_calibration_error(self.check[:3]), float(chi2.sf(statistic, max(int(used.sum()), 1)))

    def reliable(self) -> bool:
        """Ready, and the recent labels do not contradict the calibration (significantly and materially)."""
        ece, p = self.check_result()
        return self.ready and not (p < self.alpha and ece > self.tolerance)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts, "check": self.check, "labels": np.array([self.labels])}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        self.counts = np.asarray(arrays["counts"], np.float64).reshape(3, self.bins)
        self.check = np.asarray(arrays["check"], np.float64).reshape(4, CALIBRATION_BINS)
        self.labels = int(np.asarray(arrays["labels"]).reshape(-1)[0])
        self._cache.clear()


def _band(out: Metrics, name: str, value: float, variance: float, n: int, z: float) -> None:
    se = math.sqrt(max(variance, 0.0)) if math.isfinite(variance) else math.nan
    out[f"estimated_{name}"] = (value, n)
    out[f"estimated_{name}_lower"] = (max(value - z * se, 0.0) if math.isfinite(value) else math.nan, n)
    out[f"estimated_{name}_upper"] = (min(value + z * se, 1.0) if math.isfinite(value) else math.nan, n)


def _div(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def hanley_mcneil_variance(auc: float, n_pos: float, n_neg: float) -> float:
    """Variance of an ROC AUC over ``n_pos`` positives and ``n_neg`` negatives (Hanley and McNeil, 1982)."""
    if not (math.isfinite(auc) and n_pos > 0 and n_neg > 0):
        return math.nan
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    return (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)


def estimate_binary(state: BinaryState, calibrated: np.ndarray, z: float = Z_95,
                    uncertainty: tuple[np.ndarray, np.ndarray] | None = None) -> Metrics:
    """CBPE over a window's scored predictions: ``estimated_<m>`` with ``_lower``/``_upper`` for each of
    `ESTIMATED`; ``calibrated`` is the probability at each point of the window's score grid. ``uncertainty``
    (`ScoreCalibrator.uncertainty`) adds the calibration's own variance to the accuracy, precision, recall and
    F1 bands (first order, bins independent)."""
    everything = state.prediction_scores.hist.astype(np.float64)
    pos_hist = state.positive_scores.astype(np.float64)
    neg_hist = everything - pos_hist
    c = calibrated
    spread = c * (1.0 - c)
    n_pp, n_pn = float(pos_hist.sum()), float(neg_hist.sum())
    n = int(everything.sum())
    tp, fn = float(pos_hist @ c), float(neg_hist @ c)
    tn = n_pn - fn
    v_tp, v_fn = float(pos_hist @ spread), float(neg_hist @ spread)
    out: Metrics = {}
    actual = tp + fn
    d = tp + fn + n_pp
    # calibration: a change of bin b's rate moves TP by pos_b and FN by neg_b (window counts in that bin)
    cal = {"accuracy": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    if uncertainty is not None and n > 0:
        index, var = uncertainty
        pos_b = np.bincount(index, weights=pos_hist, minlength=var.size)
        neg_b = np.bincount(index, weights=neg_hist, minlength=var.size)
        cal["accuracy"] = float(np.sum((pos_b - neg_b) ** 2 * var)) / (n * n)
        cal["precision"] = _div(float(np.sum(pos_b**2 * var)), n_pp * n_pp)
        cal["recall"] = _div(float(np.sum((pos_b * fn - neg_b * tp) ** 2 * var)), actual**4)
        cal["f1"] = _div(float(np.sum((2 * (pos_b * (fn + n_pp) - tp * neg_b)) ** 2 * var)), d**4)
    _band(out, "accuracy", _div(tp + tn, n), _div(v_tp + v_fn, n * n) + cal["accuracy"], n, z)
    _band(out, "precision", _div(tp, n_pp), _div(v_tp, n_pp * n_pp) + cal["precision"], int(n_pp), z)
    _band(out, "recall", _div(tp, actual), _div(fn * fn * v_tp + tp * tp * v_fn, actual**4) + cal["recall"], n, z)
    f1_var = _div(4 * (fn + n_pp) ** 2 * v_tp + 4 * tp * tp * v_fn, d**4)
    _band(out, "f1", _div(2 * tp, d), f1_var + cal["f1"], n, z)
    positives, negatives = everything * c, everything * (1.0 - c)
    auc = roc_auc_from_histograms(positives, negatives)
    _band(out, "roc_auc", auc, hanley_mcneil_variance(auc, float(positives.sum()), float(negatives.sum())), n, z)
    return out


def calibration_check(state: BinaryState, calibrated: np.ndarray) -> tuple[float, int]:
    """ECE of the calibrated probabilities against a window's labelled, scored outcomes (and their count)."""
    negatives, positives = (h.astype(np.float64) for h in state.outcome_hist)
    n = positives + negatives
    cal = calibration_bin(calibrated)
    rows = np.stack([np.bincount(cal, weights=w, minlength=CALIBRATION_BINS)
                     for w in (n, n * calibrated, positives)])
    return expected_calibration_error(rows), int(n.sum())


def estimates(state: BinaryState, calibrator: ScoreCalibrator, bins: int) -> Metrics:
    """Every estimated metric of a window, plus ``estimate_reliable`` (1/0, the calibrator's verdict) and
    ``estimate_calibration_error`` (ECE of the calibrated scores on the window's labelled outcomes)."""
    calibrated = calibrator.probabilities(bins)
    out = estimate_binary(state, calibrated, uncertainty=calibrator.uncertainty(bins))
    n = out["estimated_accuracy"][1]
    out["estimate_reliable"] = (1.0 if calibrator.reliable() else 0.0, n)
    out["estimate_calibration_error"] = calibration_check(state, calibrated)
    return out


class MulticlassScores:
    """A window's class-probability scores, for multiclass CBPE (`estimate_multiclass`).

    Per class ``k`` (discovered on the fly), two histograms on the score grid ``j / bins``: the score of ``k``
    over every prediction, and over the predictions whose predicted class is ``k``. O(classes x bins) numbers
    per window, merged by addition; nothing per event beyond the histogramming.

    >>> s = MulticlassScores(bins=10)
    >>> s.add(["a", "b"], np.array(["a", "b", "a"]), np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]]))
    >>> s.classes, int(s.everything.sum()), int(s.chosen.sum())
    (['a', 'b'], 6, 3)
    """

    def __init__(self, bins: int = 1000) -> None:
        self.bins = bins
        self.classes: list[str] = []
        self.everything = np.zeros((0, bins + 1), np.int64)  # class x score bin, every prediction
        self.chosen = np.zeros((0, bins + 1), np.int64)  # class x score bin, predictions of that class

    def _codes(self, classes: Sequence[str]) -> list[int]:
        for name in classes:
            if name not in self.classes:
                self.classes.append(name)
        grow = len(self.classes) - self.everything.shape[0]
        if grow > 0:
            self.everything = np.pad(self.everything, ((0, grow), (0, 0)))
            self.chosen = np.pad(self.chosen, ((0, grow), (0, 0)))
        index = {name: i for i, name in enumerate(self.classes)}
        return [index[name] for name in classes]

    def add(self, classes: Sequence[str], predicted: np.ndarray, probabilities: np.ndarray) -> None:
        """Count predictions: ``probabilities[i, j]`` is prediction ``i``'s score of ``classes[j]`` (NaN: none);
        ``predicted[i]`` its predicted class. A predicted class without a score column counts in no
        ``chosen`` histogram: such predictions are left out of the estimate."""
        p = np.asarray(probabilities, np.float64).reshape(len(predicted), len(classes))
        labels = np.asarray(predicted).astype(str)
        for j, code in enumerate(self._codes(classes)):
            column = p[:, j]
            finite = np.isfinite(column)
            self.everything[code] += np.bincount(score_bin(column[finite], self.bins), minlength=self.bins + 1)
            mine = finite & (labels == classes[j])
            self.chosen[code] += np.bincount(score_bin(column[mine], self.bins), minlength=self.bins + 1)

    def merge(self, other: MulticlassScores) -> None:
        for j, code in enumerate(self._codes(other.classes)):
            self.everything[code] += other.everything[j]
            self.chosen[code] += other.chosen[j]


def estimate_multiclass(state: MulticlassScores, calibrated: Mapping[str, np.ndarray] | None = None,
                        z: float = Z_95) -> Metrics:
    """Multiclass CBPE, one-vs-rest: class ``k``'s calibrated probability ``c_k`` (``calibrated[k]`` on the score
    grid; the scores themselves by default) is the chance a prediction's label is ``k``. Expected TP_k is the
    sum of ``c_k`` over the predictions of ``k``; FP_k the rest of those; FN_k the sum of ``c_k`` over the
    others. From this expected one-vs-rest confusion matrix: ``estimated_accuracy`` (sum of TP_k over all),
    ``estimated_macro_f1`` and ``estimated_roc_auc`` (macro one-vs-rest, as scikit-learn's ``multi_class="ovr"``)
    with ``_lower``/``_upper`` bands, and ``estimated_precision:<k>``/``estimated_recall:<k>``. Bands as in the
    binary case, per class; the macro bands treat the classes as independent (exact for accuracy)."""
    grid = np.arange(state.bins + 1) / state.bins
    everything, chosen = state.everything.astype(np.float64), state.chosen.astype(np.float64)
    n = int(chosen.sum())
    out: Metrics = {}
    tp_sum = v_acc = 0.0
    f1s: list[tuple[float, float]] = []
    aucs: list[tuple[float, float]] = []
    for k, name in enumerate(state.classes):
        c = (calibrated or {}).get(name, grid)
        spread = c * (1.0 - c)
        others = everything[k] - chosen[k]
        n_pred = float(chosen[k].sum())
        tp, fn = float(chosen[k] @ c), float(others @ c)
        v_tp, v_fn = float(chosen[k] @ spread), float(others @ spread)
        tp_sum, v_acc = tp_sum + tp, v_acc + v_tp
        actual, d = tp + fn, tp + fn + n_pred
        out[f"estimated_precision:{name}"] = (_div(tp, n_pred), int(n_pred))
        out[f"estimated_recall:{name}"] = (_div(tp, actual), n)
        if d > 0:
            f1s.append((2 * tp / d, (4 * (fn + n_pred) ** 2 * v_tp + 4 * tp * tp * v_fn) / d**4))
        positives, negatives = everything[k] * c, everything[k] * (1.0 - c)
        auc = roc_auc_from_histograms(positives, negatives)
        if math.isfinite(auc):
            aucs.append((auc, hanley_mcneil_variance(auc, float(positives.sum()), float(negatives.sum()))))
    _band(out, "accuracy", _div(tp_sum, n), _div(v_acc, float(n) * n), n, z)
    for metric, values in (("macro_f1", f1s), ("roc_auc", aucs)):
        m = len(values)
        _band(out, metric, _div(sum(v for v, _ in values), m), _div(sum(var for _, var in values), m * m), n, z)
    return out


class ErrorModel:
    """Direct loss estimation (DLE) for regression: a nuisance model of the absolute error given the prediction,
    learned online from labelled outcomes.

    The first ``warmup`` labelled predictions fix ``bins`` equal-frequency bins of the prediction; each bin then
    keeps decayed sums of the count, ``|error|`` and ``error²`` (the last ``horizon`` labels weigh most). A
    window's MAE is estimated as the mean, over its predictions, of their bin's mean absolute error, read from
    the window's prediction sketch at ``points`` quantiles (no per-event cost). The band is the label noise
    given the predictions: ``z·sqrt(mean bin variance of |error| / n)``. It uses the prediction only (not the
    features): a shift that moves predictions into regions of larger error is seen, one that raises the error
    at the same predictions is not. State: numpy arrays and numbers only.
    """

    def __init__(self, bins: int = 20, warmup: int = 1000, horizon: float = 20_000, points: int = 200) -> None:
        self.bins = bins
        self.warmup = warmup
        self.horizon = float(horizon)
        self.points = points
        self.edges = np.zeros(0)  # inner bin edges, fixed once warm
        self.pending: list[float] = []  # predictions of the warm-up
        self.pending_errors: list[float] = []
        self.sums = np.zeros((4, bins))  # per bin, decayed: count, sum |error|, sum error², sum of predictions

    @property
    def ready(self) -> bool:
        return self.edges.size > 0

    def add(self, predictions: np.ndarray, abs_errors: np.ndarray) -> None:
        """Learn from labelled outcomes: predictions and their absolute errors (non-finite pairs skipped)."""
        ok = np.isfinite(predictions) & np.isfinite(abs_errors)
        pred, err = predictions[ok], abs_errors[ok]
        if not self.ready:
            self.pending += pred.tolist()
            self.pending_errors += err.tolist()
            if len(self.pending) < self.warmup:
                return
            self.edges = np.unique(np.quantile(np.asarray(self.pending), np.linspace(0, 1, self.bins + 1)[1:-1]))
            pred, err = np.asarray(self.pending), np.asarray(self.pending_errors)
            self.pending, self.pending_errors = [], []
        if not pred.size:
            return
        b = np.searchsorted(self.edges, pred)
        self.sums *= math.exp(-pred.size / self.horizon)
        self.sums += np.stack([np.bincount(b, weights=w, minlength=self.bins)
                               for w in (np.ones_like(err), err, err * err, pred)])

    def bin_errors(self) -> tuple[np.ndarray, np.ndarray]:
        """Per bin: mean absolute error and variance of the absolute error (empty bins borrow the overall)."""
        n, total, squares, _ = self.sums
        all_n = max(float(n.sum()), 1e-12)
        overall_mean = float(total.sum()) / all_n
        overall_var = max(float(squares.sum()) / all_n - overall_mean**2, 0.0)
        used = n > 1e-9
        mean = np.where(used, total / np.where(used, n, 1.0), overall_mean)
        var = np.where(used, np.maximum(squares / np.where(used, n, 1.0) - mean**2, 0.0), overall_var)
        return mean, var

    def expected_error(self, predictions: np.ndarray) -> np.ndarray:
        """Expected ``|error|`` at each prediction: linear between the bins' mean predictions, extended along the
        outermost two bins' line beyond them (a shift moves predictions past the labelled range)."""
        mean, _ = self.bin_errors()
        n = self.sums[0]
        used = n > 1e-9
        x, y = self.sums[3][used] / n[used], mean[used]
        if x.size < 2:
            return np.full(predictions.shape, float(y[0]) if y.size else math.nan)
        out = np.interp(predictions, x, y)
        lo, hi = predictions < x[0], predictions > x[-1]
        out[lo] = y[0] + (predictions[lo] - x[0]) * (y[1] - y[0]) / max(x[1] - x[0], 1e-12)
        out[hi] = y[-1] + (predictions[hi] - x[-1]) * (y[-1] - y[-2]) / max(x[-1] - x[-2], 1e-12)
        return np.maximum(out, 0.0)

    def estimate(self, state: RegressionState, z: float = Z_95) -> Metrics:
        """``estimated_mae`` with ``_lower``/``_upper`` for a window, and ``estimate_reliable`` (warm or not)."""
        n = int(state.predictions.n)
        out: Metrics = {}
        if not self.ready or n == 0:
            for suffix in ("", "_lower", "_upper"):
                out[f"estimated_mae{suffix}"] = (math.nan, n)
        else:
            qs = (np.arange(self.points) + 0.5) / self.points
            points = state.prediction_sketch.quantiles(qs)
            b = np.searchsorted(self.edges, points)
            _, var = self.bin_errors()
            value, se = float(self.expected_error(points).mean()), math.sqrt(float(var[b].mean()) / n)
            out["estimated_mae"] = (value, n)
            out["estimated_mae_lower"] = (max(value - z * se, 0.0), n)
            out["estimated_mae_upper"] = (value + z * se, n)
        out["estimate_reliable"] = (1.0 if self.ready else 0.0, n)
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"edges": self.edges, "sums": self.sums, "pending": np.asarray(self.pending),
                "pending_errors": np.asarray(self.pending_errors)}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        self.edges = np.asarray(arrays["edges"], np.float64)
        self.sums = np.asarray(arrays["sums"], np.float64).reshape(4, self.bins)
        self.pending = np.asarray(arrays["pending"], np.float64).tolist()
        self.pending_errors = np.asarray(arrays["pending_errors"], np.float64).tolist()
