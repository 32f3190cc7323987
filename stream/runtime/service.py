"""`driftwarden up`: the embedded broker (unless Kafka is configured), topics, migrations, sink, HTTP endpoint and
the Faust worker in one process, shut down cleanly on exit, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

import faust

from stream.config import Settings, safe_url
from stream.errors import UserError
from stream.kafka.embedded import EmbeddedBroker, port_in_use
from stream.kafka.epoch import broker_epoch
from stream.kafka.security import client_options, describe
from stream.kafka.topics import ensure_topics, epoch_topic
from stream.pipeline.aggregate import WINDOW_METRIC_COLUMNS
from stream.runtime.agents import Runtime, fatal_exit
from stream.runtime.gc_policy import tune_gc
from stream.runtime.local_files import data_dir_lock, is_loopback, read_runtime, remove_runtime, write_runtime
from stream.runtime.telemetry import Telemetry
from stream.runtime.web import WebLimits, build_web_app, start_web
from stream.storage.clickhouse import ClickHouse
from stream.storage.migrations import migrate
from stream.storage.readonly_sql import ReadOnlySQL, SQLLimits
from stream.storage.sink import Sink

log = logging.getLogger(__name__)

__all__ = ["Service", "check_bind", "data_dir_lock", "read_runtime", "sql_limits"]


def sql_limits(s: Settings) -> SQLLimits:
    """The limits of read-only SQL queries, from the settings."""
    return SQLLimits(max_execution_seconds=s.sql_max_execution_seconds, max_memory_bytes=s.sql_max_memory_bytes,
                     max_rows_to_read=s.sql_max_rows_to_read, max_bytes_to_read=s.sql_max_bytes_to_read,
                     max_result_rows=s.sql_max_result_rows, max_threads=s.sql_max_threads)


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
        if self.spinner is not None and not self.spinner.file.isatty():
            self.spinner = None  # it writes cursor show/hide codes even into files and pipes
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
        asyncio.run(ensure_topics(self.bootstrap, s, security=client_options(s, s.embedded_kafka)))
        self.ch = ClickHouse(s.dsn, s.clickhouse_database, tls=s.clickhouse_tls)
        migrate(self.ch, s.outcomes_ttl_days)
        if s.webhook_url and not s.webhook_secret:
            log.warning("the webhook %s gets unsigned requests: set DRIFTWARDEN_WEBHOOK_SECRET so that its "
                        "receiver can check they come from Driftwarden", safe_url(s.webhook_url))
        self.sql = ReadOnlySQL(s.dsn, s.clickhouse_database, sql_limits(s), tls=s.clickhouse_tls)
        telemetry = Telemetry()

        def written(table: str, seconds: float) -> None:
            if table in ("outcomes", "dead_letters"):  # rows straight from an ingest batch
                telemetry.ingest_latency.labels(table).observe(seconds)

        self.sink = Sink(self.ch.insert, s.sink_flush_seconds, s.sink_queue_batches, on_written=written).start()
        self.runtime = Runtime(s, self.bootstrap, self.ch, self.sink, telemetry, s.tansu)
        runtime = self.runtime
        runtime.load_registry()
        tune_gc()  # after startup: its heap is frozen, and collections run far less often (stream.runtime.gc_policy)
        runtime.epoch = asyncio.run(broker_epoch(self.bootstrap, epoch_topic(s.app_id),
                                                 security=client_options(s, s.embedded_kafka)))
        runtime.on_failure.append(self.stop)

        async def serve_http() -> None:
            assert self.ch is not None
            limits = WebLimits(
                token=s.web_token.get_secret_value() if s.web_token else None,
                read_timeout=s.web_read_timeout_seconds, max_connections=s.web_max_connections,
                max_body_bytes=s.web_max_body_bytes, sql_queue=s.sql_queue)
            web_app = build_web_app(self.ch, telemetry.registry, self.ready, self.sql, limits)
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
        if runtime.failure:  # exit at once: Faust's non-daemon thread could hold the interpreter's exit
            self._cleanup()
            fatal_exit(runtime.failure)
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
            waiting = sum(consumer.lag().values())
            return False, f"pipeline stalled: {waiting} input records waiting, none handled for {stalled:.0f} s"
        too_late = self.runtime.too_late_by_model()
        if any(too_late.values()):  # ready, but say that data was dropped
            worst = sorted(too_late.items(), key=lambda kv: -kv[1])[:3]
            return True, f"ok; items dropped as too late: {', '.join(f'{m} {n}' for m, n in worst)}"
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
        security = "  ".join(f"{k}={v}" for k, v in describe(s, self.broker is not None).items())
        return (
            f"driftwarden is up\n  Kafka       {kafka}\n  security    {security}\n  ClickHouse  {clickhouse}\n"
            f"  HTTP        {url}/healthz  {url}/readyz  {url}/metrics  {url}/sql\n"
            f"  dashboard   {url}/dashboard\n"
            f"  produce to  {s.topic_predictions}, {s.topic_ground_truth}; alerts on {s.topic_alerts}\n"
            f"  query       driftwarden sql \"SELECT * FROM {s.clickhouse_database}.window_metrics_latest LIMIT 10\""
        )

    def _write_runtime(self) -> None:
        s = self.settings
        info = {"pid": os.getpid(), "bootstrap_servers": self.bootstrap, "embedded_broker": self.broker is not None,
                "web_url": f"http://{s.web_host}:{s.web_port}", "database": s.clickhouse_database}
        write_runtime(s.data_dir, info)

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
