"""CUSUM bank and input watch: checked against a plain sequential CUSUM and scipy/numpy on known data."""

import numpy as np
import pytest
from scipy.special import ndtri

from stream.monitor.cusum import CusumAlarm, CusumBank, threshold_for
from stream.monitor.input_watch import InputWatch, WatchParams, score_tables
from stream.monitor.profiles import bin_index, profile_categorical, profile_numeric


def sequential(z: np.ndarray, k: float, h: float) -> list[tuple[int, int, str]]:
    """Textbook two-sided CUSUM, one value at a time: (row, run start, side) per alarm."""
    up = down = 0.0
    start_up = start_down = 0
    out = []
    for t, v in enumerate(z):
        up, down = max(0.0, up + v - k), max(0.0, down - v - k)
        if up == 0.0:
            start_up = t + 1
        if down == 0.0:
            start_down = t + 1
        if up > h or down > h:
            out.append((t, start_up, "up") if up > h else (t, start_down, "down"))
            up = down = 0.0
            start_up = start_down = t + 1
    return out


@pytest.mark.parametrize("batch", [1, 7, 100, 5000])
def test_vectorised_cusum_matches_the_sequential_one(batch: int) -> None:
    rng = np.random.default_rng(4)
    z = np.concatenate([rng.normal(0, 1, 2000), rng.normal(0.8, 1, 1000), rng.normal(-1.2, 1, 2000)])
    cols = np.column_stack([z, -z, rng.normal(0, 1, z.size)])
    bank = CusumBank(3, k=0.5, h=6.0)
    alarms = []
    for lo in range(0, z.size, batch):
        alarms += bank.update(cols[lo : lo + batch])
    for j in range(3):
        got = [(a.row, a.start, a.side) for a in alarms if a.column == j]
        assert got == sequential(cols[:, j], 0.5, 6.0)
    assert len([a for a in alarms if a.column == 0]) > 5
    assert bank.alarms.tolist() == [sum(a.column == j for a in alarms) for j in range(3)]


def test_cusum_edge_cases_and_state_round_trip() -> None:
    bank = CusumBank(2, k=0.5, h=3.0)
    assert bank.update(np.empty((0, 2))) == []
    assert bank.update(np.array([[np.nan, 0.0]] * 50)) == []  # NaN counts as 0
    with pytest.raises(ValueError, match="T x 2"):
        bank.update(np.zeros(5))
    bank.update(np.full((3, 2), 1.5))
    copy = CusumBank.from_state(bank.state())
    more = np.full((5, 2), 1.5)
    assert [(a.row, a.start) for a in bank.update(more)] == [(a.row, a.start) for a in copy.update(more)]


def test_threshold_for_normal_and_skewed_increments() -> None:
    grid = np.linspace(-9, 9, 8001)
    w = np.exp(-grid**2 / 2)
    assert threshold_for(grid, w, 0.5, 1e7) == pytest.approx(np.log(1e7), rel=1e-3)  # theta = 2k = 1
    assert threshold_for(grid, w, 0.5, 1e7, margin=0.1) == pytest.approx(np.log(1e7) / 0.8, rel=1e-3)
    p = 0.05  # a rare binary input standardised: theta solves E exp(theta (x - k)) = 1
    x = (np.array([0.0, 1.0]) - p) / np.sqrt(p * (1 - p))
    h = threshold_for(x, np.array([1 - p, p]), 0.5, 1e7)
    theta = np.log(1e7) / h
    assert (1 - p) * np.exp(theta * (x[0] - 0.5)) + p * np.exp(theta * (x[1] - 0.5)) == pytest.approx(1.0, abs=1e-6)
    assert h > 2 * np.log(1e7)  # skewed: a larger threshold than the normal one
    assert threshold_for(-x, np.array([1 - p, p]), 0.5, 1e7) > 1e5  # a side that can never rise never alarms


def test_score_tables_are_standardised_normal_scores_and_surprise() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(5, 2, 5000)
    p = profile_numeric(ref)
    mean, var = score_tables(p)
    c = np.asarray(p.counts, dtype=float)
    assert np.average(mean, weights=c) == pytest.approx(0.0, abs=1e-12)
    assert np.average(mean**2, weights=c) == pytest.approx(1.0, rel=1e-9)
    assert var is not None and np.average(var, weights=c) == pytest.approx(0.0, abs=1e-12)
    # monotone normal scores of the mid-ranks: the middle bin's score is about ndtri(0.5) = 0
    assert np.all(np.diff(mean) > 0) and abs(mean[len(mean) // 2]) < 0.1
    raw = ndtri((np.cumsum(c) - c / 2) / c.sum())
    np.testing.assert_allclose(np.corrcoef(raw, mean)[0, 1], 1.0, atol=1e-3)
    cat = profile_categorical(np.array(["a"] * 90 + ["b"] * 10, dtype=object))
    cmean, cvar = score_tables(cat)
    assert cvar is None and cmean[1] > 0 > cmean[0] and cmean[2] > cmean[1]  # rarer, then unseen: higher
    const_mean, _ = score_tables(profile_numeric(np.full(100, 3.0)))
    assert const_mean.tolist()[0] == 0.0 and const_mean[1] == pytest.approx(ndtri(1 - 0.5 / 100))


def test_input_watch_detects_mean_and_variance_shifts_and_not_unchanged_inputs() -> None:
    rng = np.random.default_rng(2)
    labels = np.array(["a", "b", "c"], dtype=object)
    prof = {"x": profile_numeric(rng.normal(0, 1, 2000)), "y": profile_numeric(rng.normal(0, 1, 2000)),
            "c": profile_categorical(rng.choice(labels, 2000, p=[0.6, 0.3, 0.1]))}  # fmt: skip
    watch = InputWatch(prof, {n: f"input:{n}" for n in prof}, WatchParams())
    n0, n1 = 100, 400
    x = np.concatenate([rng.normal(0, 1, n0), rng.normal(1, 1, n1)])  # 1 sigma mean shift after 100 values
    y = np.concatenate([rng.normal(0, 1, n0), rng.normal(0, 2, n1)])  # spread x2
    c = rng.choice(np.array(["a", "b", "c"], dtype=object), n0 + n1, p=[0.6, 0.3, 0.1])  # unchanged
    found = watch.update([bin_index(prof["x"], x), bin_index(prof["y"], y), bin_index(prof["c"], c)])
    first: dict[str, CusumAlarm] = {}
    for signal, alarm, _ in found:
        first.setdefault(signal, alarm)
    assert set(first) >= {"input:x", "input:y:variance"} and "input:c" not in first
    assert n0 <= first["input:x"].row < n0 + 50 and abs(first["input:x"].start - n0) < 30
    assert first["input:y:variance"].row >= n0
    assert not any(a.row < n0 for _, a, _ in found)
    with pytest.raises(ValueError, match="3 inputs"):
        watch.update([bin_index(prof["x"], x)])


def test_category_frequency_cusums_see_a_swap_the_mean_surprise_misses() -> None:
    from scipy.optimize import brentq

    rng = np.random.default_rng(5)
    labels = np.array(["a", "b", "c", "d"], dtype=object)
    p = np.array([0.4, 0.3, 0.2, 0.1])
    prof = {"c": profile_categorical(rng.choice(labels, 5000, p=p))}
    watch = InputWatch(prof, {"c": "input:c"}, WatchParams())
    assert watch.freq_labels == ["a", "b", "c", "d", "__new__"]
    # each column's threshold: Lundberg's exponent of its two-point indicator, solved here with brentq
    counts = np.asarray(prof["c"].counts, dtype=float)
    q = counts[0] / counts.sum()
    sd = np.sqrt(q * (1 - q))
    a, b, m = (1 - q) / sd - 0.25 + 2 / np.sqrt(5000), -q / sd - 0.25 + 2 / np.sqrt(5000), 0
    theta = brentq(lambda t: q * np.exp(t * a) + (1 - q) * np.exp(t * b) - 1, 1e-6, 50)
    assert watch.frequency.h_up[m] == pytest.approx(np.log(1e7 * 5) / theta, rel=1e-6)
    # unchanged for 20,000 values: no alarm
    quiet = watch.update([bin_index(prof["c"], rng.choice(labels, 20_000, p=p))])
    assert quiet == []
    # "a" and "c" swap frequencies (0.4 <-> 0.2)
    swapped = rng.choice(labels, 2000, p=[0.2, 0.3, 0.4, 0.1])
    found = watch.update([bin_index(prof["c"], swapped)])
    freq = [(a.row - 20_000, watch.freq_labels[a.column], a.side) for s, a, _ in found if s == "input:c:frequency"]
    assert freq and freq[0][1] in {"a", "c"} and freq[0][0] < 500
    assert {(lab, side) for _, lab, side in freq} <= {("a", "down"), ("c", "up")}
    # missing values are no evidence; old checkpoints (no frequency state) still load
    state = watch.state()
    del state["frequency"]
    again = InputWatch(prof, {"c": "input:c"}, WatchParams())
    again.restore(state)
    assert again.frequency.seen == again.mean.seen == 22_000
    assert again.update([np.full(500, -1)]) == []
