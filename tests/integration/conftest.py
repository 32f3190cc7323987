"""Fixtures that start the real tansu broker and real `driftwarden up` processes, and stop them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stream.kafka.embedded import EmbeddedBroker
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    """A fresh in-memory tansu broker on a free port of 127.0.0.1."""
    with EmbeddedBroker() as running:
        yield running


def http_json(url: str, data: bytes | None = None, timeout: float = 30.0) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@dataclass
class Worker:
    """A `driftwarden up` child process."""

    data_dir: Path
    env: dict[str, str]
    args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['DRIFTWARDEN_WEB_PORT']}"

    def start(self, wait_ready: bool = True) -> Worker:
        self.log = self.data_dir.parent / f"{self.data_dir.name}-{len(list(self.data_dir.parent.glob('*.log')))}.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stream.cli", "up", *self.args], env=self.env, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        if wait_ready:
            self.wait_ready()
        return self

    def ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.output()}")
        try:
            return http_json(self.url + "/readyz", timeout=2)[0] == 200
        except (OSError, ValueError):
            return False

    def wait_ready(self, timeout: float = 90) -> None:
        wait_until(self.ready, timeout, 0.2, "the worker to be ready")

    def sql(self, query: str) -> list[dict[str, Any]]:
        status, body = http_json(self.url + "/sql", query.encode())
        assert status == 200, body
        return [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def runtime(self) -> dict[str, Any]:
        return dict(json.loads((self.data_dir / "runtime.json").read_text()))

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"worker did not stop within {timeout} s after {sig.name}") from None
        return self.process.returncode


def worker_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWARDEN_")}
    env.update({
        "DRIFTWARDEN_DATA_DIR": str(data_dir), "DRIFTWARDEN_WEB_PORT": str(free_port()),
        "DRIFTWARDEN_SINK_FLUSH_SECONDS": "0.5", "DRIFTWARDEN_IDLE_CLOSE_SECONDS": "2",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(overrides)
    return env


@pytest.fixture
def make_worker(tmp_path: Path) -> Iterator[Any]:
    """Factory of worker processes; every one still running at the end is stopped (then killed)."""
    made: list[Worker] = []

    def make(name: str = "w", args: list[str] | None = None, **env: str) -> Worker:
        data_dir = tmp_path / name
        worker = Worker(data_dir, worker_env(data_dir, **env), args or [])
        made.append(worker)
        return worker

    yield make
    for worker in made:
        if worker.process is not None and worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()
