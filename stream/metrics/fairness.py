"""Group fairness of a classifier over one declared protected attribute, from a window's segment metrics.

Each protected attribute is also a segment field, so every group (``attr=value``) already has its window
metrics: ``positive_rate`` (selection rate, over predictions), ``recall`` (true positive rate), ``fpr`` and
``precision``. Across the groups with at least ``min_group`` predictions (rates from fewer labelled
outcomes are left out of the label-based gaps likewise), this gives, for segment ``""``:

====================================  =====================================================================
``demographic_parity_difference:<a>``  max - min positive rate
``disparate_impact:<a>``               min / max positive rate (the four-fifths rule fires below 0.8)
``equal_opportunity_difference:<a>``   max - min true positive rate
``equalised_odds_difference:<a>``      the larger of the TPR and FPR gaps
====================================  =====================================================================

The samples of each is the size of the smallest group it compares, and each needs two groups (NaN before).
The definitions are fairlearn's (``demographic_parity_difference``/``_ratio``, ``equalized_odds_difference``
with ``agg="worst_case"``), which the tests compare against.

>>> seg = {"g=a": {"positive_rate": (0.5, 200)}, "g=b": {"positive_rate": (0.3, 150)}, "h=x": {}}
>>> fairness_metrics(seg, "g", 100)["disparate_impact:g"]
(0.6, 150)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from stream.metrics.classification import Metrics

GROUP_RATES = ("positive_rate", "recall", "fpr", "precision")


def _gap(rates: list[tuple[float, int]], ratio: bool = False) -> tuple[float, int]:
    if len(rates) < 2:
        return math.nan, min((n for _, n in rates), default=0)
    values = [v for v, _ in rates]
    smallest = min(n for _, n in rates)
    if ratio:
        return (min(values) / max(values) if max(values) > 0 else math.nan), smallest
    return max(values) - min(values), smallest


def fairness_metrics(
    metrics_by_segment: Mapping[str, Mapping[str, tuple[float, int]]], attribute: str, min_group: int
) -> Metrics:
    """The four gaps above for ``attribute`` over the segments ``attribute=value`` of one window."""
    prefix = f"{attribute}="
    groups = [m for seg, m in metrics_by_segment.items() if seg.startswith(prefix)]

    def rates(name: str) -> list[tuple[float, int]]:
        found = [g.get(name, (math.nan, 0)) for g in groups]
        return [(v, n) for v, n in found if n >= min_group and math.isfinite(v)]

    tpr, fpr = _gap(rates("recall")), _gap(rates("fpr"))
    odds = (max(tpr[0], fpr[0]), min(tpr[1], fpr[1])) if math.isfinite(tpr[0]) and math.isfinite(fpr[0]) \
        else (math.nan, 0)
    return {
        f"demographic_parity_difference:{attribute}": _gap(rates("positive_rate")),
        f"disparate_impact:{attribute}": _gap(rates("positive_rate"), ratio=True),
        f"equal_opportunity_difference:{attribute}": tpr,
        f"equalised_odds_difference:{attribute}": odds,
    }
