"""What the CLI commands share: the settings (with a one-line error) and the read-only query path."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

from pydantic import ValidationError

from stream.config import Settings, mask_dsn
from stream.errors import UserError


def settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "DRIFTWARDEN_" + "_".join(str(p) for p in first["loc"]).upper()
        raise UserError(f"bad configuration: {name}: {first['msg']}") from None


def run_query(statement: str) -> tuple[list[str], list[list[Any]]]:
    """Run a read-only query in the Driftwarden database: through the running service, or directly when
    nothing holds the data. Values are JSON values either way (times as ISO 8601 UTC text, NaN as None)."""
    from stream.runtime.service import read_runtime

    s = settings()
    running = read_runtime(s.data_dir)
    if running is not None and s.embedded_clickhouse:
        url = running["web_url"] + "/sql"
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if s.web_token is not None:
            headers["Authorization"] = f"Bearer {s.web_token.get_secret_value()}"
        request = urllib.request.Request(url, data=statement.encode(), method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=s.sql_max_execution_seconds + 60) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read() or b"{}").get("error", str(exc))
            except ValueError:
                message = str(exc)
            if exc.code == 401:
                message += " (set DRIFTWARDEN_WEB_TOKEN to the service's token)"
            raise UserError(message) from None
        except urllib.error.URLError as exc:
            raise UserError(f"the running service at {url} did not answer ({exc.reason}): is it still up?") from None
        if body.get("truncated"):
            _note_truncated(len(body["rows"]))
        return body["columns"], body["rows"]
    return _run_directly(s, statement)


def _run_directly(s: Settings, statement: str) -> tuple[list[str], list[list[Any]]]:
    from stream.cli.output import json_rows
    from stream.runtime.service import sql_limits
    from stream.storage.readonly_sql import ReadOnlySQL
    from stream.storage.sqlguard import ReadOnlyViolation

    try:
        runner = ReadOnlySQL(s.dsn, s.clickhouse_database, sql_limits(s), tls=s.clickhouse_tls)
    except Exception as exc:
        raise UserError(f"cannot open ClickHouse read-only at {mask_dsn(s.dsn)}: {_first(exc)}") from None
    try:
        result = runner.run(statement)
    except ReadOnlyViolation as exc:
        raise UserError(str(exc)) from None
    except Exception as exc:
        raise UserError(_first(exc)) from None
    finally:
        runner.close()
    if result.truncated:
        _note_truncated(len(result.rows))
    return result.columns, json_rows(result.rows)  # the values the service's /sql would have sent


def _note_truncated(rows: int) -> None:
    sys.stderr.write(f"(only the first {rows} rows: DRIFTWARDEN_SQL_MAX_RESULT_ROWS)\n")


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:500]


def kafka_target(s: Settings) -> tuple[str, dict[str, Any]]:
    """Where the CLI reaches Kafka: the running service's broker or the configured one, and the client security
    options (`stream.kafka.security.client_options`; none for the embedded broker)."""
    from stream.client import resolve_bootstrap
    from stream.kafka.security import client_options

    bootstrap, embedded = resolve_bootstrap(s)
    return bootstrap, client_options(s, embedded)
