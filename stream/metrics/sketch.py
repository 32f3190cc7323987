"""Mergeable bounded-memory sketches: relative-error quantiles and a fixed probability-score histogram."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

RELATIVE_ERROR = 0.01
"""Bound on the relative error of every quantile a `LogSketch` returns."""

_ALPHA = 0.0099  # a hair under RELATIVE_ERROR so float rounding at bucket edges stays within it
_GAMMA = (1.0 + _ALPHA) / (1.0 - _ALPHA)
_LOG_GAMMA = math.log(_GAMMA)
_PENDING_MAX = 65_536


def _interpolated_quantiles(
    value_at_rank: Callable[[np.ndarray], np.ndarray], n: int, qs: np.ndarray
) -> np.ndarray:
    """Quantiles by linear interpolation between order statistics, the ``np.percentile`` default."""
    if n == 0:
        return np.full(qs.shape, np.nan)
    pos = np.clip(qs, 0.0, 1.0) * (n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    v_lo = value_at_rank(lo)
    v_hi = value_at_rank(hi)
    return v_lo + (v_hi - v_lo) * (pos - lo)


class LogSketch:
    """Quantile sketch of non-negative values with relative error at most `RELATIVE_ERROR` (1%).

    Positive values are counted in logarithmic buckets ``(g**(k-1), g**k]``, ``g = (1+a)/(1-a)``, and read
    back as ``2 g**k / (g+1)``, which is within relative error ``a`` of every value in the bucket; zero is
    counted exactly. Quantiles interpolate between order statistics like ``np.percentile``, so each one is
    within 1% of ``np.percentile`` over the same values. Memory is one (key, count) pair per used bucket; past
    ``max_buckets`` the lowest buckets are collapsed into one, which only happens when the values span more
    than ``g**max_buckets`` (about 1e17 for 2048) and only degrades the lowest quantiles.
    """

    def __init__(self, max_buckets: int = 2048) -> None:
        self.max_buckets = max_buckets
        self._keys = np.zeros(0, np.int64)
        self._counts = np.zeros(0, np.int64)
        self.zeros = 0
        # Bucket keys added since the last read: merging them in on every small batch cost more than
        # counting them (np.unique per call); they are merged at the next read or past _PENDING_MAX.
        self._pending: list[np.ndarray] = []
        self._n_pending = 0

    @property
    def keys(self) -> np.ndarray:
        self._settle()
        return self._keys

    @property
    def counts(self) -> np.ndarray:
        self._settle()
        return self._counts

    @property
    def count(self) -> int:
        return self.zeros + self._n_pending + int(self._counts.sum())

    def add(self, values: np.ndarray) -> None:
        """Count finite non-negative ``values`` (the caller filters them)."""
        positive = values[values > 0]
        self.zeros += int(values.size - positive.size)
        if positive.size:
            self._pending.append(np.ceil(np.log(positive) / _LOG_GAMMA).astype(np.int64))
            self._n_pending += positive.size
            if self._n_pending > _PENDING_MAX:
                self._settle()

    def merge(self, other: LogSketch) -> None:
        self.zeros += other.zeros
        self._absorb(other.keys, other.counts)

    def _settle(self) -> None:
        if self._pending:
            keys = np.concatenate(self._pending)
            self._pending, self._n_pending = [], 0
            self._absorb(keys, np.ones(keys.size, np.int64))

    def _absorb(self, keys: np.ndarray, counts: np.ndarray) -> None:
        self._settle()
        if keys.size == 0:
            return
        unique, inverse = np.unique(np.concatenate([self._keys, keys]), return_inverse=True)
        summed = np.bincount(inverse, weights=np.concatenate([self._counts, counts])).astype(np.int64)
        excess = unique.size - self.max_buckets
        if excess > 0:
            summed[excess] += summed[:excess].sum()
            unique, summed = unique[excess:], summed[excess:]
        self._keys, self._counts = unique, summed

    def value_at_rank(self, ranks: np.ndarray) -> np.ndarray:
        """Estimate of the order statistics at 0-based ``ranks`` (each below `count`)."""
        keys, counts = self.keys, self.counts
        if keys.size == 0:
            return np.zeros(ranks.shape)
        cumulative = self.zeros + np.cumsum(counts)
        bucket = np.minimum(np.searchsorted(cumulative, ranks, side="right"), keys.size - 1)
        estimate = 2.0 * np.power(_GAMMA, keys[bucket].astype(np.float64)) / (_GAMMA + 1.0)
        return np.where(ranks < self.zeros, 0.0, estimate)

    def quantiles(self, qs: np.ndarray) -> np.ndarray:
        """Quantiles ``qs`` in [0, 1]; NaN when empty."""
        return _interpolated_quantiles(self.value_at_rank, self.count, np.asarray(qs, np.float64))

    def to_array(self) -> np.ndarray:
        """State as one int64 array: ``[zeros, max_buckets, keys..., counts...]``."""
        return np.concatenate([[self.zeros, self.max_buckets], self.keys, self.counts]).astype(np.int64)

    @classmethod
    def from_array(cls, array: np.ndarray) -> LogSketch:
        sketch = cls(int(array[1]))
        sketch.zeros = int(array[0])
        half = (array.size - 2) // 2
        sketch._keys = array[2 : 2 + half].astype(np.int64)
        sketch._counts = array[2 + half :].astype(np.int64)
        return sketch


class SignedLogSketch:
    """`LogSketch` for finite values of either sign (same 1% relative error bound)."""

    def __init__(self) -> None:
        self.positive = LogSketch()
        self.negative = LogSketch()

    @property
    def count(self) -> int:
        return self.positive.count + self.negative.count

    def add(self, values: np.ndarray) -> None:
        negative = values < 0
        self.positive.add(values[~negative])
        self.negative.add(-values[negative])

    def merge(self, other: SignedLogSketch) -> None:
        self.positive.merge(other.positive)
        self.negative.merge(other.negative)

    def value_at_rank(self, ranks: np.ndarray) -> np.ndarray:
        n_neg = self.negative.count
        neg = -self.negative.value_at_rank(np.clip(n_neg - 1 - ranks, 0, None))
        pos = self.positive.value_at_rank(np.clip(ranks - n_neg, 0, None))
        return np.where(ranks < n_neg, neg, pos)

    def quantiles(self, qs: np.ndarray) -> np.ndarray:
        return _interpolated_quantiles(self.value_at_rank, self.count, np.asarray(qs, np.float64))


def score_bin(scores: np.ndarray, bins: int) -> np.ndarray:
    """Bin index of each score on the grid ``k / bins``, k = 0..bins (scores clipped to [0, 1])."""
    return np.rint(np.clip(scores, 0.0, 1.0) * bins).astype(np.intp)


def score_bin_edges(bins: int) -> np.ndarray:
    """Edges of the ``bins + 1`` score bins: bin k covers ``[(k-0.5)/bins, (k+0.5)/bins)`` within [0, 1]."""
    return np.concatenate([[0.0], (np.arange(bins) + 0.5) / bins, [1.0]])


def roc_auc_from_histograms(positives: np.ndarray, negatives: np.ndarray) -> float:
    """ROC AUC from score histograms of positives and negatives; pairs sharing a bin count one half.

    Exact (equal to the Mann-Whitney U / (n_pos n_neg)) when all scores lie on the bin grid; otherwise off
    by at most `roc_auc_error_bound`. NaN when either class is absent.
    """
    n_pos, n_neg = float(positives.sum()), float(negatives.sum())  # float: CBPE passes expected counts
    if n_pos <= 0 or n_neg <= 0:
        return math.nan
    negatives_below = np.cumsum(negatives) - negatives
    wins = np.dot(positives.astype(np.float64), (negatives_below + 0.5 * negatives).astype(np.float64))
    return float(wins / (n_pos * n_neg))


def roc_auc_error_bound(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Largest possible error of `roc_auc_from_histograms`: half the share of pairs sharing a bin."""
    n_pos, n_neg = int(positives.sum()), int(negatives.sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    return float(0.5 * np.dot(positives.astype(np.float64), negatives) / (n_pos * n_neg))
