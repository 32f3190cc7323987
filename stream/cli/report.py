"""`driftwarden report`: read the model's data through the running service, or straight from ClickHouse when
nothing holds the data directory, and write the self-contained HTML file."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from stream.config import Settings
from stream.errors import UserError
from stream.runtime.dashboard_data import DashboardData, TimeRange, time_range
from stream.runtime.report import render_report, report_data


class ServiceSource:
    """The running service's JSON endpoints (the embedded engine belongs to that process)."""

    def __init__(self, web_url: str, token: str | None = None) -> None:
        self.web_url = web_url.rstrip("/")
        self.token = token

    def _get(self, path: str, params: dict[str, str]) -> Any:
        url = f"{self.web_url}{path}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise UserError(f"the service answered {exc.code} for {path}: {exc.read()[:300]!r}") from None
        except urllib.error.URLError as exc:
            raise UserError(f"the running service at {self.web_url} did not answer ({exc.reason}): is it up?") \
                from None

    @staticmethod
    def _range(rng: TimeRange) -> dict[str, str]:
        return {"since": str(int(rng.since.timestamp() * 1000)), "until": str(int(rng.until.timestamp() * 1000))}

    def models(self, rng: TimeRange) -> list[dict[str, Any]]:
        return list(self._get("/api/overview", self._range(rng))["models"])

    def model(self, model_id: str, version: str | None, segment: str, rng: TimeRange) -> dict[str, Any]:
        params = {**self._range(rng), "segment": segment, **({"version": version} if version else {})}
        return dict(self._get(f"/api/models/{urllib.parse.quote(model_id, safe='')}", params))


def write_report(s: Settings, model: str, since: str | None, until: str | None, out: Path) -> tuple[Path, int]:
    """Write the report of ``model`` for ``[since, until)``; return the path and the number of pages."""
    from stream.runtime.service import read_runtime

    try:
        rng = time_range(since, until)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if rng.since >= rng.until:
        raise UserError(f"--since ({rng.since:%Y-%m-%d %H:%M:%S}) is not before --until "
                        f"({rng.until:%Y-%m-%d %H:%M:%S}): swap or fix them")
    running = read_runtime(s.data_dir)
    token = s.web_token.get_secret_value() if s.web_token is not None else None
    try:
        if running is not None and s.embedded_clickhouse:
            data = report_data(ServiceSource(running["web_url"], token), model, rng)
        else:
            from stream.storage.clickhouse import ClickHouse

            ch = ClickHouse(s.dsn, s.clickhouse_database, tls=s.clickhouse_tls)
            try:
                source = DashboardData(lambda sql, params: ch.query_rows(sql, params), ch.database)
                data = report_data(source, model, rng)
            finally:
                ch.close()
    except LookupError as exc:
        raise UserError(str(exc.args[0])) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(data), encoding="utf-8")
    return out, len(data["pages"])
