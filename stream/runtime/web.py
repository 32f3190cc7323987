"""The HTTP endpoint: ``/healthz``, ``/readyz``, Prometheus ``/metrics`` (open, no data), ``/sql`` and
``/alerts/active`` (the alert episodes firing now, as JSON) (data: bearer token when ``DRIFTWARDEN_WEB_TOKEN``
is set).

Hardening: a request must arrive whole within ``read_timeout`` (slow clients are disconnected), at most
``max_connections`` at once, bodies up to ``max_body_bytes``, undecodable bodies get 400, and each kind of
client error is logged as one line at most once a minute (no tracebacks).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import decimal
import hmac
import ipaddress
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from stream.alerts.history import active_query
from stream.runtime.dashboard import add_dashboard_routes
from stream.storage.clickhouse import ClickHouse
from stream.storage.readonly_sql import ReadOnlySQL
from stream.storage.sqlguard import ReadOnlyViolation

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/", "/favicon.ico", "/dashboard"})
"""Paths without data (probes, metrics, the dashboard's page); ``/static/`` too. Everything else needs the token."""


@dataclass(frozen=True)
class WebLimits:
    """Limits of the HTTP server."""

    token: str | None = None
    read_timeout: float = 10.0
    max_connections: int = 256
    max_body_bytes: int = 1 << 20
    sql_queue: int = 8


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError


def dumps(value: Any) -> bytes:
    """JSON of query results: NaN and infinity as null, times in ISO 8601 UTC (``2024-05-01T12:00:00Z``)."""
    return orjson.dumps(value, default=_json_default,
                        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)


class ClientErrorLog:
    """One log line per kind of client error, at most once per ``interval`` seconds (with a count)."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, kind: str, detail: str) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -1e18) < self.interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        more = self._suppressed.pop(kind, 0)
        self._last[kind] = now
        log.warning("HTTP client error (%s): %s%s", kind, detail[:200],
                    f" (and {more} more since the last line)" if more else "")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=dumps({"error": message}), content_type="application/json",
                        headers=headers)


def build_web_app(
    ch: ClickHouse, registry: CollectorRegistry, ready: Callable[[], tuple[bool, str]], sql: ReadOnlySQL | None,
    limits: WebLimits | None = None, client_errors: ClientErrorLog | None = None,
) -> web.Application:
    """An aiohttp application: probes and metrics, the dashboard (on ``ch``), and ``/sql`` on a read-only
    runner."""
    lim = limits or WebLimits()
    note = client_errors or ClientErrorLog()
    busy: set[Any] = set()  # connections (request handlers) with a request in progress
    deadlines: dict[Any, float] = {}  # connection -> when it must have sent a whole request
    gate = _SQLGate(lim.sql_queue)

    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        busy.add(request.protocol)
        try:
            if lim.token is not None and not _open(request.path) and not _authorized(request, lim.token):
                note("unauthorized", f"{request.method} {request.path} without a valid bearer token")
                return _error(401, "a bearer token is required: send 'Authorization: Bearer <DRIFTWARDEN_WEB_TOKEN>'",
                              {"WWW-Authenticate": "Bearer"})
            return await handler(request)
        except web.HTTPException as exc:
            note(f"http_{exc.status}", f"{request.method} {request.path}: {exc.reason}")
            return _error(exc.status, exc.reason)
        except Exception as exc:  # our bug, not the client's: one line, no traceback, no detail to the client
            note("internal", f"{request.method} {request.path}: {type(exc).__name__}: {exc}")
            return _error(500, "internal error; see the service log")
        finally:
            busy.discard(request.protocol)
            deadlines[request.protocol] = time.monotonic() + lim.read_timeout

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ok, reason = ready()
        return web.json_response({"ready": ok, "reason": reason}, status=200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def run_sql(request: web.Request) -> web.Response:
        if request.method == "GET":
            query = request.query.get("q", "")
        else:
            try:
                raw = await asyncio.wait_for(request.read(), lim.read_timeout)
            except TimeoutError:
                note("slow_body", f"body not received within {lim.read_timeout:g} s")
                return _error(408, f"the request body did not arrive within {lim.read_timeout:g} s")
            try:
                query = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                note("bad_body", f"body is not UTF-8 ({exc.reason} at byte {exc.start})")
                return _error(400, f"the body is not UTF-8 text (byte {exc.start}): send the SQL as UTF-8")
        if sql is None:
            return _error(503, "the SQL endpoint is not available yet")
        cancelled = threading.Event()
        try:
            async with gate:
                result = await asyncio.to_thread(sql.run, query, None, cancelled.is_set)
        except _Busy:
            note("sql_busy", "too many SQL queries waiting")
            return _error(503, "too many SQL queries at once: retry in a moment", {"Retry-After": "1"})
        except asyncio.CancelledError:  # the client went away: stop reading rows
            cancelled.set()
            raise
        except ReadOnlyViolation as exc:
            note("sql_refused", str(exc))
            return _error(400, str(exc))
        except Exception as exc:  # the engine's answer (limits, syntax, unknown table): the client's to read
            text = str(exc).strip()
            message = text.splitlines()[0] if text else type(exc).__name__
            note("sql_error", message)
            return _error(400, message[:500])
        body = {"columns": result.columns, "rows": result.rows, "truncated": result.truncated}
        return web.Response(body=dumps(body), content_type="application/json")

    async def alerts_active(request: web.Request) -> web.Response:
        try:
            columns, rows = await ch.aquery_rows(active_query(ch.database, request.query.get("model")))
        except Exception as exc:
            text = str(exc).strip()
            note("alerts_active", text.splitlines()[0] if text else type(exc).__name__)
            return _error(500, "the alerts table could not be read; see the service log")
        alerts = [dict(zip(columns, row, strict=True)) for row in rows]
        return web.Response(body=dumps({"firing": len(alerts), "alerts": alerts}), content_type="application/json")

    app = web.Application(client_max_size=lim.max_body_bytes, middlewares=[guard])
    app["busy"] = busy
    app["deadlines"] = deadlines
    app["limits"] = lim
    app["client_errors"] = note
    add_dashboard_routes(app, ch, dumps)
    app.add_routes([
        web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics),
        web.get("/sql", run_sql), web.post("/sql", run_sql), web.get("/alerts/active", alerts_active),
    ])
    return app


def _open(path: str) -> bool:
    return path in OPEN_PATHS or (path.startswith("/static/") and "/" not in path[len("/static/"):])


def _authorized(request: web.Request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class _Busy(Exception):
    """The SQL queue is full."""


class _SQLGate:
    """One SQL query at a time; up to ``queue`` more wait; beyond that, refused."""

    def __init__(self, queue: int) -> None:
        self.queue = queue
        self.lock = asyncio.Lock()
        self.waiting = 0

    async def __aenter__(self) -> None:
        if self.waiting >= self.queue + 1:
            raise _Busy
        self.waiting += 1
        try:
            await self.lock.acquire()
        finally:
            self.waiting -= 1

    async def __aexit__(self, *_: object) -> None:
        self.lock.release()


class _GuardedSite(web.TCPSite):
    """A TCP site that refuses connections beyond a limit and drops those that do not send a whole request
    within the read timeout."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, app: web.Application) -> None:
        super().__init__(runner, host, port)
        self._app = app
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        lim: WebLimits = self._app["limits"]
        note: ClientErrorLog = self._app["client_errors"]
        deadlines: dict[Any, float] = self._app["deadlines"]

        def protocol() -> Any:
            if len(server.connections) >= lim.max_connections:
                note("too_many_connections", f"more than {lim.max_connections} connections: refused")
                return _Refuse()
            handler = server()
            deadlines[handler] = time.monotonic() + lim.read_timeout
            return handler

        self._server = await loop.create_server(protocol, self._host, self._port, backlog=self._backlog,
                                                reuse_address=self._reuse_address)
        self._sweeper = asyncio.create_task(self._sweep(server, lim, note))

    async def _sweep(self, server: Any, lim: WebLimits, note: ClientErrorLog) -> None:
        busy: set[Any] = self._app["busy"]
        deadlines: dict[Any, float] = self._app["deadlines"]
        while True:
            await asyncio.sleep(min(1.0, lim.read_timeout / 4))
            now = time.monotonic()
            open_now = set(server.connections)
            for gone in [h for h in deadlines if h not in open_now]:
                del deadlines[gone]
            for handler in open_now:
                if handler in busy or now < deadlines.setdefault(handler, now + lim.read_timeout):
                    continue
                note("read_timeout", f"no whole request within {lim.read_timeout:g} s: disconnected")
                with contextlib.suppress(Exception):
                    handler.force_close()
                    if handler.transport is not None:
                        handler.transport.close()

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await super().stop()


class _Refuse(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class _OneLine(logging.Filter):
    """aiohttp's own error lines (bad HTTP from clients) without tracebacks, rate limited."""

    def __init__(self, note: ClientErrorLog) -> None:
        super().__init__()
        self.note = note

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        self.note("bad_http", f"{record.getMessage()}" + (f": {type(exc).__name__}: {exc}" if exc else ""))
        return False


async def start_web(app: web.Application, host: str, port: int) -> web.AppRunner:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _OneLine) for f in server_log.filters):
        server_log.addFilter(_OneLine(app["client_errors"]))
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = _GuardedSite(runner, host, port, app)
    await site.start()
    return runner


__all__ = ["ClientErrorLog", "WebLimits", "build_web_app", "dumps", "start_web"]
