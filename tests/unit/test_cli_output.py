"""Command output when stdout is not a terminal: whole values, no wrapping, no escape codes; `config` names."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stream.cli import main
from stream.cli.output import json_rows, render


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith("DRIFTWARDEN_"):
            monkeypatch.delenv(name)
    return {"DRIFTWARDEN_DATA_DIR": str(tmp_path)}


def test_piped_sql_prints_whole_values_tab_separated(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    columns = [f"column_number_{i}" for i in range(14)]
    row: list[Any] = [0.8460458586812345, "2024-05-01T12:00:00.123000Z", "x" * 300, None, "a\tb", *range(9)]
    monkeypatch.setattr(main, "run_query", lambda statement: (columns, [row, row]))
    result = CliRunner().invoke(main.app, ["sql", "SELECT 1"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split("\t") == columns and len(lines) == 3
    assert lines[1].split("\t") == ["0.8460458586812345", "2024-05-01T12:00:00.123000Z", "x" * 300, "", "a\\tb",
                                    *map(str, range(9))]
    assert "\x1b" not in result.output


def test_sql_formats_agree(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    import datetime as dt

    rows = json_rows([[float("nan"), dt.datetime(2024, 5, 1, 12), 1.5]])
    monkeypatch.setattr(main, "run_query", lambda statement: (["a", "t", "x"], rows))
    runner = CliRunner()
    as_json = runner.invoke(main.app, ["sql", "SELECT 1", "-f", "json"], env=env).output
    assert json.loads(as_json) == [{"a": None, "t": "2024-05-01T12:00:00Z", "x": 1.5}]
    as_csv = runner.invoke(main.app, ["sql", "SELECT 1", "-f", "csv"], env=env).output
    assert as_csv == "a,t,x\n,2024-05-01T12:00:00Z,1.5\n"
    bad = runner.invoke(main.app, ["sql", "SELECT 1", "-f", "xml"], env=env)
    assert "unknown format 'xml'" in str(bad.exception)


def test_render_table_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("stream.cli.output.is_terminal", lambda: True)
    table = render(["a"], [[None], [{"k": 1}]], "table")
    assert not isinstance(table, str) and [str(c) for c in table.columns[0]._cells] == ["", '{"k":1}']


def test_config_prints_variable_names_and_the_running_broker(env: dict[str, str], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("stream.runtime.local_files.listens_on", lambda pid, port: pid == os.getpid())
    runner = CliRunner()
    shown = runner.invoke(main.app, ["config"], env={**env, "DRIFTWARDEN_WEBHOOK_SECRET": "hunter2"})
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert "DRIFTWARDEN_WEB_PORT=6066" in lines and "DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS=" in lines
    assert "DRIFTWARDEN_WEBHOOK_SECRET='***'" in lines and "hunter2" not in shown.output
    assert not any(line.startswith("web_port") for line in lines)
    assert f"# no service is running on {tmp_path}" in lines
    (tmp_path / "runtime.json").write_text(json.dumps({
        "pid": os.getpid(), "bootstrap_servers": "127.0.0.1:39092", "embedded_broker": True,
        "web_url": "http://127.0.0.1:6066"}))
    running = runner.invoke(main.app, ["config"], env=env)
    assert (f"# running service (pid {os.getpid()}): producers use 127.0.0.1:39092 (embedded tansu broker); "
            "HTTP http://127.0.0.1:6066") in running.output.splitlines()
    data = json.loads(runner.invoke(main.app, ["config", "--format", "json"], env=env).output)
    assert data["settings"]["DRIFTWARDEN_WEB_PORT"] == 6066
    assert data["running_service"]["kafka_bootstrap_servers"] == "127.0.0.1:39092"


def test_read_only_commands_without_a_service_say_so(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main.app, ["silences", "list"], env=env)
    assert "no service running on" in str(result.exception) and "driftwarden up" in str(result.exception)
