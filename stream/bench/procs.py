"""Child processes of `driftwarden bench`: start them, read their CPU time and peak memory, stop them by pid."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from stream.kafka.embedded import _die_with_parent

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and all its threads (``/proc/<pid>/stat``)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of proc(5)


def peak_rss_bytes(pid: int) -> int:
    """Peak resident set size (``VmHWM``) of process ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmHWM in /proc/{pid}/status")


@dataclass
class Child:
    """One child process; stdout JSON lines (if piped) are kept in ``lines``."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def last(self) -> dict[str, Any]:
        return self.lines[-1] if self.lines else {}

    def tail(self, n: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        return ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit code."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                self.process.wait()
        return self.process.returncode


def _read_json_lines(stream: IO[bytes], into: list[dict[str, Any]]) -> None:
    for raw in stream:
        with contextlib.suppress(ValueError):
            value = json.loads(raw)
            if isinstance(value, dict):
                into.append(value)


def start_child(name: str, argv: list[str], env: dict[str, str], log: Path, json_stdout: bool = False) -> Child:
    """Start ``argv``; stderr (and stdout, unless it carries JSON lines) go to ``log``. The child gets SIGTERM
    when this process dies, even by SIGKILL."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if json_stdout else out,
            stderr=out if json_stdout else subprocess.STDOUT, preexec_fn=_die_with_parent,
        )
    child = Child(name, process, log)
    if json_stdout:
        assert process.stdout is not None
        threading.Thread(target=_read_json_lines, args=(process.stdout, child.lines), daemon=True,
                         name=f"bench-{name}-stdout").start()
    return child
