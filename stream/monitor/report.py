"""Rows that :class:`stream.monitor.model_monitor.ModelMonitor` produces for ClickHouse, and its per-window report.

Column tuples match the ``feature_drift``, ``data_quality`` and ``drift_events`` tables minus their
``version`` column, which the sink appends. Datetimes are UTC-aware (``DateTime64(3, 'UTC')`` columns).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from stream.contracts.events import AlertEvent
from stream.monitor.detectors import Detection
from stream.monitor.drift_stats import TestResult
from stream.monitor.quality import QualityRow

__all__ = [
    "DATA_QUALITY_COLUMNS",
    "DRIFT_EVENT_COLUMNS",
    "FEATURE_DRIFT_COLUMNS",
    "WindowReport",
    "detection_row",
    "drift_rows",
    "ms_to_datetime",
    "quality_rows",
]

FEATURE_DRIFT_COLUMNS = (
    "model_id", "model_version", "segment", "window_start", "window_end", "feature", "test", "statistic",
    "p_value", "threshold", "drifted", "insufficient", "samples", "details",
)  # fmt: skip
DATA_QUALITY_COLUMNS = (
    "model_id", "model_version", "window_start", "window_end", "feature", "check", "value", "samples",
    "detail", "segment",
)  # fmt: skip
DRIFT_EVENT_COLUMNS = (
    "model_id", "model_version", "detector", "signal", "event_time", "position", "estimate_before",
    "estimate_after", "params", "detected_at", "change_position", "change_time",
)  # fmt: skip


def ms_to_datetime(ms: int) -> datetime:
    """Epoch milliseconds as a UTC-aware datetime (exact to the millisecond).

    >>> ms_to_datetime(1704067200123).isoformat()
    '2024-01-01T00:00:00.123000+00:00'
    """
    seconds, millis = divmod(int(ms), 1000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=millis * 1000)


@dataclass(frozen=True)
class WindowReport:
    """Everything one closed window of one model version produced.

    ``feature_drift`` and ``data_quality`` are rows in :data:`FEATURE_DRIFT_COLUMNS` and
    :data:`DATA_QUALITY_COLUMNS` order. ``attribution`` ranks every tested input feature with enough data
    by PSI, largest first, as ``(feature, psi, drifted)``; ``drifted_features`` are the input features with
    at least one drifted test, and ``__multivariate__`` when the inputs' joint test drifted. ``detections``
    are the detector hits whose event time is in the window.
    """

    model_id: str
    model_version: str
    window_start: datetime
    window_end: datetime
    feature_drift: list[tuple[Any, ...]] = field(default_factory=list)
    data_quality: list[tuple[Any, ...]] = field(default_factory=list)
    alerts: list[AlertEvent] = field(default_factory=list)
    attribution: list[tuple[str, float, bool]] = field(default_factory=list)
    drifted_features: tuple[str, ...] = ()
    detections: list[Detection] = field(default_factory=list)
    samples: int = 0
    closes_window: bool = False  # this report is the window's close (not a revision or a no-data check)


def drift_rows(
    model_id: str,
    model_version: str,
    start: datetime,
    end: datetime,
    results: Mapping[str, Sequence[TestResult]],
    segment: str = "",
    details: Mapping[str, str] | None = None,
) -> list[tuple[Any, ...]]:
    """``feature_drift`` rows (of ``segment``, ``""`` = whole model); an insufficient test has a NaN statistic
    and no p-value; ``details`` (JSON text by feature, ``''`` where absent) goes to the ``details`` column."""
    rows: list[tuple[Any, ...]] = []
    for feature, tests in results.items():
        extra = (details or {}).get(feature, "")
        for r in tests:
            p = None if r.p_value is None or not math.isfinite(r.p_value) else float(r.p_value)
            rows.append((
                model_id, model_version, segment, start, end, feature, r.test, float(r.statistic), p,
                float(r.threshold), int(r.drifted), int(r.insufficient), int(r.n), extra,
            ))  # fmt: skip
    return rows


def quality_rows(
    model_id: str, model_version: str, start: datetime, end: datetime, rows: Sequence[QualityRow],
    segment: str = "",
) -> list[tuple[Any, ...]]:
    """``data_quality`` rows (of ``segment``, ``""`` = whole model); ``detail`` is JSON ``{"count": ...,
    "examples": [...]}``."""
    return [
        (
            model_id, model_version, start, end, q.feature, q.check, float(q.value), int(q.n),
            orjson.dumps({"count": q.count, "examples": list(q.examples)}).decode(), segment,
        )
        for q in rows
    ]


def detection_row(d: Detection, model_id: str, detected_at: datetime | None = None) -> tuple[Any, ...]:
    """A ``drift_events`` row; ``params`` is JSON of the detector parameters plus ``source_position``,
    ``scale_mean`` and ``scale_std``; ``detected_at`` defaults to now (UTC); ``change_position`` and
    ``change_time`` are the estimated change point (NULL when the detector gives none)."""
    params = {**d.params, "source_position": d.source_position, "scale_mean": d.scale_mean,
              "scale_std": d.scale_std}  # fmt: skip
    return (
        model_id, d.version, d.detector, d.signal, ms_to_datetime(d.event_time_ms), int(d.position),
        float(d.estimate_before), float(d.estimate_after),
        orjson.dumps(params, option=orjson.OPT_SORT_KEYS).decode(),
        datetime.now(UTC) if detected_at is None else detected_at,
        None if d.change_position is None else int(d.change_position),
        None if d.change_time_ms is None else ms_to_datetime(d.change_time_ms),
    )  # fmt: skip
