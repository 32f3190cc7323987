"""Multivariate drift of a window: PCA reconstruction error against the reference (NannyML's method).

Fit: standardise the reference rows (numeric inputs) by their mean and std, keep the principal components
that explain ``variance`` (65%) of the variance. A row's reconstruction error is the Euclidean distance
between its standardised values and their projection back from those components. A window's statistic is
its mean reconstruction error; the thresholds are the mean ± 3 standard deviations of that statistic over
reference chunks of ``chunk`` rows (scaled to the window's size by ``sqrt(chunk / n)``). A change in how the
inputs move together (their correlation) with unchanged marginals moves the error, which no univariate test
sees. Attribution: each input's mean squared residual in the window over its mean in the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PCADrift", "PCAResult"]


@dataclass(frozen=True)
class PCAResult:
    """Mean reconstruction error of a window, its thresholds, the verdict and the inputs ranked by how much
    their residual grew (ratio to the reference's)."""

    statistic: float
    lower: float
    upper: float
    drifted: bool
    n: int
    attribution: list[tuple[str, float]]


class PCADrift:
    """PCA reconstruction-error drift test fitted on reference rows (``n x d``, no NaN)."""

    def __init__(
        self, names: list[str], reference: np.ndarray, variance: float = 0.65, chunk: int = 500
    ) -> None:
        x = np.asarray(reference, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(names):
            raise ValueError(f"reference must be rows x {len(names)} inputs, got shape {x.shape}")
        if x.shape[0] < 2 * chunk:
            raise ValueError(f"need at least {2 * chunk} reference rows for the thresholds, got {x.shape[0]}")
        if not np.isfinite(x).all():
            raise ValueError("reference rows must be finite (impute missing values first)")
        self.names = list(names)
        self.mean = x.mean(axis=0)
        std = x.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)  # a constant input contributes nothing
        z = (x - self.mean) / self.std
        _, s, vt = np.linalg.svd(z, full_matrices=False)
        explained = np.cumsum(s**2) / max(float((s**2).sum()), 1e-300)
        k = int(np.searchsorted(explained, variance) + 1)
        self.components = vt[: min(k, vt.shape[0])]
        err, resid = self._errors(z)
        self.reference_residual = np.maximum(resid.mean(axis=0), 1e-12)
        chunks = err[: err.size // chunk * chunk].reshape(-1, chunk).mean(axis=1)
        self.chunk = chunk
        self.center, self.spread = float(chunks.mean()), float(chunks.std(ddof=1))

    def _errors(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        recon = (z @ self.components.T) @ self.components
        resid = (z - recon) ** 2
        return np.sqrt(resid.sum(axis=1)), resid

    def test(self, window: np.ndarray) -> PCAResult:
        """Test a window of rows (rows with NaN are skipped; fewer than 2 rows: not drifted, NaN statistic)."""
        w = np.asarray(window, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != len(self.names):
            raise ValueError(f"window must be rows x {len(self.names)} inputs, got shape {w.shape}")
        w = w[np.isfinite(w).all(axis=1)]
        n = w.shape[0]
        if n < 2:
            return PCAResult(float("nan"), float("nan"), float("nan"), False, n, [])
        err, resid = self._errors((w - self.mean) / self.std)
        stat = float(err.mean())
        half = 3 * self.spread * np.sqrt(self.chunk / n)
        lower, upper = self.center - half, self.center + half
        ratio = resid.mean(axis=0) / self.reference_residual
        ranked = sorted(zip(self.names, ratio.tolist(), strict=True), key=lambda t: (-t[1], t[0]))
        return PCAResult(stat, lower, upper, not lower <= stat <= upper, n, ranked)
