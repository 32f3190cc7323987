"""Distribution-drift tests of a window against a reference, both given as counts on the same bins.

Every test returns a :class:`TestResult`. A window (or reference) with fewer than ``min_samples`` counted
values is ``insufficient`` and never ``drifted``. A verdict needs *both* a significant difference (a
two-sample test whose null distribution accounts for the sizes of both samples) *and* an effect larger than
a negligible one, so small windows do not flag sampling noise and huge windows do not flag trivia:

- PSI ``sum((q - p) * ln(q / p))`` and the Jensen-Shannon distance (base 2, equals
  ``scipy.spatial.distance.jensenshannon``) are computed on coarse bins (numeric: the profile's bins merged
  into about 10 equal-reference-mass groups). They flag when above their threshold (0.2, 0.1) *and* the
  chi-square homogeneity test on the same bins is significant; their ``p_value`` is that test's. Their null
  expectation on small samples, ``(K-1)(1/n+1/m)`` for PSI, is far above zero, which the chi-square gate
  accounts for: both are asymptotically ``(1/n + 1/m) * chi2(K-1)`` (PSI) and ``chi2(K-1) / (8 n_eff ln 2)``
  (squared JS distance) on unchanged data, ``n_eff = n m / (n + m)``.
- Chi-square test of homogeneity on the 2 x K table with the Cressie-Read power-divergence statistic
  (lambda 2/3; equals ``scipy.stats.chi2_contingency(..., correction=False, lambda_="cressie-read")``), after
  dropping categories absent from both and pooling columns whose expected count (in the smaller sample) is
  below 10 (Cochran's rule of 5, doubled for the far tail Bonferroni levels reach; a category the
  reference never saw would otherwise give a huge statistic from one value);
  one remaining column means dof 0, statistic 0, p = 1. Cressie-Read rather than Pearson's X^2 because at
  the Bonferroni levels in use (~1e-4) Pearson's tail is heavier than the chi-square distribution when
  expected counts are near 10: measured with 200,000 stationary 2 x K tables per cell (Zipf categories,
  K = 2-40), Pearson rejects 1.0-1.3x the nominal 2.5e-4 and 5e-4 at reference 5,000 / window 200,
  Cressie-Read 0.9-1.1x (Read & Cressie 1988 recommend it for small expected counts). Its effect gate is
  the total variation distance ``sum |p - q| / 2`` over the pooled columns ``>= tv_min``.
- Kolmogorov-Smirnov: the largest gap between the two empirical CDFs at the (fine) bin boundaries; the
  p-value is the asymptotic Kolmogorov distribution with Stephens' small-sample correction,
  ``kstwobign.sf(D * (sqrt(en) + 0.12 + 0.11 / sqrt(en)))`` (``scipy.special.kolmogorov``),
  ``en = n m / (n + m)``: within 3% relative of ``kstwo.sf(D, round(en))``, which
  ``scipy.stats.ks_2samp(method="asymp")`` uses, at p-values 1e-2 to 1e-4 and en >= 200 (7% at en = 30),
  for a fraction of its cost.
  Binning can only lower D (exact when every bin holds one distinct value); ties make it conservative.
  Effect gate: ``D >= ks_min``.
- Wasserstein-1 between the two binned distributions placed on the bin representatives (the reference bin
  means). Exact when each bin holds a single distinct value; otherwise the error is bounded by the widest
  occupied bin. Flags when above ``wasserstein_std`` reference standard deviations *and* the KS test is
  significant.

Multiple testing: ``compare`` uses the Bonferroni level ``alpha / m`` where ``m`` counts every significance
test of the model window (numeric feature: KS and chi-square; categorical: chi-square), so a model window
is flagged on unchanged data with probability at most about ``alpha``. The default ``alpha`` is 0.005, half
the 1% target: with calibrated tests on independent features Bonferroni's bound is nearly attained (20
features at 0.01: 0.995%), so a 1% default sat on the target and any tail error of an approximate p-value
went over it (measured in ``benchmarks/detection_quality.py``). PSI and Jensen-Shannon add no tests: they
flag only windows whose chi-square is significant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import chdtrc, kolmogorov

from stream.monitor.profiles import FeatureProfile, reference_counts

__all__ = [
    "TestResult",
    "Thresholds",
    "attribution",
    "chi_square",
    "coarse_groups",
    "compare",
    "jensen_shannon",
    "ks",
    "ks_pvalue",
    "psi",
    "significance_tests",
    "wasserstein",
]

PSI_EPS = 1e-4
MIN_EXPECTED = 10.0
CR_LAMBDA = 2.0 / 3.0  # Cressie-Read power-divergence exponent
COARSE_BINS = 10


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds: significance ``alpha`` per model window and the smallest effects that count.

    ``wasserstein_std`` flags drift when the Wasserstein distance exceeds that many reference standard
    deviations (and KS is significant); None reports the distance without ever flagging it. ``ks_min`` is
    the smallest KS distance and ``tv_min`` the smallest total variation distance (categorical) that count.
    """

    psi: float = 0.2
    js: float = 0.1
    alpha: float = 0.005
    wasserstein_std: float | None = 0.1
    min_samples: int = 30
    ks_min: float = 0.04
    tv_min: float = 0.05


@dataclass(frozen=True)
class TestResult:
    """Outcome of one test.

    ``threshold`` is the Bonferroni-corrected level for p-value tests (drifted when ``p_value < threshold``
    and the effect is not negligible) and the statistic bound otherwise (drifted when ``statistic >
    threshold`` and the gating test is significant; ``p_value`` is then the gating test's). ``n`` is the
    window count. An insufficient result has ``statistic`` NaN and ``p_value`` None.
    """

    __test__ = False  # not a pytest test class

    test: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    insufficient: bool
    n: int


def _prep(ref: np.ndarray, win: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    r = np.asarray(ref, dtype=np.float64).ravel()
    w = np.asarray(win, dtype=np.float64).ravel()
    if r.shape != w.shape:
        raise ValueError(f"reference and window counts differ in length: {r.size} != {w.size}")
    return r, w, int(r.sum()), int(w.sum())


def _insufficient(test: str, threshold: float, n: int) -> TestResult:
    return TestResult(test, float("nan"), None, threshold, False, True, n)


def _pooled(r: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop columns empty in both; pool those whose smaller expected count is below ``MIN_EXPECTED`` into one
    column (merged into the smallest other column if the pool itself is still below it)."""
    keep = (r + w) > 0
    r, w = r[keep], w[keep]
    total = r.sum() + w.sum()
    if total == 0 or r.size < 2:
        return r, w
    share = min(r.sum(), w.sum()) / total  # expected count of a column = its total * share (smaller row)
    rare = (r + w) * share < MIN_EXPECTED
    if not rare.any():
        return r, w
    pr, pw = r[~rare].copy(), w[~rare].copy()
    rr, rw = float(r[rare].sum()), float(w[rare].sum())
    if pr.size and (rr + rw) * share < MIN_EXPECTED:
        j = int(np.argmin(pr + pw))
        pr[j] += rr
        pw[j] += rw
        return pr, pw
    return np.append(pr, rr), np.append(pw, rw)


def _chi2_pooled(r: np.ndarray, w: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Cressie-Read homogeneity statistic and p-value on the pooled table; also the pooled columns."""
    pr, pw = _pooled(r, w)
    dof = pr.size - 1
    if dof < 1 or pr.sum() == 0 or pw.sum() == 0:
        return 0.0, 1.0, pr, pw
    table = np.vstack([pr, pw])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    lam = CR_LAMBDA
    stat = float(max(np.sum(table * ((table / expected) ** lam - 1.0)) * 2.0 / (lam * (lam + 1.0)), 0.0))
    return stat, float(chdtrc(dof, stat)), pr, pw


def coarse_groups(ref: np.ndarray, target: int = COARSE_BINS) -> np.ndarray:
    """Start indices (for ``np.add.reduceat``) merging consecutive bins into ~``target`` groups of about equal
    reference mass; bins already at or below ``target`` are kept as they are.

    >>> coarse_groups(np.full(100, 5)).tolist()
    [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]
    >>> coarse_groups(np.array([3, 1, 1])).tolist()
    [0, 1, 2]
    """
    r = np.asarray(ref, dtype=np.float64).ravel()
    if r.size <= target or r.sum() <= 0:
        return np.arange(r.size)
    cum = np.cumsum(r) / r.sum()
    # group g ends at the first bin whose cumulative mass reaches (g + 1) / target
    ends = np.searchsorted(cum, np.arange(1, target) / target - 1e-12, side="left")
    starts = np.unique(np.concatenate(([0], ends + 1)))
    return starts[starts < r.size]


def psi(
    ref: np.ndarray,
    win: np.ndarray,
    threshold: float = 0.2,
    min_samples: int = 30,
    alpha: float = 0.005,
    gate_p: float | None = None,
) -> TestResult:
    """Population stability index with eps-smoothed proportions, gated by the chi-square test at ``alpha``
    (``gate_p``: that test's p-value on these counts, when already computed).

    Examples
    --------
    >>> r = psi(np.array([50, 50]), np.array([50, 50]))
    >>> r.statistic, r.drifted
    (0.0, False)
    """
    r, w, nr, nw = _prep(ref, win)
    if min(nr, nw) < max(min_samples, 1):
        return _insufficient("psi", threshold, nw)
    k = r.size
    p = (r / nr + PSI_EPS) / (1 + k * PSI_EPS)
    q = (w / nw + PSI_EPS) / (1 + k * PSI_EPS)
    stat = float(np.sum((q - p) * np.log(q / p)))
    pval = _chi2_pooled(r, w)[1] if gate_p is None else gate_p
    return TestResult("psi", stat, pval, threshold, stat > threshold and pval < alpha, False, nw)


def null_psi(ref: np.ndarray, win: np.ndarray) -> float:
    """Expected PSI between two samples of one distribution: about ``(K - 1) (1/n + 1/m)`` for K occupied bins.

    >>> round(null_psi(np.array([100] * 10), np.array([10] * 10)), 3)
    0.099
    """
    occupied = int(np.count_nonzero((ref > 0) | (win > 0)))
    nr, nw = float(ref.sum()), float(win.sum())
    if occupied < 2 or nr == 0 or nw == 0:
        return 0.0
    return (occupied - 1) * (1 / nr + 1 / nw)


def jensen_shannon(
    ref: np.ndarray,
    win: np.ndarray,
    threshold: float = 0.1,
    min_samples: int = 30,
    alpha: float = 0.005,
    gate_p: float | None = None,
) -> TestResult:
    """Jensen-Shannon distance (base 2) between the normalised counts, gated by the chi-square test (as in
    :func:`psi`)."""
    r, w, nr, nw = _prep(ref, win)
    if min(nr, nw) < max(min_samples, 1):
        return _insufficient("js", threshold, nw)
    p, q = r / nr, w / nw
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    stat = float(np.sqrt(max((kl_p + kl_q) / 2, 0.0)))
    pval = _chi2_pooled(r, w)[1] if gate_p is None else gate_p
    return TestResult("js", stat, pval, threshold, stat > threshold and pval < alpha, False, nw)


def ks_pvalue(d: float, en: float) -> float:
    """Asymptotic two-sample KS p-value with Stephens' correction (see module docstring).

    >>> round(ks_pvalue(0.1, 500.0), 6)
    8.1e-05
    """
    if en <= 0:
        return 1.0
    s = math.sqrt(en)
    return min(max(float(kolmogorov(d * (s + 0.12 + 0.11 / s))), 0.0), 1.0)


def ks(
    ref: np.ndarray, win: np.ndarray, alpha: float = 0.005, min_samples: int = 30, min_effect: float = 0.0
) -> TestResult:
    """Two-sample Kolmogorov-Smirnov test on binned counts (asymptotic p-value, see module docstring)."""
    r, w, nr, nw = _prep(ref, win)
    if min(nr, nw) < max(min_samples, 1):
        return _insufficient("ks", alpha, nw)
    d = float(np.max(np.abs(np.cumsum(r) / nr - np.cumsum(w) / nw)))
    d = min(max(d, 0.0), 1.0)
    p = ks_pvalue(d, nr * nw / (nr + nw))
    return TestResult("ks", d, p, alpha, p < alpha and d >= min_effect, False, nw)


def wasserstein(
    ref: np.ndarray,
    win: np.ndarray,
    values: np.ndarray,
    threshold: float = float("inf"),
    min_samples: int = 30,
    gate_p: float | None = None,
    alpha: float = 1.0,
) -> TestResult:
    """Wasserstein-1 distance with all mass of bin ``i`` at ``values[i]`` (non-decreasing), in value units.

    Drifted when above ``threshold`` and, if ``gate_p`` (the KS p-value of the same window) is given, when
    ``gate_p < alpha``; ``p_value`` reports ``gate_p``.
    """
    r, w, nr, nw = _prep(ref, win)
    if min(nr, nw) < max(min_samples, 1):
        return _insufficient("wasserstein", threshold, nw)
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size != r.size:
        raise ValueError(f"need one representative value per bin: {v.size} != {r.size}")
    gaps = np.abs(np.cumsum(r)[:-1] / nr - np.cumsum(w)[:-1] / nw)
    stat = float(np.sum(gaps * np.diff(v)))
    significant = gate_p is None or gate_p < alpha
    return TestResult("wasserstein", stat, gate_p, threshold, stat > threshold and significant, False, nw)


def chi_square(
    ref: np.ndarray, win: np.ndarray, alpha: float = 0.005, min_samples: int = 30, min_effect: float = 0.0
) -> TestResult:
    """Chi-square test of homogeneity of reference vs window counts (Cressie-Read statistic; rare columns
    pooled, see module docstring); drifted when ``p < alpha`` and the total variation distance of the pooled
    columns is at least ``min_effect``."""
    r, w, nr, nw = _prep(ref, win)
    if min(nr, nw) < max(min_samples, 1):
        return _insufficient("chi2", alpha, nw)
    stat, p, pr, pw = _chi2_pooled(r, w)
    tv = float(np.abs(pr / pr.sum() - pw / pw.sum()).sum() / 2) if pr.size else 0.0
    return TestResult("chi2", stat, p, alpha, p < alpha and tv >= min_effect, False, nw)


def significance_tests(profile: FeatureProfile) -> int:
    """Number of significance tests :func:`compare` runs on a feature (numeric: KS and chi-square on the
    coarse bins; categorical: chi-square); sum it over a model's features for the Bonferroni correction."""
    return 1 if profile.kind == "categorical" else 2


def compare(
    profile: FeatureProfile,
    window_counts: np.ndarray,
    n_features: int = 1,
    thresholds: Thresholds | None = None,
    n_tests: int | None = None,
) -> list[TestResult]:
    """Run every test that applies to the feature kind.

    Numeric: psi, js, ks, wasserstein. Categorical: psi, js, chi2. ``window_counts`` comes from
    :func:`stream.monitor.profiles.bin_counts`. The significance level is ``alpha / n_tests``, ``n_tests``
    being the number of significance tests of the whole model window (see :func:`significance_tests`); by
    default ``n_features`` times this feature's own count.
    """
    t = thresholds or Thresholds()
    ref = reference_counts(profile)
    win = np.asarray(window_counts)
    if win.shape != ref.shape:
        raise ValueError(f"reference and window counts differ in length: {ref.size} != {win.size}")
    m = n_tests if n_tests is not None else max(n_features, 1) * significance_tests(profile)
    level = t.alpha / max(m, 1)
    ms = t.min_samples
    if profile.kind == "categorical":
        c = chi_square(ref, win, level, ms, t.tv_min)
        return [psi(ref, win, t.psi, ms, level, c.p_value), jensen_shannon(ref, win, t.js, ms, level, c.p_value), c]
    groups = coarse_groups(ref)
    cr, cw = np.add.reduceat(ref, groups), np.add.reduceat(win, groups)
    gate = _chi2_pooled(*_prep(cr, cw)[:2])[1]
    out = [psi(cr, cw, t.psi, ms, level, gate), jensen_shannon(cr, cw, t.js, ms, level, gate)]
    k = ks(ref, win, level, ms, t.ks_min)
    out.append(k)
    w_thr = float("inf")
    if t.wasserstein_std is not None and profile.std:
        w_thr = t.wasserstein_std * profile.std
    out.append(wasserstein(ref, win, np.asarray(profile.bin_means), w_thr, ms, k.p_value, level))
    return out


def attribution(results_by_feature: Mapping[str, Sequence[TestResult]]) -> list[tuple[str, float]]:
    """Features ranked by PSI, largest first (ties by name); insufficient windows are left out.

    Examples
    --------
    >>> a = psi(np.array([50, 50]), np.array([90, 10]))
    >>> b = psi(np.array([50, 50]), np.array([60, 40]))
    >>> [name for name, _ in attribution({"b": [b], "a": [a]})]
    ['a', 'b']
    """
    scores = [
        (name, r.statistic)
        for name, results in results_by_feature.items()
        for r in results
        if r.test == "psi" and not r.insufficient
    ]
    return sorted(scores, key=lambda s: (-s[1], s[0]))
