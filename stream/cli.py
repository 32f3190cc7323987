"""The `driftwarden` command line."""

from __future__ import annotations

import csv
import io
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from stream.config import Settings, mask_dsn
from stream.errors import UserError

app = typer.Typer(
    help="Driftwarden: real-time ML model monitoring on Kafka and ClickHouse.\n\n"
    "Configuration comes from DRIFTWARDEN_* environment variables; `driftwarden config` shows it.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
schemas_app = typer.Typer(help="JSON Schemas of every event on every topic.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")


def _register_subcommands() -> None:
    from stream.cli_alerts import alerts_app
    from stream.cli_bench import bench_command
    from stream.cli_models import models_app
    from stream.cli_produce import produce_app

    app.add_typer(produce_app, name="produce")
    app.add_typer(models_app, name="models")
    app.add_typer(alerts_app, name="alerts")
    app.command("bench")(bench_command)

console = Console()
err = Console(stderr=True)


def settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "DRIFTWARDEN_" + "_".join(str(p) for p in first["loc"]).upper()
        raise UserError(f"bad configuration: {name}: {first['msg']}") from None


@app.command()
def up(
    demo: Annotated[bool, typer.Option("--demo", help="also run a synthetic producer for two demo models")] = False,
    duration: Annotated[float, typer.Option(help="demo: seconds to produce before stopping", min=5)] = 120.0,
    rate: Annotated[float, typer.Option(help="demo: predictions per second", min=1)] = 100.0,
    drift_after: Annotated[float | None, typer.Option(help="demo: seconds until drift (default: half)")] = None,
    window_seconds: Annotated[int, typer.Option(help="demo: window size of the demo models", min=1)] = 60,
) -> None:
    """Run the monitor: embedded broker (unless Kafka is configured), migrations, worker and HTTP endpoint.

    Stops cleanly on Ctrl-C or SIGTERM. With --demo it produces synthetic traffic with an injected data and
    concept drift, then prints what it wrote and stops.
    """
    from stream.service import Service

    service = Service(settings(), announce=console.print)
    if demo:
        from stream.demo import Demo, DemoOptions, summary

        options = DemoOptions(duration=duration, rate=rate, drift_after=drift_after, window_seconds=window_seconds)
        runner = Demo(options, say=console.print)
        service.extra_tasks.append(runner)
        service.on_stopped.append(
            lambda svc: console.print(summary(svc, runner.report), markup=False, highlight=False))
    raise typer.Exit(service.run())


@app.command("config")
def show_config() -> None:
    """Print the effective configuration (secrets masked)."""
    console.print_json(json.dumps(settings().masked()))


@app.command()
def migrate() -> None:
    """Create the ClickHouse database, tables and views (idempotent)."""
    from stream.clickhouse import ClickHouse
    from stream.migrations import current_version
    from stream.migrations import migrate as apply

    s = settings()
    ch = ClickHouse(s.dsn, s.clickhouse_database)
    try:
        applied = apply(ch, s.outcomes_ttl_days)
        version = current_version(ch)
    finally:
        ch.close()
    console.print(f"schema version {version}" + (f" (applied {applied})" if applied else " (up to date)"))


def _query(statement: str) -> tuple[list[str], list[list[Any]]]:
    """Run a read-only query: through the running service, or directly when nothing holds the data."""
    from stream.service import read_runtime
    from stream.sqlguard import ReadOnlyViolation

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
            err.print(f"(only the first {len(body['rows'])} rows: DRIFTWARDEN_SQL_MAX_RESULT_ROWS)")
        return body["columns"], body["rows"]
    from stream.service import sql_limits
    from stream.storage.readonly_sql import ReadOnlySQL

    try:
        runner = ReadOnlySQL(s.dsn, s.clickhouse_database, sql_limits(s))
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
        err.print(f"(only the first {len(result.rows)} rows: DRIFTWARDEN_SQL_MAX_RESULT_ROWS)")
    return result.columns, [list(r) for r in result.rows]


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:500]


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="one SELECT, SHOW or DESCRIBE statement")],
    output: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
) -> None:
    """Query ClickHouse read-only: via the running service in embedded mode, or the server directly."""
    if output not in ("table", "csv", "json"):
        raise UserError(f"unknown format {output!r}: use table, csv or json")
    columns, rows = _query(query)
    if output == "json":
        sys.stdout.write(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str) + "\n")
    elif output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows(rows)
        sys.stdout.write(buffer.getvalue())
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        console.print(table)
        console.print(f"{len(rows)} rows")


@schemas_app.command("export")
def schemas_export(
    directory: Annotated[Path, typer.Option("--dir", help="where to write")] = Path("schemas"),
    check: Annotated[bool, typer.Option("--check", help="only report stale files (exit 1 if any)")] = False,
) -> None:
    """Write the JSON Schema of every event type, generated from the pydantic models."""
    from stream.schemas import export, stale

    if check:
        bad = stale(directory)
        for name in bad:
            err.print(f"stale: {directory / name}")
        raise typer.Exit(1 if bad else 0)
    for path in export(directory):
        console.print(f"wrote {path}")


_register_subcommands()


def main() -> None:
    """Entry point: user errors are one line on stderr and exit code 2, without a traceback."""
    try:
        app()
    except UserError as exc:
        err.print(f"error: {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
