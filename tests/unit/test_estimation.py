"""CBPE estimates and their bands against simulated labels scored by scikit-learn; the online calibrator
against sklearn's isotonic regression and a known calibration drift."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    precision_score,
    recall_score,
    roc_auc_score,
)

from stream.metrics.classification import BinaryState
from stream.metrics.estimation import ESTIMATED, ErrorModel, ScoreCalibrator, estimate_binary, estimates, isotonic_fit
from stream.metrics.regression import RegressionState
from stream.metrics.window import WindowAccumulator


def test_isotonic_fit_matches_sklearn_with_weights() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        values, weights = rng.uniform(0, 1, 15), rng.uniform(0.1, 5, 15)
        expected = IsotonicRegression().fit_transform(np.arange(15), values, sample_weight=weights)
        np.testing.assert_allclose(isotonic_fit(values, weights), expected, atol=1e-12)


def _window(scores: np.ndarray, predicted_positive: np.ndarray) -> BinaryState:
    acc = WindowAccumulator("binary_classification", positive_class="1")
    acc.add_predictions(np.where(predicted_positive, "1", "0"), scores=scores)
    assert isinstance(acc.model, BinaryState)
    return acc.model


def test_expected_confusion_equals_per_prediction_sums() -> None:
    rng = np.random.default_rng(2)
    scores = np.round(rng.beta(2, 3, 2000), 3)
    pred = scores >= 0.4
    c = np.sqrt(np.arange(1001) / 1000)  # some calibration map on the grid
    est = estimate_binary(_window(scores, pred), c)
    p = np.sqrt(scores)
    tp, fn = p[pred].sum(), p[~pred].sum()
    tn = (1 - p[~pred]).sum()
    assert est["estimated_accuracy"] == (pytest.approx((tp + tn) / 2000), 2000)
    assert est["estimated_precision"][0] == pytest.approx(tp / pred.sum())
    assert est["estimated_recall"][0] == pytest.approx(tp / (tp + fn))
    assert est["estimated_f1"][0] == pytest.approx(2 * tp / (2 * tp + (pred.sum() - tp) + fn))
    weights = np.concatenate([p, 1 - p])
    labels = np.concatenate([np.ones(2000), np.zeros(2000)])
    assert est["estimated_roc_auc"][0] == pytest.approx(
        roc_auc_score(labels, np.concatenate([scores, scores]), sample_weight=weights))


def test_bands_cover_the_realised_metric_of_simulated_labels() -> None:
    """Labels drawn from the true calibration: each 95% band must cover the realised metric ~95% of the time."""
    rng = np.random.default_rng(4)
    scores = np.round(rng.beta(2, 2, 1500), 3)
    truth_p = scores**1.5  # the model is miscalibrated; the map is known here
    pred = scores >= 0.5
    est = estimate_binary(_window(scores, pred), (np.arange(1001) / 1000) ** 1.5)
    scorers = {"accuracy": accuracy_score, "precision": precision_score, "recall": recall_score, "f1": f1_score}
    covered = dict.fromkeys(ESTIMATED, 0)
    realised_sum = dict.fromkeys(ESTIMATED, 0.0)
    runs = 400
    for _ in range(runs):
        y = rng.uniform(size=scores.size) < truth_p
        for name in ESTIMATED:
            value = roc_auc_score(y, scores) if name == "roc_auc" else scorers[name](y, pred)
            realised_sum[name] += value
            lower, upper = est[f"estimated_{name}_lower"][0], est[f"estimated_{name}_upper"][0]
            covered[name] += lower <= value <= upper
    for name in ESTIMATED:
        assert 0.91 <= covered[name] / runs <= 0.99, (name, covered[name] / runs)
        assert realised_sum[name] / runs == pytest.approx(est[f"estimated_{name}"][0], abs=0.004), name


def test_empty_window_and_no_scores_give_nan() -> None:
    est = estimate_binary(_window(np.array([]), np.array([], bool)), np.arange(1001) / 1000)
    assert all(math.isnan(v) and n == 0 for v, n in est.values())
    est = estimate_binary(_window(np.full(3, np.nan), np.ones(3, bool)), np.arange(1001) / 1000)
    assert all(math.isnan(v) for v, _ in est.values())


def test_one_predicted_class_keeps_accuracy_and_leaves_precision_undefined() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.2])
    est = estimate_binary(_window(scores, np.zeros(4, bool)), np.arange(1001) / 1000)
    assert est["estimated_accuracy"][0] == pytest.approx(1 - scores.mean())
    assert math.isnan(est["estimated_precision"][0]) and est["estimated_precision"][1] == 0
    assert est["estimated_recall"][0] == 0.0


def test_calibrator_learns_a_known_map_and_flags_calibration_drift() -> None:
    rng = np.random.default_rng(6)
    cal = ScoreCalibrator()
    assert not cal.ready and not cal.reliable()
    assert cal.calibrate(np.array([0.3]))[0] == 0.3  # identity until enough labels
    for _ in range(20):
        s = rng.uniform(size=1000)
        cal.add(s, rng.uniform(size=1000) < s**2)
    grid = np.array([0.2, 0.5, 0.8])
    np.testing.assert_allclose(cal.calibrate(grid), grid**2, atol=0.04)
    assert cal.reliable()
    ece, p = cal.check_result()
    assert ece < 0.03 and p > 0.001
    for _ in range(5):  # labels now follow sqrt(score): the calibration learned is wrong
        s = rng.uniform(size=1000)
        cal.add(s, rng.uniform(size=1000) < np.sqrt(s))
    assert not cal.reliable()
    restored = ScoreCalibrator()
    restored.load(cal.to_arrays())
    np.testing.assert_array_equal(restored.calibrate(grid), cal.calibrate(grid))
    assert restored.reliable() == cal.reliable()


def test_estimates_report_reliability_and_window_calibration_error() -> None:
    rng = np.random.default_rng(8)
    cal = ScoreCalibrator(min_labels=100)
    s = np.round(rng.uniform(size=3000), 3)
    y = rng.uniform(size=3000) < s
    cal.add(s, y)
    acc = WindowAccumulator("binary_classification", positive_class="1")
    acc.add_predictions(np.where(s >= 0.5, "1", "0"), scores=s)
    acc.add_outcomes(np.where(y, "1", "0"), np.where(s >= 0.5, "1", "0"), scores=s)
    assert isinstance(acc.model, BinaryState)
    out = estimates(acc.model, cal, acc.score_bins)
    assert out["estimate_reliable"] == (1.0, 3000)
    ece, n = out["estimate_calibration_error"]
    assert n == 3000 and ece < 0.05
    assert out["estimated_accuracy"][0] == pytest.approx(acc.metrics()["accuracy"][0], abs=0.03)


# --- direct loss estimation (regression) ------------------------------------------------------------------


def _regression_window(pred: np.ndarray) -> RegressionState:
    acc = WindowAccumulator("regression")
    acc.add_predictions(pred)
    assert isinstance(acc.model, RegressionState)
    return acc.model


def test_error_model_estimates_mae_under_covariate_shift_within_its_band() -> None:
    """|error| grows with the prediction; a window shifted to large predictions has a larger MAE, which the
    estimate (learned on unshifted labels) tracks: checked against sklearn's MAE of simulated labels."""
    rng = np.random.default_rng(21)
    model = ErrorModel()
    assert model.estimate(_regression_window(np.array([1.0])))["estimate_reliable"] == (0.0, 1)
    for _ in range(20):
        pred = rng.uniform(0, 10, 1000)
        model.add(pred, np.abs(rng.normal(0, 0.2 + 0.1 * pred)))
    covered = 0
    for shift in range(20):
        pred = rng.uniform(0, 10, 2000) ** (1 if shift < 10 else 0.5) * (1 if shift < 10 else np.sqrt(10))
        truth = pred + rng.normal(0, 0.2 + 0.1 * pred)
        est = model.estimate(_regression_window(pred))
        realised = mean_absolute_error(truth, pred)
        expected = float(np.mean((0.2 + 0.1 * pred) * np.sqrt(2 / np.pi)))  # E|N(0, s)| = s sqrt(2/pi)
        assert est["estimated_mae"][0] == pytest.approx(expected, rel=0.04)
        covered += est["estimated_mae_lower"][0] <= realised <= est["estimated_mae_upper"][0]
        assert est["estimate_reliable"] == (1.0, 2000)
    assert covered >= 16


def test_error_model_round_trip_and_nan_pairs() -> None:
    model = ErrorModel(warmup=10)
    model.add(np.array([1.0, np.nan, 2.0]), np.array([1.0, 0.5, np.inf]))
    assert not model.ready and model.pending == [1.0]
    model.add(np.arange(20.0), np.ones(20))
    restored = ErrorModel(warmup=10)
    restored.load(model.to_arrays())
    window = _regression_window(np.arange(5.0))
    assert restored.estimate(window) == model.estimate(window)
    assert model.estimate(window)["estimated_mae"][0] == pytest.approx(1.0)


def test_accuracy_band_with_calibration_uncertainty_covers_a_calibrator_learned_from_few_labels() -> None:
    rng = np.random.default_rng(31)
    covered = narrow = 0
    for _ in range(100):
        cal = ScoreCalibrator(min_labels=100)
        s = rng.uniform(size=1500)
        cal.add(s, rng.uniform(size=1500) < s**1.5)
        scores = np.round(rng.uniform(size=3000), 3)
        pred = scores >= 0.5
        window = _window(scores, pred)
        est = estimate_binary(window, cal.probabilities(1000), uncertainty=cal.uncertainty(1000))
        bare = estimate_binary(window, cal.probabilities(1000))
        realised = accuracy_score(rng.uniform(size=3000) < scores**1.5, pred)
        covered += est["estimated_accuracy_lower"][0] <= realised <= est["estimated_accuracy_upper"][0]
        narrow += bare["estimated_accuracy_lower"][0] <= realised <= bare["estimated_accuracy_upper"][0]
    assert covered >= 90 and covered > narrow
