"""The `driftwarden` command line."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from stream.cli import output
from stream.cli.common import run_query, settings
from stream.config import Settings
from stream.errors import UserError

app = typer.Typer(
    help="Driftwarden: real-time ML model monitoring on Kafka and ClickHouse.\n\n"
    "Configuration comes from DRIFTWARDEN_* environment variables; `driftwarden config` shows it.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode="markdown",
)
schemas_app = typer.Typer(help="JSON Schemas of every event on every topic.", no_args_is_help=True,
                          rich_markup_mode="markdown")
app.add_typer(schemas_app, name="schemas")


def _register_subcommands() -> None:
    from stream.cli.alerts import alerts_app
    from stream.cli.bench import bench_command
    from stream.cli.models import models_app
    from stream.cli.produce import produce_app
    from stream.cli.silences import silences_app

    app.add_typer(produce_app, name="produce")
    app.add_typer(models_app, name="models")
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(silences_app, name="silences")
    app.command("bench")(bench_command)


console = output.stdout()
err = output.stderr()


def _say(text: str) -> None:
    output.say(console, text)

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

    Stops cleanly on Ctrl-C or SIGTERM. With `--demo` it produces synthetic traffic with an injected data and
    concept drift, then prints what it wrote and stops (with `--serve`: keeps serving until Ctrl-C).

    Example: `driftwarden up --demo --duration 60 --rate 200`
    """
    from stream.runtime.service import Service

    service = Service(settings(), announce=_say)
    if demo:
        from stream.demo.run import Demo, DemoOptions, summary

        options = DemoOptions(duration=duration, rate=rate, drift_after=drift_after, window_seconds=window_seconds,
                              serve=serve)
        runner = Demo(options, say=_say)
        service.extra_tasks.append(runner)
        if not serve:  # with --serve the summary is printed when the traffic ends
            service.on_stopped.append(lambda svc: _say(summary(svc, runner.report)))
    elif serve:
        raise UserError("--serve only applies to --demo: without it `driftwarden up` serves until Ctrl-C anyway")
    raise typer.Exit(service.run())


def env_values(s: Settings) -> dict[str, Any]:
    """The effective settings by their environment variable names (secrets masked; unset values None)."""
    values = s.masked()
    values["kafka_bootstrap_servers"] = s.kafka_bootstrap_servers
    return {f"DRIFTWARDEN_{name.upper()}": value for name, value in values.items()}


@app.command("config")
def show_config(
    fmt: Annotated[str, typer.Option("--format", "-f", help="env (NAME=value lines) or json")] = "env",
) -> None:
    """Print the effective configuration as `DRIFTWARDEN_*` variables (secrets masked), and where the running
    service's broker listens: the address producers use.

    Example: `driftwarden config --format json`
    """
    from stream.runtime.service import read_runtime

    output.check_format(fmt, ("env", "json"))
    s = settings()
    values = env_values(s)
    running = read_runtime(s.data_dir)
    service = None if running is None else {
        "pid": running.get("pid"), "kafka_bootstrap_servers": running.get("bootstrap_servers"),
        "embedded_broker": running.get("embedded_broker"), "http": running.get("web_url")}
    if fmt == "json":
        sys.stdout.write(json.dumps({"settings": values, "running_service": service}, indent=2) + "\n")
        return
    for name, value in values.items():
        text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        _say(f"{name}={shlex.quote(text) if text else ''}")
    if s.kafka_bootstrap_servers is None:
        _say("# DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS is unset: `driftwarden up` starts an embedded tansu broker")
    if service is None:
        _say(f"# no service is running on {s.data_dir}")
    else:
        kind = " (embedded tansu broker)" if service["embedded_broker"] else ""
        _say(f"# running service (pid {service['pid']}): producers use {service['kafka_bootstrap_servers']}{kind}; "
             f"HTTP {service['http']}")


@app.command()
def migrate() -> None:
    """Create the ClickHouse database, tables and views (idempotent).

    Example: `driftwarden migrate` (with `DRIFTWARDEN_CLICKHOUSE_DSN=http://user:pass@ch:8123/driftwarden` set)
    """
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
    _say(f"schema version {version}" + (f" (applied {applied})" if applied else " (up to date)"))


@app.command()
def sql(
    query: Annotated[str, typer.Argument(metavar="QUERY", help="one SELECT, SHOW or DESCRIBE statement")],
    fmt: Annotated[str, typer.Option("--format", "-f",
                                     help="table (tab-separated when not a terminal), tsv, csv or json")] = "table",
) -> None:
    """Query ClickHouse read-only, through the running service or directly when none runs.

    Table names without a database are looked up in the Driftwarden database (`DRIFTWARDEN_CLICKHOUSE_DATABASE`).
    Values are whole in every format; json has `null` for NaN and ISO 8601 UTC times.

    Example: `driftwarden sql "SELECT model_id, count() FROM window_metrics GROUP BY model_id" --format csv`
    """
    output.check_format(fmt)
    columns, rows = run_query(query)
    output.print_rows(columns, rows, fmt)


@app.command()
def report(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="the model's model_id", show_default=False)],
    since: Annotated[str | None, typer.Option(help="start: ISO 8601 (UTC if no zone), epoch ms, or 6h/7d ago")] = None,
    until: Annotated[str | None, typer.Option(help="end (exclusive), same forms; default: now")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write")] = Path("report.html"),
) -> None:
    """Write one self-contained HTML file (no network needed to open it) with the model's charts and tables.

    Example: `driftwarden report credit-risk --since 7d --out credit-risk.html`
    """
    from stream.cli.report import write_report

    path, pages = write_report(settings(), model, since, until, out)
    _say(f"wrote {path} ({pages} version/segment pages)")


@schemas_app.command("export")
def schemas_export(
    directory: Annotated[Path, typer.Option("--dir", help="where to write")] = Path("schemas"),
    check: Annotated[bool, typer.Option("--check", help="only report stale files (exit 1 if any)")] = False,
) -> None:
    """Write the JSON Schema of every event type, generated from the pydantic models.

    Example: `driftwarden schemas export --dir schemas --check`
    """
    from stream.contracts.schemas import export, stale

    if check:
        bad = stale(directory)
        for name in bad:
            output.say(err, f"stale: {directory / name}")
        raise typer.Exit(1 if bad else 0)
    for path in export(directory):
        _say(f"wrote {path}")


_register_subcommands()


def main() -> None:
    """Entry point: user errors are one line on stderr and exit code 2, without a traceback."""
    try:
        app()
    except UserError as exc:
        output.say(err, f"error: {exc}")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
