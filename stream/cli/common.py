"""What the CLI commands share: the settings (with a one-line error) and the read-only query path."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from pydantic import ValidationError

from stream.config import Settings
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
    from stream.storage.sqlguard import ReadOnlyViolation, check_read_only

    s = settings()
    try:
        check_read_only(statement)
    except ReadOnlyViolation as exc:
        raise UserError(str(exc)) from None
    running = read_runtime(s.data_dir)
    if running is not None and s.embedded_clickhouse:
        url = running["web_url"] + "/sql"
        request = urllib.request.Request(url, data=statement.encode(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise UserError(json.loads(exc.read() or b"{}").get("error", str(exc))) from None
        except urllib.error.URLError as exc:
            raise UserError(f"the running service at {url} did not answer ({exc.reason}): is it still up?") from None
        return body["columns"], body["rows"]  # JSON values already (`stream.runtime.web.dumps`)
    from stream.cli.output import json_rows
    from stream.runtime.web import _with_readonly
    from stream.storage.clickhouse import ClickHouse

    ch = ClickHouse(s.dsn, s.clickhouse_database, tls=s.clickhouse_tls)
    try:
        ch.use_database()
        columns, rows = ch.query_named(_with_readonly(check_read_only(statement)))
    except UserError:
        raise
    except Exception as exc:
        raise UserError(str(exc).strip().splitlines()[0][:500]) from None
    finally:
        ch.close()
    return columns, json_rows(rows)  # the values the service's /sql would have sent


def kafka_target(s: Settings) -> tuple[str, dict[str, Any]]:
    """Where the CLI reaches Kafka: the running service's broker or the configured one, and the client security
    options (`stream.kafka.security.client_options`; none for the embedded broker)."""
    from stream.client import resolve_bootstrap
    from stream.kafka.security import client_options

    bootstrap, embedded = resolve_bootstrap(s)
    return bootstrap, client_options(s, embedded)
