"""What the dashboard and the HTML report show, read from ClickHouse with bound query parameters.

Every value that comes from a request (model, version, segment, time range) is passed as a query parameter
(``{name:Type}`` placeholders bound by clickhouse-connect), never formatted into the SQL text; the only name
formatted in is the database, which comes from the settings and is checked to be a plain identifier.
Series are returned column-wise (``t`` in epoch milliseconds plus one list per series), the shape uPlot takes.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

QueryFn = Callable[[str, dict[str, Any]], tuple[list[str], Sequence[Sequence[Any]]]]

HEADLINE_METRICS = ("accuracy", "roc_auc", "f1", "mae", "rmse")  # the first a model has is its headline
COUNT_METRICS = ("predictions", "labelled", "orphans")  # summed across versions; the rest are sample-weighted
DRIFT_WINDOWS = 3  # a model whose inputs drifted in any of its last windows shows as drifting
HEATMAP_TEST = "psi"  # one statistic per cell, comparable across features; the verdict is over every test
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MIN = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MAX = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class TimeRange:
    """Half-open ``[since, until)`` on window starts (and event times), UTC."""

    since: dt.datetime = _MIN
    until: dt.datetime = _MAX

    def params(self) -> dict[str, Any]:
        return {"since": self.since.replace(tzinfo=None), "until": self.until.replace(tzinfo=None)}


def parse_time(text: str | None, now: dt.datetime | None = None) -> dt.datetime | None:
    """ISO 8601 (UTC if no zone), epoch milliseconds, or a span back from now such as ``90m``, ``6h``, ``7d``.

    >>> parse_time("2026-01-02T03:04:05")
    datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    >>> parse_time("6h", now=dt.datetime(2026, 1, 2, 12, tzinfo=dt.UTC)).hour
    6
    """
    if text is None or text == "":
        return None
    text = text.strip()
    span = re.fullmatch(r"(\d+)([smhd])", text)
    if span:
        seconds = int(span.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[span.group(2)]
        return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=seconds)
    if text.isdigit():
        return dt.datetime.fromtimestamp(int(text) / 1000, dt.UTC)
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"bad time {text!r}: use ISO 8601 (2026-01-02T03:04), epoch ms, or a span like 6h") from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def time_range(since: str | None, until: str | None) -> TimeRange:
    return TimeRange(parse_time(since) or _MIN, parse_time(until) or _MAX)


def _ms(value: Any) -> int:
    if isinstance(value, dt.datetime):
        return int((value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value).timestamp() * 1000)
    return int(value)


def _num(value: Any) -> float | None:
    """JSON has no NaN: undefined values are null."""
    if value is None:
        return None
    f = float(value)
    return None if math.isnan(f) or math.isinf(f) else f


class DashboardData:
    """The dashboard's read model over one database, through ``query(sql, parameters)``."""

    def __init__(self, query: QueryFn, database: str = "driftwarden") -> None:
        if not _IDENT.match(database):
            raise ValueError(f"bad database name {database!r}: letters, digits and _ only")
        self.query = query
        self.db = database

    def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        columns, rows = self.query(sql.replace("{db}", self.db), params)
        return [dict(zip(columns, row, strict=True)) for row in rows]

    # --- overview ---------------------------------------------------------------------------------------

    def models(self, rng: TimeRange) -> list[dict[str, Any]]:
        """Every model with its health (firing alerts), volume, label coverage and headline metric series."""
        p = rng.params()
        metrics = self._rows(
            """SELECT model_id, toUnixTimestamp64Milli(window_start) AS t, metric,
                      sum(value) AS total, sum(samples) AS n,
                      if(sum(samples) = 0, nan, sum(value * samples) / sum(samples)) AS weighted
               FROM {db}.window_metrics_latest
               WHERE segment = '' AND window_start >= {since:DateTime64(3)} AND window_start < {until:DateTime64(3)}
                 AND metric IN ('predictions', 'labelled', 'accuracy', 'roc_auc', 'f1', 'mae', 'rmse')
               GROUP BY model_id, t, metric ORDER BY model_id, t""", p)
        firing = {r["model_id"]: r for r in self._rows(
            """SELECT model_id, count() AS firing, max(multiIf(severity = 'critical', 2, severity = 'warning', 1, 0))
                      AS worst
               FROM (SELECT alert_id, any(model_id) AS model_id, argMax(severity, time) AS severity
                     FROM {db}.alerts FINAL GROUP BY alert_id HAVING countIf(state = 'resolved') = 0)
               GROUP BY model_id""", {})}
        drifting = {r["model_id"]: list(r["features"]) for r in self._rows(
            """SELECT model_id, arraySort(groupUniqArray(feature)) AS features
               FROM {db}.feature_drift FINAL
               WHERE segment = '' AND drifted = 1 AND NOT startsWith(feature, '__')
                 AND (model_id, window_start) IN (
                     SELECT model_id, window_start FROM {db}.feature_drift
                     WHERE segment = '' AND window_start >= {since:DateTime64(3)}
                       AND window_start < {until:DateTime64(3)}
                     GROUP BY model_id, window_start ORDER BY window_start DESC LIMIT {last:UInt32} BY model_id)
               GROUP BY model_id""", {**p, "last": DRIFT_WINDOWS})}
        registered = [r["model_id"] for r in self._rows("SELECT DISTINCT model_id FROM {db}.models FINAL", {})]
        by_model: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
        for r in metrics:
            by_model.setdefault(r["model_id"], {}).setdefault(r["metric"], {})[int(r["t"])] = r
        out = []
        for model_id in sorted(set(registered) | set(by_model) | set(firing)):
            series = by_model.get(model_id, {})
            predictions = sum(float(r["total"]) for r in series.get("predictions", {}).values())
            labelled = sum(float(r["total"]) for r in series.get("labelled", {}).values())
            headline = next((m for m in HEADLINE_METRICS if m in series), None)
            points = sorted(series.get(headline, {}).items()) if headline else []
            alert = firing.get(model_id)
            worst = int(alert["worst"]) if alert else -1
            drifted = drifting.get(model_id, [])
            out.append({
                "model_id": model_id,
                "health": _health(worst, bool(drifted)),
                "firing": int(alert["firing"]) if alert else 0,
                "drifted_features": drifted,
                "predictions": int(predictions),
                "labelled": int(labelled),
                "label_coverage": labelled / predictions if predictions else None,
                "windows": len(series.get("predictions", {})),
                "headline": headline,
                "headline_value": _num(points[-1][1]["weighted"]) if points else None,
                "sparkline": {"t": [t for t, _ in points], "v": [_num(r["weighted"]) for _, r in points]},
            })
        return out

    # --- one model --------------------------------------------------------------------------------------

    def model(self, model_id: str, version: str | None, segment: str, rng: TimeRange) -> dict[str, Any]:
        """Everything the page of one model shows, for one version (default: the latest seen) and segment."""
        base = {"model": model_id, **rng.params()}
        choices = self._rows(
            """SELECT model_version, segment, max(window_start) AS last FROM {db}.window_metrics_latest
               WHERE model_id = {model:String} GROUP BY model_version, segment ORDER BY last DESC""", base)
        versions = list(dict.fromkeys(r["model_version"] for r in choices))
        segments = sorted({r["segment"] for r in choices})
        if version is None or version == "":
            version = versions[0] if versions else ""
        p = {**base, "version": version, "segment": segment}
        return {
            "model_id": model_id, "version": version, "segment": segment, "versions": versions,
            "segments": segments or [""],
            "metrics": self.metric_series(p),
            "drift_events": self.drift_events(p),
            "heatmap": self.heatmap(p),
            "quality": self.quality(p),
            "alerts": self.alerts(p),
            "join": self.join_health(),
        }

    def metric_series(self, p: dict[str, Any]) -> dict[str, Any]:
        rows = self._rows(
            """SELECT toUnixTimestamp64Milli(window_start) AS t, metric, value, samples
               FROM {db}.window_metrics_latest
               WHERE model_id = {model:String} AND model_version = {version:String} AND segment = {segment:String}
                 AND window_start >= {since:DateTime64(3)} AND window_start < {until:DateTime64(3)}
               ORDER BY t, metric""", p)
        return _columns(rows, "metric", "value")

    def drift_events(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        rows = self._rows(
            """SELECT toUnixTimestamp64Milli(event_time) AS t, detector, signal, estimate_before, estimate_after
               FROM {db}.drift_events FINAL
               WHERE model_id = {model:String} AND model_version = {version:String}
                 AND event_time >= {since:DateTime64(3)} AND event_time < {until:DateTime64(3)}
               ORDER BY t""", p)
        return [{**r, "t": int(r["t"]), "estimate_before": _num(r["estimate_before"]),
                 "estimate_after": _num(r["estimate_after"])} for r in rows]

    def heatmap(self, p: dict[str, Any]) -> dict[str, Any]:
        """Features x windows: the PSI of each cell, and whether any test of that feature drifted there."""
        rows = self._rows(
            """SELECT toUnixTimestamp64Milli(window_start) AS t, feature,
                      maxIf(statistic, test = {test:String}) AS stat, max(drifted) AS any_drifted,
                      maxIf(insufficient, test = {test:String}) AS short,
                      arrayStringConcat(arraySort(groupArrayIf(test, drifted = 1)), ',') AS drifted_tests
               FROM {db}.feature_drift FINAL
               WHERE model_id = {model:String} AND model_version = {version:String} AND segment = {segment:String}
                 AND window_start >= {since:DateTime64(3)} AND window_start < {until:DateTime64(3)}
                 AND NOT startsWith(feature, '__')
               GROUP BY t, feature ORDER BY feature, t""", {**p, "test": HEATMAP_TEST})
        windows = sorted({int(r["t"]) for r in rows})
        features = sorted({r["feature"] for r in rows})
        col = {t: i for i, t in enumerate(windows)}
        row = {f: i for i, f in enumerate(features)}
        stat: list[list[float | None]] = [[None] * len(windows) for _ in features]
        drifted: list[list[int]] = [[0] * len(windows) for _ in features]
        tests: list[list[str]] = [[""] * len(windows) for _ in features]
        for r in rows:
            i, j = row[r["feature"]], col[int(r["t"])]
            stat[i][j] = None if r["short"] else _num(r["stat"])
            drifted[i][j] = int(r["any_drifted"])
            tests[i][j] = r["drifted_tests"]
        return {"test": HEATMAP_TEST, "windows": windows, "features": features, "statistic": stat,
                "drifted": drifted, "drifted_tests": tests}

    def quality(self, p: dict[str, Any]) -> dict[str, Any]:
        """Data-quality rates per window, one series per ``feature/check`` that is ever above zero."""
        rows = self._rows(
            """SELECT toUnixTimestamp64Milli(window_start) AS t, concat(feature, '/', check) AS name, value
               FROM {db}.data_quality FINAL
               WHERE model_id = {model:String} AND model_version = {version:String} AND segment = {segment:String}
                 AND window_start >= {since:DateTime64(3)} AND window_start < {until:DateTime64(3)}
                 AND endsWith(check, 'rate')
                 AND (feature, check) IN (
                     SELECT feature, check FROM {db}.data_quality FINAL
                     WHERE model_id = {model:String} AND model_version = {version:String} AND segment = {segment:String}
                       AND window_start >= {since:DateTime64(3)} AND window_start < {until:DateTime64(3)}
                     GROUP BY feature, check HAVING max(value) > 0)
               ORDER BY t, name""", p)
        return _columns(rows, "name", "value")

    def alerts(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        """Alert episodes of the model (any version and segment), newest first, with their evidence SQL."""
        rows = self._rows(
            """SELECT alert_id, argMax(state, time) AS state, argMax(severity, time) AS severity,
                      any(model_version) AS model_version, any(segment) AS segment, any(rule) AS rule,
                      any(metric) AS metric, argMax(observed, time) AS observed, any(threshold) AS threshold,
                      toUnixTimestamp64Milli(min(time)) AS fired_at,
                      toUnixTimestamp64Milli(argMin(window_start, time)) AS window_ms,
                      toUnixTimestamp64Milli(maxIf(time, state = 'resolved')) AS resolved_at,
                      argMax(message, time) AS message, argMin(evidence_sql, time) AS evidence_sql
               FROM {db}.alerts FINAL
               WHERE model_id = {model:String} AND time >= {since:DateTime64(3)} AND time < {until:DateTime64(3)}
               GROUP BY alert_id ORDER BY fired_at DESC, alert_id
               SETTINGS prefer_column_name_to_alias = 1""", p)
        return [{**r, "fired_at": int(r["fired_at"]),
                 "window_ms": None if r["window_ms"] is None else int(r["window_ms"]),
                 "resolved_at": int(r["resolved_at"]) if r["state"] == "resolved" else None,
                 "observed": _num(r["observed"]), "threshold": _num(r["threshold"])} for r in rows]

    def join_health(self) -> dict[str, float]:
        """The join's counters over every input partition (pipeline-wide, not per model)."""
        rows = self._rows(
            "SELECT metric, sum(value) AS value FROM {db}.join_stats FINAL GROUP BY metric ORDER BY metric", {})
        return {r["metric"]: float(r["value"]) for r in rows}


def _health(worst_alert: int, drifting: bool) -> str:
    """critical or warning (a firing alert of that severity), drift (inputs drifted in the last windows, no
    alert), info (only info alerts) or ok.

    >>> _health(2, False), _health(1, True), _health(0, True), _health(0, False), _health(-1, False)
    ('critical', 'warning', 'drift', 'info', 'ok')
    """
    if worst_alert >= 1:
        return "critical" if worst_alert == 2 else "warning"
    if drifting:
        return "drift"
    return "info" if worst_alert == 0 else "ok"


def _columns(rows: list[dict[str, Any]], name: str, value: str) -> dict[str, Any]:
    """Long rows (t, name, value) to aligned columns: ``{"t": [...], "series": {name: [...]}}``."""
    times = sorted({int(r["t"]) for r in rows})
    index = {t: i for i, t in enumerate(times)}
    series: dict[str, list[float | None]] = {}
    for r in rows:
        series.setdefault(r[name], [None] * len(times))[index[int(r["t"])]] = _num(r[value])
    return {"t": times, "series": dict(sorted(series.items()))}
