"""Reference profiles of model features and the window sketch counted against them.

A numeric profile holds interior bin edges ``e1 < ... < ek`` taken from reference quantiles; the bins are
``(-inf, e1], (e1, e2], ..., (ek, +inf)``, so there are ``k + 1`` of them and every window value falls in
one. Edges are quantiles with ``method="inverted_cdf"``, so every edge is an observed reference value:
discrete data keep one bin per value once duplicates are removed, and continuous data get equal-frequency
reference bins. A categorical profile holds ``str(value) -> count``; window counts have one extra slot at
the end for categories the reference never saw.

Missing values (None, NaN, absent) are counted in ``missing`` and never binned. Profile the model's
score/prediction like any numeric feature under a name of the caller's choice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, Literal

import numpy as np

Kind = Literal["numeric", "categorical"]

DEFAULT_BINS = 100
"""Numeric reference bins (percentiles): fine enough that KS and Wasserstein on the bins are close to the
exact tests; PSI and Jensen-Shannon merge them into ~10 groups (:func:`stream.monitor.drift_stats.coarse_groups`)."""

__all__ = [
    "DEFAULT_BINS",
    "FeatureProfile",
    "ModelProfile",
    "bin_counts",
    "bin_index",
    "categorical_missing",
    "counts_of",
    "profile_categorical",
    "profile_file",
    "profile_numeric",
    "profile_records",
    "reference_counts",
]


@dataclass(frozen=True)
class FeatureProfile:
    """Reference distribution of one feature.

    Attributes
    ----------
    kind
        ``"numeric"`` or ``"categorical"``.
    n
        Number of reference values, missing ones included.
    missing
        Number of missing reference values (None/NaN).
    counts
        Numeric: count per bin (``len(edges) + 1`` entries). Categorical: count per category, in the order
        of ``categories``.
    edges
        Interior bin edges, strictly increasing (numeric only).
    bin_means
        Mean of the reference values in each bin; for a bin the reference left empty, its midpoint
        (interior bin) or its finite edge (outer bin). Used as bin representatives by Wasserstein.
    categories
        Category labels as ``str`` (categorical only).
    min, max, mean, std
        Of the non-missing numeric reference values (population std); None when there are none.
    """

    kind: Kind
    n: int
    missing: int
    counts: tuple[int, ...]
    edges: tuple[float, ...] = ()
    bin_means: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update({c: i for i, c in enumerate(self.categories)})

    @property
    def n_bins(self) -> int:
        """Length of the count vectors of this feature (categorical: categories + 1 'new' slot)."""
        return len(self.counts) + (1 if self.kind == "categorical" else 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists, floats, ints, None)."""
        d = asdict(self)
        d.pop("_index")
        for key in ("counts", "edges", "bin_means", "categories"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureProfile:
        """Inverse of :meth:`to_dict`."""
        return cls(
            kind=d["kind"],
            n=int(d["n"]),
            missing=int(d["missing"]),
            counts=tuple(int(c) for c in d["counts"]),
            edges=tuple(float(e) for e in d.get("edges", ())),
            bin_means=tuple(float(m) for m in d.get("bin_means", ())),
            categories=tuple(str(c) for c in d.get("categories", ())),
            min=_opt_float(d.get("min")),
            max=_opt_float(d.get("max")),
            mean=_opt_float(d.get("mean")),
            std=_opt_float(d.get("std")),
        )


ModelProfile = dict[str, FeatureProfile]


def _opt_float(v: object) -> float | None:
    return None if v is None else float(v)  # type: ignore[arg-type]


def _bin_means(x: np.ndarray, edges: np.ndarray, idx: np.ndarray, counts: np.ndarray) -> np.ndarray:
    sums = np.bincount(idx, weights=x, minlength=len(edges) + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    fallback = np.concatenate([[edges[0]], (edges[:-1] + edges[1:]) / 2, [edges[-1]]]) if len(edges) else np.zeros(1)
    return np.where(counts > 0, means, fallback)


def profile_numeric(
    values: np.ndarray, bins: int = DEFAULT_BINS, edges: Sequence[float] | None = None
) -> FeatureProfile:
    """Profile numeric reference values.

    Parameters
    ----------
    values
        Reference values; NaN marks a missing value.
    bins
        Number of quantile bins before duplicate edges are removed (``bins - 1`` interior edges).
    edges
        Explicit interior edges instead of quantiles (sorted and deduplicated here).

    Examples
    --------
    >>> p = profile_numeric(np.array([1.0, 2, 2, 3, np.nan]), bins=4)
    >>> p.edges, p.counts, p.missing
    ((1.0, 2.0), (1, 2, 1), 1)
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    nan = np.isnan(x)
    x = x[~nan]
    if edges is not None:
        e = np.unique(np.asarray(edges, dtype=np.float64))
    elif x.size:
        q = np.arange(1, bins) / bins
        e = np.unique(np.quantile(x, q, method="inverted_cdf")) if bins > 1 else np.empty(0)
    else:
        e = np.empty(0)
    idx = np.searchsorted(e, x, side="left")
    counts = np.bincount(idx, minlength=len(e) + 1)
    has = x.size > 0
    return FeatureProfile(
        kind="numeric",
        n=int(nan.size),
        missing=int(nan.sum()),
        counts=tuple(int(c) for c in counts),
        edges=tuple(float(v) for v in e),
        bin_means=tuple(float(v) for v in _bin_means(x, e, idx, counts)),
        min=float(x.min()) if has else None,
        max=float(x.max()) if has else None,
        mean=float(x.mean()) if has else None,
        std=float(x.std()) if has else None,
    )


def categorical_missing(values: np.ndarray) -> np.ndarray:
    """Boolean mask of None/NaN entries of an object array."""
    v = np.asarray(values, dtype=object)
    none = np.equal(v, None)  # type: ignore[call-overload]
    return np.asarray(none | (v != v), dtype=bool)


def profile_categorical(values: np.ndarray) -> FeatureProfile:
    """Profile categorical reference values; categories are ``str(value)``, None/NaN are missing.

    Examples
    --------
    >>> p = profile_categorical(np.array(["a", "b", "a", None], dtype=object))
    >>> p.categories, p.counts, p.missing
    (('a', 'b'), (2, 1), 1)
    """
    v = np.asarray(values, dtype=object).ravel()
    miss = categorical_missing(v)
    present = v[~miss].astype(str)
    cats, counts = np.unique(present, return_counts=True)
    return FeatureProfile(
        kind="categorical",
        n=int(v.size),
        missing=int(miss.sum()),
        counts=tuple(int(c) for c in counts),
        categories=tuple(str(c) for c in cats),
    )


def profile_file(
    path: Path, numeric: Sequence[str], categorical: Sequence[str], bins: int = DEFAULT_BINS
) -> dict[str, FeatureProfile]:
    """Profile the named columns of a reference CSV or Parquet file (by suffix ``.parquet``/``.pq``)."""
    import pandas as pd

    path = Path(path)
    columns = [*numeric, *categorical]
    if path.suffix.lower() in (".parquet", ".pq"):
        df = pd.read_parquet(path, columns=columns)
    else:
        df = pd.read_csv(path, usecols=columns, dtype={c: object for c in categorical})
    out: dict[str, FeatureProfile] = {}
    for name in numeric:
        col = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        out[name] = profile_numeric(col, bins)
    for name in categorical:
        out[name] = profile_categorical(df[name].astype(object).to_numpy())
    return out


def profile_records(
    records: Sequence[Mapping[str, object]],
    numeric: Sequence[str],
    categorical: Sequence[str],
    bins: int = DEFAULT_BINS,
) -> dict[str, FeatureProfile]:
    """Profile a list of feature dicts (e.g. the first N events); non-numbers count as missing."""
    out: dict[str, FeatureProfile] = {}
    for name in numeric:
        col = [r.get(name) for r in records]
        x = np.array([v if isinstance(v, int | float) and not isinstance(v, bool) else np.nan for v in col])
        out[name] = profile_numeric(x.astype(np.float64), bins)
    for name in categorical:
        arr = np.empty(len(records), dtype=object)
        arr[:] = [r.get(name) for r in records]
        out[name] = profile_categorical(arr)
    return out


def reference_counts(profile: FeatureProfile) -> np.ndarray:
    """Reference counts aligned with :func:`bin_counts` (categorical: with a zero 'new' slot)."""
    c = np.asarray(profile.counts, dtype=np.int64)
    return np.append(c, 0) if profile.kind == "categorical" else c


def bin_index(profile: FeatureProfile, values: np.ndarray) -> np.ndarray:
    """The bin (slot) of every value, in order; -1 for a missing value. See :func:`bin_counts`.

    >>> p = profile_numeric(np.array([1.0, 2.0, 3.0]), edges=[1.0, 2.0])
    >>> bin_index(p, np.array([0.5, 1.0, 1.5, 9.0, np.nan])).tolist()
    [0, 0, 1, 2, -1]
    """
    if profile.kind == "numeric":
        x = np.asarray(values, dtype=np.float64).ravel()
        idx = np.searchsorted(np.asarray(profile.edges, dtype=np.float64), x, side="left").astype(np.int64)
        idx[np.isnan(x)] = -1
        return idx
    v = np.asarray(values, dtype=object).ravel()
    new = len(profile.categories)
    try:
        slot = np.fromiter(map(profile._index.get, v.tolist(), repeat(-1)), dtype=np.int64, count=v.size)
    except TypeError:  # unhashable values: take the str() path for all
        slot = np.full(v.size, -1, dtype=np.int64)
    unmatched = slot < 0
    if unmatched.any():
        rest = v[unmatched]
        fixed = np.fromiter(
            map(profile._index.get, map(str, rest.tolist()), repeat(new)), np.int64, rest.size
        )
        fixed[categorical_missing(rest)] = -1
        slot[unmatched] = fixed
    return slot


def counts_of(profile: FeatureProfile, idx: np.ndarray) -> np.ndarray:
    """Bin counts of the indices :func:`bin_index` returned (missing ones skipped)."""
    return np.bincount(idx[idx >= 0], minlength=profile.n_bins).astype(np.int64)


def bin_counts(profile: FeatureProfile, values: np.ndarray) -> np.ndarray:
    """Count a batch of window values into the reference bins; missing values are skipped.

    Numeric values are float64 (NaN = missing). Categorical values are an object array compared as
    ``str(value)``; the last slot counts categories the reference never saw. Counts of successive batches
    add up (the sketch is mergeable by ``+``).

    Examples
    --------
    >>> p = profile_numeric(np.array([1.0, 2.0, 3.0]), edges=[1.0, 2.0])
    >>> bin_counts(p, np.array([0.5, 1.0, 1.5, 9.0, np.nan])).tolist()
    [2, 1, 1]
    """
    return counts_of(profile, bin_index(profile, values))
