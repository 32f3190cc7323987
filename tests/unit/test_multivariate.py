"""PCA reconstruction-error drift: checked against scikit-learn's PCA and scipy's normal distribution; calibrated at
windows of 200 to 10,000 rows; a correlation-only change is seen by it and by none of the univariate window tests,
also through the monitor; its state survives checkpoints."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest
from scipy.stats import norm
from sklearn.decomposition import PCA

from stream.contracts.events import ModelSpec
from stream.contracts.state_codec import decode_state, encode_state
from stream.monitor.drift_stats import compare, significance_tests
from stream.monitor.model_monitor import ModelMonitor
from stream.monitor.multivariate import MULTIVARIATE, PCADrift, PCAReference
from stream.monitor.profiles import bin_counts, profile_numeric
from stream.monitor.report import FEATURE_DRIFT_COLUMNS, WindowReport

NAMES = ["a", "b", "c", "d", "e"]
LEVEL = 0.005 / 11  # the share of a 5-numeric-input model window: KS + chi-square per input, and this test


def correlated(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    cov = np.eye(5)
    cov[0, 1] = cov[1, 0] = rho
    return rng.multivariate_normal(np.zeros(5), cov, n)


def test_fit_statistic_and_verdict_match_sklearn_and_scipy() -> None:
    rng = np.random.default_rng(1)
    ref = correlated(rng, 4000, 0.9) * [1, 2, 3, 4, 5] + 10
    det = PCADrift.fit(NAMES, ref)
    fit, held = ref[:2000], ref[2000:]  # first half fits, second half is held out
    mean, std = fit.mean(axis=0), fit.std(axis=0)
    pca = PCA(n_components=det.components.shape[0]).fit((fit - mean) / std)
    assert np.cumsum(pca.explained_variance_ratio_)[-1] >= 0.65 > np.cumsum(pca.explained_variance_ratio_)[-2]

    def errors(x: np.ndarray) -> np.ndarray:
        z = (x - mean) / std
        return np.asarray(np.linalg.norm(z - pca.inverse_transform(pca.transform(z)), axis=1))

    held_err = errors(held)
    assert det.center == pytest.approx(held_err.mean(), rel=1e-9)
    assert det.spread == pytest.approx(held_err.std(ddof=1), rel=1e-9)
    assert det.held_out == 2000
    window = correlated(rng, 700, 0.5) * [1, 2, 3, 4, 5] + 10
    r = det.test(window, LEVEL)
    expected = errors(window).mean()
    z = (expected - held_err.mean()) / (held_err.std(ddof=1) * math.sqrt(1 / 700 + 1 / 2000))
    assert r.statistic == pytest.approx(expected, rel=1e-9)
    assert r.z == pytest.approx(z, rel=1e-9)
    assert r.p_value == pytest.approx(2 * norm.sf(abs(z)), rel=1e-9)
    se = held_err.std(ddof=1) * math.sqrt(1 / 700 + 1 / 2000)
    assert (r.lower, r.upper) == pytest.approx((held_err.mean() - norm.isf(LEVEL / 2) * se,
                                                held_err.mean() + norm.isf(LEVEL / 2) * se), rel=1e-9)
    assert r.p_value is not None and r.drifted == (r.p_value < LEVEL and abs(expected / held_err.mean() - 1) >= 0.02)
    z_win = (window - mean) / std
    resid = z_win - pca.inverse_transform(pca.transform(z_win))
    z_held = (held - mean) / std
    ref_resid = z_held - pca.inverse_transform(pca.transform(z_held))
    ratio = (resid**2).mean(axis=0) / (ref_resid**2).mean(axis=0)
    assert dict(r.attribution) == pytest.approx(dict(zip(NAMES, ratio.tolist(), strict=True)), rel=1e-9)


def test_batches_give_the_fit_of_one_batch() -> None:
    rng = np.random.default_rng(4)
    rows = correlated(rng, 1200, 0.7) * 1000 + 1e6  # large offsets: the merged scatter must stay accurate
    rows[::7, 2] = np.nan  # incomplete rows are skipped
    whole = PCADrift.fit(NAMES, rows[:1000])
    complete = int(np.isfinite(rows[:1000]).all(axis=1).sum())
    ref = PCAReference(NAMES, complete)
    at = 0
    for size in [1, 13, 200, 5, 400, 1000]:
        at += ref.add(rows[at: at + size])
        if ref.result is not None:
            break
    assert ref.result is not None and at == 1000  # the rest of the last batch is not taken
    assert ref.add(rows[at:]) == 0
    for a, b in [(ref.result.mean, whole.mean), (ref.result.std, whole.std),
                 (np.abs(ref.result.components), np.abs(whole.components)),
                 (ref.result.reference_residual, whole.reference_residual)]:  # fmt: skip
        np.testing.assert_allclose(a, b, rtol=1e-8)
    assert ref.result.center == pytest.approx(whole.center, rel=1e-9)
    assert ref.result.spread == pytest.approx(whole.spread, rel=1e-7)


def test_a_correlation_only_change_is_seen_by_pca_and_by_no_univariate_test() -> None:
    rng = np.random.default_rng(2)
    ref = correlated(rng, 5000, 0.9)
    det = PCADrift.fit(NAMES, ref)
    profiles = [profile_numeric(ref[:, j]) for j in range(5)]
    n_tests = sum(significance_tests(p) for p in profiles) + 1
    changed = correlated(rng, 1000, -0.9)  # same N(0, 1) marginals, the sign of the correlation flipped
    same = correlated(rng, 1000, 0.9)
    result = det.test(changed, LEVEL)
    assert result.drifted and result.statistic > result.upper
    assert {name for name, _ in result.attribution[:2]} == {"a", "b"}
    assert not det.test(same, LEVEL).drifted
    for j, prof in enumerate(profiles):
        for window in (changed, same):
            assert not any(r.drifted for r in compare(prof, bin_counts(prof, window[:, j]), n_tests=n_tests))


def test_false_positive_rate_at_every_window_size() -> None:
    """300 stationary windows per size, each against a fresh reference of 1,000 rows (the calibration must hold
    over references, not for one lucky draw); the standardised difference is about N(0, 1) at every size."""
    rng = np.random.default_rng(7)
    cov = np.full((5, 5), 0.5)
    np.fill_diagonal(cov, 1.0)
    chol = np.linalg.cholesky(cov)
    for n in (200, 1000, 10_000):
        zs, flags = [], 0
        for _ in range(300):
            det = PCADrift.fit(NAMES, rng.standard_normal((1000, 5)) @ chol.T)
            r = det.test(rng.standard_normal((n, 5)) @ chol.T, LEVEL)
            zs.append(r.z)
            flags += r.drifted
        assert flags <= 3, f"{flags}/300 stationary windows of {n} rows flagged"
        assert abs(np.mean(zs)) < 0.2 and 0.85 < np.std(zs) < 1.15, (n, np.mean(zs), np.std(zs))


def test_the_effect_gate_ignores_negligible_changes_of_huge_windows() -> None:
    rng = np.random.default_rng(5)
    det = PCADrift.fit(NAMES, correlated(rng, 1000, 0.9))
    det.held_out = 10**9  # as if the center were known exactly: only the gate keeps a huge window quiet
    window = correlated(rng, 200_000, 0.88)
    r = det.test(window, LEVEL)
    assert r.p_value is not None and r.p_value < LEVEL and r.effect < 0.02 and not r.drifted


def test_edge_cases() -> None:
    rng = np.random.default_rng(3)
    ref = correlated(rng, 2000, 0.5)
    ref[:, 4] = 7.0  # a constant input
    det = PCADrift.fit(NAMES, ref)
    empty = det.test(np.full((0, 5), 1.0), LEVEL)
    assert empty.insufficient and not empty.drifted and math.isnan(empty.statistic)
    nan_rows = correlated(rng, 600, 0.5)
    nan_rows[:, 4] = 7.0
    nan_rows[::2, 0] = np.nan  # rows with NaN are skipped
    r = det.test(nan_rows, LEVEL)
    assert r.n == 300 and not r.drifted and not r.insufficient
    assert det.test(nan_rows[:59], LEVEL).insufficient  # 29 complete rows
    with pytest.raises(ValueError, match="rows x 5"):
        det.test(np.zeros((10, 4)), LEVEL)
    with pytest.raises(ValueError, match="at least 60"):
        PCADrift.fit(NAMES, ref[:59])
    with pytest.raises(ValueError, match="at least 60"):
        PCAReference(NAMES, 10)


# --- through the monitor ------------------------------------------------------------------------------------

WINDOW_MS = 60_000
T0 = 1_700_000_040_000 - 1_700_000_040_000 % WINDOW_MS
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _spec() -> ModelSpec:
    return ModelSpec.model_validate({
        "model_id": "m", "version": "1", "task": "regression",
        "features": [{"name": n, "type": "numeric"} for n in NAMES] + [{"name": "k", "type": "categorical"}],
        "monitor": {"window_seconds": 60}})  # fmt: skip


def _feed(mon: ModelMonitor, rows: np.ndarray, t0: int, rng: np.random.Generator, batch: int = 700) -> None:
    """Rows spread evenly over the window starting at ``t0``, in batches."""
    ts = t0 + np.arange(rows.shape[0]) * (WINDOW_MS - 1) // max(rows.shape[0], 1)
    for lo in range(0, rows.shape[0], batch):
        part = rows[lo: lo + batch]
        features = [{**dict(zip(NAMES, r.tolist(), strict=True)), "k": "x"} for r in part]
        mon.add_predictions(["1"] * len(part), ts[lo: lo + batch], features, np.full(len(part), np.nan),
                            rng.normal(size=len(part)), np.arange(lo, lo + len(part)))  # fmt: skip


def _rows(report: WindowReport) -> dict[tuple[str, str], dict[str, object]]:
    return {(r["feature"], r["test"]): r for r in (dict(zip(FEATURE_DRIFT_COLUMNS, row, strict=True))
                                                   for row in report.feature_drift)}  # fmt: skip


def test_the_monitor_flags_a_correlation_only_change_as_multivariate_drift_only() -> None:
    rng = np.random.default_rng(11)
    mon = ModelMonitor(_spec())
    _feed(mon, correlated(rng, 1000, 0.9), T0, rng)  # the reference: profiles and the PCA
    assert isinstance(mon.pca["1"], PCADrift)
    same, changed = correlated(rng, 2000, 0.9), correlated(rng, 2000, -0.9)
    _feed(mon, same, T0 + WINDOW_MS, rng)
    _feed(mon, changed, T0 + 2 * WINDOW_MS, rng)
    family = 5 * 2 + 1 + 2 + 1  # KS + chi2 per numeric input, chi2 of k, KS + chi2 of __prediction__, PCA
    verdicts = []
    for w, rows in ((1, same), (2, changed)):
        report = mon.close_window("1", T0 + w * WINDOW_MS, T0 + (w + 1) * WINDOW_MS, {}, NOW)
        by = _rows(report)
        pca = by[(MULTIVARIATE, "pca_reconstruction")]
        expected = mon.pca["1"].test(rows, 0.005 / family) if isinstance(mon.pca["1"], PCADrift) else None
        assert expected is not None and pca["statistic"] == pytest.approx(expected.statistic, rel=1e-12)
        assert pca["samples"] == 2000 and pca["threshold"] == pytest.approx(0.005 / family)
        assert by[("a", "ks")]["threshold"] == pytest.approx(0.005 / family)  # one family with the univariate tests
        assert not any(r["drifted"] for (f, _), r in by.items() if f != MULTIVARIATE)
        details = orjson.loads(str(pca["details"]))
        verdicts.append((pca["drifted"], report.drifted_features, {n for n, _ in details["attribution"][:2]}))
    assert verdicts[0][:2] == (0, ())
    assert verdicts[1] == (1, (MULTIVARIATE,), {"a", "b"})


def test_while_its_reference_is_collected_the_test_is_insufficient_but_in_the_family() -> None:
    rng = np.random.default_rng(12)
    mon = ModelMonitor(_spec())
    _feed(mon, correlated(rng, 1000, 0.9), T0, rng)  # the profiles (the model's first 1,000 events) ...
    mon.pca.clear()  # ... and, as after an old checkpoint, a PCA reference still to collect
    _feed(mon, correlated(rng, 400, 0.9), T0 + WINDOW_MS, rng)
    by = _rows(mon.close_window("1", T0 + WINDOW_MS, T0 + 2 * WINDOW_MS, {}, NOW))
    row = by[(MULTIVARIATE, "pca_reconstruction")]
    assert (row["insufficient"], row["drifted"], row["samples"]) == (1, 0, 0)
    assert orjson.loads(str(row["details"])) == {"reference_rows": 400, "reference_events": 1000}
    assert row["threshold"] == by[("a", "ks")]["threshold"] == pytest.approx(0.005 / 14)


def test_models_with_fewer_than_two_numeric_inputs_have_no_multivariate_test() -> None:
    features = [{"name": "a", "type": "numeric"}, {"name": "k", "type": "categorical"}]
    spec = ModelSpec.model_validate({"model_id": "m", "version": "1", "task": "regression", "features": features,
                                     "monitor": {"window_seconds": 60}})  # fmt: skip
    mon = ModelMonitor(spec)
    rng = np.random.default_rng(1)
    ts = T0 + np.arange(2000) * 30
    mon.add_predictions(["1"] * 2000, ts, [{"a": float(v), "k": "x"} for v in rng.normal(size=2000)],
                        np.full(2000, np.nan), rng.normal(size=2000), np.arange(2000))  # fmt: skip
    report = mon.close_window("1", T0, T0 + WINDOW_MS, {}, NOW)
    assert mon.pca == {} and all(row[5] != MULTIVARIATE for row in report.feature_drift)


def test_the_multivariate_test_takes_the_first_50_numeric_inputs() -> None:
    features = [{"name": f"x{i:02d}", "type": "numeric"} for i in range(55)]
    spec = ModelSpec.model_validate({"model_id": "m", "task": "regression", "features": features})
    assert ModelMonitor(spec).pca_names == [f"x{i:02d}" for i in range(50)]


def _close_all(mon: ModelMonitor) -> list[tuple[object, ...]]:
    rows = []
    for version, start in mon.open_windows():
        rows += mon.close_window(version, start, start + WINDOW_MS, {}, NOW).feature_drift
    return rows


@pytest.mark.parametrize("first", [300, 700, 1600])  # fitting, holding out, fitted with an open window
def test_checkpoints_keep_the_reference_and_the_window_sums(first: int) -> None:
    rng = np.random.default_rng(21)
    rows = correlated(rng, 3000, 0.8)
    mon = ModelMonitor(_spec())
    _feed(mon, rows[:first], T0, np.random.default_rng(0))
    restored = ModelMonitor.from_bytes(mon.to_bytes(), _spec())
    assert type(restored.pca["1"]) is type(mon.pca["1"])
    for m in (mon, restored):
        _feed(m, rows[first:], T0 + WINDOW_MS, np.random.default_rng(1))
    assert isinstance(restored.pca["1"], PCADrift)
    np.testing.assert_allclose(restored.pca["1"].components, mon.pca["1"].components, rtol=1e-12)  # type: ignore[union-attr]
    a, b = _close_all(mon), _close_all(restored)
    assert any(r[5] == MULTIVARIATE and not r[11] for r in a)
    assert [r[5:] for r in a] == [r[5:] for r in b]


def test_an_old_checkpoint_without_multivariate_state_loads_and_collects_afresh() -> None:
    rng = np.random.default_rng(22)
    mon = ModelMonitor(_spec())
    _feed(mon, correlated(rng, 1500, 0.8), T0, rng)
    version, state = decode_state(mon.to_bytes(), "model_monitor", (2,))
    del state["pca"], state["pca_windows"]
    old = ModelMonitor.from_bytes(encode_state("model_monitor", version, state), _spec())
    assert old.pca == {} and all(s.pca is None for s in old.windows.values())
    _feed(old, correlated(rng, 1000, 0.8), T0 + WINDOW_MS, rng)
    assert isinstance(old.pca["1"], PCADrift)
    report = old.close_window("1", T0, T0 + WINDOW_MS, {}, NOW)  # no sums: an insufficient row
    assert _rows(report)[(MULTIVARIATE, "pca_reconstruction")]["insufficient"] == 1
