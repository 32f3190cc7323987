"""Write the Grafana dashboards in deploy/grafana/dashboards/ from the panel definitions below.

    python deploy/grafana/build_dashboards.py           # write
    python deploy/grafana/build_dashboards.py --check   # exit 1 if a committed file differs

Every ClickHouse query names its tables as ``${database}.table`` (a dashboard variable, default
``driftwarden``) and uses the ClickHouse plugin's macros; tests/unit/test_grafana.py runs each one, with the
macros and variables expanded, on the real engine after the migrations.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
CH = {"type": "grafana-clickhouse-datasource", "uid": "${ds_clickhouse}"}
PROM = {"type": "prometheus", "uid": "${ds_prometheus}"}
WM = "${database}.window_metrics_latest"
SEGMENT = "segment = if(${segment:singlequote} = 'all', '', ${segment:singlequote})"


def _ds_var(name: str, label: str, plugin: str) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "datasource", "query": plugin, "current": {}, "hide": 0,
            "includeAll": False, "multi": False, "options": [], "refresh": 1, "regex": "", "skipUrlSync": False}


def _database_var() -> dict[str, Any]:
    return {"name": "database", "label": "Database", "type": "textbox", "query": "driftwarden",
            "current": {"text": "driftwarden", "value": "driftwarden"}, "hide": 0,
            "options": [{"selected": True, "text": "driftwarden", "value": "driftwarden"}]}


def _query_var(name: str, label: str, sql: str, multi: bool, include_all: bool = False) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "query", "datasource": CH, "definition": sql,
            "query": {"editorType": "sql", "format": 1, "rawSql": sql}, "current": {}, "hide": 0,
            "includeAll": include_all, "multi": multi, "options": [], "refresh": 2, "regex": "",
            "skipUrlSync": False, "sort": 1}


MODEL_MULTI = _query_var("model", "Model", "SELECT DISTINCT model_id FROM ${database}.models ORDER BY model_id",
                         multi=True, include_all=True)
MODEL_ONE = _query_var("model", "Model", "SELECT DISTINCT model_id FROM ${database}.models ORDER BY model_id",
                       multi=False)
VERSION = _query_var("version", "Version",
                     "SELECT DISTINCT model_version FROM ${database}.window_metrics "
                     "WHERE model_id IN (${model:singlequote}) ORDER BY model_version DESC", multi=True,
                     include_all=True)
SEGMENT_VAR = _query_var("segment", "Segment",
                         "SELECT DISTINCT if(segment = '', 'all', segment) AS segment FROM ${database}.window_metrics "
                         "WHERE model_id IN (${model:singlequote}) ORDER BY segment = 'all' DESC, segment",
                         multi=False)
# drift and quality have segments that window_metrics lacks (intersections, the top-K's __other__); both tables
# get the same segments from one sketch per segment, so data_quality (the smaller one) lists them
DRIFT_SEGMENT_VAR = _query_var("segment", "Segment",
                               "SELECT DISTINCT if(segment = '', 'all', segment) AS segment "
                               "FROM ${database}.data_quality WHERE model_id IN (${model:singlequote}) "
                               "ORDER BY segment = 'all' DESC, segment", multi=False)


class Board:
    """Panels laid out left to right, top to bottom, on Grafana's 24-column grid."""

    def __init__(self, uid: str, title: str, description: str, variables: list[dict[str, Any]]) -> None:
        self.uid, self.title, self.description = uid, title, description
        self.variables = [_ds_var("ds_clickhouse", "ClickHouse", "grafana-clickhouse-datasource"),
                          _ds_var("ds_prometheus", "Prometheus", "prometheus"), _database_var(), *variables]
        self.panels: list[dict[str, Any]] = []
        self.x = self.y = self.row_h = 0

    def _place(self, w: int, h: int) -> dict[str, int]:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title: str) -> None:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.panels.append({"id": len(self.panels) + 1, "type": "row", "title": title, "collapsed": False,
                            "panels": [], "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}})
        self.y += 1

    def ch(self, kind: str, title: str, sql: str, w: int = 12, h: int = 8, **extra: Any) -> None:
        table = kind in ("table", "stat")
        target = {"datasource": CH, "editorType": "sql", "queryType": "table" if table else "timeseries",
                  "format": 1 if table else 0, "rawSql": sql.strip(), "refId": "A"}
        self._panel(kind, title, [target], w, h, extra)

    def prom(self, kind: str, title: str, exprs: list[tuple[str, str]], w: int = 12, h: int = 8,
             **extra: Any) -> None:
        targets = [{"datasource": PROM, "expr": expr, "legendFormat": legend, "range": True,
                    "refId": chr(ord("A") + i)} for i, (expr, legend) in enumerate(exprs)]
        self._panel(kind, title, targets, w, h, extra)

    def _panel(self, kind: str, title: str, targets: list[dict[str, Any]], w: int, h: int,
               extra: dict[str, Any]) -> None:
        self.panels.append({"id": len(self.panels) + 1, "type": kind, "title": title,
                            "datasource": targets[0]["datasource"], "gridPos": self._place(w, h),
                            "targets": targets, **extra})

    def json(self) -> dict[str, Any]:
        return {
            "__requires": [
                {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.4.0"},
                {"type": "datasource", "id": "grafana-clickhouse-datasource", "name": "ClickHouse",
                 "version": "4.0.0"},
                {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"}],
            "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                      "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                      "name": "Annotations & Alerts", "type": "dashboard"}]},
            "description": self.description, "editable": True, "graphTooltip": 1, "id": None,
            "links": [{"asDropdown": True, "includeVars": True, "keepTime": True, "tags": ["driftwarden"],
                       "title": "Driftwarden", "type": "dashboards"}],
            "panels": self.panels, "refresh": "1m", "schemaVersion": 39, "tags": ["driftwarden", "ml-monitoring"],
            "templating": {"list": self.variables}, "time": {"from": "now-24h", "to": "now"}, "timepicker": {},
            "timezone": "utc", "title": self.title, "uid": self.uid, "version": 1,
        }


def _series(metrics: str, where: str = "") -> str:
    return f"""SELECT window_start AS time, concat(model_id, ' v', model_version, ' ', metric) AS series, value
FROM {WM}
WHERE metric IN ({metrics}) AND model_id IN (${{model:singlequote}}) {where}
  AND $__timeFilter(window_start)
ORDER BY time"""


def overview() -> Board:
    b = Board("driftwarden-overview", "Driftwarden / Overview",
              "Every model: health from firing alerts, volume, label coverage and headline metrics (whole "
              "population).", [MODEL_MULTI])
    b.row("Models")
    b.ch("table", "Models in the time range", f"""
SELECT m.model_id AS model, ifNull(a.firing, 0) AS firing_alerts,
       if(ifNull(a.firing, 0) = 0, 'healthy', 'unhealthy') AS health,
       m.predictions, m.labelled, if(m.predictions = 0, nan, m.labelled / m.predictions) AS label_coverage,
       m.windows, m.last_window
FROM (SELECT model_id, sumIf(value, metric = 'predictions') AS predictions,
             sumIf(value, metric = 'labelled') AS labelled,
             uniqExactIf(window_start, metric = 'predictions') AS windows, max(window_start) AS last_window
      FROM {WM}
      WHERE segment = '' AND model_id IN (${{model:singlequote}}) AND $__timeFilter(window_start)
      GROUP BY model_id) AS m
LEFT JOIN (SELECT model_id, count() AS firing
           FROM (SELECT alert_id, any(model_id) AS model_id FROM ${{database}}.alerts FINAL
                 GROUP BY alert_id HAVING countIf(state = 'resolved') = 0)
           GROUP BY model_id) AS a ON a.model_id = m.model_id
ORDER BY firing_alerts DESC, model""", w=24, h=7)
    b.row("Headline metrics (whole population: segment = '')")
    b.ch("timeseries", "Accuracy", _series("'accuracy'", "AND segment = ''"), w=8)
    b.ch("timeseries", "ROC AUC", _series("'roc_auc'", "AND segment = ''"), w=8)
    b.ch("timeseries", "F1", _series("'f1', 'macro_f1'", "AND segment = ''"), w=8)
    b.ch("timeseries", "Regression error (MAE, RMSE)", _series("'mae', 'rmse'", "AND segment = ''"), w=8)
    b.ch("timeseries", "Label coverage", _series("'label_coverage'", "AND segment = ''"), w=8)
    b.ch("timeseries", "Predictions per window", _series("'predictions'", "AND segment = ''"), w=8)
    return b


def model_detail() -> Board:
    b = Board("driftwarden-model", "Driftwarden / Model",
              "One model: every metric per window for the chosen versions and segment, with drift detections "
              "and alerts.", [MODEL_ONE, VERSION, SEGMENT_VAR])
    where = f"AND model_version IN (${{version:singlequote}}) AND {SEGMENT}"
    b.row("Quality")
    b.ch("timeseries", "Classification quality", _series("'accuracy', 'precision', 'recall', 'f1', 'roc_auc'",
                                                         where), w=12)
    b.ch("timeseries", "Regression error", _series("'mae', 'rmse', 'mape', 'r2'", where), w=12)
    b.ch("timeseries", "Volume: predictions, labels, orphans", _series("'predictions', 'labelled', 'orphans'",
                                                                      where), w=8)
    b.ch("timeseries", "Label coverage", _series("'label_coverage'", where), w=8)
    b.ch("timeseries", "Prediction latency (ms)", _series("'latency_p50', 'latency_p95', 'latency_p99'", where),
         w=8)
    b.row("Business metrics")
    b.ch("timeseries", "Business metrics (sum and mean per key of the model spec)",
         f"""
SELECT window_start AS time, concat('v', model_version, ' ', metric) AS series, value
FROM {WM}
WHERE (endsWith(metric, '_sum') OR endsWith(metric, '_mean'))
  AND metric NOT IN ('latency_mean', 'score_mean', 'prediction_mean') AND model_id IN (${{model:singlequote}}) {where}
  AND $__timeFilter(window_start)
ORDER BY time""", w=24)
    b.row("Drift and alerts")
    b.ch("table", "Drift detections", """
SELECT event_time, model_version, detector, signal, estimate_before, estimate_after
FROM ${database}.drift_events FINAL
WHERE model_id IN (${model:singlequote}) AND model_version IN (${version:singlequote})
  AND $__timeFilter(event_time)
ORDER BY event_time DESC LIMIT 200""", w=12)
    b.ch("table", "Alerts", """
SELECT time, state, severity, model_version, segment, rule, metric, observed, threshold, message
FROM ${database}.alerts FINAL
WHERE model_id IN (${model:singlequote}) AND model_version IN (${version:singlequote}) AND $__timeFilter(time)
ORDER BY time DESC LIMIT 200""", w=12)
    return b


def drift() -> Board:
    b = Board("driftwarden-drift", "Driftwarden / Drift",
              "Feature drift per window against the reference profile, and the online detectors' detections.",
              [MODEL_ONE, VERSION, DRIFT_SEGMENT_VAR])
    fd = f"""FROM ${{database}}.feature_drift FINAL
WHERE model_id IN (${{model:singlequote}}) AND model_version IN (${{version:singlequote}}) AND {SEGMENT}
  AND NOT startsWith(feature, '__') AND $__timeFilter(window_start)"""
    b.row("Feature drift")
    b.ch("heatmap", "PSI per feature and window", f"""
SELECT window_start AS time, feature, max(statistic) AS psi
{fd} AND test = 'psi' AND insufficient = 0
GROUP BY time, feature
ORDER BY time""", w=24, h=10)
    b.ch("table", "Drifted features (first and last drifted window, tests)", f"""
SELECT feature, min(window_start) AS first_drifted, max(window_start) AS last_drifted,
       uniqExact(window_start) AS windows, arrayStringConcat(groupUniqArray(test), ', ') AS tests,
       max(statistic) AS max_statistic
{fd} AND drifted = 1
GROUP BY feature
ORDER BY first_drifted""", w=12, h=9)
    b.ch("timeseries", "Jensen-Shannon distance per feature", f"""
SELECT window_start AS time, feature, max(statistic) AS js
{fd} AND test = 'jensen_shannon' AND insufficient = 0
GROUP BY time, feature
ORDER BY time""", w=12, h=9)
    b.row("Detectors")
    b.ch("table", "Drift detections", """
SELECT event_time, model_version, detector, signal, position, estimate_before, estimate_after, params
FROM ${database}.drift_events FINAL
WHERE model_id IN (${model:singlequote}) AND model_version IN (${version:singlequote})
  AND $__timeFilter(event_time)
ORDER BY event_time DESC LIMIT 500""", w=24, h=9)
    return b


def data_quality() -> Board:
    b = Board("driftwarden-quality", "Driftwarden / Data quality",
              "Data-quality checks per window and feature, and dead letters by reason.",
              [MODEL_ONE, VERSION, DRIFT_SEGMENT_VAR])
    dq = f"""FROM ${{database}}.data_quality FINAL
WHERE model_id IN (${{model:singlequote}}) AND model_version IN (${{version:singlequote}}) AND {SEGMENT}
  AND $__timeFilter(window_start)"""
    b.row("Checks")
    b.ch("timeseries", "Rates per feature and check", f"""
SELECT window_start AS time, concat(feature, ' ', check) AS series, max(value) AS value
{dq} AND endsWith(check, 'rate')
GROUP BY time, series
ORDER BY time""", w=24, h=9)
    b.ch("table", "Checks above zero (worst window)", f"""
SELECT feature, check, max(value) AS worst, argMax(window_start, value) AS worst_window,
       sum(samples) AS samples, any(detail) AS detail
{dq} AND value > 0
GROUP BY feature, check
ORDER BY worst DESC LIMIT 200""", w=12, h=9)
    b.ch("timeseries", "Dead letters by reason", """
SELECT $__timeInterval(time) AS time, reason, count() AS letters
FROM ${database}.dead_letters
WHERE $__timeFilter(time)
GROUP BY time, reason
ORDER BY time""", w=12, h=9)
    return b


def alerts() -> Board:
    b = Board("driftwarden-alerts", "Driftwarden / Alerts",
              "Alerts firing now, and every alert state change with its evidence SQL.", [MODEL_MULTI])
    b.row("Alerts")
    b.ch("table", "Firing now", """
SELECT any(model_id) AS model, any(model_version) AS version, any(segment) AS segment,
       argMax(severity, time) AS severity, any(rule) AS rule, argMax(observed, time) AS observed,
       any(threshold) AS threshold, min(time) AS since, argMax(message, time) AS message
FROM ${database}.alerts FINAL
WHERE model_id IN (${model:singlequote})
GROUP BY alert_id
HAVING countIf(state = 'resolved') = 0
ORDER BY since DESC""", w=24, h=8)
    b.ch("timeseries", "Alert state changes", """
SELECT $__timeInterval(time) AS time, concat(state, ' ', severity) AS series, count() AS alerts
FROM ${database}.alerts FINAL
WHERE model_id IN (${model:singlequote}) AND $__timeFilter(time)
GROUP BY time, series
ORDER BY time""", w=24, h=7)
    b.ch("table", "History with evidence SQL", """
SELECT time, state, severity, model_id, model_version, segment, rule, metric, observed, threshold,
       message, evidence_sql
FROM ${database}.alerts FINAL
WHERE model_id IN (${model:singlequote}) AND $__timeFilter(time)
ORDER BY time DESC LIMIT 500""", w=24, h=10)
    return b


def pipeline() -> Board:
    b = Board("driftwarden-pipeline", "Driftwarden / Pipeline health",
              "The workers' /metrics (Prometheus) and the join's statistics (ClickHouse).", [])
    b.row("Throughput")
    b.prom("timeseries", "Records consumed per second",
           [("sum by (topic) (rate(driftwarden_records_total[$__rate_interval]))", "{{topic}}")], w=8)
    b.prom("timeseries", "Dead letters per second",
           [("sum by (reason) (rate(driftwarden_dead_letters_total[$__rate_interval]))", "{{reason}}")], w=8)
    b.prom("timeseries", "Consumer lag (records)",
           [("sum by (topic) (driftwarden_consumer_lag_records)", "{{topic}}")], w=8)
    b.row("Latency")
    b.prom("timeseries", "Ingest to ClickHouse (p50, p95, p99)", [
        (f"histogram_quantile({q}, sum by (le) (rate(driftwarden_ingest_to_clickhouse_seconds_bucket"
         f"[$__rate_interval])))", f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)], w=12,
           fieldConfig={"defaults": {"unit": "s"}, "overrides": []})
    b.prom("timeseries", "Window close lag (p50, p95)", [
        (f"histogram_quantile({q}, sum by (le) (rate(driftwarden_window_close_lag_seconds_bucket"
         f"[$__rate_interval])))", f"p{int(q * 100)}") for q in (0.5, 0.95)], w=12,
           fieldConfig={"defaults": {"unit": "s"}, "overrides": []})
    b.row("State and sink")
    b.prom("timeseries", "Held in memory", [("sum(driftwarden_join_waiting)", "join waiting"),
                                            ("sum(driftwarden_windows_open)", "windows open")], w=8)
    b.prom("timeseries", "ClickHouse sink", [
        ("sum(driftwarden_sink_pending_batches)", "pending batches"),
        ("sum(rate(driftwarden_sink_failures_total[$__rate_interval]))", "failed inserts/s"),
        ("sum by (table) (rate(driftwarden_rows_written_total[$__rate_interval]))", "rows/s {{table}}")], w=8)
    b.prom("timeseries", "Alerts and detections per second", [
        ("sum by (state) (rate(driftwarden_alerts_total[$__rate_interval]))", "alerts {{state}}"),
        ("sum by (detector) (rate(driftwarden_drift_events_total[$__rate_interval]))", "{{detector}}")], w=8)
    b.prom("table", "Workers (build info)", [("driftwarden_build_info", "{{instance}} {{version}}")], w=12, h=6)
    b.ch("table", "Join statistics (all partitions)", """
SELECT metric, sum(value) AS value, max(updated_at) AS updated_at
FROM ${database}.join_stats FINAL
GROUP BY metric
ORDER BY metric""", w=12, h=6)
    return b


BOARDS = {"overview": overview, "model": model_detail, "drift": drift, "quality": data_quality, "alerts": alerts,
          "pipeline": pipeline}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {f"{name}.json": json.dumps(make().json(), indent=2) + "\n" for name, make in BOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file is stale")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for name in stale:
        print(f"stale: {args.out / name} (run python deploy/grafana/build_dashboards.py)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
