"""The HTTP endpoint: ``/healthz``, ``/readyz``, Prometheus ``/metrics`` and a read-only ``/sql``."""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from stream.runtime.dashboard import add_dashboard_routes
from stream.storage.clickhouse import ClickHouse
from stream.storage.sqlguard import ReadOnlyViolation, check_read_only

MAX_SQL_ROWS = 100_000


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


def build_web_app(
    ch: ClickHouse, registry: CollectorRegistry, ready: Callable[[], tuple[bool, str]]
) -> web.Application:
    """An aiohttp application bound to one ClickHouse facade, one metrics registry and a readiness probe."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ok, reason = ready()
        return web.json_response({"ready": ok, "reason": reason}, status=200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def sql(request: web.Request) -> web.Response:
        query = request.query.get("q") if request.method == "GET" else (await request.text())
        try:
            statement = check_read_only(query or "")
        except ReadOnlyViolation as exc:
            return web.Response(status=400, body=dumps({"error": str(exc)}), content_type="application/json")
        try:
            columns, rows = await ch.aquery_rows(_with_readonly(statement))
        except Exception as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return web.Response(status=400, body=dumps({"error": message[:500]}), content_type="application/json")
        truncated = len(rows) > MAX_SQL_ROWS
        body = {"columns": columns, "rows": rows[:MAX_SQL_ROWS], "truncated": truncated}
        return web.Response(body=dumps(body), content_type="application/json")

    app = web.Application(client_max_size=1 << 20)
    add_dashboard_routes(app, ch, dumps)
    app.add_routes([
        web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics),
        web.get("/sql", sql), web.post("/sql", sql),
    ])
    return app


def _with_readonly(statement: str) -> str:
    """Append ``SETTINGS readonly=1`` to SELECTs so the engine itself refuses writes and table functions."""
    head = statement.lstrip().split(None, 1)[0].upper()
    if head in ("SELECT", "WITH") and " SETTINGS " not in statement.upper():
        return f"{statement}\nSETTINGS readonly = 1"
    return statement


async def start_web(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
