"""Fairness gaps from per-group window metrics against fairlearn on the same raw predictions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fairlearn.metrics import (
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
)

from stream.contracts.events import FeatureSpec, ModelSpec, MonitorSettings
from stream.metrics.fairness import fairness_metrics
from stream.metrics.window import WindowAccumulator
from stream.monitor.model_monitor import ModelMonitor, fairness_rules


def _segments(groups: np.ndarray, y: np.ndarray, pred: np.ndarray) -> dict[str, dict[str, tuple[float, int]]]:
    out = {}
    for g in np.unique(groups):
        acc = WindowAccumulator("binary_classification", positive_class="1")
        sel = groups == g
        labels = np.where(pred[sel] == 1, "1", "0")
        acc.add_predictions(labels)
        acc.add_outcomes(np.where(y[sel] == 1, "1", "0"), labels)
        out[f"sex={g}"] = acc.metrics()
    out["region=eu"] = {"positive_rate": (0.0, 10_000)}  # another field: ignored
    return out


def test_gaps_match_fairlearn() -> None:
    rng = np.random.default_rng(11)
    groups = rng.choice(np.array(["f", "m", "x"]), 6000, p=[0.45, 0.45, 0.1])
    y = (rng.uniform(size=6000) < 0.4).astype(int)
    bias = np.select([groups == "f", groups == "m"], [0.25, 0.45], 0.35)
    pred = np.where(y == 1, rng.uniform(size=6000) < bias + 0.35, rng.uniform(size=6000) < bias).astype(int)
    got = fairness_metrics(_segments(groups, y, pred), "sex", 100)
    kw = {"sensitive_features": groups}
    assert got["demographic_parity_difference:sex"][0] == pytest.approx(demographic_parity_difference(y, pred, **kw))
    assert got["disparate_impact:sex"][0] == pytest.approx(demographic_parity_ratio(y, pred, **kw))
    assert got["equal_opportunity_difference:sex"][0] == pytest.approx(equal_opportunity_difference(y, pred, **kw))
    assert got["equalised_odds_difference:sex"][0] == pytest.approx(equalized_odds_difference(y, pred, **kw))
    assert got["disparate_impact:sex"][1] == int(np.sum(groups == "x"))  # the smallest group compared


def test_small_groups_are_left_out_and_one_group_gives_no_verdict() -> None:
    rng = np.random.default_rng(12)
    groups = np.array(["a"] * 500 + ["b"] * 500 + ["tiny"] * 20)
    y = (rng.uniform(size=1020) < 0.5).astype(int)
    pred = np.concatenate([rng.uniform(size=1000) < 0.5, np.zeros(20, bool)]).astype(int)
    seg = _segments(groups, y, pred)
    got = fairness_metrics(seg, "sex", 100)
    sel = groups != "tiny"
    assert got["disparate_impact:sex"][0] == pytest.approx(
        demographic_parity_ratio(y[sel], pred[sel], sensitive_features=groups[sel]))
    assert got["disparate_impact:sex"][1] == 500
    only = fairness_metrics({k: v for k, v in seg.items() if k != "sex=b"}, "sex", 100)
    assert all(math.isnan(v) for v, _ in only.values())
    assert all(math.isnan(v) for v, _ in fairness_metrics({}, "sex", 1).values())


def test_default_fairness_rule_only_with_protected_attributes() -> None:
    base = {"model_id": "m", "task": "binary_classification", "positive_class": "1",
            "features": [FeatureSpec(name="x", type="numeric")]}
    assert fairness_rules(ModelSpec(**base)) == []
    spec = ModelSpec(**base, protected_attributes=["sex"], monitor=MonitorSettings(fairness_min_group=50))
    names = {r.name for r in ModelMonitor(spec).rules}
    assert "default-disparate-impact:sex" in names
    assert fairness_rules(spec)[0]["min_samples"] == 50
    own = {"name": "default-disparate-impact:sex", "kind": "threshold", "metric": "disparate_impact:sex",
           "op": "<", "value": 0.9}
    mine = ModelSpec(**base, protected_attributes=["sex"], rules=[own])
    assert fairness_rules(mine) == []
    assert next(r for r in ModelMonitor(mine).rules if r.name == own["name"]).value == 0.9  # type: ignore[union-attr]
    assert "default-disparate-impact:sex" not in {r.name for r in ModelMonitor(ModelSpec(**base)).rules}
