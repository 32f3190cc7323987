"""`driftwarden up`: the embedded broker (unless Kafka is configured), topics, migrations, sink, HTTP endpoint and
the Faust worker in one process, shut down cleanly on exit, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import ipaddress
import json
import logging
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from stream.agents import Runtime
from stream.aggregate import WINDOW_METRIC_COLUMNS
from stream.clickhouse import ClickHouse
from stream.config import Settings
from stream.embedded import EmbeddedBroker, port_in_use
from stream.errors import UserError, quiet_logger
from stream.migrations import migrate
from stream.silences import SILENCES_TOPIC
from stream.sink import Sink
from stream.storage.readonly_sql import ReadOnlySQL, SQLLimits
from stream.telemetry import Telemetry
from stream.web import WebLimits, build_web_app, start_web

log = logging.getLogger(__name__)

RUNTIME_FILE = "runtime.json"


_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def _open_nofollow(path: Path, flags: int, mode: int = 0o600) -> int:
    """``os.open`` that refuses a symbolic link at ``path`` with one clear line."""
    try:
        return os.open(path, flags | _NOFOLLOW, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError(f"{path} is a symbolic link: remove it (driftwarden does not follow links there)") \
                from None
        raise


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the data directory; a second `driftwarden up` on it gets one clear line."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "driftwarden.lock"
    handle = os.fdopen(_open_nofollow(path, os.O_RDWR | os.O_CREAT), "r+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read(32).strip() or "another process"
            raise UserError(
                f"driftwarden is already running on {data_dir} (pid {holder}): stop it first, or set "
                "DRIFTWARDEN_DATA_DIR to another directory"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _read_runtime_file(data_dir: Path) -> dict[str, Any] | None:
    try:
        fd = _open_nofollow(data_dir / RUNTIME_FILE, os.O_RDONLY)
    except (OSError, UserError):
        return None
    with os.fdopen(fd, "rb") as handle:
        try:
            info = json.loads(handle.read(65536))
        except ValueError:
            return None
    return info if isinstance(info, dict) else None


def read_runtime(data_dir: Path) -> dict[str, Any] | None:
    """Where the running service listens (written by `up`), or None when it is not running.

    Trusted only when its pid is alive and that process listens on the file's web port on this machine (a
    stale or forged file does not redirect clients).
    """
    info = _read_runtime_file(data_dir)
    if info is None:
        return None
    try:
        pid = int(info["pid"])
        url = urlsplit(str(info["web_url"]))
        port = url.port
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    host = url.hostname or ""
    if url.scheme != "http" or port is None or not (is_loopback(host) or host in ("0.0.0.0", "::")):
        return None
    if not listens_on(pid, port):
        return None
    return info


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a TCP socket listening on ``port`` (Linux /proc; elsewhere: a connect)."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return port_in_use("127.0.0.1", port)
    inodes: set[str] = set()
    for table in tables:
        with contextlib.suppress(OSError):
            for line in table.read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    if not inodes:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for fd in fds:
        with contextlib.suppress(OSError):  # fds close while we look
            if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                return True
    return False


def remove_runtime(data_dir: Path) -> None:
    """Remove runtime.json if this process wrote it (never another service's)."""
    info = _read_runtime_file(data_dir)
    if info is not None and info.get("pid") == os.getpid():
        with contextlib.suppress(OSError):
            (data_dir / RUNTIME_FILE).unlink()


async def ensure_topics(bootstrap: str, settings: Settings, timeout: float = 10.0) -> None:
    """Create the topics Driftwarden uses, if absent; fail with one line when Kafka cannot be reached."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        with quiet_logger("aiokafka"):  # it logs the connection error itself; ours is the one line shown
            await asyncio.wait_for(admin.start(), timeout)
    except (TimeoutError, KafkaConnectionError, KafkaError, OSError) as exc:
        with contextlib.suppress(Exception):
            await admin.close()
        raise UserError(
            f"cannot reach Kafka at {bootstrap} ({type(exc).__name__}): check DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS, "
            "or unset it to use the embedded broker"
        ) from exc
    try:
        existing = set(await admin.list_topics())
        p = settings.topic_partitions
        wanted = [
            NewTopic(settings.topic_predictions, p, 1), NewTopic(settings.topic_ground_truth, p, 1),
            NewTopic(settings.topic_outcomes, p, 1), NewTopic(settings.topic_dead_letters, p, 1),
            NewTopic(settings.topic_alerts, p, 1),
            NewTopic(settings.topic_models, 1, 1, topic_configs={"cleanup.policy": "compact"}),
            NewTopic(SILENCES_TOPIC, 1, 1, topic_configs={"cleanup.policy": "compact"}),
        ]
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()


def sql_limits(s: Settings) -> SQLLimits:
    """The limits of read-only SQL queries, from the settings."""
    return SQLLimits(max_execution_seconds=s.sql_max_execution_seconds, max_memory_bytes=s.sql_max_memory_bytes,
                     max_rows_to_read=s.sql_max_rows_to_read, max_bytes_to_read=s.sql_max_bytes_to_read,
                     max_result_rows=s.sql_max_result_rows, max_threads=s.sql_max_threads)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name) only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(s: Settings) -> None:
    """Refuse to serve data on a non-loopback address without a token (unless told to run open)."""
    if not is_loopback(s.web_host) and s.web_token is None and not s.web_allow_open:
        raise UserError(
            f"refusing to serve /sql on {s.web_host} without a token: set DRIFTWARDEN_WEB_TOKEN (or "
            "DRIFTWARDEN_WEB_ALLOW_OPEN=true to run open on purpose, or DRIFTWARDEN_WEB_HOST=127.0.0.1)"
        )


class CheckpointingWorker(faust.Worker):
    """A Faust worker that checkpoints (and so acks) what the stages hold before it stops.

    Without it Faust's shutdown waits forever for records that only a checkpoint acks. A second signal
    during that checkpoint stops at once (the records are then read again after the restart).
    """

    def __init__(self, runtime: Runtime, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._runtime = runtime
        self._checkpointing: asyncio.Future[None] | None = None

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        if self._checkpointing is not None:
            super()._schedule_shutdown(signal)
            return
        self._checkpointing = asyncio.ensure_future(self._checkpoint_then_stop(signal), loop=self.loop)

    async def _checkpoint_then_stop(self, sig: signal.Signals) -> None:
        try:
            await asyncio.wait_for(self._runtime.final_checkpoint(), 60)
        except Exception as exc:  # stop anyway: un-acked records are read again after a restart
            log.warning("final checkpoint failed (%s); stopping without it", exc)
        super()._schedule_shutdown(sig)


class Service:
    """One worker process. `run()` blocks until the worker stops and returns an exit code."""

    def __init__(self, settings: Settings, announce: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.announce = announce
        self.broker: EmbeddedBroker | None = None
        self.ch: ClickHouse | None = None
        self.sql: ReadOnlySQL | None = None
        self.sink: Sink | None = None
        self.runtime: Runtime | None = None
        self.worker: faust.Worker | None = None
        self.extra_tasks: list[Callable[[Service], Any]] = []
        self.on_stopped: list[Callable[[Service], None]] = []
        self.bootstrap = ""

    def run(self) -> int:
        s = self.settings
        check_bind(s)
        with data_dir_lock(s.data_dir):
            if port_in_use(s.web_host, s.web_port):
                raise UserError(
                    f"port {s.web_port} on {s.web_host} is already in use: stop what holds it or set "
                    "DRIFTWARDEN_WEB_PORT to a free port"
                )
            try:
                return self._run()
            finally:
                self._cleanup()

    def _run(self) -> int:
        s = self.settings
        if s.embedded_kafka:
            self.broker = EmbeddedBroker(s.broker_host, s.broker_port, s.data_dir / "tansu.log").start()
            self.bootstrap = self.broker.bootstrap_servers
        else:
            self.bootstrap = str(s.kafka_bootstrap_servers)
        asyncio.run(ensure_topics(self.bootstrap, s))
        self.ch = ClickHouse(s.dsn, s.clickhouse_database)
        migrate(self.ch, s.outcomes_ttl_days)
        self.sql = ReadOnlySQL(s.dsn, s.clickhouse_database, sql_limits(s))
        self.sink = Sink(self.ch.insert, s.sink_flush_seconds, s.sink_queue_batches).start()
        telemetry = Telemetry()
        self.runtime = Runtime(s, self.bootstrap, self.ch, self.sink, telemetry, s.tansu)
        runtime = self.runtime
        runtime.load_registry()
        runtime.on_failure.append(self.stop)

        async def serve_http() -> None:
            assert self.ch is not None
            limits = WebLimits(
                token=s.web_token.get_secret_value() if s.web_token else None,
                read_timeout=s.web_read_timeout_seconds, max_connections=s.web_max_connections,
                max_body_bytes=s.web_max_body_bytes, sql_queue=s.sql_queue)
            web_app = build_web_app(telemetry.registry, self.ready, self.sql, limits)
            runner = await start_web(web_app, s.web_host, s.web_port)
            self._write_runtime()
            self.announce(self.banner())
            try:
                await asyncio.Event().wait()
            finally:
                await runner.cleanup()

        runtime.app.task(serve_http)

        @runtime.app.timer(1.0)
        async def watch_broker() -> None:
            if self.broker is not None and self.broker.process is not None and self.broker.process.poll() is not None:
                runtime.failure = f"the embedded broker exited with code {self.broker.process.returncode}"
                self.stop()

        for task in self.extra_tasks:
            runtime.app.task(self._bind(task))
        self.worker = CheckpointingWorker(runtime, runtime.app, loglevel=s.log_level.upper(), quiet=True,
                                          redirect_stdouts=False)
        try:
            self.worker.execute_from_commandline()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
        else:  # pragma: no cover - execute_from_commandline always raises SystemExit
            code = 0
        if runtime.failure:
            raise UserError(f"{runtime.failure}; see the log above. Restarting resumes from the last checkpoint")
        assert self.sink is not None
        self.sink.submit_nowait("window_metrics", WINDOW_METRIC_COLUMNS, runtime.final_rows())
        self.sink.wait_written(timeout=30)
        for callback in self.on_stopped:
            callback(self)
        return code

    def _bind(self, task: Callable[[Service], Any]) -> Callable[[], Any]:
        async def run() -> None:  # Faust passes the app to tasks that take an argument: hide ours
            await task(self)

        return run

    def ready(self) -> tuple[bool, str]:
        if self.runtime is None or not self.runtime.started:
            return False, "worker starting"
        if self.sink is not None and self.sink.stats.failures and self.sink.pending:
            return False, f"ClickHouse writes failing: {self.sink.stats.last_error}"
        consumer = self.runtime.ingest_consumer
        stalled = consumer.stalled_seconds()
        if stalled > self.settings.ready_stall_seconds:
            return False, f"pipeline stalled: {consumer.lag()} input records waiting, none handled for {stalled:.0f} s"
        return True, "ok"

    def stop(self) -> None:
        """Ask the worker to stop (from inside its event loop)."""
        if self.worker is not None:
            self.worker._schedule_shutdown(signal.SIGTERM)

    def banner(self) -> str:
        s = self.settings
        kafka = f"{self.bootstrap} (embedded tansu)" if self.broker else self.bootstrap
        clickhouse = f"{s.dsn} (embedded chdb)" if s.embedded_clickhouse else "ClickHouse server (DSN configured)"
        url = f"http://{s.web_host}:{s.web_port}"
        return (
            f"driftwarden is up\n  Kafka       {kafka}\n  ClickHouse  {clickhouse}\n"
            f"  HTTP        {url}/healthz  {url}/readyz  {url}/metrics  {url}/sql\n"
            f"  produce to  {s.topic_predictions}, {s.topic_ground_truth}; alerts on {s.topic_alerts}\n"
            f"  query       driftwarden sql \"SELECT * FROM {s.clickhouse_database}.window_metrics_latest LIMIT 10\""
        )

    def _write_runtime(self) -> None:
        s = self.settings
        info = {"pid": os.getpid(), "bootstrap_servers": self.bootstrap, "embedded_broker": self.broker is not None,
                "web_url": f"http://{s.web_host}:{s.web_port}", "database": s.clickhouse_database}
        temporary = s.data_dir / f".{RUNTIME_FILE}.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        with os.fdopen(_open_nofollow(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "w") as handle:
            handle.write(json.dumps(info))
        os.replace(temporary, s.data_dir / RUNTIME_FILE)  # replaces a link itself, never its target

    def _cleanup(self) -> None:
        remove_runtime(self.settings.data_dir)
        if self.sink is not None:
            self.sink.stop()
        if self.sql is not None:
            self.sql.close()
        if self.ch is not None:
            self.ch.close()
        if self.broker is not None:
            self.broker.stop()
