from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import orjson
import pytest
from scipy import stats

from stream.contracts.events import GroundTruthEvent, ModelSpec, PredictionEvent
from stream.demo import synthetic
from stream.demo.synthetic import DEMO_MODELS, DRIFTED_FEATURES, Scenario, bench_events, bench_specs, demo_specs

N = 20_000
RATE = 100.0
DRIFT_AT = 100_000  # half of the N events at RATE, from t = 0


@pytest.fixture(scope="module")
def drifted() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    scenario = Scenario(seed=3, start_ms=0, drift_at_ms=DRIFT_AT)
    events = scenario.predictions(N, 0, RATE)
    return events, scenario.all_labels()


def _split(events: list[dict[str, Any]], model_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    own = [e for e in events if e["model_id"] == model_id]
    return [e for e in own if e["timestamp"] < DRIFT_AT], [e for e in own if e["timestamp"] >= DRIFT_AT]


def _column(events: list[dict[str, Any]], name: str) -> np.ndarray:
    return np.array([np.nan if e["features"][name] is None else e["features"][name] for e in events])


def test_same_seed_same_events_other_seed_other_events() -> None:
    runs = []
    for seed in (5, 5, 6):
        s = Scenario(seed=seed, start_ms=1_000, drift_at_ms=20_000)
        events = s.predictions(300, None, 10.0) + s.predictions(200, None, 10.0)
        runs.append((events, s.due_labels(30_000), s.all_labels()))
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[2][0]
    assert len({e["prediction_id"] for e in runs[0][0]}) == 500


def test_timestamps_follow_rate_and_continue_between_batches() -> None:
    s = Scenario(models=("delivery-eta",), start_ms=5_000)
    first = s.predictions(4, None, 3.0)
    second = s.predictions(2, None, 3.0)
    assert [e["timestamp"] for e in first] == [5_000, 5_333, 5_666, 6_000]
    assert [e["timestamp"] for e in second] == [6_333, 6_666]
    assert [e["timestamp"] for e in s.predictions(2, 0, 1000.0)] == [0, 1]


def test_models_alternate_and_events_match_contracts(
    drifted: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    events, labels = drifted
    assert [e["model_id"] for e in events[:4]] == ["credit-risk", "delivery-eta"] * 2
    for spec in demo_specs():
        ModelSpec.model_validate(spec)
    for event in events[:200] + events[-200:]:
        parsed = PredictionEvent.model_validate(event)
        spec = DEMO_MODELS[event["model_id"]]
        assert parsed.model_version == spec["version"]
        assert list(event["features"]) == [f["name"] for f in spec["features"]]
        assert event["segment"]["region"] in ("eu", "us", "apac")
        assert event["latency_ms"] > 0
    for label in labels[:200]:
        GroundTruthEvent.model_validate(label)


def test_classifier_score_and_prediction_agree(
    drifted: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    events, _ = drifted
    clf = [e for e in events if e["model_id"] == "credit-risk"]
    score = np.array([e["score"] for e in clf])
    assert ((score >= 0) & (score <= 1)).all()
    assert np.array_equal(score >= 0.5, np.array([e["prediction"] == "default" for e in clf]))
    assert all(
        "score" not in e and isinstance(e["prediction"], float)
        for e in events
        if e["model_id"] == "delivery-eta"
    )


def test_categories_and_missing_values_as_specified(
    drifted: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    events, _ = drifted
    for model_id, spec in DEMO_MODELS.items():
        own = [e for e in events if e["model_id"] == model_id]
        for feature in spec["features"]:
            values = [e["features"][feature["name"]] for e in own]
            if feature["type"] == "categorical":
                assert set(values) == set(feature["categories"])
            else:
                present = np.array([v for v in values if v is not None])
                lo, hi = feature["range"]
                assert present.min() >= lo and present.max() <= hi
    utilisation = _column([e for e in events if e["model_id"] == "credit-risk"], "utilisation")
    assert 0.005 < np.isnan(utilisation).mean() < 0.02


def test_label_and_duplicate_fractions(drifted: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    events, labels = drifted
    counts = Counter(label["prediction_id"] for label in labels)
    assert set(counts) <= {e["prediction_id"] for e in events}
    assert abs(len(counts) / N - 0.9) < 0.01
    duplicated = [pid for pid, c in counts.items() if c == 2]
    assert max(counts.values()) == 2
    assert abs(len(duplicated) / len(counts) - 0.02) < 0.005
    by_id: dict[str, list[dict[str, Any]]] = {}
    for label in labels:
        by_id.setdefault(label["prediction_id"], []).append(label)
    assert all(by_id[pid][0] == by_id[pid][1] for pid in duplicated)


def test_label_delays_positive_capped_and_exponential(
    drifted: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    events, labels = drifted
    predicted_at = {e["prediction_id"]: e["timestamp"] for e in events}
    model_of = {e["prediction_id"]: e["model_id"] for e in events}
    delay = np.array([label["timestamp"] - predicted_at[label["prediction_id"]] for label in labels])
    assert all(label["model_id"] == model_of[label["prediction_id"]] for label in labels)
    assert delay.min() >= 1 and delay.max() <= 25_000
    mean, cap = 5_000.0, 25_000.0
    # E[min(1 + X, cap)], X ~ Exp(mean), minus the truncation of the fractional millisecond (<= 1)
    expected = 1 + mean * (1 - np.exp(-(cap - 1) / mean))
    assert abs(delay.mean() - expected + 0.5) < 4 * delay.std() / np.sqrt(delay.size)


def test_due_labels_release_each_label_once_when_due() -> None:
    make = lambda: Scenario(seed=11, start_ms=0, label_delay_mean_ms=500, duplicate_label_fraction=0.2)  # noqa: E731
    reference = make()
    reference.predictions(2_000, 0, 200.0)
    expected = reference.all_labels()
    s = make()
    s.predictions(2_000, 0, 200.0)
    released: list[dict[str, Any]] = []
    for now in range(0, 15_000, 700):
        due = s.due_labels(now)
        assert all(label["timestamp"] <= now for label in due)
        released += due
    assert s.due_labels(14_000) == []
    released += s.all_labels()
    assert s.pending_labels == 0 and s.all_labels() == []
    key = lambda label: orjson.dumps(label, option=orjson.OPT_SORT_KEYS)  # noqa: E731
    assert sorted(map(key, released)) == sorted(map(key, expected))
    # one late release returns everything at once, first copies in time order
    other = make()
    other.predictions(2_000, 0, 200.0)
    everything = other.due_labels(10**9)
    assert everything == expected
    first: dict[str, int] = {}
    for i, label in enumerate(everything):
        first.setdefault(label["prediction_id"], i)
    originals = [
        label["timestamp"] for i, label in enumerate(everything) if first[label["prediction_id"]] == i
    ]
    assert originals == sorted(originals)


def test_income_and_channel_drift_others_do_not(
    drifted: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    before, after = _split(drifted[0], "credit-risk")
    income_before, income_after = _column(before, "income"), _column(after, "income")
    assert income_after.mean() - income_before.mean() > income_before.std()
    table = [
        [sum(e["features"]["channel"] == c for e in part) for c in ("web", "branch", "partner", "app")]
        for part in (before, after)
    ]
    assert stats.chi2_contingency(table).pvalue < 1e-12
    for name in ("age", "debt_ratio", "utilisation"):
        assert name not in DRIFTED_FEATURES["credit-risk"]
        x, y = _column(before, name), _column(after, name)
        assert stats.ks_2samp(x[~np.isnan(x)], y[~np.isnan(y)]).pvalue > 1e-3
    employment = [
        [sum(e["features"]["employment"] == c for e in part) for c in synthetic._EMPLOYMENT]
        for part in (before, after)
    ]
    assert stats.chi2_contingency(employment).pvalue > 1e-3


def test_distance_drifts_by_its_factor(drifted: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    before, after = _split(drifted[0], "delivery-eta")
    assert DRIFTED_FEATURES["delivery-eta"] == ["distance_km"]
    ratio = _column(after, "distance_km").mean() / _column(before, "distance_km").mean()
    assert 1.7 < ratio < 1.9
    assert stats.ks_2samp(_column(before, "items"), _column(after, "items")).pvalue > 1e-3


def _truth(labels: list[dict[str, Any]]) -> dict[str, Any]:
    return {label["prediction_id"]: label["label"] for label in labels}


def test_classifier_accuracy_and_revenue_drop_after_concept_drift(
    drifted: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    events, labels = drifted
    truth = _truth(labels)
    revenue = {x["prediction_id"]: x["business"]["revenue"] for x in labels if x["model_id"] == "credit-risk"}
    accuracy, mean_revenue = [], []
    for part in _split(events, "credit-risk"):
        seen = [e for e in part if e["prediction_id"] in truth]
        accuracy.append(np.mean([e["prediction"] == truth[e["prediction_id"]] for e in seen]))
        mean_revenue.append(np.mean([revenue[e["prediction_id"]] for e in seen]))
        declined = [revenue[e["prediction_id"]] for e in seen if e["prediction"] == "default"]
        assert declined and not any(declined)
    assert accuracy[0] >= 0.8
    assert accuracy[0] - accuracy[1] > 0.1
    assert mean_revenue[0] > 0 > mean_revenue[1]


def test_regression_mae_rises_after_concept_drift(
    drifted: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    events, labels = drifted
    truth = _truth(labels)
    mae = []
    for part in _split(events, "delivery-eta"):
        seen = [e for e in part if e["prediction_id"] in truth]
        mae.append(np.mean([abs(e["prediction"] - truth[e["prediction_id"]]) for e in seen]))
    # before drift the error is N(0, 2^2) noise: E|e| = 2 * sqrt(2 / pi)
    assert abs(mae[0] - 2 * np.sqrt(2 / np.pi)) < 0.1
    assert mae[1] > mae[0] + 1.5


def test_no_drift_without_drift_time() -> None:
    s = Scenario(models=("credit-risk",), seed=4, start_ms=0)
    events = s.predictions(6_000, 0, RATE)
    truth = _truth(s.all_labels())
    halves = (events[:3_000], events[3_000:])
    accuracy = [
        np.mean([e["prediction"] == truth[e["prediction_id"]] for e in h if e["prediction_id"] in truth])
        for h in halves
    ]
    assert min(accuracy) >= 0.8 and abs(accuracy[0] - accuracy[1]) < 0.04
    income = [_column(h, "income") for h in halves]
    assert stats.ks_2samp(*income).pvalue > 1e-3


def test_edge_cases() -> None:
    s = Scenario(start_ms=0)
    assert s.predictions(0) == [] and s.all_labels() == [] and s.due_labels(10**12) == []
    none = Scenario(start_ms=0, label_fraction=0.0)
    none.predictions(500)
    assert none.all_labels() == []
    every = Scenario(start_ms=0, label_fraction=1.0, duplicate_label_fraction=0.0)
    ids = {e["prediction_id"] for e in every.predictions(500)}
    assert sorted(label["prediction_id"] for label in every.all_labels()) == sorted(ids)
    one = Scenario(models=("credit-risk",), start_ms=0)
    assert {e["model_id"] for e in one.predictions(10)} == {"credit-risk"}
    for bad in (
        {"models": ("nope",)},
        {"models": ()},
        {"label_fraction": 1.5},
        {"models": ("credit-risk", "credit-risk")},
    ):
        with pytest.raises(ValueError):
            Scenario(**bad)
    with pytest.raises(ValueError, match="rate_per_s"):
        s.predictions(5, 0, 0.0)


def test_pending_labels_are_bounded() -> None:
    s = Scenario(start_ms=0, label_fraction=1.0, duplicate_label_fraction=0.0, max_pending_labels=100)
    s.predictions(250, 0, 100.0)
    assert s.pending_labels == 100 and s.dropped_labels == 150
    assert len(s.all_labels()) == 100


def _decoded(n: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    predictions, labels = bench_events(n, seed, max_shuffle_delay_ms=2_000)
    assert all(isinstance(m, bytes) for m in predictions + labels)
    return [orjson.loads(m) for m in predictions], [orjson.loads(m) for m in labels]


def test_bench_events_shapes_and_fractions() -> None:
    events, labels = _decoded(10_000, 1)
    assert len(events) == 10_000
    assert Counter(e["model_id"] for e in events) == {"bench-classifier": 5_000, "bench-regressor": 5_000}
    specs = {s["model_id"]: s for s in bench_specs()}
    for event in events[:50]:
        PredictionEvent.model_validate(event)
        features = event["features"]
        assert [f["name"] for f in specs[event["model_id"]]["features"]] == list(features)
        assert sum(isinstance(v, float) for v in features.values()) == 15
        assert sum(isinstance(v, str) for v in features.values()) == 5
        assert ("score" in event) == (event["model_id"] == "bench-classifier")
    assert len({e["segment"]["segment"] for e in events}) == 10
    assert len({e["prediction_id"] for e in events}) == 10_000
    x = np.array([[e["features"][f"num_{i:02d}"] for i in range(15)] for e in events])
    assert np.abs(x.mean(axis=0)).max() < 0.05 and np.abs(x.std(axis=0) - 1).max() < 0.05
    assert abs(len(labels) / 10_000 - 0.9) < 0.015


def test_bench_labels_are_delayed_shuffled_and_match_contracts() -> None:
    events, labels = _decoded(10_000, 2)
    predicted_at = {e["prediction_id"]: e["timestamp"] for e in events}
    position = {e["prediction_id"]: i for i, e in enumerate(events)}
    assert len({label["prediction_id"] for label in labels}) == len(labels)
    delay = np.array([label["timestamp"] - predicted_at[label["prediction_id"]] for label in labels])
    assert delay.min() >= 1 and delay.max() <= 2_000
    ts = [label["timestamp"] for label in labels]
    assert ts == sorted(ts)
    order = [position[label["prediction_id"]] for label in labels]
    assert order != sorted(order)
    for label in labels[:50]:
        GroundTruthEvent.model_validate(label)
        assert isinstance(label["label"], str) == (label["model_id"] == "bench-classifier")
    for spec in bench_specs():
        ModelSpec.model_validate(spec)


def test_bench_events_deterministic_and_edge_cases() -> None:
    assert bench_events(500, 9) == bench_events(500, 9)
    assert bench_events(500, 9) != bench_events(500, 10)
    assert bench_events(0, 1) == ([], [])
    predictions, labels = bench_events(300, 1, n_numeric=0, n_categorical=0, n_segments=1, label_fraction=1.0)
    assert len(labels) == 300
    assert all(orjson.loads(m)["features"] == {} for m in predictions)


def test_encode_many_equals_one_dumps_per_event() -> None:
    events = [
        {"prediction_id": str(i), "features": {"a": i / 3, "b": None}, "segment": {"s": "x"}}
        for i in range(5)
    ]
    assert synthetic._encode_many(events) == [orjson.dumps(e) for e in events]
    assert synthetic._encode_many([]) == []


def test_shadow_challenger_scores_every_credit_request_and_flips_at_the_drift() -> None:
    scenario = Scenario(seed=3, start_ms=0, drift_at_ms=2_000_000, shadow=True, label_fraction=1.0,
                        duplicate_label_fraction=0.0)
    events = scenario.predictions(8000, rate_per_s=2)  # drift after 4000 predictions
    labels = {lab["prediction_id"]: lab for lab in scenario.all_labels()}
    champion = [e for e in events if e["model_id"] == "credit-risk"]
    challenger = [e for e in events if e["model_id"] == "credit-risk-next"]
    assert [e["prediction_id"] for e in challenger] == [e["prediction_id"] for e in champion] and len(champion) == 4000
    assert all(c["features"] == e["features"] and c["timestamp"] == e["timestamp"]
               for c, e in zip(challenger, champion, strict=True))
    assert all("model_id" not in labels[e["prediction_id"]] for e in champion)
    assert [s["model_id"] for s in scenario.specs()] == ["credit-risk", "delivery-eta", "credit-risk-next"]
    ModelSpec.model_validate(scenario.specs()[-1])

    def accuracy(rows: list[dict[str, Any]], after: bool) -> float:
        own = [e for e in rows if (e["timestamp"] >= 2_000_000) == after]
        return float(np.mean([e["prediction"] == labels[e["prediction_id"]]["label"] for e in own]))

    assert accuracy(champion, False) > accuracy(challenger, False) + 0.02
    assert accuracy(challenger, True) > accuracy(champion, True) + 0.02
    plain = Scenario(seed=3, start_ms=0, drift_at_ms=2_000_000, label_fraction=1.0, duplicate_label_fraction=0.0)
    assert plain.predictions(8000, rate_per_s=2) == [e for e in events if e["model_id"] != "credit-risk-next"]
