"""`driftwarden alerts active` and the episode column of `alerts list`, incl. both queries on the real engine."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stream.alerts.history import ACTIVE_COLUMNS, active_query
from stream.cli import common
from stream.cli.alerts import LIST_COLUMNS, alerts_app, list_query

ROOT = Path(__file__).resolve().parents[2]

_RUN = textwrap.dedent("""
    import json, sys, tempfile, datetime as dt
    from stream.pipeline.rows import ALERT_COLUMNS
    from stream.storage.clickhouse import ClickHouse
    from stream.storage.migrations import migrate
    from stream.storage.readonly_sql import ReadOnlySQL
    dsn = "chdb://" + tempfile.mkdtemp()
    ch = ClickHouse(dsn, "dw")
    migrate(ch)
    t = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    def event(ident, state, model, minute, rule="acc"):
        return [ident, state, "critical", model, "1", "", rule, "accuracy", 0.6, 0.8, t, t,
                t + dt.timedelta(minutes=minute), f"{ident} {state}", f"SELECT '{ident}'"]
    rows = [event("a1", "firing", "fraud", 0), event("a1", "resolved", "fraud", 5), event("a2", "firing", "fraud", 7),
            event("a3", "firing", "churn", 9, "cov"), event("a3", "firing", "churn", 9, "cov")]  # a duplicate write
    ch.insert("alerts", rows, list(ALERT_COLUMNS))
    sql = ReadOnlySQL(dsn, "dw")  # the read-only path `driftwarden alerts` takes: the guard must accept them
    out = []
    for q in json.loads(sys.argv[1]):
        result = sql.run(q)
        out.append([result.columns, result.rows])
    print(json.dumps(out, default=str))
""")


def test_active_and_list_queries_on_the_real_engine() -> None:
    queries = [active_query("dw"), active_query("dw", "churn"), list_query("dw", since=None),
               list_query("dw", state="firing", since=None)]
    result = subprocess.run([sys.executable, "-c", _RUN, json.dumps(queries)], capture_output=True, text=True,
                            timeout=180, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    (cols, active), (_, churn), (list_cols, listed), (_, firing) = json.loads(result.stdout.strip().splitlines()[-1])
    assert tuple(cols) == ACTIVE_COLUMNS and tuple(list_cols) == LIST_COLUMNS
    got = [dict(zip(cols, row, strict=True)) for row in active]
    assert [(a["alert_id"], a["model_id"], a["firing_since"]) for a in got] == [
        ("a3", "churn", "2026-01-01 12:09:00.000"), ("a2", "fraud", "2026-01-01 12:07:00.000")]
    assert got[1]["evidence_sql"] == "SELECT 'a2'" and got[1]["message"] == "a2 firing"
    assert got[1]["observed"] == 0.6 and got[1]["window_start"] == "2026-01-01 12:00:00.000"
    assert [r[-1] for r in churn] == ["a3"]
    state, episode, ident = (LIST_COLUMNS.index(c) for c in ("state", "episode", "alert_id"))
    assert [(r[ident], r[state], r[episode]) for r in listed] == [
        ("a3", "firing", "firing"), ("a2", "firing", "firing"), ("a1", "resolved", "resolved"),
        ("a1", "firing", "resolved")]
    assert [(r[ident], r[episode]) for r in firing] == [("a3", "firing"), ("a2", "firing"), ("a1", "resolved")]


def test_active_command_table_json_and_empty(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DRIFTWARDEN_DATA_DIR", str(tmp_path))
    statements: list[str] = []
    answer: list[list[Any]] = []

    def run_query(statement: str) -> tuple[list[str], list[list[Any]]]:
        statements.append(statement)
        return (list(ACTIVE_COLUMNS) if answer else []), answer

    monkeypatch.setattr(common, "run_query", run_query)
    runner = CliRunner()
    empty = runner.invoke(alerts_app, ["active", "--model", "fraud"])
    assert empty.exit_code == 0 and empty.output == "nothing is firing for model fraud\n"
    assert statements[-1] == active_query("driftwarden", "fraud")
    answer.append(["2026-01-01 12:07:00.000", "critical", "fraud", "1", "", "acc", "accuracy", 0.6, 0.8,
                   "2026-01-01 12:00:00.000", "accuracy fell", "SELECT 1", "b" * 40])
    table = runner.invoke(alerts_app, ["active"])
    assert table.exit_code == 0, table.output
    assert "accuracy fell" in table.output and "b" * 12 in table.output and "1 firing" in table.output
    data = json.loads(runner.invoke(alerts_app, ["active", "-f", "json"]).output)
    assert data == [dict(zip(ACTIVE_COLUMNS, answer[0], strict=True))]
    bad = runner.invoke(alerts_app, ["active", "-f", "xml"])
    assert bad.exit_code != 0 and "unknown format 'xml'" in str(bad.exception)
