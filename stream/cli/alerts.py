"""`driftwarden alerts list|active|tail`: alert history, firing alerts and live alerts; the commands of
`driftwarden silences` (old spellings `alerts silence|unsilence|silences`, hidden).

``list`` and ``active`` query ClickHouse's ``alerts`` table through the read-only SQL path of
``driftwarden sql``; ``list`` marks each event's episode as ``firing`` or ``resolved``.
``tail`` follows the alerts topic without a consumer group. Silences are records on the compacted topic
:data:`stream.alerts.silences.SILENCES_TOPIC` (created on first use), read to its end for ``silences``.

Topics are read without a consumer group and end offsets come from the high watermark that Fetch responses
carry, not from ListOffsets(latest), which tansu gets wrong (see `stream.kafka.tansu_compat`).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import getpass
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from stream.alerts.history import ACTIVE_COLUMNS, active_query, episode_column
from stream.alerts.silences import SILENCES_TOPIC, Silences, create, ended, resolve_until
from stream.config import Settings
from stream.contracts.events import AlertEvent
from stream.errors import UserError
from stream.kafka.clients import follow
from stream.kafka.topics import publish_silence, read_silences

__all__ = [
    "LIST_COLUMNS",
    "alerts_app",
    "event_line",
    "list_query",
]

alerts_app = typer.Typer(help="Alert history and live alerts (silences: `driftwarden silences`).",
                         no_args_is_help=True, rich_markup_mode="markdown")
MODEL_ARGUMENT = typer.Argument(metavar="MODEL", help="only this model (its model_id)", show_default=False)
_MODEL_OPTION = typer.Option("--model", hidden=True, help="old spelling of the MODEL argument")


LIST_COLUMNS = ("time_utc", "state", "episode", "severity", "model_id", "model_version", "segment", "rule", "metric",
                "observed", "threshold", "message", "alert_id")
"""Columns of `alerts list` (csv and json); the table shows a subset."""
_TABLE_COLUMNS = ("time_utc", "state", "episode", "severity", "model_id", "model_version", "segment", "rule",
                  "message", "alert_id")
_ACTIVE_TABLE_COLUMNS = ("firing_since", "severity", "model_id", "model_version", "segment", "rule", "message",
                         "alert_id")
_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
_STATE_STYLE = {"firing": "bold red", "resolved": "bold green"}
_STYLED = ("state", "episode", "severity")


# ---- pure helpers -------------------------------------------------------------------------------------


def _lit(value: str) -> str:
    """A ClickHouse string literal; ``--`` and ``/*`` are escaped (``\\x2D``, ``\\x2A``) so that nothing in the
    statement reads as a comment to a tool that scans SQL text."""
    text = value.replace("\\", "\\\\").replace("'", "\\'")
    return "'" + text.replace("--", "-\\x2D").replace("/*", "/\\x2A") + "'"


def list_query(database: str, model: str | None = None, state: str | None = None,
               since: timedelta | None = None, limit: int = 50, now: datetime | None = None) -> str:
    """The read-only SELECT of `alerts list`: newest first, optionally filtered; ``since`` None means all time.

    >>> print(list_query("dw", "fraud", "firing", timedelta(hours=1), 5, datetime(2024, 5, 1, 12, tzinfo=UTC)))
    SELECT toString(time) AS time_utc, state, if(alert_id IN (SELECT alert_id FROM dw.alerts WHERE state = \
'resolved'), 'resolved', 'firing') AS episode, severity, model_id, model_version, segment, rule, metric, observed, \
threshold, message, alert_id FROM dw.alerts FINAL WHERE time >= toDateTime64('2024-05-01 11:00:00.000', 3, 'UTC') \
AND model_id = 'fraud' AND state = 'firing' ORDER BY time DESC, alert_id, state DESC LIMIT 5
    """
    if state not in (None, "firing", "resolved"):
        raise UserError(f"unknown state {state!r}: use firing or resolved")
    if limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    where = []
    if since is not None:
        cutoff = (datetime.now(UTC) if now is None else now) - since
        where.append(f"time >= toDateTime64({_lit(cutoff.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3])}, 3, 'UTC')")
    if model is not None:
        where.append(f"model_id = {_lit(model)}")
    if state is not None:
        where.append(f"state = {_lit(state)}")
    computed = {"time_utc": "toString(time) AS time_utc", "episode": episode_column(database)}
    columns = ", ".join(computed.get(c, c) for c in LIST_COLUMNS)
    return (f"SELECT {columns} FROM {database}.alerts FINAL"
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY time DESC, alert_id, state DESC LIMIT {int(limit)}")


def event_line(event: AlertEvent) -> Text:
    """One line for an alert event: time, state, severity, model, rule, short alert id and message.

    A firing event and its resolved event share the alert id.

    >>> e = AlertEvent(alert_id="0123456789abcdef", state="firing", severity="critical", model_id="fraud",
    ...                model_version="1", rule="auc-drop", metric="auc", time=datetime(2024, 5, 1, 12, 5),
    ...                message="auc of fraud v1 fell to 0.61", evidence_sql="SELECT 1")
    >>> print(event_line(e).plain)
    2024-05-01 12:05:00Z  FIRING    critical  fraud v1  auc-drop  #0123456789ab  auc of fraud v1 fell to 0.61
    """
    when = event.time.astimezone(UTC)
    who = f"{event.model_id} v{event.model_version}" + (f" [{event.segment}]" if event.segment else "")
    return Text.assemble(
        (f"{when:%Y-%m-%d %H:%M:%S}Z", "dim"), "  ",
        (f"{event.state.upper():<8}", _STATE_STYLE[event.state]), "  ",
        (f"{event.severity:<8}", _SEVERITY_STYLE[event.severity]), "  ",
        (who, "bold"), "  ", event.rule, "  ",
        (f"#{event.alert_id[:12]}", "magenta"), "  ", event.message,
    )


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    return value


def format_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], output: str,
                table_columns: Sequence[str] = _TABLE_COLUMNS) -> str | Table:
    """Rows of `alerts list` (or `active`) as CSV or JSON text, or a rich table of ``table_columns`` (long alert
    ids shortened to 12 characters)."""
    data = [[_cell(v) for v in row] for row in rows]
    if output == "json":
        return json.dumps([dict(zip(columns, row, strict=True)) for row in data], default=str) + "\n"
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(data)
        return buffer.getvalue()
    shown = [c for c in table_columns if c in columns]
    index = [list(columns).index(c) for c in shown]
    table = Table(*shown)
    for row in data:
        cells = {c: "" if row[i] is None else str(row[i]) for c, i in zip(shown, index, strict=True)}
        if "alert_id" in cells:
            cells["alert_id"] = cells["alert_id"][:12]
        table.add_row(*(Text(cells[c], style=_STATE_STYLE.get(cells[c], _SEVERITY_STYLE.get(cells[c], "")))
                        if c in _STYLED else Text(cells[c]) for c in shown))
    return table


def human(delta: timedelta) -> str:
    """A short human duration, rounded down to the two largest units.

    >>> human(timedelta(hours=26, minutes=5)), human(timedelta(minutes=90)), human(timedelta(seconds=42))
    ('1d 2h', '1h 30m', '42s')
    """
    seconds = max(0, int(delta.total_seconds()))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


def _what(model_id: str, rule: str | None) -> str:
    return f"model {model_id} " + (f"rule {rule!r}" if rule is not None else "(all rules)")


def _utc_text(value: datetime) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


# ---- Kafka ----------------------------------------------------------------------------------------------












# ---- commands ------------------------------------------------------------------------------------------


def _say(console: Console, text: str) -> None:
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def _settings() -> Settings:
    from stream.cli.common import settings

    return settings()


def _bootstrap(s: Settings) -> tuple[str, dict[str, Any]]:
    """The broker that holds the alerts and silences topics, and its client security options; a clear line when
    no service runs and no Kafka is configured."""
    from stream.cli.common import kafka_target

    try:
        return kafka_target(s)
    except UserError as exc:
        if not str(exc).startswith("no Kafka to produce to"):
            raise
        raise UserError(
            f"no service running on {s.data_dir}: start it with `driftwarden up` (alerts and silences are "
            "topics on its broker), or set DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS=host:port of your Kafka"
        ) from None


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return ""


def _out() -> Console:
    from stream.cli.output import stdout

    return stdout()  # piped: no colour, never wraps cells


def _err() -> Console:
    from stream.cli.output import stderr

    return stderr()


def _load_silences(bootstrap: str, security: dict[str, Any]) -> Silences:
    book, bad = asyncio.run(read_silences(bootstrap, security=security))
    if bad:
        _say(_err(), f"warning: skipped {bad} unreadable records on topic {SILENCES_TOPIC!r}")
    return book


@alerts_app.command("list")
def list_alerts(
    model: Annotated[str | None, MODEL_ARGUMENT] = None,
    model_option: Annotated[str | None, _MODEL_OPTION] = None,
    state: Annotated[str | None, typer.Option("--state", help="firing or resolved")] = None,
    since: Annotated[str, typer.Option("--since", help="how far back, e.g. 90m, 24h, 7d; or 'all'")] = "24h",
    limit: Annotated[int, typer.Option("--limit", min=1, help="at most this many rows")] = 50,
    output: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
) -> None:
    """List alert events from ClickHouse, newest first.

    Example: `driftwarden alerts list credit-risk --state firing --since 7d`
    """
    from stream.alerts.silences import parse_duration
    from stream.cli import common

    model = model or model_option

    if output not in ("table", "csv", "json"):
        raise UserError(f"unknown format {output!r}: use table, csv or json")
    try:
        window = None if since.strip().lower() == "all" else parse_duration(since)
    except ValueError as exc:
        raise UserError(f"--since: {exc}") from None
    statement = list_query(_settings().clickhouse_database, model, state, window, limit)
    columns, rows = common.run_query(statement)
    columns = columns or list(LIST_COLUMNS)  # the SQL path names no columns when there are no rows
    formatted = format_rows(columns, rows, output)
    if isinstance(formatted, str):
        sys.stdout.write(formatted)
        return
    console = _out()
    if not rows:
        scope = "" if window is None else f" in the last {since.strip()}"
        scope += "" if model is None else f" for model {model}"
        scope += "" if state is None else f" in state {state}"
        _say(console, f"no alerts{scope}")
        return
    console.print(formatted)
    _say(console, f"{len(rows)} alerts" + (f" (limit {limit} reached)" if len(rows) >= limit else ""))


@alerts_app.command("active")
def active_alerts(
    model: Annotated[str | None, MODEL_ARGUMENT] = None,
    model_option: Annotated[str | None, _MODEL_OPTION] = None,
    output: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
) -> None:
    """What fires now: alert episodes without a resolved event, since when, with their evidence (json, csv).

    Example: `driftwarden alerts active credit-risk --format json`
    """
    from stream.cli import common

    model = model or model_option

    if output not in ("table", "csv", "json"):
        raise UserError(f"unknown format {output!r}: use table, csv or json")
    columns, rows = common.run_query(active_query(_settings().clickhouse_database, model))
    columns = columns or list(ACTIVE_COLUMNS)
    formatted = format_rows(columns, rows, output, _ACTIVE_TABLE_COLUMNS)
    if isinstance(formatted, str):
        sys.stdout.write(formatted)
        return
    console = _out()
    if not rows:
        _say(console, "nothing is firing" + ("" if model is None else f" for model {model}"))
        return
    console.print(formatted)
    _say(console, f"{len(rows)} firing; `--format json` shows each one's evidence SQL")


@dataclass
class _Tail:
    printed: int = 0
    skipped: int = 0


async def _tail(bootstrap: str, topic: str, model: str | None, from_beginning: bool, limit: int | None,
                state: _Tail, console: Console, err: Console, security: dict[str, Any] | None = None) -> None:
    where = "the beginning" if from_beginning else "the end"

    def ready() -> None:
        _say(err, f"following topic {topic!r} at {bootstrap} from {where} (Ctrl-C to stop)")

    if limit == 0:
        return
    async with contextlib.aclosing(follow(bootstrap, topic, from_beginning, on_ready=ready,
                                          security=security)) as records:
        async for record in records:
            try:
                event = AlertEvent.model_validate_json(record.value)
            except ValidationError as exc:
                state.skipped += 1
                reason = str(exc.errors(include_url=False)[0]["msg"])
                _say(err, f"skipping record {record.partition}:{record.offset}, not an alert event: {reason}")
                continue
            if model is not None and event.model_id != model:
                continue
            console.print(event_line(event), soft_wrap=True, highlight=False)
            state.printed += 1
            if limit is not None and state.printed >= limit:
                return


@alerts_app.command("tail")
def tail(
    model: Annotated[str | None, MODEL_ARGUMENT] = None,
    model_option: Annotated[str | None, _MODEL_OPTION] = None,
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="start at the oldest alert")] = False,
    limit: Annotated[int | None, typer.Option("--max", min=0, help="stop after this many alerts")] = None,
) -> None:
    """Follow the alerts topic and print each alert as it arrives (Ctrl-C stops).

    Example: `driftwarden alerts tail credit-risk --from-beginning`
    """
    model = model or model_option
    s = _settings()
    bootstrap, security = _bootstrap(s)
    state, err = _Tail(), _err()
    try:
        asyncio.run(_tail(bootstrap, s.topic_alerts, model, from_beginning, limit, state, _out(), err, security))
    except KeyboardInterrupt:
        _say(err, f"stopped after {state.printed} alerts")


@alerts_app.command("silence", hidden=True)  # old spelling of `driftwarden silences add`
def silence(
    model_id: Annotated[str, typer.Argument(metavar="MODEL", help="the model's model_id", show_default=False)],
    rule: Annotated[str | None, typer.Option("--rule", metavar="NAME", help="only this rule")] = None,
    duration: Annotated[str | None, typer.Option("--for", metavar="DURATION", help="e.g. 90m, 2h, 1d")] = None,
    until: Annotated[str | None, typer.Option("--until", metavar="TIME", help="RFC 3339 end time")] = None,
    reason: Annotated[str, typer.Option("--reason", help="why, for whoever reads the silences")] = "",
) -> None:
    """Mute firing alerts of a model (or of one rule of it) until a time; resolved alerts still pass.

    Example: `driftwarden silences add credit-risk --rule default-accuracy-drop --for 2h --reason "deploy"`
    """
    now = datetime.now(UTC)
    try:
        end = resolve_until(duration, until, now)
        record = create(model_id, rule, end, now, reason, _user())
    except ValueError as exc:
        raise UserError(str(exc)) from None
    bootstrap, security = _bootstrap(_settings())
    asyncio.run(publish_silence(bootstrap, record, security=security))
    text = f"silenced {_what(model_id, rule)} until {_utc_text(end)} ({human(end - now)} from now)"
    _say(_out(), text + (f"; reason: {reason}" if reason else ""))


@alerts_app.command("unsilence", hidden=True)  # old spelling of `driftwarden silences remove`
def unsilence(
    model_id: Annotated[str, typer.Argument(metavar="MODEL", help="the model's model_id", show_default=False)],
    rule: Annotated[str | None, typer.Option("--rule", metavar="NAME", help="the rule given to `add`")] = None,
) -> None:
    """End a silence now (the one set with the same MODEL and `--rule`).

    Example: `driftwarden silences remove credit-risk --rule default-accuracy-drop`
    """
    now = datetime.now(UTC)
    try:
        record = ended(model_id, rule, now, created_by=_user())
    except ValueError as exc:
        raise UserError(str(exc)) from None
    bootstrap, security = _bootstrap(_settings())
    active = _load_silences(bootstrap, security).active(now)
    asyncio.run(publish_silence(bootstrap, record, security=security))
    console = _out()
    match = next((s for s in active if (s.model_id, s.rule) == (model_id, rule)), None)
    if match is not None:
        _say(console, f"ended the silence of {_what(model_id, rule)} (it ran until {_utc_text(match.until)})")
        return
    _say(console, f"{_what(model_id, rule)} had no active silence; recorded its end anyway")
    others = [s for s in active if s.model_id == model_id]
    if others:
        names = ", ".join("all rules" if s.rule is None else f"--rule {s.rule!r}" for s in others)
        _say(console, f"active silences of model {model_id}: {names}")


@alerts_app.command("silences", hidden=True)  # old spelling of `driftwarden silences list`
def list_silences(
    model: Annotated[str | None, MODEL_ARGUMENT] = None,
    show_all: Annotated[bool, typer.Option("--all", help="also show ended and expired silences")] = False,
    output: Annotated[str, typer.Option("--format", "-f", help="table or json")] = "table",
) -> None:
    """List active silences (read from the silences topic of the running service's broker).

    Example: `driftwarden silences list credit-risk --all`
    """
    if output not in ("table", "json"):
        raise UserError(f"unknown format {output!r}: use table or json")
    now = datetime.now(UTC)
    book = _load_silences(*_bootstrap(_settings()))
    shown = [s for s in (book.all() if show_all else book.active(now)) if model is None or s.model_id == model]
    if output == "json":
        sys.stdout.write(json.dumps([s.model_dump(mode="json") for s in shown]) + "\n")
        return
    console = _out()
    if not shown:
        _say(console, "no silences" if show_all else "no active silences")
        return
    table = Table("model_id", "rule", "until", "remaining", "reason", "created_by", "created_at")
    for s in shown:
        left = human(s.until - now) if s.active(now) else "ended"
        cells = (s.model_id, "*" if s.rule is None else s.rule, _utc_text(s.until), left, s.reason,
                 s.created_by, _utc_text(s.created_at))
        table.add_row(*(Text(c) for c in cells))
    console.print(table)
    _say(console, f"{len(shown)} silences")
