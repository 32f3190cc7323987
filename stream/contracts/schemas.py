"""JSON Schema files for the event contracts, generated from the pydantic models in :mod:`stream.contracts.events`.

:func:`export` writes ``<name>.schema.json`` (with an ``examples`` list) and ``examples/<name>.json`` (the
first example, one message) for every event type; :func:`stale` lists the files that differ from what
:func:`export` would write. Inputs (predictions, ground truth, model specs) are described as validated;
outputs that Driftwarden publishes (alerts, dead letters) as serialised on the wire.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from stream.contracts.events import AlertEvent, DeadLetter, GroundTruthEvent, ModelSpec, PredictionEvent

__all__ = ["EXAMPLES", "SCHEMAS", "export", "render", "stale"]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

SCHEMAS: dict[str, tuple[type[BaseModel], Literal["validation", "serialization"]]] = {
    "prediction_event": (PredictionEvent, "validation"),
    "ground_truth_event": (GroundTruthEvent, "validation"),
    "model_spec": (ModelSpec, "validation"),
    "alert_event": (AlertEvent, "serialization"),
    "dead_letter": (DeadLetter, "serialization"),
}
"""File stem -> (model, JSON Schema mode)."""

EXAMPLES: dict[str, list[dict[str, Any]]] = {
    "prediction_event": [
        {
            "prediction_id": "8f14e45f-ceea-4e7a-9c1b-3f2a1d6b7c01",
            "model_id": "churn-classifier",
            "model_version": "3",
            "timestamp": 1714564800123,
            "features": {
                "tenure_months": 14,
                "monthly_charges": 70.35,
                "contract": "month-to-month",
                "paperless": True,
            },
            "prediction": "churn",
            "score": 0.82,
            "segment": {"region": "eu", "channel": "web"},
            "latency_ms": 4.7,
        },
        {
            "prediction_id": "c9f0f895-fb98-4b91-a6ec-2d9e3c1b4a02",
            "model_id": "house-price",
            "model_version": "2024.05",
            "timestamp": "2024-05-01T12:00:00.123Z",
            "features": {"rooms": 4, "area_m2": 96.5, "city": "lyon", "year_built": None},
            "prediction": 312500.0,
        },
    ],
    "ground_truth_event": [
        {
            "prediction_id": "8f14e45f-ceea-4e7a-9c1b-3f2a1d6b7c01",
            "label": "churn",
            "timestamp": 1717243200000,
            "model_id": "churn-classifier",
            "business": {"revenue_lost": 844.2},
        },
        {
            "prediction_id": "c9f0f895-fb98-4b91-a6ec-2d9e3c1b4a02",
            "label": 305000.0,
            "timestamp": "2024-07-15T09:30:00+02:00",
        },
    ],
    "model_spec": [
        {
            "model_id": "churn-classifier",
            "version": "3",
            "task": "binary_classification",
            "positive_class": "churn",
            "classes": ["churn", "stay"],
            "features": [
                {"name": "tenure_months", "type": "numeric", "range": [0, 120]},
                {"name": "monthly_charges", "type": "numeric"},
                {"name": "contract", "type": "categorical", "categories": ["month-to-month", "one-year"]},
            ],
            "segment_fields": ["region", "channel"],
            "protected_attributes": ["region"],
            "business_values": ["revenue_lost"],
            "monitor": {"window_seconds": 300, "psi_threshold": 0.2},
            "rules": [],
        }
    ],
    "alert_event": [
        {
            "alert_id": "3b1f0c2e9d4a5b6c",
            "state": "firing",
            "severity": "warning",
            "model_id": "churn-classifier",
            "model_version": "3",
            "segment": "region=eu",
            "rule": "feature-drift",
            "metric": "psi:monthly_charges",
            "observed": 0.31,
            "threshold": 0.2,
            "window_start": "2024-05-01T12:00:00Z",
            "window_end": "2024-05-01T12:05:00Z",
            "time": "2024-05-01T12:06:01Z",
            "message": "PSI of monthly_charges is 0.31 (threshold 0.2) for churn-classifier v3, region=eu.",
            "evidence_sql": (
                "SELECT window_start, feature, psi FROM feature_drift WHERE model_id = 'churn-classifier' "
                "AND model_version = '3' AND segment = 'region=eu' AND feature = 'monthly_charges' "
                "ORDER BY window_start DESC LIMIT 12"
            ),
        }
    ],
    "dead_letter": [
        {
            "topic": "predictions",
            "partition": 2,
            "offset": 18231,
            "key": "a1b2c3",
            "raw": '{"prediction_id": "a1b2c3", "model_id": "churn-classifier", "prediction": "churn"}',
            "reason": "missing_field",
            "error": "field 'timestamp': field required",
            "time": "2024-05-01T12:00:03.250000Z",
        }
    ],
}
"""Example messages of every event type, in the order they appear in the schema's ``examples``."""


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render() -> dict[str, str]:
    """Return the text of every generated file, by path relative to the schema directory."""
    files: dict[str, str] = {}
    for name, (model, mode) in SCHEMAS.items():
        schema = model.model_json_schema(mode=mode)
        schema["$schema"] = JSON_SCHEMA_DIALECT
        schema["examples"] = EXAMPLES[name]
        files[f"{name}.schema.json"] = _dump(schema)
        files[f"examples/{name}.json"] = _dump(EXAMPLES[name][0])
    return files


def export(directory: Path) -> list[Path]:
    """Write the JSON Schema and example files into ``directory``; return the paths written."""
    written = []
    for relative, text in render().items():
        path = Path(directory) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)
    return written


def stale(directory: Path) -> list[str]:
    """Return the relative paths of generated files in ``directory`` that are missing or out of date."""
    out_of_date = []
    for relative, text in render().items():
        path = Path(directory) / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            out_of_date.append(relative)
    return out_of_date
