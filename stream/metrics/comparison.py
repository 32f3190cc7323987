"""Paired comparison of a challenger with its champion on the same labelled requests, per window.

Both models scored the same requests (same ``prediction_id``) and got the same labels, so their results are
paired and the tests are the paired ones:

==============  ==========================================================================================
classification  difference in accuracy (challenger - champion); McNemar's test on the discordant pairs
                (``b``: only the champion right, ``c``: only the challenger right): exact two-sided binomial
                (scipy ``binomtest``) when ``b + c < 25``, else chi-square with continuity correction
                ``(|b - c| - 1)**2 / (b + c)``, as statsmodels' ``mcnemar`` computes them
regression      difference in mean absolute error (challenger - champion); paired t-test on the per-request
                differences of absolute errors (scipy's ``t`` distribution; the same as ``ttest_rel``),
                from streaming sufficient statistics (count, mean, sum of squared deviations)
both            agreement rate: share of requests on which both predicted the same class (regression: the
                same value within 1e-9 relative)
==============  ==========================================================================================

The verdict is ``challenger_better`` or ``champion_better`` when the p-value is below ``alpha`` (default
0.05), ``no_difference`` otherwise, and ``insufficient`` below ``min_pairs`` pairs (default 30) or when the
test is undefined (fewer than two regression pairs, or all differences zero).

>>> c = PairedCounts()
>>> c.add_classification(np.array([True, True, False, True]), np.array([True, False, False, False]),
...                      np.array([True, False, True, False]))
>>> r = compare(c, "classification", alpha=0.05, min_pairs=1)
>>> r.difference, r.agreement, (r.champion_only, r.challenger_only), r.test, r.p_value, r.verdict
(-0.5, 0.5, (2, 0), 'mcnemar_exact', 0.5, 'no_difference')
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.stats import binomtest, chi2
from scipy.stats import t as t_dist

__all__ = ["Comparison", "PairedCounts", "compare", "mcnemar", "paired_t", "verdict"]

Task = Literal["classification", "regression"]
EXACT_BELOW = 25
"""McNemar's test is exact (binomial) below this many discordant pairs."""


def mcnemar(b: int, c: int) -> tuple[float, float, str]:
    """(statistic, p-value, test name) of McNemar's test on the discordant counts ``b`` and ``c``.

    >>> mcnemar(0, 0)
    (0.0, 1.0, 'mcnemar_exact')
    >>> s, p, name = mcnemar(10, 30); round(s, 3), round(p, 5), name
    (9.025, 0.00266, 'mcnemar_chi2')
    """
    n = b + c
    if n == 0:
        return 0.0, 1.0, "mcnemar_exact"
    if n < EXACT_BELOW:
        return float(min(b, c)), min(1.0, float(binomtest(min(b, c), n, 0.5).pvalue)), "mcnemar_exact"
    statistic = (abs(b - c) - 1.0) ** 2 / n
    return statistic, float(chi2.sf(statistic, 1)), "mcnemar_chi2"


def paired_t(n: int, mean: float, m2: float) -> tuple[float, float]:
    """(t, two-sided p-value) of the paired t-test from the differences' count, mean and sum of squared
    deviations; NaN for fewer than two pairs or all differences equal to zero, (±inf, 0) for equal non-zero
    differences.

    >>> t, p = paired_t(4, 0.5, 1.0); round(t, 4), round(p, 4)
    (1.7321, 0.1817)
    """
    if n < 2:
        return math.nan, math.nan
    var = max(m2, 0.0) / (n - 1)
    if var == 0.0:
        return (math.nan, math.nan) if mean == 0.0 else (math.copysign(math.inf, mean), 0.0)
    t = mean / math.sqrt(var / n)
    return t, float(2.0 * t_dist.sf(abs(t), n - 1))


@dataclass(slots=True)
class PairedCounts:
    """Sufficient statistics of one window's pairs (plain numbers: checkpointable)."""

    n: int = 0
    agree: int = 0
    champion_right: int = 0
    challenger_right: int = 0
    champion_only: int = 0  # McNemar's b
    challenger_only: int = 0  # McNemar's c
    champion_abs: float = 0.0  # regression: sums of absolute errors
    challenger_abs: float = 0.0
    mean_d: float = 0.0  # regression: |e_challenger| - |e_champion|, mean and sum of squared deviations
    m2_d: float = 0.0

    def add_classification(self, champion_right: npt.NDArray[np.bool_], challenger_right: npt.NDArray[np.bool_],
                           agree: npt.NDArray[np.bool_]) -> None:
        self.n += len(agree)
        self.agree += int(agree.sum())
        self.champion_right += int(champion_right.sum())
        self.challenger_right += int(challenger_right.sum())
        self.champion_only += int((champion_right & ~challenger_right).sum())
        self.challenger_only += int((challenger_right & ~champion_right).sum())

    def add_regression(self, champion_abs: npt.NDArray[np.float64], challenger_abs: npt.NDArray[np.float64],
                       agree: npt.NDArray[np.bool_]) -> None:
        k = len(agree)
        if not k:
            return
        d = challenger_abs - champion_abs
        mean_b = float(d.mean())
        m2_b = float(((d - mean_b) ** 2).sum())
        n = self.n + k
        delta = mean_b - self.mean_d
        self.m2_d += m2_b + delta * delta * self.n * k / n  # Chan et al.'s merge of two samples
        self.mean_d += delta * k / n
        self.n = n
        self.agree += int(agree.sum())
        self.champion_abs += float(champion_abs.sum())
        self.challenger_abs += float(challenger_abs.sum())

    def to_list(self) -> list[float]:
        return list(asdict(self).values())

    @classmethod
    def from_list(cls, values: list[Any]) -> PairedCounts:
        out = cls(*values)
        for name in ("n", "agree", "champion_right", "challenger_right", "champion_only", "challenger_only"):
            setattr(out, name, int(getattr(out, name)))
        return out


@dataclass(frozen=True, slots=True)
class Comparison:
    """One window's comparison (``metric``: accuracy or mae; ``difference``: challenger - champion)."""

    metric: str
    pairs: int
    champion_value: float
    challenger_value: float
    difference: float
    agreement: float
    champion_only: int
    challenger_only: int
    statistic: float
    p_value: float
    test: str
    verdict: str


def verdict(pairs: int, p_value: float, challenger_better: bool, alpha: float, min_pairs: int) -> str:
    """``challenger_better``/``champion_better`` when significant, ``no_difference``, or ``insufficient``.

    >>> verdict(100, 0.01, True, 0.05, 30), verdict(100, 0.2, True, 0.05, 30), verdict(10, 0.0, False, 0.05, 30)
    ('challenger_better', 'no_difference', 'insufficient')
    """
    if pairs < min_pairs or math.isnan(p_value):
        return "insufficient"
    if p_value < alpha:
        return "challenger_better" if challenger_better else "champion_better"
    return "no_difference"


def compare(counts: PairedCounts, task: Task, alpha: float = 0.05, min_pairs: int = 30) -> Comparison:
    """The comparison of one window's pairs."""
    n = counts.n
    agreement = counts.agree / n if n else math.nan
    if task == "classification":
        champion = counts.champion_right / n if n else math.nan
        challenger = counts.challenger_right / n if n else math.nan
        statistic, p, test = mcnemar(counts.champion_only, counts.challenger_only)
        if not n:
            p = math.nan
        better = counts.challenger_only > counts.champion_only
        return Comparison("accuracy", n, champion, challenger, challenger - champion, agreement,
                          counts.champion_only, counts.challenger_only, statistic, p,
                          test, verdict(n, p, better, alpha, min_pairs))
    champion = counts.champion_abs / n if n else math.nan
    challenger = counts.challenger_abs / n if n else math.nan
    statistic, p = paired_t(n, counts.mean_d, counts.m2_d)
    return Comparison("mae", n, champion, challenger, challenger - champion, agreement, 0, 0, statistic, p,
                      "paired_t", verdict(n, p, counts.mean_d < 0, alpha, min_pairs))
