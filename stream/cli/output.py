"""How the command line prints: rich tables and colour on a terminal; whole values, one line per record and no
escape codes when stdout is a pipe or a file.

Query results are printed from JSON values in every format, whichever path ran the query (the running service's
``/sql`` or ClickHouse directly): :func:`json_rows` turns engine values into exactly what ``/sql`` sends (ISO 8601
UTC times, ``null`` for NaN and infinity), so ``driftwarden sql`` prints the same bytes either way.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Sequence
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

FORMATS = ("table", "tsv", "csv", "json")
"""Output formats of query commands; ``table`` prints TSV when stdout is not a terminal."""


def is_terminal() -> bool:
    return sys.stdout.isatty()


def stdout() -> Console:
    """A console for stdout: rich on a terminal; otherwise no colour, no markup, no wrapping, no cursor codes."""
    if is_terminal():
        return Console()
    return Console(force_terminal=False, no_color=True, highlight=False, soft_wrap=True, width=100_000)


def stderr() -> Console:
    if sys.stderr.isatty():
        return Console(stderr=True)
    return Console(stderr=True, force_terminal=False, no_color=True, highlight=False, soft_wrap=True, width=100_000)


def say(console: Console, text: str) -> None:
    """Print plain text: no markup, highlighting or hard wrapping (it may hold user data, SQL and paths)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def check_format(output: str, allowed: Sequence[str] = FORMATS) -> str:
    from stream.errors import UserError

    if output not in allowed:
        raise UserError(f"unknown format {output!r}: use {', '.join(allowed[:-1])} or {allowed[-1]}")
    return output


def json_rows(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Engine values as the ``/sql`` endpoint sends them (`stream.runtime.web.dumps`), read back.

    >>> import datetime as dt
    >>> json_rows([[float("nan"), float("inf"), dt.datetime(2024, 5, 1, 12, 0, 0, 123000), 7]])
    [[None, None, '2024-05-01T12:00:00.123000Z', 7]]
    """
    from stream.runtime.web import dumps

    return list(orjson.loads(dumps([list(r) for r in rows])))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _tsv_cell(value: Any) -> str:
    return _text(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], output: str) -> str | Table:
    r"""JSON values (from :func:`json_rows` or ``/sql``) as text in ``output`` format, or a rich table.

    ``json`` is a list of objects; ``csv`` has a header line; ``tsv`` escapes tabs, newlines and backslashes
    like ClickHouse's TabSeparated; NULL is an empty cell in csv, tsv and table.

    >>> render(["a", "b"], [[1, True], [0.5, "x\ty"]], "tsv")
    'a\tb\n1\ttrue\n0.5\tx\\ty\n'
    >>> print(render(["a", "b"], [[1, None]], "json"), end="")
    [{"a":1,"b":null}]
    """
    if output == "json":
        return orjson.dumps([dict(zip(columns, row, strict=True)) for row in rows]).decode() + "\n"
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_text(v) for v in row] for row in rows)
        return buffer.getvalue()
    if output == "tsv" or not is_terminal():
        return "".join("\t".join(_tsv_cell(v) for v in line) + "\n" for line in (list(columns), *rows))
    table = Table(*columns)
    for row in rows:
        table.add_row(*(_text(v) for v in row))
    return table


def print_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], output: str) -> None:
    """Print query results; on a terminal a table is followed by the row count."""
    shown = render(columns, rows, output)
    if isinstance(shown, str):
        sys.stdout.write(shown)
        return
    console = stdout()
    console.print(shown)
    say(console, f"{len(rows)} rows")
