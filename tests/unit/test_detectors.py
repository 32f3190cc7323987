from __future__ import annotations

import numpy as np
import pytest
from river import drift

from stream.monitor.detectors import (
    Detection,
    DetectorParams,
    MonitorBank,
    PositionClock,
    SignalMonitor,
    Standardiser,
)


def shifted_stream(
    seed: int = 42, n_before: int = 3000, n_after: int = 2000, shift: float = 1.0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0.0, 1.0, n_before), rng.normal(shift, 1.0, n_after)])


def feed(m: SignalMonitor, x: np.ndarray, batch: int = 250, start: int = 0) -> list[Detection]:
    pos = np.arange(start, start + x.size)
    out: list[Detection] = []
    for k in range(0, x.size, batch):
        out += m.update(x[k : k + batch], pos[k : k + batch] + 10, pos[k : k + batch] * 2)
    return out


def page_hinkley_replay(z: np.ndarray, delta: float, h_up: float, h_down: float) -> list[tuple[int, int]]:
    """Independent replay of the seeded two-sided Page-Hinkley, value by value: (alarm index, change index =
    the value after the argmin of the cumulative sum of the side that alarmed). After an alarm a side is
    clamped at its threshold and silent until its statistic is back at 0."""
    out = []
    for sign, h in ((1.0, h_up), (-1.0, h_down)):
        s, start, held = 0.0, 0, False
        for i, v in enumerate((sign * z).tolist()):
            if held:
                s = min(h, s + v - delta)
                if s <= 0:
                    s, held, start = 0.0, False, i + 1
                continue
            s += v - delta
            if s <= 0:
                s, start = 0.0, i + 1
            elif s > h:
                out.append((i, start))
                s, held = h, True
    return sorted(out)


def reference_detections(x: np.ndarray, params: DetectorParams) -> list[tuple[str, int]]:
    """Independent replay: z from numpy statistics of the warm-up, River's ADWIN fed directly, Page-Hinkley
    replayed value by value (fixed threshold)."""
    w = params.warmup
    mu, sd = x[:w].mean(), x[:w].std(ddof=1)
    z = np.clip((x[w:] - mu) / sd, -params.clip, params.clip)
    adw = drift.ADWIN(**params.adwin_params())
    out = []
    for i, v in enumerate(z.tolist()):
        adw.update(v)
        if adw.drift_detected:
            out.append(("adwin", w + i))
    assert params.ph_threshold is not None
    out += [("page_hinkley", w + i) for i, _ in page_hinkley_replay(z, params.ph_delta, params.ph_threshold,
                                                                    params.ph_threshold)]  # fmt: skip
    return sorted(out, key=lambda t: (t[1], t[0]))


# --- Standardiser -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 7, 100, 5000])
def test_running_standardiser_matches_prefix_statistics(batch: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(50.0, 3.0, 400)
    s = Standardiser(warmup=5, freeze=False, clip=1e9)
    z = np.concatenate([s.transform(x[k : k + batch]) for k in range(0, x.size, batch)])
    expected = [(x[i] - x[:i].mean()) / x[:i].std(ddof=1) for i in range(5, x.size)]
    np.testing.assert_allclose(z, expected, rtol=1e-9, atol=1e-12)
    assert s.n == 400
    assert s.mean == pytest.approx(x.mean(), rel=1e-12)
    assert s.std == pytest.approx(x.std(ddof=1), rel=1e-10)


def test_frozen_standardiser_uses_warmup_statistics_across_batches() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(-2.0, 0.5, 300)
    s = Standardiser(warmup=100)
    parts = [s.transform(x[:60]), s.transform(x[60:170]), s.transform(x[170:])]
    assert [p.size for p in parts] == [0, 70, 130]
    expected = (x[100:] - x[:100].mean()) / x[:100].std(ddof=1)
    np.testing.assert_allclose(np.concatenate(parts), expected, rtol=1e-12)
    assert s.std == pytest.approx(x[:100].std(ddof=1), rel=1e-12)


def test_reference_standardiser_has_no_warmup_and_clips() -> None:
    s = Standardiser(mean=10.0, std=2.0, clip=3.0)
    assert s.transform(np.array([10.0, 12.0, 4.0, 100.0])).tolist() == [0.0, 1.0, -3.0, 3.0]
    assert s.transform(np.array([])).size == 0


def test_constant_signal_gives_zero_then_clip() -> None:
    s = Standardiser(warmup=3, clip=10.0)
    assert s.transform(np.array([5.0, 5.0, 5.0, 5.0, 6.0, 4.0])).tolist() == [0.0, 10.0, -10.0]


@pytest.mark.parametrize(
    "kwargs", [{"mean": 1.0}, {"mean": 0.0, "std": 0.0}, {"mean": 0.0, "std": float("nan")}, {"warmup": 1}]
)
def test_standardiser_rejects_bad_configuration(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Standardiser(**kwargs)  # type: ignore[arg-type]


# --- SignalMonitor ------------------------------------------------------------------------------------------


def test_default_detections_are_pinned() -> None:
    m = SignalMonitor("m", "v", "error")
    found = [(d.detector, d.position) for d in feed(m, shifted_stream())]
    assert found == PINNED


PINNED = [("page_hinkley", 3046), ("adwin", 3047)]  # ADWIN delta 2e-5, clock 8 (3039 at 2e-4); PH seeded since #18


def test_detections_match_river_fed_directly() -> None:
    x = np.concatenate([shifted_stream(seed=3, shift=0.5), shifted_stream(seed=4, shift=-1.0) + 0.5])
    params = DetectorParams(ph_threshold=30.0)
    m = SignalMonitor(params=params)
    got = [(d.detector, d.position) for d in feed(m, x, batch=333)]
    want = reference_detections(x, params)
    assert got == sorted(want, key=lambda t: (t[1], t[0]))
    assert len(got) >= 3
    assert m.n_detections == {
        "adwin": sum(1 for d, _ in want if d == "adwin"),
        "page_hinkley": sum(1 for d, _ in want if d == "page_hinkley"),
    }
    assert m.n_seen == x.size


def test_detection_fields_and_estimates() -> None:
    x = shifted_stream()
    params = DetectorParams()
    m = SignalMonitor("m1", "v2", "score", params=params)
    dets = feed(m, x)
    w = params.warmup
    z = (x[w:] - x[:w].mean()) / x[:w].std(ddof=1)
    adw = next(d for d in dets if d.detector == "adwin")
    assert (adw.model_id, adw.version, adw.signal) == ("m1", "v2", "score")
    assert adw.source_position == adw.position + 10
    assert adw.event_time_ms == adw.position * 2
    assert adw.params == params.adwin_params()
    assert adw.scale_mean == pytest.approx(x[:w].mean())
    assert adw.scale_std == pytest.approx(x[:w].std(ddof=1))
    # first detection: ADWIN's window before it holds every value fed so far
    assert adw.estimate_before == pytest.approx(z[: adw.position - w].mean(), rel=1e-9)
    replay = drift.ADWIN(**params.adwin_params())
    for v in z[: adw.position - w + 1].tolist():
        replay.update(v)
    assert replay.drift_detected
    assert adw.estimate_after == pytest.approx(replay.estimation, rel=1e-12)
    ph = next(d for d in dets if d.detector == "page_hinkley")
    assert ph.change_position is not None and 2900 < ph.change_position <= 3000 < ph.position
    assert ph.estimate_before == 0.0  # the reference level
    assert ph.estimate_after == pytest.approx(z[ph.change_position - w : ph.position - w + 1].mean(), rel=1e-9)
    assert ph.params["mode"] == "both" and ph.params["delta"] == params.ph_delta
    # the threshold was sized on the standardised warm-up values (the monitor has no reference)
    assert m.page_hinkley is not None
    assert ph.params["threshold"] == round(m.page_hinkley.h["up"], 3)


def test_estimates_after_a_reset_cover_only_values_since_reset() -> None:
    x = np.concatenate([shifted_stream(seed=5, shift=2.0), np.random.default_rng(6).normal(-1.0, 1.0, 2000)])
    params = DetectorParams(use_page_hinkley=False)
    dets = feed(SignalMonitor(params=params), x, batch=97)
    assert len(dets) >= 2
    w = params.warmup
    z = (x[w:] - x[:w].mean()) / x[:w].std(ddof=1)
    prev, cur = dets[0].position - w, dets[1].position - w
    assert dets[1].estimate_before == pytest.approx(z[prev + 1 : cur].mean(), rel=1e-9)


def test_nan_values_are_skipped_and_do_not_advance_positions() -> None:
    x = shifted_stream()
    with_nan = np.insert(x, [10, 2000, 3100], [np.nan, np.inf, np.nan])
    m_clean, m_nan = SignalMonitor(), SignalMonitor()
    a = [(d.detector, d.position) for d in feed(m_clean, x)]
    b = [(d.detector, d.position) for d in feed(m_nan, with_nan)]
    assert a == b
    assert m_nan.n_skipped == 3 and m_nan.n_seen == x.size


def test_empty_and_warmup_only_batches() -> None:
    m = SignalMonitor()
    empty = np.array([], dtype=float)
    assert m.update(empty, empty.astype(np.int64), empty.astype(np.int64)) == []
    assert m.update(np.full(10, np.nan), np.arange(10), np.arange(10)) == []
    assert m.update(np.ones(999), np.arange(999), np.arange(999)) == []
    assert m.n_seen == 999 and m.n_skipped == 10


def test_constant_signal_never_alarms_until_it_changes() -> None:
    m = SignalMonitor()
    assert feed(m, np.full(5000, 3.0)) == []
    dets = feed(m, np.full(500, 4.0), start=5000)
    assert dets and dets[0].position >= 5000


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="equal length"):
        SignalMonitor().update(np.zeros(3), np.arange(2), np.arange(3))


def test_single_detector_monitors() -> None:
    x = shifted_stream()
    only_ph = SignalMonitor(params=DetectorParams(use_adwin=False))
    only_adwin = SignalMonitor(params=DetectorParams(use_page_hinkley=False))
    both = [(d.detector, d.position) for d in feed(SignalMonitor(), x)]
    assert [(d.detector, d.position) for d in feed(only_ph, x)] == [t for t in both if t[0] == "page_hinkley"]
    assert [(d.detector, d.position) for d in feed(only_adwin, x)] == [t for t in both if t[0] == "adwin"]
    assert only_ph.adwin is None and only_ph.n_detections["adwin"] == 0


def test_batch_partition_does_not_change_detections() -> None:
    x = np.concatenate([shifted_stream(seed=8, shift=0.5), shifted_stream(seed=9, shift=-0.5)])
    one = [(d.detector, d.position) for d in feed(SignalMonitor(), x, batch=x.size)]
    many = [(d.detector, d.position) for d in feed(SignalMonitor(), x, batch=61)]
    assert one == many and len(one) >= 2


# --- checkpoints --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [500, 3000, 3250, 7000])
def test_restored_monitor_detects_at_the_same_positions(cut: int) -> None:
    x = np.concatenate([shifted_stream(seed=10, shift=1.0), shifted_stream(seed=11, shift=-1.0) + 1.0])
    params = DetectorParams()  # Page-Hinkley sized on the warm-up values, which a cut at 500 checkpoints
    full = SignalMonitor("m", "v", "error", params=params)
    expected = feed(full, x)
    first = SignalMonitor("m", "v", "error", params=params)
    got = feed(first, x[:cut])
    data = first.to_bytes({"outcomes-0": cut + 41})
    restored, offsets = SignalMonitor.from_bytes(data)
    assert offsets == {"outcomes-0": cut + 41}
    got += feed(restored, x[cut:], start=cut)
    assert got == expected
    assert len(expected) >= 3
    assert restored.n_detections == full.n_detections and restored.n_seen == full.n_seen


def test_from_bytes_rejects_foreign_data() -> None:
    import pickle

    from stream.contracts.state_codec import encode_state

    with pytest.raises(ValueError, match="old pickle checkpoint"):
        SignalMonitor.from_bytes(pickle.dumps({"version": 999}))
    with pytest.raises(ValueError, match="expected signal_monitor version"):
        SignalMonitor.from_bytes(encode_state("signal_monitor", 999, {}))
    with pytest.raises(ValueError, match="signal_monitor checkpoint refused: KeyError"):
        SignalMonitor.from_bytes(encode_state("signal_monitor", 2, {"key": ["m", "v", "s"]}))


# --- MonitorBank --------------------------------------------------------------------------------------------


def test_bank_creates_monitors_lazily_and_routes_batches() -> None:
    bank = MonitorBank(DetectorParams(ph_threshold=200.0))
    assert len(bank) == 0
    x = shifted_stream()
    pos = np.arange(x.size)
    dets = bank.update_many(("m", "1", "error"), x, pos, pos)
    bank.update_many(("m", "1", "feature:age"), x[:100], pos[:100], pos[:100])
    assert len(bank) == 2
    assert bank.get(("m", "1", "error")).n_seen == x.size
    assert bank.get(("m", "1", "feature:age")).n_seen == 100
    assert {(d.model_id, d.version, d.signal) for d in dets} == {("m", "1", "error")}
    assert any(d.detector == "page_hinkley" and d.params["threshold"] == 200.0 for d in dets)
    assert bank.params_dict()["ph_threshold"] == 200.0


def test_adwin_reports_its_cut_as_change_point_with_its_event_time() -> None:
    m = SignalMonitor("m", "v", "error")
    found = feed(m, shifted_stream())
    adwin = next(d for d in found if d.detector == "adwin")
    # the values ADWIN keeps after its cut start at change_position (bucket-granular, so before the change)
    assert isinstance(adwin.change_position, int) and 1000 < adwin.change_position <= 3000 < adwin.position
    assert adwin.change_time_ms == 2 * adwin.change_position  # feed() uses 2 x position as event time
    ph = next(d for d in found if d.detector == "page_hinkley")
    assert ph.change_position is not None and 2900 < ph.change_position <= 3000 < ph.position
    assert ph.change_time_ms == 2 * ph.change_position


def test_position_clock_forgets_old_batches() -> None:
    clock = PositionClock(cap=2)
    for first in (0, 10, 20):
        clock.add(first, np.arange(first, first + 10) * 2)
    assert clock.time_of(5) is None and clock.time_of(15) == 30 and clock.time_of(29) == 58


@pytest.mark.parametrize("freeze", [True, False])
def test_extreme_finite_values_leave_the_standardiser_finite(freeze: bool) -> None:
    """A valid value of 1e300 must not make the running statistics (and every later z) infinite or NaN."""
    s = Standardiser(warmup=3, freeze=freeze)
    s.transform(np.array([1.0, 2.0, 1e300, -1e300, 3.0]))
    z = s.transform(np.array([1.0, 2.0]))
    assert np.isfinite(s.mean) and np.isfinite(s.std) and np.isfinite(z).all(), (s.mean, s.std, z)


# --- seeded Page-Hinkley ------------------------------------------------------------------------------------


def test_seeded_page_hinkley_watches_from_the_first_value_and_reports_the_argmin() -> None:
    rng = np.random.default_rng(21)
    ref = rng.normal(5.0, 2.0, 1000)
    x = np.concatenate([rng.normal(5.0, 2.0, 100), rng.normal(7.0, 2.0, 400)])  # 1σ up after 100 values
    m = SignalMonitor(params=DetectorParams(use_adwin=False), reference_mean=float(ref.mean()),
                      reference_std=float(ref.std()), reference_values=ref)  # fmt: skip
    found = feed(m, x, batch=37)
    assert found and found[0].position < 200  # within 100 values of the change, no warm-up
    z = np.clip((x - ref.mean()) / ref.std(), -10, 10)
    assert m.page_hinkley is not None
    want = page_hinkley_replay(z, 0.25, m.page_hinkley.h["up"], m.page_hinkley.h["down"])
    assert [(d.position, d.change_position) for d in found] == want
    assert 80 <= want[0][1] <= 110  # the argmin lands near the change


def test_page_hinkley_thresholds_follow_the_reference_distribution() -> None:
    from stream.monitor.cusum import threshold_for

    rng = np.random.default_rng(22)
    gauss = rng.normal(0.0, 1.0, 1000)
    m = SignalMonitor(params=DetectorParams(), reference_mean=float(gauss.mean()), reference_std=float(gauss.std()),
                      reference_values=gauss)  # fmt: skip
    assert m.page_hinkley is not None
    # N(0, 1): Lundberg's exponent 2 (delta - margin), margin 2 / sqrt(1000)
    expected = np.log(1e7) / (2 * (0.25 - 2 / np.sqrt(1000)))
    assert m.page_hinkley.h["up"] == pytest.approx(expected, rel=0.05)
    skewed = rng.lognormal(0.0, 1.0, 1000)
    s = SignalMonitor(params=DetectorParams(), reference_mean=float(skewed.mean()),
                      reference_std=float(skewed.std()), reference_values=skewed)  # fmt: skip
    assert s.page_hinkley is not None
    zc = np.clip((skewed - skewed.mean()) / skewed.std(), -10, 10)
    zc -= zc.mean()
    up = threshold_for(zc, np.ones(zc.size), 0.25, 1e7, 2 / np.sqrt(1000))
    assert s.page_hinkley.h["up"] == pytest.approx(up) and s.page_hinkley.h["up"] > s.page_hinkley.h["down"]


def test_version_2_checkpoint_still_loads_with_a_fresh_page_hinkley() -> None:
    from stream.contracts.state_codec import decode_state, encode_state

    x = shifted_stream()
    m = SignalMonitor("m", "v", "error")
    feed(m, x[:2000])
    _, state = decode_state(m.to_bytes({"p": 7}), "signal_monitor", (3,))
    # what version 2 wrote: River's Page-Hinkley parameters and running sums, no "ph" or "warm"
    state["params"] |= {"ph_threshold": 500.0, "ph_delta": 0.005, "ph_min_instances": 30, "ph_alpha": 0.9999}
    del state["ph"], state["warm"]
    state["page_hinkley"] = {"n": 1000, "mean": 0.0, "sum_increase": 0.0, "sum_decrease": 0.0,
                             "min_increase": 0.0, "max_decrease": 0.0, "drift_detected": False}  # fmt: skip
    restored, offsets = SignalMonitor.from_bytes(encode_state("signal_monitor", 2, state))
    assert offsets == {"p": 7} and restored.n_seen == 2000
    assert restored.params.ph_threshold is None and restored.params.ph_delta == 0.25
    later = feed(restored, x[2000:], start=2000)
    ph = [d for d in later if d.detector == "page_hinkley"]
    assert ph and 3000 <= ph[0].position < 3200 and 2900 < (ph[0].change_position or 0) <= 3000


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_page_hinkley_holds_through_an_excursion_and_rearms_after_it(batch: int) -> None:
    from stream.monitor.page_hinkley import PageHinkley

    rng = np.random.default_rng(23)
    z = np.concatenate([rng.normal(0, 1, 300), rng.normal(1, 1, 300), rng.normal(0, 1, 600),
                        rng.normal(-1, 1, 300), rng.normal(1.5, 1, 200)])  # fmt: skip
    want = page_hinkley_replay(z, 0.25, 20.0, 25.0)
    ph = PageHinkley(0.25, 20.0, 25.0)
    got = []
    for k in range(0, z.size, batch):
        if k == 450:  # mid-excursion, the up side holding: a checkpoint round trip
            ph = PageHinkley.from_state(ph.state())
        got += [(a.row, a.start) for a in ph.update(z[k : k + batch])]
    assert got == want
    assert len(want) == 3  # one per excursion: up at ~300, down at ~1200, up again at ~1500
    assert all(abs(start - true) <= 60 for (_, start), true in zip(want, (300, 1200, 1500), strict=True)), want


def test_error_variance_signal_sees_a_spread_change_the_mean_detectors_miss() -> None:
    rng = np.random.default_rng(24)
    x = np.concatenate([rng.normal(2.0, 1.0, 3000), rng.normal(2.0, 1.6, 2000)])  # spread up at 3000
    plain = SignalMonitor("m", "v", "error", params=DetectorParams(use_adwin=False))
    watched = SignalMonitor("m", "v", "error", params=DetectorParams(use_adwin=False), watch_variance=True)
    assert not feed(plain, x)  # the mean detector sees nothing
    found = feed(watched, x)
    var = [d for d in found if d.signal == "error:variance"]
    assert var and 3000 <= var[0].position < 3300 and 2900 < (var[0].change_position or 0) <= 3050
    assert not [d for d in found if d.signal == "error" and d.position < 3000]
    # the variance statistic: z^2 standardised by the warm-up's own mean and std of z^2
    w = watched.params.warmup
    z = (x[:w] - x[:w].mean()) / x[:w].std(ddof=1)
    assert watched.variance_scale == pytest.approx(((z * z).mean(), (z * z).std()), rel=1e-9)
    # a checkpoint keeps it
    restored, _ = SignalMonitor.from_bytes(watched.to_bytes({}))
    assert restored.variance_ph is not None and watched.variance_ph is not None
    assert restored.variance_ph.state() == watched.variance_ph.state()


def test_binary_error_stream_gets_no_variance_signal() -> None:
    rng = np.random.default_rng(25)
    m = SignalMonitor("m", "v", "error", watch_variance=True)
    feed(m, (rng.random(1500) < 0.1).astype(float))
    assert m.page_hinkley is not None and m.variance_ph is None  # z^2 is a function of z for 0/1 values
