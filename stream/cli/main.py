"""The `driftwarden` command line."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from stream.cli.common import run_query, settings
from stream.errors import UserError

app = typer.Typer(
    help="Driftwarden: real-time ML model monitoring on Kafka and ClickHouse.\n\n"
    "Configuration comes from DRIFTWARDEN_* environment variables; `driftwarden config` shows it.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
schemas_app = typer.Typer(help="JSON Schemas of every event on every topic.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")


def _register_subcommands() -> None:
    from stream.cli.alerts import alerts_app
    from stream.cli.bench import bench_command
    from stream.cli.models import models_app
    from stream.cli.produce import produce_app

    app.add_typer(produce_app, name="produce")
    app.add_typer(models_app, name="models")
    app.add_typer(alerts_app, name="alerts")
    app.command("bench")(bench_command)

console = Console()
err = Console(stderr=True)




@app.command()
def up(
    demo: Annotated[bool, typer.Option("--demo", help="also run a synthetic producer for two demo models")] = False,
    duration: Annotated[float, typer.Option(help="demo: seconds to produce before stopping", min=5)] = 120.0,
    rate: Annotated[float, typer.Option(help="demo: predictions per second", min=1)] = 100.0,
    drift_after: Annotated[float | None, typer.Option(help="demo: seconds until drift (default: half)")] = None,
    window_seconds: Annotated[int, typer.Option(help="demo: window size of the demo models", min=1)] = 60,
    serve: Annotated[bool, typer.Option("--serve", help="demo: keep serving the dashboard after the traffic, "
                                                        "until Ctrl-C")] = False,
) -> None:
    """Run the monitor: embedded broker (unless Kafka is configured), migrations, worker and HTTP endpoint.

    Stops cleanly on Ctrl-C or SIGTERM. With --demo it produces synthetic traffic with an injected data and
    concept drift, then prints what it wrote and stops (with --serve: keeps serving until Ctrl-C).
    """
    from stream.runtime.service import Service

    service = Service(settings(), announce=console.print)
    if demo:
        from stream.demo.run import Demo, DemoOptions, summary

        options = DemoOptions(duration=duration, rate=rate, drift_after=drift_after, window_seconds=window_seconds,
                              serve=serve)
        runner = Demo(options, say=lambda text: console.print(text, markup=False, highlight=False))
        service.extra_tasks.append(runner)
        if not serve:  # with --serve the summary is printed when the traffic ends
            service.on_stopped.append(
                lambda svc: console.print(summary(svc, runner.report), markup=False, highlight=False))
    elif serve:
        raise UserError("--serve only applies to --demo: without it `driftwarden up` serves until Ctrl-C anyway")
    raise typer.Exit(service.run())


@app.command("config")
def show_config() -> None:
    """Print the effective configuration (secrets masked)."""
    console.print_json(json.dumps(settings().masked()))


@app.command()
def migrate() -> None:
    """Create the ClickHouse database, tables and views (idempotent)."""
    from stream.storage.clickhouse import ClickHouse
    from stream.storage.migrations import current_version
    from stream.storage.migrations import migrate as apply

    s = settings()
    ch = ClickHouse(s.dsn, s.clickhouse_database, tls=s.clickhouse_tls)
    try:
        applied = apply(ch, s.outcomes_ttl_days)
        version = current_version(ch)
    finally:
        ch.close()
    console.print(f"schema version {version}" + (f" (applied {applied})" if applied else " (up to date)"))




@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="one SELECT, SHOW or DESCRIBE statement")],
    output: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
) -> None:
    """Query ClickHouse read-only: via the running service in embedded mode, or the server directly."""
    if output not in ("table", "csv", "json"):
        raise UserError(f"unknown format {output!r}: use table, csv or json")
    columns, rows = run_query(query)
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


@app.command()
def report(
    model: Annotated[str, typer.Argument(help="model id")],
    since: Annotated[str | None, typer.Option(help="start: ISO 8601 (UTC if no zone), epoch ms, or 6h/7d ago")] = None,
    until: Annotated[str | None, typer.Option(help="end (exclusive), same forms; default: now")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write")] = Path("report.html"),
) -> None:
    """Write one self-contained HTML file (no network needed to open it) with the model's charts and tables."""
    from stream.cli.report import write_report

    path, pages = write_report(settings(), model, since, until, out)
    console.print(f"wrote {path} ({pages} version/segment pages)")


@schemas_app.command("export")
def schemas_export(
    directory: Annotated[Path, typer.Option("--dir", help="where to write")] = Path("schemas"),
    check: Annotated[bool, typer.Option("--check", help="only report stale files (exit 1 if any)")] = False,
) -> None:
    """Write the JSON Schema of every event type, generated from the pydantic models."""
    from stream.contracts.schemas import export, stale

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
