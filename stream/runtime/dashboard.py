"""The built-in dashboard: HTML and JS pages, the vendored chart library, and the JSON endpoints they poll.

``/dashboard`` lists every model; ``/dashboard?model=ID`` is the page of one model. The pages read
``/api/overview`` and ``/api/models/{model_id}`` (query parameters ``version``, ``segment``, ``since``,
``until``) every few seconds. Charts are uPlot (MIT), shipped in ``stream/runtime/static`` (no CDN).
"""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any

from aiohttp import web

from stream.runtime.dashboard_data import DashboardData, time_range
from stream.storage.clickhouse import ClickHouse

STATIC_FILES = {  # name -> content type; nothing else is served from the package
    "dashboard.html": "text/html", "dashboard.js": "application/javascript", "dashboard.css": "text/css",
    "uPlot.iife.min.js": "application/javascript", "uPlot.min.css": "text/css", "uPlot.LICENSE": "text/plain",
}


def static_text(name: str) -> str:
    """A file shipped in ``stream/runtime/static`` (also read by the HTML report, to inline it)."""
    return (resources.files("stream.runtime") / "static" / name).read_text(encoding="utf-8")


def add_dashboard_routes(app: web.Application, ch: ClickHouse,
                         dumps: Any) -> None:
    """Register the dashboard's pages and JSON endpoints on ``app`` (``dumps`` encodes JSON bodies)."""
    data = DashboardData(lambda sql, params: ch.query_rows(sql, params), ch.database)

    def json_response(body: Any, status: int = 200) -> web.Response:
        return web.Response(status=status, body=dumps(body), content_type="application/json",
                            headers={"Cache-Control": "no-store"})

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=static_text("dashboard.html"), content_type="text/html")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return web.Response(text=static_text(name), content_type=STATIC_FILES[name],
                            headers={"Cache-Control": "max-age=300"})

    async def overview(request: web.Request) -> web.Response:
        try:
            rng = time_range(request.query.get("since"), request.query.get("until"))
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
        models = await asyncio.to_thread(data.models, rng)
        return json_response({"models": models})

    async def model(request: web.Request) -> web.Response:
        q = request.query
        try:
            rng = time_range(q.get("since"), q.get("until"))
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
        body = await asyncio.to_thread(data.model, request.match_info["model_id"], q.get("version"),
                                       q.get("segment", ""), rng)
        return json_response(body)

    async def root(_: web.Request) -> web.Response:
        raise web.HTTPFound("/dashboard")

    async def favicon(_: web.Request) -> web.Response:
        return web.Response(status=204)

    app.add_routes([
        web.get("/", root), web.get("/favicon.ico", favicon), web.get("/dashboard", page),
        web.get("/static/{name}", static),
        web.get("/api/overview", overview), web.get("/api/models/{model_id}", model),
    ])
