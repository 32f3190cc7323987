from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from stream.alerts.rules import (
    DEFAULT_RULES,
    AnyRule,
    DetectorHit,
    DriftResult,
    MetricHistory,
    QualityRow,
    RelativeRule,
    RuleSpecError,
    ThresholdRule,
    WindowInputs,
    evaluate,
    evaluate_all,
    parse_rules,
    required_lookback,
)
from stream.contracts.events import ModelSpec

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
W = timedelta(minutes=5)


def window(i: int, metrics: dict[str, tuple[float, int]] | None = None, **kw: Any) -> WindowInputs:
    return WindowInputs("credit-risk", "3", "", T0 + i * W, T0 + (i + 1) * W, metrics or {}, **kw)


def rule(**spec: Any) -> AnyRule:
    return parse_rules([spec], defaults=False)[0]


# --- threshold -------------------------------------------------------------------------------------------


def test_threshold_fires_below_and_not_at_the_boundary() -> None:
    r = rule(kind="threshold", metric="accuracy", op="<", value=0.8)
    h = MetricHistory()
    low = evaluate(r, window(0, {"accuracy": (0.71, 1204)}), h)
    assert (low.active, low.observed, low.threshold, low.samples) == (True, 0.71, 0.8, 1204)
    assert evaluate(r, window(0, {"accuracy": (0.8, 1204)}), h).active is False
    assert rule(kind="threshold", metric="accuracy", op="<=", value=0.8).name == "accuracy <= 0.8"
    le = rule(kind="threshold", metric="accuracy", op="<=", value=0.8)
    assert evaluate(le, window(0, {"accuracy": (0.8, 1204)}), h).active is True


@pytest.mark.parametrize(
    "metrics",
    [{}, {"accuracy": (0.5, 99)}, {"accuracy": (math.nan, 1000)}, {"accuracy": (0.5, 0)}],
    ids=["missing", "few-samples", "nan", "empty"],
)
def test_threshold_not_enough_data(metrics: dict[str, tuple[float, int]]) -> None:
    r = rule(kind="threshold", metric="accuracy", op="<", value=0.8)
    assert evaluate(r, window(0, metrics), MetricHistory()).active is None


def test_threshold_for_windows_needs_consecutive_windows() -> None:
    r = rule(kind="threshold", metric="latency_p99", op=">", value=250, for_windows=3, min_samples=10)
    h = MetricHistory()
    values = [300, 300, 100, 300, 300, 300]
    got = [evaluate_all([r], window(i, {"latency_p99": (v, 50)}), h)[0].active for i, v in enumerate(values)]
    assert got == [False, False, False, False, False, True]
    # a gap (window 7 missing) breaks the run
    h.record(window(6, {"latency_p99": (300, 50)}))
    assert evaluate(r, window(8, {"latency_p99": (300, 50)}), h).active is False
    # a window with too few samples in the run breaks it too
    h.record(window(9, {"latency_p99": (300, 5)}))
    h.record(window(10, {"latency_p99": (300, 50)}))
    assert evaluate(r, window(11, {"latency_p99": (300, 50)}), h).active is False


# --- relative --------------------------------------------------------------------------------------------


def test_relative_trailing_baseline_is_the_mean_of_the_lookback_windows() -> None:
    r = rule(kind="relative", metric="accuracy", by_percent=10, trailing="20m", min_samples=100)
    assert isinstance(r, RelativeRule)
    h = MetricHistory()
    past = [0.99, 0.90, 0.80, 0.85, 0.95]  # window 0 is outside a 20-minute (4-window) lookback from window 5
    for i, v in enumerate(past):
        h.record(window(i, {"accuracy": (v, 500)}))
    h.record(window(2, {"accuracy": (0.70, 500)}))  # a revision replaces window 2
    baseline = float(np.mean([0.90, 0.70, 0.85, 0.95]))
    cond = evaluate(r, window(5, {"accuracy": (0.70, 500)}), h)
    assert cond.baseline == pytest.approx(baseline)
    assert cond.threshold == pytest.approx(baseline * 0.9)
    assert cond.active is (baseline * 0.9 > 0.70)
    assert evaluate(r, window(5, {"accuracy": (baseline * 0.9 + 1e-9, 500)}), h).active is False


def test_relative_trailing_windows_rise_and_short_baseline() -> None:
    r = rule(
        kind="relative",
        metric="log_loss",
        direction="rise",
        by_percent=50,
        trailing_windows=3,
        min_baseline_windows=2,
    )
    h = MetricHistory()
    h.record(window(0, {"log_loss": (0.2, 200)}))
    assert evaluate(r, window(1, {"log_loss": (9.0, 200)}), h).active is None  # 1 < min_baseline_windows
    h.record(window(1, {"log_loss": (0.4, 200)}))
    h.record(window(2, {"log_loss": (0.3, 50)}))  # too few samples: not part of the baseline
    h.record(window(3, {"log_loss": (0.6, 200)}))
    cond = evaluate(r, window(4, {"log_loss": (0.61, 200)}), h)  # baseline: windows 1..3 with samples
    assert cond.baseline == pytest.approx(0.5)
    assert cond.threshold == pytest.approx(0.75)
    assert cond.active is False
    assert evaluate(r, window(4, {"log_loss": (0.76, 200)}), h).active is True


def test_relative_reference_baseline() -> None:
    r = rule(kind="relative", metric="f1", by_percent=10, reference=0.8)
    cond = evaluate(r, window(0, {"f1": (0.71, 300)}), MetricHistory())
    assert (cond.active, cond.threshold) == (True, pytest.approx(0.72))
    assert evaluate(r, window(0, {"f1": (0.73, 300)}), MetricHistory()).active is False
    assert evaluate(r, window(0, {"f1": (0.1, 3)}), MetricHistory()).active is None


def test_required_lookback() -> None:
    assert required_lookback(rule(kind="relative", metric="f1", by_percent=10), W) == timedelta(days=7)
    assert (
        required_lookback(rule(kind="relative", metric="f1", by_percent=1, trailing_windows=12), W) == 12 * W
    )
    assert required_lookback(rule(kind="threshold", metric="f1", op="<", value=1, for_windows=4), W) == 3 * W


# --- detector, feature drift, data quality --------------------------------------------------------------


def test_detector_rule() -> None:
    hits = [DetectorHit("adwin", "score"), DetectorHit("page_hinkley", "error")]
    any_error = rule(kind="detector")
    cond = evaluate(any_error, window(0, detections=hits), MetricHistory())
    assert (cond.active, cond.details) == (True, ("page_hinkley:error",))
    adwin_error = rule(kind="detector", detector="adwin", signal="error")
    assert evaluate(adwin_error, window(0, detections=hits), MetricHistory()).active is False
    assert evaluate(any_error, window(0), MetricHistory()).active is False


def test_feature_drift_rule_counts_distinct_features() -> None:
    drift = [
        DriftResult("income", "psi", 0.4, None, True),
        DriftResult("income", "ks", 0.3, 0.001, True),
        DriftResult("age", "ks", 0.2, 0.001, True),
        DriftResult("zip", "chi2", 10.0, 0.5, False),
    ]
    three = rule(kind="feature_drift", min_features=3)
    cond = evaluate(three, window(0, drift=drift), MetricHistory())
    assert (cond.active, cond.observed, cond.details) == (False, 2.0, ("age", "income"))
    two_ks = rule(kind="feature_drift", min_features=2, test="ks")
    assert evaluate(two_ks, window(0, drift=drift), MetricHistory()).active is True
    zip_rule = rule(kind="feature_drift", feature="zip")
    assert evaluate(zip_rule, window(0, drift=drift), MetricHistory()).active is False
    assert evaluate(three, window(0), MetricHistory()).active is None
    insufficient = [DriftResult("income", "psi", math.nan, None, False)]
    assert evaluate(three, window(0, drift=insufficient), MetricHistory()).active is None
    assert (
        evaluate(rule(kind="feature_drift", test="js"), window(0, drift=drift), MetricHistory()).active
        is None
    )


def test_data_quality_rule() -> None:
    rows = [
        QualityRow("income", "missing_rate", 0.35),
        QualityRow("age", "missing_rate", 0.25),
        QualityRow("zip", "missing_rate", 0.0),
        QualityRow("zip", "constant", 1.0),
        QualityRow("city", "missing_rate", math.nan),
    ]
    r = rule(kind="data_quality", check="missing_rate", op=">", value=0.2)
    cond = evaluate(r, window(0, quality=rows), MetricHistory())
    assert (cond.active, cond.observed, cond.details) == (True, 0.35, ("age", "income"))
    zip_only = rule(kind="data_quality", check="missing_rate", feature="zip", value=0.2)
    assert evaluate(zip_only, window(0, quality=rows), MetricHistory()).active is False
    assert evaluate(zip_only, window(0), MetricHistory()).active is None
    new = rule(kind="data_quality", check="new_categories", value=0.1)
    assert new.check == "new_category_rate"  # type: ignore[union-attr]
    new_rows = [QualityRow("city", "new_category_rate", 0.3), QualityRow("zip", "new_categories", 0.05)]
    assert evaluate(new, window(0, quality=new_rows), MetricHistory()).details == ("city",)
    nan_only = rule(kind="data_quality", check="missing_rate", feature="city", value=0.2)
    assert evaluate(nan_only, window(0, quality=rows), MetricHistory()).active is None


# --- parsing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("specs", "error"),
    [
        (
            [{"kind": "threshold", "metric": "a", "op": "<", "value": 1}, {"kind": "thresold"}],
            "rule 2: unknown kind 'thresold'; expected one of threshold, relative, detector, feature_drift, "
            "data_quality",
        ),
        ([{"metric": "a"}], "rule 1: missing 'kind'; expected one of"),
        (
            [{"kind": "threshold", "name": "x", "metric": "a", "op": "=", "value": 1}],
            "rule 1 ('x'): op: Input",
        ),
        (
            [{"kind": "threshold", "metric": "a", "op": "<", "valeu": 1}],
            "valeu: Extra inputs are not permitted",
        ),
        (
            [{"kind": "relative", "metric": "a", "by_percent": 5, "reference": 1, "trailing": "7d"}],
            "only one",
        ),
        ([{"kind": "relative", "metric": "a", "by_percent": 5, "trailing": "soon"}], "rule 1: trailing:"),
        ([{"kind": "feature_drift", "test": "t"}], "rule 1: test: Input should be"),
        (
            [{"kind": "detector", "name": "d"}, {"kind": "detector", "name": "d"}],
            "rule 2: duplicate rule name",
        ),
        (["threshold"], "rule 1: expected a mapping, got str"),
        ([{"disable": "nope"}], "rule 1: cannot disable 'nope'"),
    ],
)
def test_parse_errors_are_one_line(specs: list[Any], error: str) -> None:
    with pytest.raises(RuleSpecError) as info:
        parse_rules(specs)
    assert error in str(info.value)
    assert "\n" not in str(info.value)


def test_defaults_override_and_disable() -> None:
    names = [r.name for r in parse_rules([])]
    assert names == [d["name"] for d in DEFAULT_RULES]
    own = {
        "name": "default-label-coverage",
        "kind": "threshold",
        "metric": "label_coverage",
        "op": "<",
        "value": 0.9,
        "severity": "critical",
    }
    rules = parse_rules([own, {"disable": "default-missing-rate"}])
    by_name = {r.name: r for r in rules}
    assert "default-missing-rate" not in by_name
    cov = by_name["default-label-coverage"]
    assert isinstance(cov, ThresholdRule) and (cov.value, cov.severity) == (0.9, "critical")
    assert len(rules) == len(DEFAULT_RULES) - 1
    relative = parse_rules(
        [{"kind": "relative", "metric": "a", "by_percent": 5, "trailing": "2h"}], defaults=False
    )
    assert isinstance(relative[0], RelativeRule) and relative[0].trailing == timedelta(hours=2)


def test_rules_from_a_model_spec() -> None:
    spec = ModelSpec.model_validate(
        {
            "model_id": "m",
            "task": "regression",
            "rules": [{"kind": "threshold", "metric": "mae", "op": ">", "value": 3.0, "for_windows": 2}],
        }
    )
    rules = parse_rules(spec.rules)
    assert rules[-1].name == "mae > 3 for 2 windows"


def test_history_round_trip_and_retention() -> None:
    h = MetricHistory(retention=3 * W)
    for i in range(6):
        h.record(window(i, {"accuracy": (0.5 + i / 10, 100 + i), "rmse": (math.nan, 0)}))
    key = ("credit-risk", "3", "")
    assert h.get(key, T0 + W, "accuracy") is None  # pruned: older than 3 windows before window 5
    assert h.get(key, T0 + 2 * W, "accuracy") == (0.7, 102)
    again = MetricHistory.from_bytes(h.to_bytes())
    assert again.values(key, "accuracy", T0, T0 + 6 * W, 0) == pytest.approx([0.7, 0.8, 0.9, 1.0])
    got = again.get(key, T0 + 5 * W, "rmse")
    assert got is not None and math.isnan(got[0])


def test_history_for_rules_keeps_only_what_rules_read() -> None:
    rules = parse_rules([{"kind": "threshold", "metric": "mae", "op": ">", "value": 1, "for_windows": 3}])
    h = MetricHistory.for_rules(rules, W)
    assert h.retention == timedelta(days=7) + W
    assert h.metrics == {"mae", "accuracy", "f1", "roc_auc"}
    h.record(window(0, {"mae": (2.0, 500), "latency_p99": (1.0, 500)}))
    key = ("credit-risk", "3", "")
    assert h.get(key, T0, "mae") == (2.0, 500) and h.get(key, T0, "latency_p99") is None
    assert MetricHistory.from_bytes(h.to_bytes()).metrics == h.metrics
