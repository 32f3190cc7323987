"""Multivariate drift of a window: PCA reconstruction error against the reference (NannyML's method).

Fit: standardise the numeric inputs by the reference mean and std and keep the principal components that
explain ``variance`` (65%) of the variance. A row's reconstruction error is the Euclidean distance between
its standardised values and their projection back from those components. A change in how the inputs move
together (their correlation) with unchanged marginals moves the error, which no univariate test sees.

Calibration that holds at every window size. The reference's first half fits the standardisation and the
components; the second half, held out, gives the mean ``c`` and standard deviation ``s`` of the error of
*new* rows (the error of the rows the components were fitted on is biased low). A window of ``n`` rows with
mean error ``e`` is tested by ``z = (e - c) / sqrt(s²/n + s²/m)``, ``m`` the held-out rows (both the window
mean and ``c`` are estimates), two-sided against the normal quantile of the test's level (its share of the
model window's Bonferroni family), and flags only when the effect ``|e - c| / c`` is at least ``min_effect``
(2%), so huge windows do not flag negligible changes. Windows with fewer than ``min_samples`` (30) complete
rows are insufficient, never drifted. Attribution: each input's mean squared residual in the window over its
mean in the held-out reference, largest first.

Nothing keeps rows. :class:`PCAReference` takes the reference rows batch by batch: the first half is merged
into a mean and a scatter matrix (Chan's update, numerically stable), from which the components are the
eigenvectors of the correlation matrix; the second half is scored as it comes. A window is likewise a vector
of sums (:meth:`PCADrift.sums`: count, sum and sum of squares of the errors, residual sums per input), so
memory per model version is ``O(d²)`` for ``d`` inputs, however many rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["MULTIVARIATE", "TEST_NAME", "PCADrift", "PCAReference", "PCAResult"]

MULTIVARIATE = "__multivariate__"  # the pseudo-feature of its feature_drift rows
TEST_NAME = "pca_reconstruction"
MIN_EFFECT = 0.02  # relative change of the mean error below which a difference is negligible
MIN_REFERENCE = 60  # smallest reference (30 rows to fit, 30 held out)
MAX_INPUTS = 50  # the monitor tests the first 50 numeric inputs together: memory O(d²), cost per row O(d k)


@dataclass(frozen=True)
class PCAResult:
    """One window's verdict.

    ``statistic`` is the window's mean reconstruction error, ``center`` the held-out reference's, ``z`` the
    standardised difference and ``p_value`` its two-sided normal p-value; ``lower``/``upper`` bound the mean
    errors that are not significant at ``level``; ``effect`` is ``|statistic - center| / center``. Drifted when
    ``p_value < level`` and ``effect >= min_effect``. Insufficient (NaN statistic, never drifted) below
    ``min_samples`` rows. ``attribution`` ranks the inputs by the ratio of their mean squared residual to the
    reference's, largest first (ties by name).
    """

    statistic: float
    center: float
    z: float
    p_value: float | None
    level: float
    lower: float
    upper: float
    effect: float
    drifted: bool
    insufficient: bool
    n: int
    attribution: list[tuple[str, float]]

    def details(self) -> dict[str, Any]:
        """What a ``feature_drift`` row's ``details`` column holds (JSON-ready, rounded)."""

        def r(x: float) -> float | None:
            return round(x, 6) if math.isfinite(x) else None

        return {"center": r(self.center), "z": r(self.z), "lower": r(self.lower), "upper": r(self.upper),
                "effect": r(self.effect), "attribution": [[name, r(v)] for name, v in self.attribution]}  # fmt: skip


class PCADrift:
    """A fitted PCA reconstruction-error test (see the module docstring); build it with :meth:`fit` from rows
    or with :class:`PCAReference` batch by batch.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.multivariate_normal([0, 0, 0], [[1, .8, 0], [.8, 1, 0], [0, 0, 1]], 2000)
    >>> det = PCADrift.fit(["a", "b", "c"], x)
    >>> det.components.shape, det.held_out
    ((2, 3), 1000)
    >>> det.test(x[:500] * [1, -1, 1], level=0.001).drifted  # same marginals, correlation flipped
    True
    >>> det.test(rng.multivariate_normal([0, 0, 0], [[1, .8, 0], [.8, 1, 0], [0, 0, 1]], 500), level=0.001).drifted
    False
    """

    def __init__(self, names: Sequence[str], mean: np.ndarray, std: np.ndarray, components: np.ndarray,
                 center: float, spread: float, held_out: int, reference_residual: np.ndarray) -> None:
        self.names = list(names)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        self.components = np.asarray(components, dtype=np.float64)
        self.center, self.spread, self.held_out = float(center), float(spread), int(held_out)
        self.reference_residual = np.maximum(np.asarray(reference_residual, dtype=np.float64), 1e-12)

    @classmethod
    def fit(cls, names: Sequence[str], reference: np.ndarray, variance: float = 0.65) -> PCADrift:
        """Fit on reference rows (``n x d``): the first half fits, the second is held out (rows with NaN are
        skipped)."""
        x = np.asarray(reference, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(names):
            raise ValueError(f"reference must be rows x {len(names)} inputs, got shape {x.shape}")
        complete = int(np.isfinite(x).all(axis=1).sum())
        if complete < MIN_REFERENCE:
            raise ValueError(f"need at least {MIN_REFERENCE} complete reference rows, got {complete}")
        ref = PCAReference(names, complete, variance)
        ref.add(x)
        assert ref.result is not None
        return ref.result

    def _residuals(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.std
        resid = z - (z @ self.components.T) @ self.components
        out: np.ndarray = resid * resid
        return out

    def sums(self, rows: np.ndarray) -> np.ndarray:
        """Sufficient statistics of the complete rows of ``rows`` (``n x d``): ``[count, sum of errors, sum of
        squared errors, squared-residual sum per input...]``; add them up over batches and pass to :meth:`judge`."""
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.names):
            raise ValueError(f"rows must be rows x {len(self.names)} inputs, got shape {x.shape}")
        x = x[np.isfinite(x).all(axis=1)]
        r2 = self._residuals(x)
        err = np.sqrt(r2.sum(axis=1))
        return np.concatenate(([float(x.shape[0]), float(err.sum()), float(err @ err)], r2.sum(axis=0)))

    def judge(self, sums: np.ndarray, level: float, min_effect: float = MIN_EFFECT,
              min_samples: int = 30) -> PCAResult:
        """The verdict on a window from its accumulated :meth:`sums` at significance ``level`` (two-sided)."""
        s = np.asarray(sums, dtype=np.float64)
        n = int(s[0])
        q = float(ndtri(1 - level / 2))
        if n < max(min_samples, 1):
            nan = float("nan")
            return PCAResult(nan, self.center, nan, None, level, nan, nan, nan, False, True, n, [])
        stat = float(s[1] / n)
        se = self.spread * math.sqrt(1 / n + 1 / self.held_out)
        diff = stat - self.center
        z = diff / se if se > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
        p = float(2 * ndtr(-abs(z)))
        effect = abs(diff) / self.center if self.center > 0 else (0.0 if diff == 0 else math.inf)
        ratio = (s[3:] / n) / self.reference_residual
        ranked = sorted(zip(self.names, ratio.tolist(), strict=True), key=lambda t: (-t[1], t[0]))
        return PCAResult(stat, self.center, z, p, level, self.center - q * se, self.center + q * se, effect,
                         p < level and effect >= min_effect, False, n, ranked)  # fmt: skip

    def test(self, window: np.ndarray, level: float, min_effect: float = MIN_EFFECT,
             min_samples: int = 30) -> PCAResult:
        """Test a window of rows (rows with NaN are skipped)."""
        return self.judge(self.sums(window), level, min_effect, min_samples)

    def state(self) -> dict[str, Any]:
        """Plain state for a checkpoint."""
        return {"names": self.names, "mean": self.mean, "std": self.std, "components": self.components,
                "center": self.center, "spread": self.spread, "held_out": self.held_out,
                "reference_residual": self.reference_residual}  # fmt: skip

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> PCADrift:
        """Inverse of :meth:`state`."""
        return cls(list(state["names"]), state["mean"], state["std"], state["components"], state["center"],
                   state["spread"], state["held_out"], state["reference_residual"])  # fmt: skip


class PCAReference:
    """Builds a :class:`PCADrift` from the first ``size`` complete rows of a stream, batch by batch, keeping
    no rows: ``size // 2`` rows fit the standardisation and components, the rest are held out (see the module
    docstring). :attr:`result` is the fitted test once complete, else None.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> ref = PCAReference(["a", "b"], 100)
    >>> ref.add(rng.normal(size=(70, 2))), ref.result is None
    (70, True)
    >>> batch = rng.normal(size=(50, 2))
    >>> batch[0, 1] = np.nan  # an incomplete row is skipped (and consumed)
    >>> ref.add(batch), ref.result is not None  # 31 rows consumed: 30 complete + the skipped one
    (31, True)
    """

    def __init__(self, names: Sequence[str], size: int, variance: float = 0.65) -> None:
        if size < MIN_REFERENCE:
            raise ValueError(f"need a reference of at least {MIN_REFERENCE} rows, got {size}")
        self.names, self.size, self.variance = list(names), int(size), float(variance)
        d = len(self.names)
        self.fit_rows = self.size // 2
        self.n = 0  # rows merged into the fit
        self.mean = np.zeros(d)
        self.scatter = np.zeros((d, d))
        self.fitted: PCADrift | None = None  # after the first half; scores the second
        self.held = np.zeros(3 + d)  # PCADrift.sums of the held-out rows so far
        self.result: PCADrift | None = None

    def add(self, rows: np.ndarray) -> int:
        """Take what is still needed from ``rows`` (``n x d``, in stream order); return how many leading rows
        went to the reference (all of them until it is complete; incomplete rows among them are skipped)."""
        x = np.asarray(rows, dtype=np.float64)
        if self.result is not None or not x.shape[0]:
            return 0
        complete = np.flatnonzero(np.isfinite(x).all(axis=1))
        taken = 0
        if self.fitted is None:
            part = complete[: self.fit_rows - self.n]
            self._merge(x[part])
            taken = part.size
            if self.n == self.fit_rows:
                self.fitted = self._fit()
        if self.fitted is not None:
            part = complete[taken: taken + self.size - self.fit_rows - int(self.held[0])]
            self.held += self.fitted.sums(x[part])
            taken += part.size
            if int(self.held[0]) == self.size - self.fit_rows:
                f, h = self.fitted, self.held
                m = int(h[0])
                center = h[1] / m
                spread = math.sqrt(max(h[2] - m * center * center, 0.0) / (m - 1))
                self.result = PCADrift(self.names, f.mean, f.std, f.components, center, spread, m, h[3:] / m)
                return int(complete[taken - 1]) + 1
        return int(x.shape[0])

    def _merge(self, b: np.ndarray) -> None:
        k = b.shape[0]
        if not k:
            return
        mb = b.mean(axis=0)
        c = b - mb
        delta = mb - self.mean
        total = self.n + k
        self.scatter += c.T @ c + np.outer(delta, delta) * (self.n * k / total)
        self.mean += delta * (k / total)
        self.n = total

    def _fit(self) -> PCADrift:
        cov = self.scatter / self.n
        std = np.sqrt(np.maximum(np.diag(cov), 0.0))
        std = np.where(std > 1e-12 * np.maximum(np.abs(self.mean), 1.0), std, 1.0)  # a constant input: no scaling
        corr = cov / np.outer(std, std)
        values, vectors = np.linalg.eigh(corr)
        order = np.argsort(values)[::-1]
        values, vectors = np.maximum(values[order], 0.0), vectors[:, order]
        explained = np.cumsum(values) / max(float(values.sum()), 1e-300)
        k = min(int(np.searchsorted(explained, self.variance) + 1), values.size)
        return PCADrift(self.names, self.mean.copy(), std, vectors[:, :k].T.copy(), math.nan, math.nan, 1,
                        np.ones(len(self.names)))  # fmt: skip

    def state(self) -> dict[str, Any]:
        """Plain state for a checkpoint (sums only, no rows)."""
        return {"names": self.names, "size": self.size, "variance": self.variance, "n": self.n, "mean": self.mean,
                "scatter": self.scatter, "held": self.held,
                "fitted": None if self.fitted is None else self.fitted.state()}  # fmt: skip

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> PCAReference:
        """Inverse of :meth:`state`."""
        ref = cls(list(state["names"]), int(state["size"]), float(state["variance"]))
        ref.n = int(state["n"])
        ref.mean = np.asarray(state["mean"], dtype=np.float64).copy()
        ref.scatter = np.asarray(state["scatter"], dtype=np.float64).copy()
        ref.held = np.asarray(state["held"], dtype=np.float64).copy()
        ref.fitted = None if state["fitted"] is None else PCADrift.from_state(state["fitted"])
        return ref
