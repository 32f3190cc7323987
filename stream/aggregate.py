"""The aggregation stage, pure: per-model batch records in, window rows for ClickHouse out.

Replays are dropped item by item: each item carries the (source topic, partition, offset) of the ingest record
that produced it, and the stage remembers the highest offset it applied per model and source partition.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from stream.contracts import ModelSpec
from stream.windows import WindowKey, WindowStore

WINDOW_METRIC_COLUMNS = ("model_id", "model_version", "segment", "window_start", "window_end", "metric",
                         "value", "samples", "version", "updated_at")


def class_text(value: Any) -> str:
    """Class labels as text: ``1.0`` and ``1`` are both ``"1"``.

    >>> [class_text(v) for v in (1.0, 0, "yes", 2.5)]
    ['1', '0', 'yes', '2.5']
    """
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def ms_to_dt(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


class Aggregator:
    """Windows for the models of one worker, with replay filtering."""

    def __init__(self, spec_for: Callable[[str], ModelSpec]) -> None:
        self.spec_for = spec_for
        self.store = WindowStore(spec_for)
        self.applied: dict[tuple[str, int, int], int] = {}  # (model, source topic, partition) -> max offset
        self.replayed = 0
        self.predictions = 0
        self.outcomes = 0

    def _fresh(self, model_id: str, partition: int, sources: list[int], offsets: list[int]) -> np.ndarray:
        keep = np.ones(len(offsets), dtype=bool)
        for source in set(sources):
            key = (model_id, source, partition)
            last = self.applied.get(key, -1)
            src = np.asarray(sources) == source
            offs = np.asarray(offsets, dtype=np.int64)
            keep &= ~src | (offs > last)
            if src.any():
                self.applied[key] = max(last, int(offs[src].max()))
        self.replayed += int((~keep).sum())
        return keep

    def apply(self, batch: Mapping[str, Any]) -> None:
        model_id: str = batch["model_id"]
        partition: int = batch["partition"]
        spec = self.spec_for(model_id)
        regression = spec.task == "regression"
        p = batch["preds"]
        if p["off"]:
            keep = self._fresh(model_id, partition, [0] * len(p["off"]), p["off"])
            if keep.any():
                idx = np.flatnonzero(keep)
                preds = _labels(p["pred"], regression)[idx]
                self.store.add_predictions(
                    model_id, [p["ver"][i] for i in idx], [p["seg"][i] for i in idx],
                    np.asarray(p["ts"], dtype=np.int64)[idx], preds,
                    np.asarray(p["score"], dtype=np.float64)[idx], np.asarray(p["lat"], dtype=np.float64)[idx])
                self.predictions += idx.size
        o = batch["outs"]
        if o["off"]:
            keep = self._fresh(model_id, partition, o["src"], o["off"])
            if keep.any():
                idx = np.flatnonzero(keep)
                business = {key: np.asarray([o["biz"][i].get(key, np.nan) for i in idx], dtype=np.float64)
                            for key in spec.business_values}
                self.store.add_outcomes(
                    model_id, [o["ver"][i] for i in idx], [o["seg"][i] for i in idx],
                    np.asarray(o["ts"], dtype=np.int64)[idx], _labels(o["label"], regression)[idx],
                    _labels(o["pred"], regression)[idx], np.asarray(o["score"], dtype=np.float64)[idx], business)
                self.outcomes += idx.size

    def window_rows(self, now: dt.datetime | None = None) -> list[tuple[Any, ...]]:
        """Rows for ``window_metrics`` of every window changed since the last call."""
        now = now or dt.datetime.now(dt.UTC)
        version = time.time_ns()
        rows: list[tuple[Any, ...]] = []
        for (model_id, model_version, segment, start), end, acc in self.store.take_dirty():
            start_dt, end_dt = ms_to_dt(start), ms_to_dt(end)
            for metric, (value, samples) in acc.metrics().items():
                rows.append((model_id, model_version, segment, start_dt, end_dt, metric, float(value),
                             int(samples), version, now))
        return rows

    def tick(self, now_ms: int, idle: bool) -> list[WindowKey]:
        """Advance watermarks (wall clock when idle), return newly closed windows, evict expired ones."""
        if idle:
            self.store.advance_idle(now_ms)
        closed = self.store.close_due()
        self.store.evict()
        return closed


def _labels(values: list[Any], regression: bool) -> np.ndarray:
    if regression:
        return np.asarray([float(v) for v in values], dtype=np.float64)
    return np.asarray([class_text(v) for v in values], dtype=object)
