"""Rows for the ClickHouse tables the runtime writes directly (column names match `stream.migrations`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from stream.aggregate import class_text, ms_to_dt
from stream.registry import RegisteredModel, spec_json

DEAD_LETTER_COLUMNS = ("topic", "partition", "offset", "key", "raw", "reason", "error", "time")
MODEL_COLUMNS = ("model_id", "model_version", "spec", "profile", "registered_at")
OUTCOME_COLUMNS = ("prediction_id", "model_id", "model_version", "segment", "prediction_time", "label_time",
                   "prediction", "label", "score", "business", "version")
ALERT_COLUMNS = ("alert_id", "state", "severity", "model_id", "model_version", "segment", "rule", "metric",
                 "observed", "threshold", "window_start", "window_end", "time", "message", "evidence_sql")
JOIN_STATS_COLUMNS = ("partition", "metric", "value", "version", "updated_at")


def outcome_rows_of(batch: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Rows for the ``outcomes`` table; version = label time, so a later label replaces an earlier one."""
    o = batch["outs"]
    model_id = batch["model_id"]
    rows = []
    for i in range(len(o["off"])):
        score = o["score"][i]
        rows.append((
            o["pid"][i], model_id, o["ver"][i], segment_text(o["seg"][i]), ms_to_dt(o["ts"][i]),
            ms_to_dt(o["lts"][i]), class_text(o["pred"][i]), class_text(o["label"][i]),
            None if score != score else score, o["biz"][i], o["lts"][i],
        ))
    return rows


def model_row(model: RegisteredModel) -> tuple[Any, ...]:
    profile = orjson.dumps(model.profile).decode() if model.profile else ""
    return (model.spec.model_id, model.spec.version, spec_json(model), profile, dt.datetime.now(dt.UTC))


def segment_text(segment: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(segment.items()))
