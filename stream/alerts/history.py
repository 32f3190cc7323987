"""SQL over the ``alerts`` table: which alert episodes fire now, and the episode state of each event.

An episode is a firing event and, once it resolves, a resolved event with the same ``alert_id``. Pure: these
functions only build read-only SELECT text (for ``driftwarden alerts`` and the ``/alerts/active`` endpoint).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from stream.contracts.events import AlertEvent

__all__ = ["ACTIVE_COLUMNS", "active_events", "active_query", "episode_column", "literal"]

ACTIVE_COLUMNS = ("firing_since", "severity", "model_id", "model_version", "segment", "rule", "metric", "observed",
                  "threshold", "window_start", "message", "evidence_sql", "alert_id")
"""Columns of :func:`active_query`, in order."""


def literal(value: str) -> str:
    """A ClickHouse string literal; ``-`` and ``*`` escaped so that ``--`` and ``/*`` never appear in it.

    >>> print(literal("it's a--b"))
    'it\\'s a-\\x2Db'
    """
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return "'" + escaped.replace("--", "-\\x2D").replace("/*", "/\\x2A") + "'"


def episode_column(database: str) -> str:
    """A column naming whether the episode of each alert event has resolved (``resolved``) or fires (``firing``)."""
    return (f"if(alert_id IN (SELECT alert_id FROM {database}.alerts WHERE state = 'resolved'), 'resolved', "
            "'firing') AS episode")


def active_query(database: str, model: str | None = None) -> str:
    """The alert episodes firing now (no resolved event yet), newest first, with the evidence of their firing.

    >>> print(active_query("dw", "fraud"))  # doctest: +NORMALIZE_WHITESPACE
    SELECT toString(min(time)) AS firing_since, any(severity) AS severity, model_id, model_version, segment, rule,
    any(metric) AS metric, any(observed) AS observed, any(threshold) AS threshold,
    toString(any(window_start)) AS window_start, any(message) AS message, any(evidence_sql) AS evidence_sql, alert_id
    FROM dw.alerts FINAL WHERE model_id = 'fraud' GROUP BY alert_id, model_id, model_version, segment, rule
    HAVING countIf(state = 'resolved') = 0 ORDER BY firing_since DESC, alert_id
    """
    where = "" if model is None else f" WHERE model_id = {literal(model)}"
    return (
        "SELECT toString(min(time)) AS firing_since, any(severity) AS severity, model_id, model_version, segment, "
        "rule, any(metric) AS metric, any(observed) AS observed, any(threshold) AS threshold, "
        "toString(any(window_start)) AS window_start, any(message) AS message, any(evidence_sql) AS evidence_sql, "
        f"alert_id FROM {database}.alerts FINAL{where} GROUP BY alert_id, model_id, model_version, segment, rule "
        "HAVING countIf(state = 'resolved') = 0 ORDER BY firing_since DESC, alert_id"
    )


def _utc(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def active_events(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[AlertEvent]:
    """The firing events of :func:`active_query`'s rows (``time`` = since when it fires), e.g. to re-send them."""
    events = []
    for row in rows:
        r = dict(zip(columns, row, strict=True))
        events.append(AlertEvent(
            alert_id=r["alert_id"], state="firing", severity=r["severity"], model_id=r["model_id"],
            model_version=r["model_version"], segment=r["segment"] or "", rule=r["rule"], metric=r["metric"],
            observed=r["observed"], threshold=r["threshold"], window_start=_utc(r["window_start"]),
            time=_utc(r["firing_since"]), message=r["message"], evidence_sql=r["evidence_sql"]))
    return events
