"""Drift statistics and data quality per segment (top-K by volume per field plus ``__other__``, intersections),
checked against scipy on known data; the per-segment Bonferroni family; checkpoints with and without segments."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from scipy.stats import chi2_contingency, ks_2samp

from stream.contracts.events import ModelSpec
from stream.contracts.state_codec import decode_state, encode_state
from stream.monitor.model_monitor import ModelMonitor
from stream.monitor.profiles import FeatureProfile, profile_categorical, profile_numeric
from stream.monitor.quality import FeatureSpec, QualityAccumulator, add_grouped, to_columns
from stream.monitor.report import DATA_QUALITY_COLUMNS, FEATURE_DRIFT_COLUMNS, WindowReport
from stream.monitor.segments import SegmentRanker, segment_key

WINDOW_MS = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % WINDOW_MS
NOW = datetime(2030, 1, 1, tzinfo=UTC)
CATS = ("a", "b", "c", "d")


def _spec(**extra: Any) -> ModelSpec:
    monitor = {"window_seconds": WINDOW_MS // 1000, **extra.pop("monitor", {})}
    return ModelSpec.model_validate({
        "model_id": "m", "task": "regression",
        "features": [{"name": "x", "type": "numeric"}, {"name": "c", "type": "categorical"}],
        "segment_fields": ["store"], "monitor": monitor,
        "rules": [{"disable": "default-feature-drift"}], **extra})


def _reference(rng: np.random.Generator, n: int = 4000) -> dict[str, FeatureProfile]:
    """Integer x in 0..19 with one bin per value (binned KS is then exact), four categories."""
    x = rng.integers(0, 20, n).astype(np.float64)
    return {"x": profile_numeric(x, edges=[i + 0.5 for i in range(19)]),
            "c": profile_categorical(rng.choice(np.array(CATS, dtype=object), n)),
            "__prediction__": profile_numeric(rng.normal(size=n))}


def _feed(mon: ModelMonitor, xs: np.ndarray, cs: list[Any], stores: list[dict[str, str]], start: int = T0) -> None:
    n = xs.size
    ts = start + np.arange(n, dtype=np.int64) * ((T0 + WINDOW_MS - start) // max(n, 1))  # all in window T0
    features = [{"x": float(x), "c": c} if c is not None else {"x": float(x)} for x, c in zip(xs, cs, strict=True)]
    for lo in range(0, n, 700):  # several batches, as the aggregator sends them
        sl = slice(lo, lo + 700)
        k = len(features[sl])
        mon.add_predictions(["1"] * k, ts[sl], features[sl], np.full(k, np.nan), np.zeros(k),
                            np.arange(lo, lo + k), stores[sl])


def _close(mon: ModelMonitor, start: int = T0) -> WindowReport:
    return mon.close_window("1", start, start + WINDOW_MS, {"": {}}, NOW)


def _rows(report: WindowReport) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["segment"], r["feature"], r["test"]): r
            for r in (dict(zip(FEATURE_DRIFT_COLUMNS, row, strict=True)) for row in report.feature_drift)}


def _store_stream(rng: np.random.Generator, n: int, shifted: str | None) -> tuple[np.ndarray, list[Any],
                                                                                  list[dict[str, str]]]:
    stores = [f"s{i}" for i in rng.integers(0, 10, n)]
    xs = rng.integers(0, 20, n).astype(np.float64)
    if shifted is not None:
        sel = np.array([s == shifted for s in stores])
        xs[sel] = np.minimum(xs[sel] + 6, 19)  # a large shift, confined to one store
    cs = list(rng.choice(np.array(CATS, dtype=object), n))
    return xs, cs, [{"store": s} for s in stores]


def test_a_shift_in_one_of_ten_segments_is_flagged_there_and_not_diluted_in_the_whole_model() -> None:
    rng = np.random.default_rng(7)
    mon = ModelMonitor(_spec(), _reference(rng))
    xs, cs, stores = _store_stream(rng, 3000, shifted="s3")
    _feed(mon, xs, cs, stores)
    rows = _rows(_close(mon))
    whole, seg = rows[("", "x", "ks")], rows[("store=s3", "x", "ks")]
    assert seg["drifted"] == 1 and whole["drifted"] == 0
    assert seg["p_value"] < 1e-12 < whole["p_value"]
    assert not any(r["drifted"] for (s, f, _), r in rows.items() if s not in ("", "store=s3") and f == "x")
    assert {s for s, _, _ in rows} == {"", *(f"store=s{i}" for i in range(10))}  # 10 values <= K (10)


def test_segment_statistics_equal_scipy_on_the_same_rows() -> None:
    rng = np.random.default_rng(11)
    ref = _reference(rng)
    mon = ModelMonitor(_spec(), ref)
    xs, cs, stores = _store_stream(rng, 3000, shifted="s3")
    _feed(mon, xs, cs, stores)
    rows = _rows(_close(mon))
    ref_x = np.repeat(np.arange(20, dtype=np.float64), ref["x"].counts)  # the reference, value by value
    for store in ("s3", "s5"):
        sel = np.array([s["store"] == store for s in stores])
        ks = rows[(f"store={store}", "x", "ks")]
        expected = ks_2samp(ref_x, xs[sel], method="asymp")
        assert ks["statistic"] == pytest.approx(expected.statistic, abs=1e-12)
        assert ks["samples"] == sel.sum()
        if expected.pvalue > 1e-10:
            assert ks["p_value"] == pytest.approx(expected.pvalue, rel=0.05)
        window_c = [sum(1 for c, s in zip(cs, sel, strict=True) if s and c == k) for k in CATS]
        stat, p, _, _ = chi2_contingency(np.array([ref["c"].counts, window_c]), correction=False)
        chi2 = rows[(f"store={store}", "c", "chi2")]
        assert (chi2["statistic"], chi2["p_value"]) == (pytest.approx(stat), pytest.approx(p))


def test_segment_tests_are_one_bonferroni_family_over_the_tested_segments() -> None:
    rng = np.random.default_rng(3)
    spec = _spec(monitor={"min_samples": 100})
    mon = ModelMonitor(spec, _reference(rng))
    xs, cs, stores = _store_stream(rng, 1500, shifted=None)
    # an 11th value with 50 events: beyond the top 10, it is __other__, whose 50 < min_samples: not tested
    stores = [{"store": "tiny"} if i < 50 else s for i, s in enumerate(stores)]
    _feed(mon, xs, cs, stores)
    rows = _rows(_close(mon))
    n_tests = 2 + 1 + 2  # x (KS, chi-square), c (chi-square), the prediction (KS, chi-square)
    tested = {s for s, _, _ in rows if s and s != "store=__other__"}
    assert len(tested) == 10
    assert rows[("", "x", "ks")]["threshold"] == pytest.approx(0.01 / n_tests)
    for seg in tested:
        assert rows[(seg, "x", "ks")]["threshold"] == pytest.approx(0.01 / (n_tests * len(tested)))
    assert rows[("store=__other__", "x", "ks")]["insufficient"] == 1


def test_only_the_top_k_values_by_volume_get_segments_and_the_rest_fold_into_other() -> None:
    rng = np.random.default_rng(5)
    mon = ModelMonitor(_spec(monitor={"segment_top_k": 2}), _reference(rng))
    n = 2000
    # big1 and big2 carry most events; 300 rare values (a high-cardinality field) share the rest
    stores = [{"store": "big1" if i % 3 == 0 else "big2" if i % 3 == 1 else f"rare{i % 300}"} for i in range(n)]
    xs, cs, _ = _store_stream(rng, n, None)
    _feed(mon, xs, cs, stores)
    assert len(mon.ranker.volumes["store"]) <= mon.ranker.capacity if mon.ranker else False
    report = _close(mon)
    segments = {r[2] for r in report.feature_drift}
    assert segments == {"", "store=big1", "store=big2", "store=__other__"}
    samples = {(r[2], r[6]): r[12] for r in report.feature_drift if r[5] == "x"}
    assert samples[("store=__other__", "ks")] == sum(s["store"].startswith("rare") for s in stores)


def test_intersections_of_two_fields_get_their_own_segments() -> None:
    rng = np.random.default_rng(9)
    spec = _spec(segment_fields=["store", "tier"], segment_intersections=[["store", "tier"]],
                 monitor={"segment_top_k": 3})
    mon = ModelMonitor(spec, _reference(rng))
    n = 1200
    xs, cs, _ = _store_stream(rng, n, None)
    stores = [{"store": f"s{i % 2}", "tier": "gold" if i % 4 < 2 else "basic"} for i in range(n)]
    _feed(mon, xs, cs, stores)
    segments = {r[2] for r in _close(mon).feature_drift}
    assert {"store=s0&tier=gold", "store=s1&tier=basic", "tier=gold"} <= segments
    assert segment_key(("store", "tier"), "__other__") == "store&tier=__other__"


def test_data_quality_per_segment_counts_that_segments_rows() -> None:
    rng = np.random.default_rng(2)
    mon = ModelMonitor(_spec(), _reference(rng))
    xs, cs, stores = _store_stream(rng, 2000, None)
    cs = [None if s["store"] == "s1" and i % 2 else c for i, (c, s) in enumerate(zip(cs, stores, strict=True))]
    _feed(mon, xs, cs, stores)
    report = _close(mon)
    got = {(r[9], r[4]): (r[6], r[7]) for r in report.data_quality if r[5] == "missing_rate"}
    in_s1 = [c for c, s in zip(cs, stores, strict=True) if s["store"] == "s1"]
    assert got[("store=s1", "c")] == (pytest.approx(np.mean([c is None for c in in_s1])), len(in_s1))
    assert got[("store=s2", "c")][0] == 0.0
    assert got[("", "c")][0] == pytest.approx(np.mean([c is None for c in cs]))
    assert all(len(r) == len(DATA_QUALITY_COLUMNS) for r in report.data_quality)


def test_a_feature_drift_rule_fires_for_the_drifted_segment() -> None:
    rng = np.random.default_rng(7)
    spec = _spec(rules=[{"disable": "default-feature-drift"},
                        {"name": "x-drift", "kind": "feature_drift", "feature": "x", "test": "ks"}])
    mon = ModelMonitor(spec, _reference(rng))
    xs, cs, stores = _store_stream(rng, 3000, shifted="s3")
    _feed(mon, xs, cs, stores)
    firing = [(a.segment, a.rule) for a in _close(mon).alerts if a.state == "firing"]
    assert firing == [("store=s3", "x-drift")]


def test_top_k_zero_turns_segments_off() -> None:
    rng = np.random.default_rng(1)
    mon = ModelMonitor(_spec(monitor={"segment_top_k": 0}), _reference(rng))
    _feed(mon, *_store_stream(rng, 500, None))
    assert {r[2] for r in _close(mon).feature_drift} == {""}


def test_ranker_keeps_the_heaviest_values_and_stays_bounded() -> None:
    r = SegmentRanker(k=3, capacity=20)
    for i in range(100):
        r.observe("f", ["hot"] * 5 + ["warm"] * 3 + [f"cold{i}", None])
    assert r.members("f")[:2] == ["hot", "warm"] and len(r.volumes["f"]) <= 20
    r.decay()
    assert r.volumes["f"]["hot"] == 250.0
    assert SegmentRanker.from_state(r.state(), 3).volumes == r.volumes


def test_intersections_must_name_declared_fields() -> None:
    with pytest.raises(ValueError, match="segment_intersections"):
        _spec(segment_intersections=[["store", "nope"]])


def test_segment_sketches_survive_a_checkpoint_and_an_old_checkpoint_still_loads() -> None:
    rng = np.random.default_rng(7)
    spec = _spec()
    ref = _reference(rng)
    mon = ModelMonitor(spec, ref)
    xs, cs, stores = _store_stream(rng, 3000, shifted="s3")
    _feed(mon, xs[:1500], cs[:1500], stores[:1500])
    blob = mon.to_bytes()
    restored = ModelMonitor.from_bytes(blob, spec)
    for m in (mon, restored):
        _feed(m, xs[1500:], cs[1500:], stores[1500:], start=T0 + WINDOW_MS // 2)
    expected = _close(mon).feature_drift
    assert _close(restored).feature_drift == expected
    version, state = decode_state(blob, "model_monitor", (2,))
    # the first form of the segment state (a plain dict, before it was deflated) loads the same
    plain = decode_state(zlib.decompress(state["segment_windows"]), "monitor_segments")[1]
    first_form = ModelMonitor.from_bytes(encode_state("model_monitor", version, {**state, "segment_windows": plain}),
                                         spec)
    _feed(first_form, xs[1500:], cs[1500:], stores[1500:], start=T0 + WINDOW_MS // 2)
    assert _close(first_form).feature_drift == expected
    # a checkpoint written before segments existed: no segment keys; it loads, with whole-model sketches only
    for key in ("segment_windows", "segment_ranker", "newest_start"):
        state.pop(key)
    old = ModelMonitor.from_bytes(encode_state("model_monitor", version, state), spec)
    report = _close(old)
    assert {r[2] for r in report.feature_drift} == {""} and report.samples == 1500


def test_grouped_quality_counts_equal_add_columns_on_each_groups_rows() -> None:
    rng = np.random.default_rng(4)
    specs = [FeatureSpec("x", "numeric", range=(0.0, 1.0)), FeatureSpec("c", "categorical", categories=("a", "b")),
             FeatureSpec("k", "categorical")]
    n = 600
    pool_x: list[Any] = [0.5, 2.0, -1.0, None, float("nan"), "text", 0.25, 0.75]
    pool_c: list[Any] = ["a", "b", "new1", "new2", None, 3, 1.5]
    records = []
    for i in range(n):
        r: dict[str, Any] = {"x": pool_x[rng.integers(len(pool_x))], "c": pool_c[rng.integers(len(pool_c))]}
        if i % 7:
            r["k"] = "same"  # constant where present; absent in every 7th row
        records.append(r)
    group = rng.integers(-1, 4, n)
    group[group == 2] = 3  # group 2 has no rows
    grouped: list[QualityAccumulator | None] = [QualityAccumulator(specs) if j != 2 else None for j in range(4)]
    add_grouped(grouped, to_columns(records, specs), group)
    for j in (0, 1, 3):
        one = QualityAccumulator(specs)
        one.add_columns(to_columns([r for r, g in zip(records, group, strict=True) if g == j], specs))
        got = grouped[j]
        assert got is not None
        assert got.n == one.n and got.results() == one.results()


def test_on_unchanged_data_the_segment_family_flags_at_most_about_alpha_of_the_windows() -> None:
    """200 null model windows of 10 segments x 2 features, sampled from the reference itself: the share of windows
    with any flagged segment test stays near alpha (0.01) with the family correction; uncorrected it is far above."""
    from stream.monitor.drift_stats import Thresholds, compare

    rng = np.random.default_rng(12)
    ref = _reference(rng)
    profiles = {name: ref[name] for name in ("x", "c")}
    n_tests, segments = 3, 10  # x: KS and chi-square, c: chi-square
    flagged = {"family": 0, "uncorrected": 0}
    for _ in range(200):
        any_flag = dict.fromkeys(flagged, False)
        for _ in range(segments):
            for p in profiles.values():
                counts = rng.multinomial(300, np.asarray(p.counts) / sum(p.counts))
                if p.kind == "categorical":
                    counts = np.append(counts, 0)
                for family, m in (("family", n_tests * segments), ("uncorrected", 1)):
                    results = compare(p, counts, thresholds=Thresholds(), n_tests=m)
                    any_flag[family] |= any(r.drifted for r in results)
        for family, hit in any_flag.items():
            flagged[family] += hit
    assert flagged["family"] <= 4  # <= 2% of 200 windows (expected <= 1%: Bonferroni bounds it by alpha)
    assert flagged["uncorrected"] >= 5 * max(flagged["family"], 3)
