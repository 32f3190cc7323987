"""The README's "Use it with your model" commands, run verbatim against `examples/` and a running service.

The commands are parsed out of the README's code block, so this test fails when the README and the files in
`examples/` drift apart. It also checks that `driftwarden sql --format json` prints the same bytes through the
running service and directly on the data directory after the service stopped.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until
from tests.integration.conftest import http_json

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[list[str]]:
    """The argument lists of the shell block under "## Use it with your model" (comments dropped)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use it with your model", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "no sh code block in the README's 'Use it with your model'"
    return [shlex.split(line, comments=True) for line in block.group(1).splitlines() if line.strip()]


def _cli(env: dict[str, str], args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_readme_commands_run_as_written_on_the_examples(make_worker: Any) -> None:
    commands = readme_commands()
    assert commands[0] == ["driftwarden", "up"], "the README's first command starts the service"
    assert all(c[0] == "driftwarden" for c in commands), commands
    # `driftwarden up` on a free port and a fresh data directory; the outcomes TTL is raised because the
    # examples' timestamps (2026-01-01) may be older than the default 90 days, which would drop their outcome rows
    worker = make_worker(DRIFTWARDEN_OUTCOMES_TTL_DAYS="3650").start()
    for command in commands[1:]:
        result = _cli(worker.env, command[1:])
        assert result.returncode == 0, f"{shlex.join(command)}:\n{result.stdout}\n{result.stderr}"
    predictions = len((ROOT / "examples" / "predictions.jsonl").read_text().splitlines())
    labels = len((ROOT / "examples" / "labels.jsonl").read_text().splitlines())
    assert (predictions, labels) == (300, 270)

    def windows_complete() -> bool:
        rows = worker.sql("SELECT metric, sum(value) AS total, uniqExact(window_start) AS windows "
                          "FROM window_metrics_latest WHERE model_id = 'my-model' AND segment = '' "
                          "AND metric IN ('predictions', 'labelled') GROUP BY metric")
        totals = {r["metric"]: (r["total"], r["windows"]) for r in rows}
        return totals == {"predictions": (predictions, 5), "labelled": (labels, 5)}

    wait_until(windows_complete, 60, 0.5, "five windows of my-model with every prediction and label")
    outcomes = worker.sql("SELECT count() AS n FROM driftwarden.outcomes FINAL WHERE model_id = 'my-model'")
    assert outcomes == [{"n": labels}]

    # The README's query (its last command), piped: whole values, tab-separated, a header and 20 rows.
    shown = _cli(worker.env, commands[-1][1:]).stdout.splitlines()
    assert shown[0] == "window_start\tsegment\tmetric\tvalue" and len(shown) == 21, shown
    assert shown[1].startswith("2026-01-01T09:00:00Z\t\t"), shown[1]  # the first window, all segments ('')

    status, empty = http_json(worker.url + "/sql", b"SELECT model_id, value FROM window_metrics WHERE model_id = ''")
    assert status == 200 and empty["columns"] == ["model_id", "value"] and empty["rows"] == [], empty

    query = ("SELECT window_start, segment, metric, value, samples FROM window_metrics_latest "
             "WHERE model_id = 'my-model' ORDER BY window_start, segment, metric")
    through_service = _cli(worker.env, ["sql", query, "--format", "json"])
    assert through_service.returncode == 0, through_service.stderr
    registry_via_topic = _cli(worker.env, ["models", "show", "my-model"])
    assert worker.stop() == 0
    directly = _cli(worker.env, ["sql", query, "--format", "json"])
    assert directly.returncode == 0, directly.stderr
    assert directly.stdout == through_service.stdout
    assert "NaN" not in directly.stdout and '"2026-01-01T09:00:00Z"' in directly.stdout

    listed = _cli(worker.env, ["models", "list"])  # no service: read from ClickHouse
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"my-model\s*\S*\s*3\s*\S*\s*binary_classification", listed.stdout), listed.stdout
    shown_from_clickhouse = _cli(worker.env, ["models", "show", "my-model"])
    assert shown_from_clickhouse.returncode == 0, shown_from_clickhouse.stderr
    assert shown_from_clickhouse.stdout.replace('"unknown"', '"registered"') == registry_via_topic.stdout
