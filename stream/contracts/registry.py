"""The model registry: what each monitored model is (its `ModelSpec`) and its reference profile.

Specs travel on the compacted ``models`` topic (key = model id, value = the JSON of `RegisteredModel`) so that
every worker sees them, and are kept in ClickHouse's ``models`` table for SQL. This module is the pure part:
an in-memory map plus the rules that infer a spec for a model nobody registered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from pydantic import BaseModel, Field

from stream.contracts.events import FeatureSpec, ModelSpec, PredictionEvent


class RegisteredModel(BaseModel):
    """A spec and, once known, its reference profile (feature name -> profile dict, see stream.monitor.profiles)."""

    spec: ModelSpec
    profile: dict[str, Any] | None = Field(default=None, description="reference profile per feature")
    source: str = Field(default="registered", description="registered, or auto (inferred from events)")


def infer_spec(event: PredictionEvent) -> ModelSpec:
    """A spec for an unregistered model, inferred from its first prediction.

    Strings and booleans are categorical features, numbers numeric. A numeric prediction means regression; a
    prediction with a score means binary classification whose positive class is the predicted label when the
    score is at least 0.5 (else ``"1"``); anything else is multiclass.

    >>> from datetime import UTC, datetime
    >>> e = PredictionEvent(prediction_id="a", model_id="m", timestamp=datetime.now(UTC),
    ...                     features={"x": 1.5, "c": "eu"}, prediction=2.5)
    >>> s = infer_spec(e)
    >>> s.task, [(f.name, f.type) for f in s.features]
    ('regression', [('c', 'categorical'), ('x', 'numeric')])
    """
    features = [
        FeatureSpec(name=name, type="categorical" if isinstance(value, str | bool) else "numeric")
        for name, value in sorted(event.features.items())
        if value is not None
    ]
    prediction = event.prediction
    if isinstance(prediction, int | float) and not isinstance(prediction, bool):
        task, positive = "regression", None
    elif event.score is not None:
        task = "binary_classification"
        positive = str(prediction) if event.score >= 0.5 else "1"
    else:
        task, positive = "multiclass_classification", None
    return ModelSpec(model_id=event.model_id, version=event.model_version, task=task,  # type: ignore[arg-type]
                     positive_class=positive, features=features, segment_fields=sorted(event.segment))


class Registry:
    """Specs by model id (latest version registered wins; events of other versions use it too)."""

    def __init__(self, models: Iterable[RegisteredModel] = ()) -> None:
        self._models: dict[str, RegisteredModel] = {}
        self._groups: tuple[dict[str, str], frozenset[str]] | None = None
        for model in models:
            self.put(model)

    def put(self, model: RegisteredModel) -> None:
        self._models[model.spec.model_id] = model
        self._groups = None

    def champions(self) -> dict[str, str]:
        """Challenger model id -> its champion's, for every model whose spec names a champion."""
        return self._champion_groups()[0]

    def shared(self) -> frozenset[str]:
        """Models that share their requests with another: challengers and the champions they name."""
        return self._champion_groups()[1]

    def _champion_groups(self) -> tuple[dict[str, str], frozenset[str]]:
        if self._groups is None:
            of = {m: r.spec.champion for m, r in self._models.items() if r.spec.champion is not None}
            self._groups = (of, frozenset(of) | frozenset(of.values()))
        return self._groups

    def get(self, model_id: str) -> RegisteredModel | None:
        return self._models.get(model_id)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._models

    def __len__(self) -> int:
        return len(self._models)

    def all(self) -> list[RegisteredModel]:
        return [self._models[k] for k in sorted(self._models)]

    def apply_message(self, key: bytes | None, value: bytes | None) -> RegisteredModel | None:
        """Apply one record of the compacted ``models`` topic (a null value deletes); return what was put."""
        if value is None:
            if key is not None:
                self._models.pop(key.decode(), None)
                self._groups = None
            return None
        model = RegisteredModel.model_validate_json(value)
        self.put(model)
        return model


def encode(model: RegisteredModel) -> tuple[bytes, bytes]:
    """Key and value for the ``models`` topic."""
    return model.spec.model_id.encode(), model.model_dump_json().encode()


def spec_from_mapping(data: Mapping[str, Any]) -> ModelSpec:
    return ModelSpec.model_validate(data)


def spec_json(model: RegisteredModel) -> str:
    return orjson.dumps(model.spec.model_dump(mode="json")).decode()
