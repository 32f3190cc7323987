"""Multiclass CBPE (one-vs-rest) against a direct computation per prediction and against scikit-learn's metrics
averaged over labels drawn from the probabilities (what the estimate is the expectation of), with band coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from stream.metrics.estimation import MulticlassScores, estimate_multiclass

CLASSES = ["cat", "dog", "fox", "owl"]


def _probabilities(n: int, seed: int) -> np.ndarray:
    """Rows on the score grid k / 1000 that sum to exactly 1 (so the histograms are exact)."""
    rng = np.random.default_rng(seed)
    alpha = rng.dirichlet(np.full(len(CLASSES), 0.6), size=n)
    return np.stack([rng.multinomial(1000, a) for a in alpha]) / 1000


def _state(p: np.ndarray) -> tuple[MulticlassScores, np.ndarray]:
    predicted = np.array(CLASSES)[p.argmax(axis=1)]
    state = MulticlassScores(bins=1000)
    for lo in range(0, len(p), 700):
        state.add(CLASSES, predicted[lo:lo + 700], p[lo:lo + 700])
    return state, predicted


def test_expected_confusion_matrix_equals_the_direct_sums_over_predictions() -> None:
    p = _probabilities(3000, 1)
    state, predicted = _state(p)
    est = estimate_multiclass(state)
    chosen = p[np.arange(len(p)), p.argmax(axis=1)]
    assert est["estimated_accuracy"] == (pytest.approx(chosen.mean(), abs=1e-12), 3000)
    for k, name in enumerate(CLASSES):
        mine = predicted == name
        assert est[f"estimated_precision:{name}"][0] == pytest.approx(p[mine, k].mean(), abs=1e-12)
        assert est[f"estimated_recall:{name}"][0] == pytest.approx(p[mine, k].sum() / p[:, k].sum(), abs=1e-12)


def _realised(y: np.ndarray, predicted: np.ndarray, p: np.ndarray, ranks: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, macro F1 and macro one-vs-rest ROC AUC of every draw (rows of ``y``, class codes), vectorised:
    confusion matrices by ``bincount``, AUC by the Mann-Whitney rank sum of each class's scores."""
    draws, n = y.shape
    k = len(CLASSES)
    cm = np.bincount((np.arange(draws)[:, None] * k * k + y * k + predicted).ravel(),
                     minlength=draws * k * k).reshape(draws, k, k)  # [draw, true, predicted]
    tp = np.diagonal(cm, axis1=1, axis2=2)
    f1 = 2 * tp / (cm.sum(axis=1) + cm.sum(axis=2))
    auc = np.empty((draws, k))
    for j in range(k):
        pos = (y == j).sum(axis=1)
        auc[:, j] = (((y == j) * ranks[j]).sum(axis=1) - pos * (pos + 1) / 2) / (pos * (n - pos))
    return {"accuracy": tp.sum(axis=1) / n, "macro_f1": f1.mean(axis=1), "roc_auc": auc.mean(axis=1)}


def test_estimates_are_the_mean_of_sklearn_metrics_over_labels_drawn_from_the_scores_and_bands_cover() -> None:
    p = _probabilities(3000, 2)
    state, predicted = _state(p)
    est = estimate_multiclass(state)
    rng = np.random.default_rng(3)
    y = (rng.random((1000, len(p), 1)) > p.cumsum(axis=1)).sum(axis=2).clip(0, len(CLASSES) - 1)
    codes = p.argmax(axis=1)
    realised = _realised(y, codes, p, np.stack([rankdata(p[:, j]) for j in range(len(CLASSES))]))
    for i in range(3):  # the vectorised metrics are scikit-learn's
        labels = np.array(CLASSES)[y[i]]
        assert realised["accuracy"][i] == pytest.approx(accuracy_score(labels, predicted))
        assert realised["macro_f1"][i] == pytest.approx(f1_score(labels, predicted, average="macro"))
        assert realised["roc_auc"][i] == pytest.approx(roc_auc_score(labels, p, multi_class="ovr", labels=CLASSES))
    coverage = {}
    for metric, values in realised.items():
        value, lower, upper = (est[f"estimated_{metric}{s}"][0] for s in ("", "_lower", "_upper"))
        assert value == pytest.approx(values.mean(), abs=0.002), metric
        coverage[metric] = float(((values >= lower) & (values <= upper)).mean())
    # accuracy's band is exact (independent Bernoulli labels); the macro bands treat classes as independent
    assert 0.93 <= coverage["accuracy"] <= 0.97 and coverage["roc_auc"] >= 0.93, coverage
    assert coverage["macro_f1"] >= 0.85, coverage


def test_calibration_map_replaces_the_raw_scores() -> None:
    p = _probabilities(500, 4)
    state, predicted = _state(p)
    grid = np.arange(1001) / 1000
    cal = {"cat": np.ones_like(grid)}  # every prediction is surely a cat
    est = estimate_multiclass(state, cal)
    assert est["estimated_precision:cat"][0] == 1.0
    assert est["estimated_recall:cat"][0] == pytest.approx((predicted == "cat").mean())


def test_empty_single_class_nan_scores_and_merge() -> None:
    empty = estimate_multiclass(MulticlassScores())
    assert math.isnan(empty["estimated_accuracy"][0]) and empty["estimated_accuracy"][1] == 0
    one = MulticlassScores()
    one.add(["a"], np.array(["a", "a"]), np.array([[0.9], [np.nan]]))  # NaN: that prediction is left out
    est = estimate_multiclass(one)
    assert est["estimated_accuracy"] == (pytest.approx(0.9), 1)
    assert math.isnan(est["estimated_roc_auc"][0]) or 0 <= est["estimated_roc_auc"][0] <= 1
    p = _probabilities(400, 5)
    a, _ = _state(p[:150])
    b, _ = _state(p[150:])
    a.merge(b)
    whole, _ = _state(p)
    assert estimate_multiclass(a) == estimate_multiclass(whole)
