"""`driftwarden up` as a user runs it: endpoints, clean shutdown, and one-line errors for what goes wrong."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stream.storage.migrations import MIGRATIONS
from tests.helpers import free_port, pids_with_cmdline, wait_until
from tests.integration.conftest import http_json, worker_env

pytestmark = pytest.mark.integration


def _run_cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def test_up_serves_endpoints_and_stops_on_sigterm_leaving_nothing(make_worker: Any) -> None:
    worker = make_worker().start()
    status, body = http_json(worker.url + "/healthz")
    assert (status, body) == (200, {"status": "ok"})
    tables = {row["name"] for row in worker.sql("SHOW TABLES FROM driftwarden")}
    assert {"window_metrics", "outcomes", "dead_letters", "drift_events", "alerts", "feature_drift"} <= tables
    status, body = http_json(worker.url + "/sql", b"DROP TABLE driftwarden.outcomes")
    assert status == 400 and "only SELECT, SHOW, DESCRIBE" in body["error"]
    status, body = http_json(worker.url + "/sql", b"SELECT * FROM file('/etc/passwd', 'LineAsString')")
    assert status == 400 and "file() is not allowed" in body["error"]
    with __import__("urllib.request").request.urlopen(worker.url + "/metrics") as response:
        assert b"driftwarden_records_total" in response.read()
    broker_port = worker.runtime()["bootstrap_servers"].rsplit(":", 1)[1]
    assert pids_with_cmdline(f"tcp://127.0.0.1:{broker_port}")

    assert worker.stop(signal.SIGTERM) == 0
    assert "driftwarden is up" in worker.output()
    assert not pids_with_cmdline(f"tcp://127.0.0.1:{broker_port}"), "the embedded broker outlived the worker"
    assert not (worker.data_dir / "runtime.json").exists()


def test_sigkill_of_the_worker_takes_the_embedded_broker_down(make_worker: Any) -> None:
    worker = make_worker().start()
    broker_port = worker.runtime()["bootstrap_servers"].rsplit(":", 1)[1]
    worker.stop(signal.SIGKILL)
    wait_until(lambda: not pids_with_cmdline(f"tcp://127.0.0.1:{broker_port}"), 10, what="the broker to exit")


def test_second_worker_on_the_same_data_dir_is_refused(make_worker: Any) -> None:
    first = make_worker("same").start()
    result = _run_cli(worker_env(first.data_dir), "up")
    line = _one_line_error(result)
    assert "already running" in line and str(first.process.pid) in line
    assert first.ready()


def test_busy_web_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        line = _one_line_error(_run_cli(worker_env(tmp_path / "d", DRIFTWARDEN_WEB_PORT=str(port)), "up"))
    assert f"port {port}" in line and "DRIFTWARDEN_WEB_PORT" in line


def test_busy_broker_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        line = _one_line_error(_run_cli(worker_env(tmp_path / "d", DRIFTWARDEN_BROKER_PORT=str(port)), "up"))
    assert f"port {port}" in line and "DRIFTWARDEN_BROKER_PORT" in line


def test_unreachable_kafka_is_one_line(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    line = _one_line_error(_run_cli(worker_env(tmp_path / "d", DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS=dead), "up"))
    assert "cannot reach Kafka" in line and dead in line


@pytest.mark.parametrize(("dsn", "expected"), [
    ("ftp://nowhere/x", "unsupported ClickHouse DSN"),
    (f"http://user:hunter2@127.0.0.1:{free_port()}/db", "cannot reach ClickHouse"),
])
def test_bad_clickhouse_dsn_is_one_line(tmp_path: Path, dsn: str, expected: str) -> None:
    line = _one_line_error(_run_cli(worker_env(tmp_path / "d", DRIFTWARDEN_CLICKHOUSE_DSN=dsn), "migrate"))
    assert expected in line
    assert "hunter2" not in line, "the password leaked into the error"


def test_config_masks_secrets(tmp_path: Path) -> None:
    env = worker_env(tmp_path / "d", DRIFTWARDEN_CLICKHOUSE_DSN="http://bob:hunter2@ch:8123/x")
    result = _run_cli(env, "config")
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout and "bob:***@ch:8123" in result.stdout


def test_sql_reads_the_data_after_the_service_stopped(make_worker: Any) -> None:
    worker = make_worker().start()
    assert worker.stop() == 0
    result = _run_cli(worker.env, "sql", "SELECT count() AS n FROM driftwarden.schema_migrations", "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["n", str(len(MIGRATIONS))]
    refused = _run_cli(worker.env, "sql", "INSERT INTO driftwarden.outcomes VALUES (1)")
    assert "only SELECT, SHOW, DESCRIBE" in _one_line_error(refused)
