import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stream.monitor.profiles import (
    DEFAULT_BINS,
    FeatureProfile,
    bin_counts,
    profile_categorical,
    profile_file,
    profile_numeric,
    profile_records,
    reference_counts,
)


def right_closed_hist(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts on (-inf, e1], ..., (ek, inf) via np.histogram on -x (its bins are left-closed)."""
    x = x[~np.isnan(x)]
    return np.histogram(-x, bins=np.r_[-np.inf, -edges[::-1], np.inf])[0][::-1]


@pytest.fixture
def reference() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    x = rng.normal(10.0, 2.0, 1000)
    with_nan = rng.exponential(1.0, 1000)
    with_nan[::10] = np.nan
    colour = rng.choice(["red", "green", "blue"], 1000, p=[0.5, 0.3, 0.2]).astype(object)
    colour[::25] = None
    return pd.DataFrame({"x": x, "e": with_nan, "colour": colour, "ignored": np.arange(1000)})


def check_numeric(p: FeatureProfile, x: np.ndarray, bins: int = DEFAULT_BINS) -> None:
    v = x[~np.isnan(x)]
    edges = np.unique(np.quantile(v, np.arange(1, bins) / bins, method="inverted_cdf"))
    np.testing.assert_array_equal(p.edges, edges)
    np.testing.assert_array_equal(p.counts, right_closed_hist(x, edges))
    assert p.n == len(x)
    assert p.missing == int(np.isnan(x).sum())
    assert p.min == v.min() and p.max == v.max()
    assert p.mean == pytest.approx(v.mean(), abs=1e-12)
    assert p.std == pytest.approx(v.std(), abs=1e-12)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_profile_file_matches_numpy(tmp_path: Path, reference: pd.DataFrame, suffix: str) -> None:
    path = tmp_path / f"ref{suffix}"
    if suffix == ".csv":
        reference.to_csv(path, index=False)
    else:
        reference.to_parquet(path, index=False)
    prof = profile_file(path, numeric=["x", "e"], categorical=["colour"])
    assert set(prof) == {"x", "e", "colour"}
    x = pd.read_csv(path)["x"].to_numpy() if suffix == ".csv" else reference["x"].to_numpy()
    check_numeric(prof["x"], x)
    check_numeric(prof["e"], reference["e"].to_numpy())
    assert len(prof["x"].counts) == DEFAULT_BINS  # continuous data: no duplicate edges
    c = prof["colour"]
    expected = reference["colour"].value_counts().sort_index()
    assert c.categories == tuple(expected.index)
    assert c.counts == tuple(int(v) for v in expected.to_numpy())
    assert c.missing == 40 and c.n == 1000


def test_discrete_data_dedup_edges_and_bin_means() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 4, 400).astype(float)
    p = profile_numeric(x, bins=10)
    assert p.edges == (0.0, 1.0, 2.0, 3.0)  # one bin per integer, the open top bin is empty
    np.testing.assert_array_equal(p.counts, [*np.bincount(x.astype(int)), 0])
    assert p.bin_means == (0.0, 1.0, 2.0, 3.0, 3.0)


def test_bin_means_and_empty_bin_fallback() -> None:
    x = np.array([0.0, 0.5, 1.0, 4.0, 5.0])
    p = profile_numeric(x, edges=[1.0, 2.0, 3.0, 5.0])
    assert p.counts == (3, 0, 0, 2, 0)
    assert p.bin_means == (0.5, 1.5, 2.5, 4.5, 5.0)


def test_constant_and_all_nan() -> None:
    p = profile_numeric(np.full(50, 3.0))
    assert p.edges == (3.0,) and p.counts == (50, 0) and p.std == 0.0
    np.testing.assert_array_equal(bin_counts(p, np.array([3.0, 3.0, 4.0])), [2, 1])
    empty = profile_numeric(np.array([np.nan, np.nan]))
    assert empty.edges == () and empty.counts == (0,) and empty.missing == 2
    assert empty.min is None and empty.mean is None
    np.testing.assert_array_equal(bin_counts(empty, np.array([1.0, np.nan])), [1])


def test_bin_counts_numeric_matches_histogram_and_merges() -> None:
    rng = np.random.default_rng(3)
    p = profile_numeric(rng.normal(size=2000))
    edges = np.asarray(p.edges)
    w = np.concatenate([rng.normal(0.5, 2.0, 700), edges[:3], [np.nan, -50.0, 50.0]])
    counts = bin_counts(p, w)
    np.testing.assert_array_equal(counts, right_closed_hist(w, edges))
    assert counts.sum() == len(w) - 1
    np.testing.assert_array_equal(bin_counts(p, w[:300]) + bin_counts(p, w[300:]), counts)
    np.testing.assert_array_equal(bin_counts(p, np.array([])), np.zeros(len(p.counts)))


def test_bin_counts_categorical_new_slot_and_missing() -> None:
    p = profile_categorical(np.array(["a", "b", 1, "a", None, np.nan], dtype=object))
    assert p.categories == ("1", "a", "b") and p.counts == (1, 2, 1) and p.missing == 2
    w = np.array(["a", 1, "1", "zz", "yy", None, float("nan"), "b", "a"], dtype=object)
    np.testing.assert_array_equal(bin_counts(p, w), [2, 2, 1, 2])
    np.testing.assert_array_equal(reference_counts(p), [1, 2, 1, 0])
    np.testing.assert_array_equal(bin_counts(p, np.array([], dtype=object)), [0, 0, 0, 0])


def test_bin_counts_categorical_unhashable_values() -> None:
    p = profile_categorical(np.array(["[1]", "a"], dtype=object))
    w = np.empty(3, dtype=object)
    w[:] = [[1], "a", {"k": 1}]
    np.testing.assert_array_equal(bin_counts(p, w), [1, 1, 1])


def test_single_category() -> None:
    p = profile_categorical(np.array(["only"] * 5, dtype=object))
    assert p.categories == ("only",) and p.counts == (5,)
    np.testing.assert_array_equal(bin_counts(p, np.array(["only", "new"], dtype=object)), [1, 1])


def test_profile_records_matches_arrays() -> None:
    records = [{"x": float(i), "c": "ab"[i % 2]} for i in range(100)]
    records[5] = {"x": "oops", "c": None}
    records[6] = {}
    prof = profile_records(records, numeric=["x"], categorical=["c"], bins=5)
    x = np.arange(100, dtype=float)
    x[[5, 6]] = np.nan
    assert prof["x"] == profile_numeric(x, bins=5)
    assert prof["c"].counts == (49, 49) and prof["c"].missing == 2


def test_json_round_trip() -> None:
    p = profile_numeric(np.array([1.0, 2.0, 2.0, 7.5, np.nan]), bins=3)
    c = profile_categorical(np.array(["x", "y", "y"], dtype=object))
    for prof in (p, c):
        back = FeatureProfile.from_dict(json.loads(json.dumps(prof.to_dict())))
        assert back == prof
    back_c = FeatureProfile.from_dict(json.loads(json.dumps(c.to_dict())))
    np.testing.assert_array_equal(bin_counts(back_c, np.array(["y", "q"], dtype=object)), [0, 1, 1])
