"""A shadow model scoring the same requests (same prediction_id) through the pure stages: each model gets
its own outcomes from one label, the replay filter keeps both, a (prediction_id, model) duplicate is still
dead-lettered."""

from __future__ import annotations

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
