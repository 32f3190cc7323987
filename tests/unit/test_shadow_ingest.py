"""A shadow model scoring the same requests (same prediction_id) through the pure stages: each model gets
its own outcomes from one label, the replay filter keeps both, a (prediction_id, model) duplicate is still
dead-lettered."""

from __future__ import annotations

from typing import Any

from stream.contracts.events import ModelSpec
from stream.contracts.registry import RegisteredModel
from tests.unit.test_poison import Pipeline, label, prediction


def spec(model_id: str, champion: str | None = None) -> RegisteredModel:
    return RegisteredModel(spec=ModelSpec(model_id=model_id, task="binary_classification", positive_class="yes",
                                          champion=champion))


def test_one_label_reaches_champion_and_shadow() -> None:
    pipeline = Pipeline()
    pipeline.registry.put(spec("champ"))
    pipeline.registry.put(spec("chall", champion="champ"))
    ids = [f"r{i}" for i in range(10)]
    pipeline.send([prediction(i, "champ", "yes") for i in ids] + [prediction(i, "chall", "no") for i in ids])
    pipeline.send(labels=[label(i, "yes") for i in ids])
    assert pipeline.dead == []
    by_model: dict[str, list[tuple[str, str, str]]] = {}
    for row in pipeline.outcome_rows:
        by_model.setdefault(row[1], []).append((row[0], row[6], row[7]))
    assert sorted(by_model["champ"]) == [(i, "yes", "yes") for i in sorted(ids)]
    assert sorted(by_model["chall"]) == [(i, "no", "yes") for i in sorted(ids)]
    assert pipeline.aggregator.outcomes == 20 and pipeline.aggregator.replayed == 0
    assert pipeline.aggregator.predictions == 20


def test_late_shadow_prediction_gets_the_kept_label() -> None:
    pipeline = Pipeline()
    pipeline.registry.put(spec("champ"))
    pipeline.registry.put(spec("chall", champion="champ"))
    pipeline.send([prediction("r1", "champ")], [label("r1", "yes")])
    pipeline.send([prediction("r1", "chall", "no")])
    assert sorted((r[1], r[6]) for r in pipeline.outcome_rows) == [("chall", "no"), ("champ", "yes")]


def test_label_naming_a_model_reaches_only_that_model() -> None:
    pipeline = Pipeline()
    pipeline.send([prediction("r1", "a"), prediction("r1", "b")],
                  [{**label("r1", "no"), "model_id": "b"}])
    assert [(r[1], r[7]) for r in pipeline.outcome_rows] == [("b", "no")]
    pipeline.send(labels=[{**label("r1", "no"), "model_id": "b"}])
    assert pipeline.reasons() == []  # a repeated label is counted (join stats), not dead-lettered
    assert pipeline.ingest.join_for(0).stats.duplicate_labels == 1
    pipeline.send([prediction("r1", "b")])
    assert pipeline.reasons() == ["duplicate_prediction_id"]
    assert "'b'" in pipeline.dead[0].error


def test_champion_and_challenger_are_compared_per_window() -> None:
    pipeline = Pipeline()
    pipeline.registry.put(spec("champ"))
    pipeline.registry.put(spec("chall", champion="champ"))
    truth = ["yes" if i % 3 else "no" for i in range(60)]
    champ = [t if i % 10 else ("no" if t == "yes" else "yes") for i, t in enumerate(truth)]  # 54 right
    chall = [t if i % 2 else ("no" if t == "yes" else "yes") for i, t in enumerate(truth)]  # 30 right
    ids = [f"r{i}" for i in range(60)]
    pipeline.send([prediction(i, "champ", p) for i, p in zip(ids, champ, strict=True)])
    pipeline.send(labels=[label(i, t) for i, t in zip(ids[:30], truth[:30], strict=True)])
    pipeline.send([prediction(i, "chall", p) for i, p in zip(ids, chall, strict=True)],  # after half the labels
                  [label(i, t) for i, t in zip(ids[30:], truth[30:], strict=True)])
    rows = pipeline.aggregator.comparison_rows()
    assert len(rows) == 1 and rows[0][:2] == ("champ", "chall")
    (_, _, start, end, metric, pairs, champion_value, challenger_value, difference, agreement, b, c, _, p_value,
     test, verdict, *_) = rows[0]
    right_champ = [p == t for p, t in zip(champ, truth, strict=True)]
    right_chall = [p == t for p, t in zip(chall, truth, strict=True)]
    assert (metric, pairs, test, verdict) == ("accuracy", 60, "mcnemar_exact", "champion_better")
    assert (champion_value, challenger_value) == (54 / 60, 30 / 60)
    assert difference == 30 / 60 - 54 / 60 and agreement == sum(a == b for a, b in zip(champ, chall, strict=True)) / 60
    assert b == sum(x and not y for x, y in zip(right_champ, right_chall, strict=True)) and p_value < 0.001
    assert c == sum(y and not x for x, y in zip(right_champ, right_chall, strict=True))
    assert end - start == 300_000 and pipeline.aggregator.pairing.waiting["champ"].keys() == set(ids)
    got = {m: v for m, (v, n) in pipeline.aggregator.pairing.metrics("champ", start).items()}
    assert got == {"challenger_accuracy_difference:chall": difference, "challenger_p_value:chall": p_value,
                   "challenger_agreement:chall": agreement, "challenger_verdict:chall": -1.0}


def test_pairing_survives_an_aggregator_checkpoint() -> None:
    from stream.pipeline.aggregate import Aggregator

    pipeline = Pipeline()
    pipeline.registry.put(spec("champ"))
    pipeline.registry.put(spec("chall", champion="champ"))
    pipeline.send([prediction("r1", "champ"), prediction("r2", "champ")], [label("r1"), label("r2")])
    restored = Aggregator.restore(pipeline.aggregator.snapshot(), pipeline.aggregator.spec_for)
    assert restored.pairing.waiting == pipeline.aggregator.pairing.waiting != {}
    pipeline.aggregator = restored
    pipeline.send([prediction("r1", "chall", "no"), prediction("r2", "chall", "yes")])
    rows = restored.comparison_rows()
    assert [(r[5], r[10], r[11]) for r in rows] == [(2, 1, 0)]  # pairs, b, c
    again = Aggregator.restore(restored.snapshot(), restored.spec_for)
    assert again.pairing.counts == restored.pairing.counts


def test_unpaired_outcomes_expire_with_the_champion_windows_and_are_counted() -> None:
    import numpy as np

    from stream.pipeline.pairing import Pairing

    champion_spec = spec("champ").spec
    pairing = Pairing(lambda _: champion_spec)
    cmp: dict[str, list[Any]] = {"mid": ["champ", "chall", "champ"], "off": [0, 1, 2], "pid": ["a", "b", "c"],
                                 "ts": [0, 1000, 400_000], "label": ["yes"] * 3, "pred": ["yes"] * 3}
    assert pairing.add("champ", cmp, np.ones(3, bool)) == set()  # no request has both sides
    pairing.expire("champ", 300_000)
    assert set(pairing.waiting["champ"]) == {"c"} and pairing.unpaired == 2
    pairing.waiting["champ"]["z"] = {"champ": (5, "yes", "yes")}
    pairing.expire("champ", 300_000)  # the boundary did not move: nothing scanned
    assert "z" in pairing.waiting["champ"]
