from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest
from scipy.stats import chi2_contingency

from stream.contracts.events import FeatureSpec, ModelSpec, MonitorSettings
from stream.demo.synthetic import DRIFTED_FEATURES, Scenario
from stream.metrics.window import WindowAccumulator
from stream.monitor.detectors import Detection, DetectorParams
from stream.monitor.model_monitor import ModelMonitor
from stream.monitor.multivariate import MULTIVARIATE
from stream.monitor.profiles import FeatureProfile, profile_categorical, profile_numeric, profile_records
from stream.monitor.report import (
    DATA_QUALITY_COLUMNS,
    DRIFT_EVENT_COLUMNS,
    FEATURE_DRIFT_COLUMNS,
    WindowReport,
    detection_row,
)

WINDOW_MS = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % WINDOW_MS
DRIFT_WINDOW = 4
N_WINDOWS = 8
RATE = 50  # events per second: 3000 per window
NOW = datetime(2030, 1, 1, tzinfo=UTC)


# --- a synthetic stream through the monitor -----------------------------------------------------------------


@dataclass
class Run:
    spec: ModelSpec
    monitor: ModelMonitor
    events: list[dict[str, Any]]
    reports: list[WindowReport] = field(default_factory=list)
    detections: list[Detection] = field(default_factory=list)


Batch = tuple[list[str], np.ndarray, list[dict[str, Any]], np.ndarray, np.ndarray]


def _prediction_arrays(events: list[dict[str, Any]], regression: bool) -> Batch:
    return (
        [e["model_version"] for e in events],
        np.array([e["timestamp"] for e in events], dtype=np.int64),
        [e["features"] for e in events],
        np.array([e.get("score", math.nan) for e in events], dtype=np.float64),
        np.array([e["prediction"] for e in events], dtype=np.float64 if regression else object),
    )


def _feed_predictions(mon: ModelMonitor, events: list[dict[str, Any]], first: int = 0) -> list[Detection]:
    regression = mon.spec.task == "regression"
    found = []
    for lo in range(0, len(events), 1000):
        b = events[lo : lo + 1000]
        positions = np.arange(first + lo, first + lo + len(b))
        found += mon.add_predictions(*_prediction_arrays(b, regression), positions)
    return found


def _run(model: str) -> Run:
    sc = Scenario(models=(model,), seed=3, start_ms=T0, drift_at_ms=T0 + DRIFT_WINDOW * WINDOW_MS,
                  label_delay_mean_ms=2000)  # fmt: skip
    raw = sc.specs()[0]
    raw["monitor"] = {**raw.get("monitor", {}), "label_delay_seconds": 0}  # every label is in before the close
    spec = ModelSpec.model_validate(raw)
    regression = spec.task == "regression"
    run = Run(spec, ModelMonitor(spec), sc.predictions(N_WINDOWS * 3000, rate_per_s=RATE))
    run.detections += _feed_predictions(run.monitor, run.events)
    by_id = {e["prediction_id"]: e for e in run.events}
    labels = list({lab["prediction_id"]: lab for lab in sc.all_labels()}.values())
    preds = [by_id[lab["prediction_id"]] for lab in labels]
    ts = np.array([p["timestamp"] for p in preds], dtype=np.int64)
    kind = np.float64 if regression else object
    y_true = np.array([lab["label"] for lab in labels], dtype=kind)
    y_pred = np.array([p["prediction"] for p in preds], dtype=kind)
    scores = np.array([p.get("score", math.nan) for p in preds])
    versions = [p["model_version"] for p in preds]
    for lo in range(0, len(labels), 1000):
        sl = slice(lo, lo + 1000)
        run.detections += run.monitor.add_outcomes(
            versions[sl], ts[sl], y_true[sl], y_pred[sl], scores[sl], np.arange(lo, lo + ts[sl].size)
        )
    pred_ts = np.array([e["timestamp"] for e in run.events])
    for w in range(N_WINDOWS):
        start, end = T0 + w * WINDOW_MS, T0 + (w + 1) * WINDOW_MS
        acc = WindowAccumulator(spec.task, spec.positive_class)
        sel = np.flatnonzero((pred_ts >= start) & (pred_ts < end))
        acc.add_predictions(np.array([run.events[i]["prediction"] for i in sel], dtype=kind))
        lab = (ts >= start) & (ts < end)
        acc.add_outcomes(y_true[lab], y_pred[lab], None if regression else scores[lab])
        run.reports.append(run.monitor.close_window(spec.version, start, end, {"": acc.metrics()}, NOW))
    return run


@pytest.fixture(scope="module", params=["credit-risk", "delivery-eta"])
def run(request: pytest.FixtureRequest) -> Run:
    return _run(request.param)


def test_windows_before_drift_report_no_drift_and_no_alerts(run: Run) -> None:
    for report in run.reports[:DRIFT_WINDOW]:
        assert report.samples > 0
        assert report.drifted_features == ()
        assert not any(row[10] for row in report.feature_drift)  # drifted column, outputs included
        assert report.alerts == []


def test_windows_after_drift_flag_the_drifted_features_first(run: Run) -> None:
    expected = sorted(DRIFTED_FEATURES[run.spec.model_id])
    for report in run.reports[DRIFT_WINDOW:]:  # the inputs' mean shifts may also move the multivariate test
        assert [f for f in report.drifted_features if f != MULTIVARIATE] == expected
        top = report.attribution[: len(expected)]
        assert sorted(name for name, _, _ in top) == expected
        assert all(drifted for _, _, drifted in top)
        assert not any(drifted for _, _, drifted in report.attribution[len(expected) :])


def test_error_detector_fires_after_the_drift_and_not_before(run: Run) -> None:
    drift_at = T0 + DRIFT_WINDOW * WINDOW_MS
    errors = [d for d in run.detections if d.signal == "error"]
    assert errors, "the error detector never fired"
    assert min(d.event_time_ms for d in errors) >= drift_at
    assert min(d.event_time_ms for d in errors) < drift_at + WINDOW_MS  # within the first drifted window
    output = "score" if run.spec.task == "binary_classification" else "prediction"
    assert all(d.event_time_ms >= drift_at for d in run.detections if d.signal == output)


def test_an_alert_fires_in_the_first_drifted_window_naming_the_drifted_inputs(run: Run) -> None:
    report = run.reports[DRIFT_WINDOW]
    firing = [a for a in report.alerts if a.state == "firing"]
    assert "default-error-detector" in {a.rule for a in firing}
    for alert in firing:
        assert alert.window_start == datetime.fromtimestamp((T0 + DRIFT_WINDOW * WINDOW_MS) / 1000, UTC)
        names = ", ".join(sorted(DRIFTED_FEATURES[run.spec.model_id]))
        text = alert.message.replace(f"{MULTIVARIATE}, ", "")  # the multivariate test may flag the window too
        if alert.rule == "default-feature-drift":  # it counts as one drifted input: 2 inputs + it reach 3
            assert f"{MULTIVARIATE}, " in alert.message and text.endswith(f"UTC: {names}")
        else:
            assert text.endswith(f"drifted inputs: {names}")
    if run.spec.model_id == "credit-risk":  # accuracy 0.85 -> 0.67 is more than a 10% drop
        assert "default-accuracy-drop" in {a.rule for a in firing}


def test_drift_statistics_match_an_independent_computation() -> None:
    mon = ModelMonitor(_credit_spec_no_rules())
    sc = Scenario(models=("credit-risk",), seed=11, start_ms=T0, drift_at_ms=T0 + WINDOW_MS)
    events = sc.predictions(4000, rate_per_s=RATE)  # 1000 reference events, then 2000 + 1000 counted
    _feed_predictions(mon, events)
    ref_events, window = events[:1000], [e for e in events[1000:] if e["timestamp"] >= T0 + WINDOW_MS]
    report = mon.close_window("3", T0 + WINDOW_MS, T0 + 2 * WINDOW_MS, {}, NOW)
    rows = {(r[5], r[6]): r for r in report.feature_drift}

    income_ref = [e["features"]["income"] for e in ref_events]
    edges = sorted(set(np.quantile(income_ref, np.arange(1, 10) / 10, method="inverted_cdf").tolist()))
    ref = np.bincount([bisect.bisect_left(edges, v) for v in income_ref], minlength=len(edges) + 1)
    income_win = [e["features"]["income"] for e in window]
    win = np.bincount([bisect.bisect_left(edges, v) for v in income_win], minlength=len(edges) + 1)
    eps, k = 1e-4, len(edges) + 1
    p, q = (ref / ref.sum() + eps) / (1 + k * eps), (win / win.sum() + eps) / (1 + k * eps)
    assert rows[("income", "psi")][7] == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=1e-9)
    assert rows[("income", "psi")][12] == len(window)

    cats = sorted({e["features"]["channel"] for e in ref_events})
    table = [
        [sum(e["features"]["channel"] == c for e in part) for c in cats]
        for part in (ref_events, window)
    ]
    chi2, pval, _, _ = chi2_contingency(np.array(table), correction=False, lambda_="cressie-read")
    row = rows[("channel", "chi2")]
    assert row[7] == pytest.approx(chi2, rel=1e-9)
    assert row[8] == pytest.approx(pval, rel=1e-6, abs=1e-300)
    # Bonferroni: KS + chi-square x (4 numeric + score), 2 chi2, the multivariate test
    assert row[9] == pytest.approx(0.005 / 13)
    assert row[10] == 1


def _credit_spec_no_rules() -> ModelSpec:
    spec = Scenario(models=("credit-risk",)).specs()[0]
    return ModelSpec.model_validate(spec)


# --- rows ---------------------------------------------------------------------------------------------------


def test_rows_have_the_table_columns_and_utc_datetimes(run: Run) -> None:
    report = run.reports[DRIFT_WINDOW]
    start = datetime.fromtimestamp((T0 + DRIFT_WINDOW * WINDOW_MS) / 1000, UTC)
    for row in report.feature_drift:
        assert len(row) == len(FEATURE_DRIFT_COLUMNS)
        assert row[:5] == (run.spec.model_id, run.spec.version, "", start, start + timedelta(minutes=1))
        assert row[3].tzinfo is UTC and row[11] == 0 and row[12] > 0
    features = {f.name for f in run.spec.features}
    output = "__score__" if run.spec.task == "binary_classification" else "__prediction__"
    assert {row[5] for row in report.feature_drift} == features | {output, MULTIVARIATE}
    for row in report.data_quality:
        assert len(row) == len(DATA_QUALITY_COLUMNS)
        assert set(orjson.loads(row[8])) == {"count", "examples"}
    missing = {row[4]: row[6] for row in report.data_quality if row[5] == "missing_rate"}
    if run.spec.model_id == "credit-risk":
        assert 0.0 < missing["utilisation"] < 0.03  # 1 % sent as None
        assert missing["income"] == 0.0


def test_detection_row() -> None:
    d = Detection("adwin", "m", "2", "error", 7, 1234, T0 + 1500, 0.1, 0.9, 0.2, 0.4, {"delta": 0.002})
    at = datetime(2030, 1, 1, tzinfo=UTC)
    row = detection_row(d, "m", at)
    assert len(row) == len(DRIFT_EVENT_COLUMNS)
    assert row[:4] == ("m", "2", "adwin", "error")
    assert row[4] == datetime.fromtimestamp(T0 / 1000, UTC) + timedelta(milliseconds=1500)
    assert row[5:8] == (7, 0.1, 0.9) and row[9] == at
    params = {"delta": 0.002, "source_position": 1234, "scale_mean": 0.2, "scale_std": 0.4}
    assert orjson.loads(row[8]) == params


# --- small hand-made models ---------------------------------------------------------------------------------


def small_spec(task: str = "binary_classification", **monitor: Any) -> ModelSpec:
    return ModelSpec(
        model_id="m",
        task=task,  # type: ignore[arg-type]
        positive_class="1" if task == "binary_classification" else None,
        features=[FeatureSpec(name="x", type="numeric"), FeatureSpec(name="c", type="categorical")],
        monitor=MonitorSettings(**{"window_seconds": 60, "reference_events": 100, "min_samples": 30,
                                   "label_delay_seconds": 0, **monitor}),
    )


def small_batch(rng: np.random.Generator, n: int, t0: int, shift: float = 0.0) -> tuple[Any, ...]:
    x = rng.normal(shift, 1.0, n)
    c = rng.choice(["a", "b", "c"], n)
    feats = [{"x": float(a), "c": str(b)} for a, b in zip(x, c, strict=True)]
    ts = t0 + np.arange(n, dtype=np.int64)
    preds = np.where(rng.random(n) < 0.5, "1", "0").astype(object)
    return ["1"] * n, ts, feats, rng.random(n), preds, np.arange(n)


def test_builds_the_reference_from_the_first_n_events_only() -> None:
    rng = np.random.default_rng(0)
    versions, ts, feats, scores, preds, pos = small_batch(rng, 250, T0)
    one, split = ModelMonitor(small_spec()), ModelMonitor(small_spec())
    one.add_predictions(versions, ts, feats, scores, preds, pos)
    for lo, hi in ((0, 60), (60, 170), (170, 250)):
        sl = slice(lo, hi)
        split.add_predictions(versions[sl], ts[sl], feats[sl], scores[sl], preds[sl], pos[sl])
    x = np.array([f["x"] for f in feats[:100]])
    for mon in (one, split):
        ref = mon.reference
        assert ref is not None
        assert ref["x"] == profile_numeric(x)
        percentiles = np.quantile(x, np.arange(1, 100) / 100, method="inverted_cdf")
        assert ref["x"].edges == tuple(np.unique(percentiles))
        assert ref["c"] == profile_categorical(np.array([f["c"] for f in feats[:100]], dtype=object))
        assert ref["__score__"] == profile_numeric(scores[:100])
        sketch = mon.windows[("1", T0)]
        assert sketch.n == 150 and sketch.quality.n == 150
        assert {k: int(c.sum()) for k, c in sketch.counts.items()} == {"x": 150, "c": 150, "__score__": 150}
    np.testing.assert_array_equal(one.windows[("1", T0)].counts["x"], split.windows[("1", T0)].counts["x"])


def test_no_report_rows_while_the_reference_is_being_built() -> None:
    rng = np.random.default_rng(1)
    mon = ModelMonitor(small_spec())
    mon.add_predictions(*small_batch(rng, 50, T0))
    assert mon.reference is None and mon.open_windows() == []
    report = mon.close_window("1", T0, T0 + WINDOW_MS, {}, NOW)
    assert report.feature_drift == [] and report.samples == 0 and report.alerts == []


def test_given_reference_without_the_output_builds_only_the_output() -> None:
    rng = np.random.default_rng(2)
    ref = {"x": profile_numeric(rng.normal(0, 1, 500)).to_dict(), "c": profile_categorical(
        np.array(["a", "b", "c"] * 100, dtype=object)).to_dict()}  # fmt: skip
    mon = ModelMonitor(small_spec(), reference=ref)
    versions, ts, feats, scores, preds, pos = small_batch(rng, 130, T0)
    mon.add_predictions(versions, ts, feats, scores, preds, pos)
    assert mon.reference is not None and mon.reference["x"] == FeatureProfile.from_dict(ref["x"])
    assert mon.reference["__score__"] == profile_numeric(scores[:100])
    counts = mon.windows[("1", T0)].counts
    assert int(counts["x"].sum()) == 130 and int(counts["__score__"].sum()) == 30


def test_empty_and_tiny_windows_give_insufficient_rows_not_drift() -> None:
    rng = np.random.default_rng(3)
    mon = ModelMonitor(small_spec())
    mon.add_predictions(*small_batch(rng, 100, T0))  # the reference
    v, ts, feats, scores, preds, pos = small_batch(rng, 5, T0 + WINDOW_MS, shift=50.0)
    mon.add_predictions(v, ts, feats, scores, preds, pos)
    for start, samples in ((T0 + WINDOW_MS, 5), (T0 + 2 * WINDOW_MS, 0)):
        report = mon.close_window("1", start, start + WINDOW_MS, {}, NOW)
        assert report.samples == samples
        assert len(report.feature_drift) == 4 + 3 + 4  # x: psi js ks wasserstein; c: psi js chi2; score
        for row in report.feature_drift:
            assert math.isnan(row[7]) and row[8] is None and row[10] == 0 and row[11] == 1
            assert row[12] == samples
        assert report.drifted_features == () and report.attribution == [] and report.alerts == []


def test_constant_feature_gives_a_constant_quality_row() -> None:
    rng = np.random.default_rng(4)
    mon = ModelMonitor(small_spec())
    reference = small_batch(rng, 100, T0)
    mon.add_predictions(*reference)
    v, ts, feats, scores, preds, pos = small_batch(rng, 40, T0 + WINDOW_MS)
    feats = [{"x": 3.0, "c": f["c"]} for f in feats]
    mon.add_predictions(v, ts, feats, scores, preds, pos)
    report = mon.close_window("1", T0 + WINDOW_MS, T0 + 2 * WINDOW_MS, {}, NOW)
    constant = {row[4]: (row[6], row[7]) for row in report.data_quality if row[5] == "constant"}
    assert constant == {"x": (1.0, 40), "c": (0.0, 40)}
    oor = {row[4]: row[6] for row in report.data_quality if row[5] == "out_of_range_rate"}
    ref_x = [f["x"] for f in reference[2]]
    assert oor == {"x": float(not min(ref_x) <= 3.0 <= max(ref_x))}  # range falls back to the reference


def test_a_batch_spanning_windows_and_versions_is_counted_in_each() -> None:
    rng = np.random.default_rng(5)
    mon = ModelMonitor(small_spec())
    mon.add_predictions(*small_batch(rng, 100, T0))
    n = 300
    _, _, feats, scores, preds, pos = small_batch(rng, n, T0)
    ts = T0 + rng.integers(0, 3 * WINDOW_MS, n)
    versions = rng.choice(["1", "2"], n).tolist()
    mon.add_predictions(versions, ts, feats, scores, preds, pos)
    expected: dict[tuple[str, int], int] = {}
    for ver, t in zip(versions, ts.tolist(), strict=True):
        key = (ver, t - t % WINDOW_MS)
        expected[key] = expected.get(key, 0) + 1
    assert {k: int(s.counts["x"].sum()) for k, s in mon.windows.items()} == expected
    assert {k: s.quality.n for k, s in mon.windows.items()} == expected


def test_error_stream_is_the_zero_one_loss_or_the_absolute_error() -> None:
    params = DetectorParams(warmup=100)
    y_true = np.array(["1", "0", "1", "1"] * 25, dtype=object)
    y_pred = np.array(["1", "1", "1", "1"] * 25, dtype=object)
    clf = ModelMonitor(small_spec(), detector_params=params)
    clf.add_outcomes(["1"] * 100, T0 + np.arange(100), y_true, y_pred, np.full(100, np.nan), np.arange(100))
    assert clf.signals[("1", "error")].standardiser.mean == pytest.approx(0.25)
    reg = ModelMonitor(small_spec("regression"), detector_params=params)
    a, b = np.linspace(0, 10, 100), np.linspace(0, 10, 100) ** 1.5
    b[3] = np.nan
    reg.add_outcomes(["1"] * 100, T0 + np.arange(100), a, b, np.full(100, np.nan), np.arange(100))
    mon = reg.signals[("1", "error")]
    assert mon.n_skipped == 1 and mon.n_seen == 99
    assert mon.standardiser.mean == pytest.approx(float(np.nanmean(np.abs(a - b))))


def test_missing_scores_are_missing_not_zero() -> None:
    rng = np.random.default_rng(6)
    mon = ModelMonitor(small_spec())
    v, ts, feats, scores, preds, pos = small_batch(rng, 200, T0)
    scores[150:] = np.nan
    mon.add_predictions(v, ts, feats, scores, preds, pos)
    assert int(mon.windows[("1", T0)].counts["__score__"].sum()) == 50
    assert mon.signals[("1", "score")].n_skipped == 50


def test_mismatched_lengths_are_rejected() -> None:
    mon = ModelMonitor(small_spec())
    v, ts, feats, scores, preds, pos = small_batch(np.random.default_rng(7), 10, T0)
    with pytest.raises(ValueError, match="one entry per event"):
        mon.add_predictions(v, ts, feats[:9], scores, preds, pos)
    with pytest.raises(ValueError, match="one score per event"):
        mon.add_predictions(v, ts, feats, scores[:9], preds, pos)


def test_segment_rules_fire_with_their_segment() -> None:
    rule = {"name": "low-acc", "kind": "threshold", "metric": "accuracy", "op": "<", "value": 0.8,
            "min_samples": 10}  # fmt: skip
    spec = small_spec().model_copy(update={"rules": [rule]})
    mon = ModelMonitor(spec)
    metrics = {"": {"accuracy": (0.9, 500)}, "region=eu": {"accuracy": (0.5, 200)}}
    report = mon.close_window("1", T0, T0 + WINDOW_MS, metrics, NOW)
    got = [(a.rule, a.segment, a.state, a.observed) for a in report.alerts]
    assert got == [("low-acc", "region=eu", "firing", 0.5)]


def test_checkpoint_round_trip_continues_identically() -> None:
    sc = Scenario(models=("credit-risk",), seed=5, start_ms=T0, drift_at_ms=T0 + 2 * WINDOW_MS)
    spec = ModelSpec.model_validate(sc.specs()[0])
    events = sc.predictions(4 * 3000, rate_per_s=RATE)
    params = DetectorParams(warmup=200)
    mon = ModelMonitor(spec, detector_params=params)
    _feed_predictions(mon, events[:500])  # mid-reference
    restored = ModelMonitor.from_bytes(mon.to_bytes(), spec, params)
    assert restored.reference is None
    a = _feed_predictions(mon, events[500:6500], 500)
    b = _feed_predictions(restored, events[500:6500], 500)
    restored = ModelMonitor.from_bytes(restored.to_bytes(), spec, params)  # with open windows and detectors
    a += _feed_predictions(mon, events[6500:], 6500)
    b += _feed_predictions(restored, events[6500:], 6500)
    assert a == b and a
    for w in range(4):
        start = T0 + w * WINDOW_MS
        ra = mon.close_window("3", start, start + WINDOW_MS, {}, NOW)
        rb = restored.close_window("3", start, start + WINDOW_MS, {}, NOW)
        assert _comparable(ra.feature_drift) == _comparable(rb.feature_drift)
        assert ra.data_quality == rb.data_quality and ra.alerts == rb.alerts
    assert restored.tracker.to_bytes() == mon.tracker.to_bytes()


def _comparable(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in r) for r in rows]


def test_checkpoint_of_another_model_is_refused() -> None:
    raw = ModelMonitor(small_spec()).to_bytes()
    other = small_spec().model_copy(update={"model_id": "other"})
    with pytest.raises(ValueError, match="checkpoint is of model 'm'"):
        ModelMonitor.from_bytes(raw, other)
    with pytest.raises(ValueError, match="model_monitor checkpoint refused: an old pickle checkpoint"):
        ModelMonitor.from_bytes(b"\x80\x05N.", other)


def test_a_feature_threshold_overrides_the_model_threshold() -> None:
    """income drifts by 1.5 std: with its own loose PSI and JS thresholds those two tests no longer flag it,
    while KS (still at the model's p-value) and channel's PSI (the model's 0.2) do."""
    sc = Scenario(models=("credit-risk",), seed=3, start_ms=T0, drift_at_ms=T0 + DRIFT_WINDOW * WINDOW_MS)
    raw = sc.specs()[0]
    for feature in raw["features"]:
        if feature["name"] == "income":
            feature.update(psi_threshold=1e6, js_threshold=1.0)
    spec = ModelSpec.model_validate(raw)
    monitor = ModelMonitor(spec)
    _feed_predictions(monitor, sc.predictions(N_WINDOWS * 3000, rate_per_s=RATE))
    last = N_WINDOWS - 1
    report = monitor.close_window(spec.version, T0 + last * WINDOW_MS, T0 + (last + 1) * WINDOW_MS, {"": {}}, NOW)
    rows = {(row[5], row[6]): row for row in report.feature_drift}
    assert rows[("income", "psi")][9] == 1e6 and rows[("income", "psi")][7] > 0.2
    assert rows[("income", "psi")][10] == 0 and rows[("income", "js")][10] == 0
    assert rows[("income", "ks")][10] == 1
    assert rows[("channel", "psi")][9] == 0.2 and rows[("channel", "psi")][10] == 1


def test_late_labels_re_evaluate_metric_rules_of_a_closed_window_once() -> None:
    """At close the window has too few labels for the rule; labels arriving later make it fire, once."""
    rule = {"name": "low-acc", "kind": "threshold", "metric": "accuracy", "op": "<", "value": 0.8,
            "min_samples": 50}  # fmt: skip
    mon = ModelMonitor(small_spec().model_copy(update={"rules": [rule]}))
    assert mon.close_window("1", T0, T0 + WINDOW_MS, {"": {"accuracy": (0.2, 5)}}, NOW).alerts == []
    assert mon.revise_window("1", T0, T0 + WINDOW_MS, {"": {"accuracy": (0.3, 40)}}, NOW) == []
    fired = mon.revise_window("1", T0, T0 + WINDOW_MS, {"": {"accuracy": (0.4, 200)}}, NOW)
    assert [(a.rule, a.state, a.observed) for a in fired] == [("low-acc", "firing", 0.4)]
    assert mon.revise_window("1", T0, T0 + WINDOW_MS, {"": {"accuracy": (0.41, 210)}}, NOW) == []


def test_input_detectors_watch_from_the_first_value_after_the_reference_and_estimate_the_change() -> None:
    rng = np.random.default_rng(12)
    ref_rows = small_batch(rng, 2000, T0)
    reference = profile_records(ref_rows[2], ["x"], ["c"])
    reference["__score__"] = profile_numeric(ref_rows[3])
    mon = ModelMonitor(small_spec(), reference)
    before = small_batch(rng, 100, T0)  # the stream starts 100 values before a 1-sigma shift of x
    after = small_batch(rng, 300, T0 + 100, shift=1.0)
    versions, ts, feats, scores, preds, pos = after
    found = mon.add_predictions(*before) + mon.add_predictions(versions, ts, feats, scores, preds, pos + 100)
    cusum = [d for d in found if d.detector == "cusum"]
    # a mean shift raises the squared score too; nothing else moved
    assert cusum and {d.signal for d in cusum} <= {"input:x", "input:x:variance"}
    first = next(d for d in cusum if d.signal == "input:x")
    assert 100 <= first.position < 150 and first.change_position is not None
    assert abs(first.change_position - 100) < 30
    assert first.change_time_ms == T0 + first.change_position  # one event per millisecond here
    assert first.event_time_ms == T0 + first.position and first.estimate_after > 0.5
    row = dict(zip(DRIFT_EVENT_COLUMNS, detection_row(first, "m"), strict=True))
    assert row["change_position"] == first.change_position and row["change_time"] is not None
    # a checkpoint keeps the CUSUM state: both continue identically
    restored = ModelMonitor.from_bytes(mon.to_bytes(), small_spec())
    more = small_batch(rng, 400, T0 + 400, shift=1.0)
    later = [(d.signal, d.position, d.change_position) for d in mon.add_predictions(*more)]
    again = [(d.signal, d.position, d.change_position) for d in restored.add_predictions(*more)]
    assert later == again and any(s.startswith("input:") for s, _, _ in later)


def test_input_detectors_stay_quiet_on_an_unchanged_stream() -> None:
    rng = np.random.default_rng(13)
    ref_rows = small_batch(rng, 2000, T0)
    mon = ModelMonitor(small_spec(), profile_records(ref_rows[2], ["x"], ["c"]))
    found = []
    for i in range(20):
        found += mon.add_predictions(*small_batch(rng, 1000, T0 + 1000 * i))
    assert not [d for d in found if d.detector == "cusum"]


def test_output_detectors_are_seeded_from_the_reference_score_profile() -> None:
    rng = np.random.default_rng(14)
    ref_rows = small_batch(rng, 2000, T0)
    reference = profile_records(ref_rows[2], ["x"], ["c"])
    reference["__score__"] = profile_numeric(ref_rows[3])
    mon = ModelMonitor(small_spec(), reference)
    mon.add_predictions(*small_batch(rng, 10, T0))
    sig = mon.signals[("1", "score")]
    assert sig.standardiser.fixed and sig.standardiser.mean == pytest.approx(float(np.mean(ref_rows[3])))
    assert sig.standardiser.std == pytest.approx(float(np.std(ref_rows[3])))
    unseeded = ModelMonitor(small_spec())
    unseeded.add_predictions(*small_batch(rng, 10, T0))
    assert not unseeded.signals[("1", "score")].standardiser.fixed
