"""`driftwarden report`: one self-contained HTML file with the dashboard's charts and tables for one model.

The chart library, the page's script and style, and the data of every version and segment are inlined, so
the file opens with the network off (to attach to an incident or a model review). The data comes from the
same read model as the live dashboard (:class:`~stream.runtime.dashboard_data.DashboardData`), through the
running service's JSON endpoints or straight from ClickHouse.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any, Protocol

import orjson

from stream.runtime.dashboard import static_text
from stream.runtime.dashboard_data import TimeRange

MAX_PAGES = 60  # (version, segment) pages inlined; beyond it the report keeps the most recent versions


class ReportSource(Protocol):
    def models(self, rng: TimeRange) -> list[dict[str, Any]]: ...

    def model(self, model_id: str, version: str | None, segment: str, rng: TimeRange) -> dict[str, Any]: ...


def report_data(source: ReportSource, model_id: str, rng: TimeRange) -> dict[str, Any]:
    """Everything the report shows: the model's overview entry and one page per version and segment."""
    overview = next((m for m in source.models(rng) if m["model_id"] == model_id), None)
    first = source.model(model_id, None, "", rng)
    if overview is None and not first["versions"]:
        raise LookupError(f"no model {model_id!r} has data: see `driftwarden models list` for the names")
    pages: dict[str, Any] = {}
    for version in first["versions"] or [first["version"]]:
        for segment in first["segments"]:
            if len(pages) >= MAX_PAGES:
                break
            key = f"{version}\x1f{segment}"
            pages[key] = first if (version, segment) == (first["version"], "") else source.model(
                model_id, version, segment, rng)
    now = dt.datetime.now(dt.UTC)
    return {
        "model_id": model_id, "overview": overview, "pages": pages, "default_version": first["version"],
        "default_key": f"{first['version']}\x1f", "since_ms": int(rng.since.timestamp() * 1000),
        "until_ms": int(min(rng.until, now).timestamp() * 1000), "generated_at_ms": int(now.timestamp() * 1000),
    }


def _inline_json(value: Any) -> str:
    """JSON safe inside a <script> element (no ``</script>`` or ``<!--`` can close or confuse it)."""
    text = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _inline_script(source: str) -> str:
    return source.replace("</script", "<\\/script")


def render_report(data: dict[str, Any]) -> str:
    """The HTML file: styles, uPlot, the data and the dashboard script, all inline."""
    title = f"Driftwarden report: {data['model_id']}"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<!-- uPlot (MIT License, Leon Sorokin), inlined: see its LICENSE at the end of this file -->
<style>{static_text("uPlot.min.css")}</style>
<style>{static_text("dashboard.css")}</style>
</head>
<body>
<header><span class="brand">Driftwarden report</span><span id="crumb"></span>
  <span class="controls">range <select id="range"></select><span id="status"></span></span></header>
<main id="app"></main>
<script>window.DW_REPORT = {_inline_json(data)};</script>
<script>{_inline_script(static_text("uPlot.iife.min.js"))}</script>
<script>{_inline_script(static_text("dashboard.js"))}</script>
<!-- uPlot LICENSE:
{html.escape(static_text("uPlot.LICENSE")).replace("--", "- -")}
-->
</body>
</html>
"""
