"""The Grafana dashboards in deploy/grafana: generated files up to date, layout, data sources, and every
ClickHouse query run (macros and variables expanded) on the real engine after the migrations."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from stream.runtime.telemetry import Telemetry

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"


def builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_dashboards", GRAFANA / "build_dashboards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def boards() -> dict[str, dict[str, Any]]:
    return {p.stem: dict(json.loads(p.read_text())) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def clickhouse_queries(board: dict[str, Any]) -> list[str]:
    queries = [t["rawSql"] for p in panels(board) for t in p["targets"] if "rawSql" in t]
    return queries + [v["query"]["rawSql"] for v in board["templating"]["list"] if v["type"] == "query"]


def test_committed_dashboards_are_the_generated_ones(tmp_path: Path) -> None:
    module = builder()
    assert module.main(["--check"]) == 0, "run python deploy/grafana/build_dashboards.py"
    assert module.main(["--check", "--out", str(tmp_path)]) == 1  # and the check can fail
    assert set(boards()) == {"overview", "model", "drift", "quality", "alerts", "pipeline"}


def test_every_dashboard_has_a_unique_uid_datasource_variables_and_a_database_variable() -> None:
    uids = [b["uid"] for b in boards().values()]
    assert len(uids) == len(set(uids))
    for name, board in boards().items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["ds_clickhouse"]["query"] == "grafana-clickhouse-datasource"
        assert variables["ds_prometheus"]["query"] == "prometheus"
        assert variables["database"]["query"] == "driftwarden", name
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in panels(board):
            for target in panel["targets"]:
                assert target["datasource"] in ({"type": "grafana-clickhouse-datasource", "uid": "${ds_clickhouse}"},
                                                {"type": "prometheus", "uid": "${ds_prometheus}"}), panel["title"]
        for query in clickhouse_queries(board):
            assert "driftwarden." not in query, f"{name}: hard-coded database in {query[:80]}"
            assert "${database}." in query, f"{name}: {query[:80]}"


def test_model_detail_and_drift_have_version_and_segment_variables() -> None:
    for name in ("model", "drift"):
        board = boards()[name]
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert {"model", "version", "segment"} <= set(variables)
        assert variables["version"]["multi"] and not variables["model"]["multi"]
        for query in clickhouse_queries(board):
            if "window_metrics_latest" in query or "feature_drift" in query:
                assert "${version:singlequote}" in query and "${segment:singlequote}" in query, query[:120]


def test_panels_do_not_overlap() -> None:
    for name, board in boards().items():
        cells: dict[tuple[int, int], str] = {}
        for panel in board["panels"]:
            g = panel["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24, (name, panel["title"])
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{name}: {panel['title']} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = panel["title"]


def test_dashboards_cover_quality_drift_data_quality_alerts_and_pipeline() -> None:
    sql = {name: "\n".join(clickhouse_queries(b)) for name, b in boards().items()}
    for metric in ("accuracy", "f1", "roc_auc", "label_coverage", "mae", "rmse", "latency_p95"):
        assert f"'{metric}'" in sql["overview"] + sql["model"], metric
    assert "feature_drift FINAL" in sql["drift"] and "'psi'" in sql["drift"] and "drift_events" in sql["drift"]
    assert "data_quality" in sql["quality"] and "dead_letters" in sql["quality"]
    assert "evidence_sql" in sql["alerts"] and "countIf(state = 'resolved') = 0" in sql["alerts"]
    assert "join_stats" in sql["pipeline"]
    assert [p["type"] for p in panels(boards()["drift"])].count("heatmap") == 1


def test_prometheus_expressions_use_metrics_the_worker_exports() -> None:
    exported: set[str] = set()
    for family in Telemetry().registry.collect():
        exported |= {sample.name for sample in family.samples} | {family.name + "_total", family.name + "_info",
                                                                     family.name + "_bucket", family.name}
    exprs = [t["expr"] for b in boards().values() for p in panels(b) for t in p["targets"] if "expr" in t]
    used = {name for e in exprs for name in re.findall(r"driftwarden_\w+", e)}
    assert used <= exported, used - exported
    assert {"driftwarden_consumer_lag_records", "driftwarden_ingest_to_clickhouse_seconds_bucket",
            "driftwarden_window_close_lag_seconds_bucket", "driftwarden_build_info"} <= used


def test_metric_names_in_queries_are_produced_by_the_metrics_modules() -> None:
    source = "".join(p.read_text() for p in (ROOT / "stream").rglob("*.py") if "metrics" in p.as_posix())
    for board in boards().values():
        for query in clickhouse_queries(board):
            for group in re.findall(r"metric IN \(([^)]*)\)", query):
                for name in re.findall(r"'(\w+)'", group):
                    assert f'"{name}"' in source, f"no metric named {name!r} in the metrics modules"


def test_provisioning_points_at_the_dashboards_and_the_compose_services() -> None:
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "driftwarden.yaml").read_text())
    by_type = {d["type"]: d for d in sources["datasources"]}
    ch = by_type["grafana-clickhouse-datasource"]
    assert ch["jsonData"]["host"] == "clickhouse" and ch["jsonData"]["protocol"] == "http"
    assert ch["secureJsonData"]["password"].startswith("${")  # from the environment, not the file
    assert by_type["prometheus"]["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "driftwarden.yaml").read_text())
    path = providers["providers"][0]["options"]["path"]
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in services["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == path
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert "grafana-clickhouse-datasource" in services["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert prometheus["scrape_configs"][0]["static_configs"][0]["targets"] == ["driftwarden:6066"]


FROM, TO = "2026-01-01 00:00:00", "2026-01-02 00:00:00"
VARIABLES = {"model": ["credit-risk"], "version": ["1", "2"], "segment": ["all"]}


def expand(sql: str, database: str) -> str:
    """The ClickHouse plugin's macros and Grafana's variable formats, as Grafana would send them."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)",
                 rf"\1 >= toDateTime('{FROM}', 'UTC') AND \1 <= toDateTime('{TO}', 'UTC')", sql)
    sql = re.sub(r"\$__timeInterval\((\w+)\)", r"toStartOfInterval(toDateTime(\1), INTERVAL 60 second)", sql)
    sql = sql.replace("$__fromTime", f"toDateTime('{FROM}', 'UTC')").replace("$__toTime", f"toDateTime('{TO}', 'UTC')")
    sql = sql.replace("${database}", database)
    for name, values in VARIABLES.items():
        sql = sql.replace(f"${{{name}:singlequote}}", ", ".join(f"'{v}'" for v in values))
    return sql


_RUN = textwrap.dedent("""
    import json, sys, tempfile, datetime as dt
    from stream.storage.clickhouse import ClickHouse
    from stream.storage.migrations import migrate
    database, queries = sys.argv[1], json.loads(sys.argv[2])
    ch = ClickHouse("chdb://" + tempfile.mkdtemp(), database)
    migrate(ch)
    t = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    ch.insert("window_metrics", [["credit-risk", "1", "", t, t + dt.timedelta(minutes=1), m, v, 100, 1, t]
                                 for m, v in (("predictions", 100.0), ("labelled", 80.0), ("accuracy", 0.9))],
              ["model_id", "model_version", "segment", "window_start", "window_end", "metric", "value", "samples",
               "version", "updated_at"])
    ch.insert("alerts", [["a1", "firing", "critical", "credit-risk", "1", "", "accuracy_floor", "accuracy", 0.6, 0.8,
                          t, t, t, "accuracy fell", "SELECT 1"]],
              ["alert_id", "state", "severity", "model_id", "model_version", "segment", "rule", "metric", "observed",
               "threshold", "window_start", "window_end", "time", "message", "evidence_sql"])
    out = []
    for q in queries:
        try:
            out.append(ch.query_rows(q)[1])
        except Exception as exc:
            sys.exit(f"{q}\\n{exc}")
    print(json.dumps(out, default=str))
""")


@pytest.mark.parametrize("database", ["analytics"])
def test_every_clickhouse_query_runs_on_the_real_engine_after_the_migrations(database: str) -> None:
    named = [(f"{name}: {i}", q) for name, b in boards().items() for i, q in enumerate(clickhouse_queries(b))]
    queries = [expand(q, database) for _, q in named]
    for (label, _), query in zip(named, queries, strict=True):
        assert "$" not in query, f"{label}: a macro or variable is not expanded by this test: {query}"
    result = subprocess.run([sys.executable, "-c", _RUN, database, json.dumps(queries)], capture_output=True,
                            text=True, timeout=180, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    overview = rows[[label for label, _ in named].index("overview: 0")]
    assert overview[0][:3] == ["credit-risk", 1, "unhealthy"]  # the firing alert makes the model unhealthy
