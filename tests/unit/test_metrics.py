"""WindowAccumulator metrics against independent numpy/scipy computations, merging and serialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu

from stream.metrics.sketch import RELATIVE_ERROR, LogSketch
from stream.metrics.window import WindowAccumulator

NAN = math.nan


def binary() -> WindowAccumulator:
    return WindowAccumulator("binary_classification", positive_class="yes", business_keys=("revenue",))


def assert_metrics_equal(a: dict[str, tuple[float, int]], b: dict[str, tuple[float, int]]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        (va, na), (vb, nb) = a[name], b[name]
        assert na == nb, name
        assert (math.isnan(va) and math.isnan(vb)) or va == pytest.approx(vb, rel=1e-9, abs=1e-12), name


# --- binary classification -------------------------------------------------------------------------


def test_binary_confusion_matrix_hand_computed() -> None:
    acc = binary()
    y_true = np.array(["yes", "yes", "yes", "no", "no", "no", "no", "yes", "no", "no"], dtype=object)
    y_pred = np.array(["yes", "no", "yes", "yes", "no", "no", "no", "yes", "no", "yes"], dtype=object)
    acc.add_outcomes(y_true, y_pred)
    m = acc.metrics()
    # tp=3 (0,2,7)  fn=1 (1)  fp=2 (3,9)  tn=4 (4,5,6,8)
    assert [m[k] for k in ("tp", "fp", "tn", "fn")] == [(3.0, 10), (2.0, 10), (4.0, 10), (1.0, 10)]
    assert m["accuracy"] == (0.7, 10)
    assert m["precision"] == (3 / 5, 5)
    assert m["recall"] == (3 / 4, 4)
    assert m["f1"] == (pytest.approx(2 * (0.6 * 0.75) / (0.6 + 0.75)), 10)
    assert m["fpr"] == (2 / 6, 6)
    assert m["labelled"] == (10.0, 10)
    assert math.isnan(m["roc_auc"][0]) and m["roc_auc"][1] == 0


def test_binary_labels_compared_as_strings() -> None:
    acc = WindowAccumulator("binary_classification", positive_class="1")
    acc.add_outcomes(np.array([1, 0, 1]), np.array(["1", "1", "0"]))
    acc.add_predictions(np.array([1, 0, 0, 0]))
    m = acc.metrics()
    assert (m["tp"][0], m["fp"][0], m["fn"][0], m["tn"][0]) == (1.0, 1.0, 1.0, 0.0)
    assert m["positive_rate"] == (0.25, 4)
    mixed = WindowAccumulator("binary_classification", positive_class="1")
    mixed.add_predictions(np.array([1, "1", "0", 0.5, None], dtype=object))
    assert mixed.metrics()["positive_rate"] == (0.4, 5)


def _exact_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    pos, neg = scores[positive], scores[~positive]
    return float(mannwhitneyu(pos, neg).statistic / (pos.size * neg.size))


def test_roc_auc_exact_on_bin_grid() -> None:
    rng = np.random.default_rng(1)
    positive = rng.random(2000) < 0.3
    scores = np.clip(rng.normal(0.35 + 0.3 * positive, 0.2), 0, 1)
    scores = np.round(scores * 1000) / 1000  # on the grid, with many ties
    acc = binary()
    acc.add_outcomes(np.where(positive, "yes", "no"), np.full(2000, "yes"), scores=scores)
    value, n = acc.metrics()["roc_auc"]
    assert n == 2000
    assert value == pytest.approx(_exact_auc(scores, positive), abs=1e-12)


def test_roc_auc_random_scores_within_stated_bound() -> None:
    rng = np.random.default_rng(2)
    positive = rng.random(5000) < 0.5
    scores = 1 / (1 + np.exp(-rng.normal(positive * 1.0, 1.0)))
    acc = binary()
    acc.add_outcomes(np.where(positive, "yes", "no"), np.full(5000, "no"), scores=scores)
    bound = acc.roc_auc_error_bound()
    assert 0 < bound < 0.002
    assert abs(acc.metrics()["roc_auc"][0] - _exact_auc(scores, positive)) <= bound


def test_log_loss_clips_and_skips_nan_scores() -> None:
    y = np.array(["yes", "no", "yes", "no", "yes", "no"])
    scores = np.array([0.9, 0.2, 1.0, 0.0, NAN, 1.0])
    acc = binary()
    acc.add_outcomes(y, y, scores=scores)
    used = ~np.isnan(scores)
    p = np.clip(scores[used], 1e-15, 1 - 1e-15)
    label = (y == "yes")[used]
    expected = -np.mean(label * np.log(p) + (1 - label) * np.log(1 - p))
    assert acc.metrics()["log_loss"] == (pytest.approx(expected), 5)
    assert acc.metrics()["roc_auc"][1] == 5


def test_prediction_distribution_positive_rate_and_score_histogram() -> None:
    rng = np.random.default_rng(3)
    scores = rng.random(1000)
    scores[::10] = NAN
    preds = np.where(scores > 0.5, "yes", "no")
    acc = binary()
    acc.add_predictions(preds, scores=scores)
    m = acc.metrics()
    assert m["positive_rate"] == (np.mean(preds == "yes"), 1000)
    assert m["score_mean"] == (pytest.approx(np.nanmean(scores)), 900)
    edges, counts = acc.score_histogram()
    assert counts.tolist() == np.histogram(scores[~np.isnan(scores)], bins=edges)[0].tolist()
    assert acc.distribution() == {
        "yes": int(np.sum(preds == "yes")),
        "__not_positive__": int(np.sum(preds == "no")),
    }


def test_single_class_and_nan_scores_are_nan_not_errors() -> None:
    acc = binary()
    acc.add_outcomes(np.array(["yes", "yes"]), np.array(["no", "no"]), scores=np.array([0.3, 0.6]))
    m = acc.metrics()
    assert math.isnan(m["precision"][0]) and m["precision"][1] == 0
    assert math.isnan(m["fpr"][0]) and math.isnan(m["roc_auc"][0])
    assert m["recall"] == (0.0, 2) and m["f1"] == (0.0, 2)
    nan_scores = binary()
    nan_scores.add_outcomes(np.array(["yes", "no"]), np.array(["yes", "no"]), scores=np.array([NAN, NAN]))
    m = nan_scores.metrics()
    assert math.isnan(m["roc_auc"][0]) and math.isnan(m["log_loss"][0]) and m["log_loss"][1] == 0


# --- counts, latency, business ---------------------------------------------------------------------


def test_latency_quantiles_within_relative_bound_of_numpy() -> None:
    rng = np.random.default_rng(4)
    latency = rng.lognormal(3.0, 1.2, 20000)
    latency[:50] = 0.0
    latency[::7] = NAN
    acc = binary()
    acc.add_predictions(np.full(latency.size, "no"), latency_ms=latency)
    m = acc.metrics()
    valid = latency[~np.isnan(latency)]
    assert m["latency_mean"] == (pytest.approx(valid.mean()), valid.size)
    for name, q in (("latency_p50", 50), ("latency_p95", 95), ("latency_p99", 99)):
        assert m[name][1] == valid.size
        assert m[name][0] == pytest.approx(np.percentile(valid, q), rel=RELATIVE_ERROR)


def test_log_sketch_small_samples_and_collapse_keep_upper_quantiles() -> None:
    sketch = LogSketch()
    sketch.add(np.array([0.0, 5.0]))
    assert sketch.quantiles(np.array([0.0, 0.5, 1.0])) == pytest.approx([0.0, 2.5, 5.0], rel=RELATIVE_ERROR)
    values = np.geomspace(1e-6, 1e6, 5000)
    small = LogSketch(max_buckets=100)
    small.add(values)
    assert small.keys.size == 100
    assert small.quantiles(np.array([0.99]))[0] == pytest.approx(
        np.percentile(values, 99), rel=RELATIVE_ERROR
    )


def test_counts_coverage_orphans_and_business() -> None:
    acc = binary()
    acc.add_predictions(np.array(["yes", "no", "no", "yes"]))
    acc.add_outcomes(
        np.array(["yes", "no", "no"]),
        np.array(["yes", "no", "yes"]),
        business={"revenue": np.array([10.0, NAN, 2.5]), "ignored": np.array([1.0, 1.0, 1.0])},
    )
    acc.add_orphans(2)
    m = acc.metrics()
    assert m["predictions"] == (4.0, 4) and m["labelled"] == (3.0, 3) and m["orphans"] == (2.0, 2)
    assert m["label_coverage"] == (0.75, 4)
    assert m["revenue_sum"] == (12.5, 2) and m["revenue_mean"] == (6.25, 2)
    assert "ignored_sum" not in m


@pytest.mark.parametrize("task", ["binary_classification", "multiclass_classification", "regression"])
def test_empty_window_counts_zero_and_everything_else_nan(task: str) -> None:
    acc = WindowAccumulator(task, positive_class="yes", business_keys=("revenue",))  # type: ignore[arg-type]
    counters = {"predictions", "labelled", "orphans", "tp", "fp", "tn", "fn", "revenue_sum"}
    for name, (value, n) in acc.metrics().items():
        assert n == 0, name
        assert value == 0.0 if name in counters else math.isnan(value), name


# --- multiclass -------------------------------------------------------------------------------------


def test_multiclass_hand_computed() -> None:
    acc = WindowAccumulator("multiclass_classification")
    acc.add_outcomes(np.array(list("aabbcc")), np.array(list("abbbca")))
    acc.add_predictions(np.array(list("aabd")))
    m = acc.metrics()
    # per class (tp, fp, fn): a (1,1,1) f1 1/2; b (2,1,0) f1 4/5; c (1,0,1) f1 2/3
    assert m["accuracy"] == (4 / 6, 6)
    assert m["macro_f1"] == (pytest.approx((0.5 + 0.8 + 2 / 3) / 3), 6)
    assert m["micro_f1"] == (pytest.approx(4 / 6), 6)
    rates = {k: v for k, v in m.items() if k.startswith("pred_rate:")}
    assert rates == {
        "pred_rate:a": (0.5, 4),
        "pred_rate:b": (0.25, 4),
        "pred_rate:c": (0.0, 4),
        "pred_rate:d": (0.25, 4),
    }
    assert acc.distribution() == {"a": 2, "b": 1, "c": 0, "d": 1}


def test_multiclass_macro_f1_against_numpy_on_random_data() -> None:
    rng = np.random.default_rng(5)
    classes = np.array(["x", "y", "z", "w"])
    y_true = classes[rng.integers(0, 4, 500)]
    y_pred = np.where(rng.random(500) < 0.6, y_true, classes[rng.integers(0, 3, 500)])
    acc = WindowAccumulator("multiclass_classification")
    acc.add_outcomes(y_true, y_pred)
    f1s = []
    for c in np.union1d(y_true, y_pred):
        tp = np.sum((y_true == c) & (y_pred == c))
        f1s.append(2 * tp / (np.sum(y_true == c) + np.sum(y_pred == c)))
    assert acc.metrics()["macro_f1"][0] == pytest.approx(np.mean(f1s))
    assert acc.metrics()["accuracy"][0] == pytest.approx(np.mean(y_true == y_pred))


def test_multiclass_classes_are_bounded_with_overflow_into_other() -> None:
    acc = WindowAccumulator("multiclass_classification", max_classes=2)
    acc.add_predictions(np.array(["a", "b", "c", "d", "a"]))
    acc.add_outcomes(np.array(["c", "d"]), np.array(["d", "c"]))
    assert acc.distribution() == {"a": 2, "b": 1, "__other__": 2}
    # c and d both fall into __other__, so the pairs count as correct there
    assert acc.metrics()["accuracy"] == (1.0, 2)


# --- regression -------------------------------------------------------------------------------------


def test_regression_against_numpy() -> None:
    rng = np.random.default_rng(6)
    y_true = rng.normal(5, 3, 400)
    y_true[:20] = 0.0
    y_pred = y_true + rng.normal(0.5, 1, 400)
    y_pred[-1] = NAN
    acc = WindowAccumulator("regression")
    for chunk in np.array_split(np.arange(400), [7, 150]):  # moments merged across batches
        acc.add_outcomes(y_true[chunk], y_pred[chunk])
    preds = rng.normal(-1, 4, 3000)
    acc.add_predictions(preds[:1000])
    acc.add_predictions(preds[1000:])
    m = acc.metrics()
    t, p = y_true[:-1], y_pred[:-1]
    err = p - t
    nz = t != 0
    assert m["mae"] == (pytest.approx(np.mean(np.abs(err))), 399)
    assert m["rmse"] == (pytest.approx(np.sqrt(np.mean(err**2))), 399)
    assert m["mape"] == (pytest.approx(np.mean(np.abs(err[nz] / t[nz]))), 379)
    assert m["r2"] == (pytest.approx(1 - np.sum(err**2) / np.sum((t - t.mean()) ** 2)), 399)
    assert m["mean_error"] == (pytest.approx(np.mean(err)), 399)
    assert m["prediction_mean"] == (pytest.approx(preds.mean()), 3000)
    assert m["prediction_std"] == (pytest.approx(preds.std()), 3000)
    qs = [0.01, 0.25, 0.5, 0.9]
    expected = np.percentile(preds, [q * 100 for q in qs])
    assert acc.prediction_quantiles(qs) == pytest.approx(expected, rel=RELATIVE_ERROR)


def test_regression_zero_and_constant_targets() -> None:
    zeros = WindowAccumulator("regression")
    zeros.add_outcomes(np.zeros(5), np.arange(5.0))
    m = zeros.metrics()
    assert math.isnan(m["mape"][0]) and m["mape"][1] == 0
    assert math.isnan(m["r2"][0])
    assert m["mae"] == (2.0, 5)
    constant = WindowAccumulator("regression")
    constant.add_outcomes(np.full(7, 0.1), np.full(7, 0.2))
    constant.add_outcomes(np.full(3, 0.1), np.full(3, 0.1))
    assert math.isnan(constant.metrics()["r2"][0])
    single = WindowAccumulator("regression")
    single.add_outcomes(np.array([1.0]), np.array([2.0]))
    assert math.isnan(single.metrics()["r2"][0])


# --- merge, serialisation, validation ---------------------------------------------------------------

events = st.lists(
    st.tuples(
        st.sampled_from(["yes", "no", "maybe"]),
        st.sampled_from(["yes", "no", "maybe"]),
        st.one_of(st.just(NAN), st.floats(0, 1)),
        st.one_of(st.just(NAN), st.floats(0, 5000)),
        st.floats(-100, 100),
    ),
    max_size=40,
)


def _fill(acc: WindowAccumulator, rows: list[tuple[str, str, float, float, float]]) -> WindowAccumulator:
    y_true, y_pred, score, latency, value = (
        (np.array(col) for col in zip(*rows, strict=True))
        if rows
        else (
            np.array([], str),
            np.array([], str),
            np.array([]),
            np.array([]),
            np.array([]),
        )
    )
    if acc.task == "regression":
        y_true, y_pred = value, value * 0.5 + score.size
    acc.add_predictions(y_pred, scores=score, latency_ms=latency)
    acc.add_outcomes(
        y_true, y_pred, scores=score, business={"revenue": np.where(np.isnan(score), NAN, value)}
    )
    acc.add_orphans(len(rows) // 3)
    return acc


@settings(max_examples=60, deadline=None)
@given(
    task=st.sampled_from(["binary_classification", "multiclass_classification", "regression"]),
    first=events,
    second=events,
)
def test_merge_equals_single_accumulator_over_union(task: str, first: list, second: list) -> None:
    def new() -> WindowAccumulator:
        return WindowAccumulator(task, positive_class="yes", business_keys=("revenue",))  # type: ignore[arg-type]

    whole = _fill(_fill(new(), first), second)
    left, right = _fill(new(), first), _fill(new(), second)
    left.merge(right)
    assert_metrics_equal(left.metrics(), whole.metrics())
    if task != "regression":
        assert left.distribution() == whole.distribution()
        assert left.score_histogram()[1].tolist() == whole.score_histogram()[1].tolist()


@pytest.mark.parametrize("task", ["binary_classification", "multiclass_classification", "regression"])
def test_to_bytes_round_trip_then_keeps_accumulating(task: str) -> None:
    rows = [("yes", "no", 0.25, 12.0, 3.0), ("maybe", "yes", NAN, 0.5, -1.0), ("no", "no", 1.0, NAN, 0.0)]
    acc = _fill(WindowAccumulator(task, positive_class="yes", business_keys=("revenue",)), rows)  # type: ignore[arg-type]
    restored = WindowAccumulator.from_bytes(acc.to_bytes())
    assert_metrics_equal(restored.metrics(), acc.metrics())
    _fill(restored, rows)
    _fill(acc, rows)
    assert_metrics_equal(restored.metrics(), acc.metrics())
    restored.merge(acc)
    assert restored.metrics()["predictions"] == (12.0, 12)


def test_from_bytes_rejects_garbage_and_merge_rejects_mismatch() -> None:
    with pytest.raises(ValueError, match="not a serialised WindowAccumulator"):
        WindowAccumulator.from_bytes(b"not a state")
    with pytest.raises(ValueError, match="cannot merge"):
        binary().merge(WindowAccumulator("binary_classification", positive_class="no"))
    with pytest.raises(ValueError, match="scores has 1 values for a batch of 2"):
        binary().add_outcomes(np.array(["yes", "no"]), np.array(["yes", "no"]), scores=np.array([0.1]))
    with pytest.raises(ValueError, match="positive_class"):
        WindowAccumulator("binary_classification")


def test_state_size_is_bounded_by_sketches_not_events() -> None:
    rng = np.random.default_rng(7)
    acc = binary()
    for _ in range(20):
        n = 5000
        acc.add_predictions(np.full(n, "yes"), scores=rng.random(n), latency_ms=rng.lognormal(3, 1, n))
        acc.add_outcomes(np.where(rng.random(n) < 0.5, "yes", "no"), np.full(n, "yes"), scores=rng.random(n))
    assert acc.metrics()["predictions"] == (100000.0, 100000)
    assert acc.latency.keys.size < 1000
    assert len(acc.to_bytes()) < 64_000


def test_log_sketch_counts_small_batches_the_same_as_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small adds are merged lazily (at a read, or past a pending limit): same buckets, counts and quantiles."""
    monkeypatch.setattr("stream.metrics.sketch._PENDING_MAX", 500)
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.lognormal(1.0, 2.0, 3000), np.zeros(40)])
    whole, pieces = LogSketch(), LogSketch()
    whole.add(values)
    added = 0
    for chunk in np.array_split(values, 97):
        pieces.add(chunk)
        added += chunk.size
        assert pieces.count == added  # counted before the merge
    assert pieces.count == whole.count == values.size
    qs = np.array([0.0, 0.1, 0.5, 0.9, 0.99, 1.0])
    np.testing.assert_array_equal(pieces.quantiles(qs), whole.quantiles(qs))
    np.testing.assert_array_equal(pieces.to_array(), whole.to_array())
    merged = LogSketch()
    merged.add(values[:10])  # pending on both sides of a merge
    rest = LogSketch()
    rest.add(values[10:])
    merged.merge(rest)
    np.testing.assert_array_equal(merged.to_array(), whole.to_array())
    exact = np.percentile(values, qs * 100)
    assert np.all(np.abs(pieces.quantiles(qs) - exact) <= RELATIVE_ERROR * exact + 1e-12)


# --- per-class, PR AUC and calibration metrics against scikit-learn ----------------------------------------


def _binary_outcomes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = np.round(rng.uniform(0, 1, n), 3)  # on the 1/1000 grid: histogram metrics are then exact
    truth = np.where(rng.uniform(0, 1, n) < scores, "yes", "no").astype(object)
    pred = np.where(scores >= 0.5, "yes", "no").astype(object)
    return truth, pred, scores


def test_binary_pr_auc_brier_ece_per_class_against_sklearn() -> None:
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import average_precision_score, brier_score_loss, precision_score, recall_score

    rng = np.random.default_rng(3)
    truth, pred, scores = _binary_outcomes(rng, 5000)
    scores[:50] = 0.1  # scores on the inner calibration edges go to the lower bin, as in sklearn
    scores[50:100] = 0.7
    acc = binary()
    for part in np.array_split(np.arange(truth.size), 7):
        acc.add_outcomes(truth[part], pred[part], scores=scores[part])
    m = acc.metrics()
    y = truth == "yes"
    assert m["pr_auc"] == (pytest.approx(average_precision_score(y, scores), abs=1e-12), 5000)
    assert m["brier"] == (pytest.approx(brier_score_loss(y, scores), abs=1e-12), 5000)
    prob_true, prob_pred = calibration_curve(y, scores, n_bins=10)
    edges = np.linspace(0, 1, 11)[1:-1]
    weights = np.bincount(np.searchsorted(edges, scores), minlength=10)
    ece = float(np.sum(weights[weights > 0] / y.size * np.abs(prob_true - prob_pred)))
    assert m["ece"] == (pytest.approx(ece, abs=1e-12), 5000)
    for label in ("yes", "no"):
        name = label if label == "yes" else "__not_positive__"
        expected_p = precision_score(truth, pred, pos_label=label)
        expected_r = recall_score(truth, pred, pos_label=label)
        assert m[f"precision:{name}"][0] == pytest.approx(expected_p)
        assert m[f"recall:{name}"][0] == pytest.approx(expected_r)
    assert m["precision:yes"] == m["precision"] and m["recall:yes"] == m["recall"]


def test_pr_auc_ties_within_a_bin_match_sklearn_ties() -> None:
    from sklearn.metrics import average_precision_score

    y = np.array([1, 0, 1, 1, 0, 0, 1, 0])
    scores = np.array([0.9, 0.9, 0.5, 0.5, 0.5, 0.2, 0.2, 0.0])
    acc = binary()
    acc.add_outcomes(np.where(y == 1, "yes", "no"), np.full(8, "yes"), scores=scores)
    assert acc.metrics()["pr_auc"][0] == pytest.approx(average_precision_score(y, scores))


def test_calibration_metrics_one_class_empty_and_nan() -> None:
    from sklearn.metrics import brier_score_loss

    acc = binary()
    m = acc.metrics()
    assert all(math.isnan(m[k][0]) and m[k][1] == 0 for k in ("pr_auc", "brier", "ece"))
    acc.add_outcomes(np.array(["no"] * 4), np.array(["no"] * 4), scores=np.array([0.1, NAN, 0.3, 0.9]))
    m = acc.metrics()
    assert math.isnan(m["pr_auc"][0])  # no positives: undefined (sklearn warns and returns 0)
    assert m["brier"] == (pytest.approx(brier_score_loss([0, 0, 0], [0.1, 0.3, 0.9])), 3)
    assert m["ece"] == (pytest.approx((0.1 + 0.3 + 0.9) / 3), 3)  # three bins, each all negative
    assert m["precision:__not_positive__"] == (1.0, 4) and m["recall:__not_positive__"] == (1.0, 4)
    assert math.isnan(m["precision:yes"][0]) and math.isnan(m["recall:yes"][0])


def test_multiclass_per_class_precision_recall_against_sklearn() -> None:
    from sklearn.metrics import precision_recall_fscore_support

    rng = np.random.default_rng(5)
    classes = np.array(["a", "b", "c", "d"])
    truth = rng.choice(classes, 3000, p=[0.5, 0.3, 0.2, 0.0])
    pred = np.where(rng.uniform(size=3000) < 0.6, truth, rng.choice(classes, 3000))
    acc = WindowAccumulator("multiclass_classification")
    acc.add_outcomes(truth, pred)
    m = acc.metrics()
    p, r, _, _ = precision_recall_fscore_support(truth, pred, labels=classes, zero_division=np.nan)
    for i, name in enumerate(classes):
        for metric, expected in (("precision", p[i]), ("recall", r[i])):
            got = m[f"{metric}:{name}"][0]
            assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected), (metric, name)
    assert math.isnan(m["recall:d"][0]) and m["recall:d"][1] == 0  # never true: recall undefined


def test_new_binary_state_survives_round_trip_and_merge() -> None:
    rng = np.random.default_rng(9)
    truth, pred, scores = _binary_outcomes(rng, 400)
    whole, first, second = binary(), binary(), binary()
    for acc in (whole, first):
        acc.add_predictions(pred[:200], scores=scores[:200])
        acc.add_outcomes(truth[:200], pred[:200], scores=scores[:200])
    for acc in (whole, second):
        acc.add_outcomes(truth[200:], pred[200:], scores=scores[200:])
    first.merge(WindowAccumulator.from_bytes(second.to_bytes()))
    assert_metrics_equal(first.metrics(), whole.metrics())
    restored = WindowAccumulator.from_bytes(whole.to_bytes())
    assert isinstance(restored.model, type(whole.model))
    np.testing.assert_array_equal(restored.model.positive_scores, whole.model.positive_scores)  # type: ignore[union-attr]
