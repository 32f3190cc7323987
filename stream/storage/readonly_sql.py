"""Read-only SQL for analysts (``/sql`` and ``driftwarden sql``): enforced by the engine, bounded, streamed.

Queries run on a client of their own (on chdb: its own connection handle, i.e. its own session, and its own
lock, so ingest's client is never held by an analyst's query), opened with the limits and then
``readonly=1`` as session settings, outside any query text. ``readonly=1`` makes the engine refuse writes,
DDL, table functions that touch files, URLs or servers, and any change of a setting, including a
``SETTINGS`` clause in the query (all measured on chdb 26.9). Each query is first parsed by ClickHouse
(``formatQuerySingleLine`` refuses more than one statement; ``EXPLAIN AST`` gives the tree that
:func:`stream.storage.sqlguard.check_ast` walks); the canonical text the formatter returns is what runs.

Rows are streamed block by block and reading stops at the row limit; the engine stops too
(``max_result_rows`` with ``result_overflow_mode=break``). ``max_execution_time`` bounds every query;
cancelling (a client that went away) takes effect between blocks, so a query that returns no block until
it ends (an aggregation) runs until its time limit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from stream.storage.clickhouse import parse_server_dsn
from stream.storage.sqlguard import ReadOnlyViolation, check_ast

__all__ = ["QueryResult", "ReadOnlySQL", "SQLLimits"]


@dataclass(frozen=True)
class SQLLimits:
    """Limits of one read-only query (ClickHouse settings of the analysts' session)."""

    max_execution_seconds: float = 10.0
    max_memory_bytes: int = 512 * 1024 * 1024
    max_rows_to_read: int = 1_000_000_000
    max_bytes_to_read: int = 50 * 1024**3
    max_result_rows: int = 100_000
    max_threads: int = 2

    def settings(self) -> dict[str, Any]:
        """The session settings, ``readonly`` last (after it no setting can change)."""
        return {
            "max_execution_time": self.max_execution_seconds, "timeout_overflow_mode": "throw",
            "max_memory_usage": self.max_memory_bytes,
            "max_rows_to_read": self.max_rows_to_read, "max_bytes_to_read": self.max_bytes_to_read,
            "read_overflow_mode": "throw",
            "max_result_rows": self.max_result_rows, "result_overflow_mode": "break",
            "max_threads": self.max_threads,
            "readonly": 1,
        }


@dataclass
class QueryResult:
    """Columns and at most ``max_result_rows`` rows; ``truncated`` when more were there."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool


class ReadOnlySQL:
    """A read-only query runner on its own client; one query at a time (callers queue in front of it)."""

    def __init__(self, dsn: str, database: str = "driftwarden", limits: SQLLimits | None = None,
                 connect_timeout: float = 5.0, tls: dict[str, Any] | None = None) -> None:
        self.limits = limits or SQLLimits()
        self.lock = threading.Lock()
        self.client = _connect(dsn, self.limits.settings(), connect_timeout, tls or {})
        self.database = database
        settings = self._one_column("SELECT getSetting('readonly')")
        if settings != ["1"]:  # never run analysts' queries in a session that can write
            self.client.close()
            raise RuntimeError(f"the read-only SQL session is not read-only (readonly={settings})")
        self.table_functions = frozenset(self._one_column("SELECT name FROM system.table_functions"))
        if self._one_column("SELECT count() FROM system.databases WHERE name = {d:String}", {"d": database}) == ["1"]:
            self.client.database = database  # unqualified table names are Driftwarden's tables

    def _one_column(self, sql: str, parameters: dict[str, Any] | None = None) -> list[str]:
        with self.lock:
            return [str(row[0]) for row in self.client.query(sql, parameters=parameters).result_rows]

    def check(self, query: str) -> tuple[str, str]:
        """The canonical text of ``query`` and its kind (top AST node) if it is one allowed read-only
        statement, else :class:`ReadOnlyViolation`."""
        if not query.strip():
            raise ReadOnlyViolation("empty query: send one SELECT, SHOW or DESCRIBE statement")
        try:
            canonical = self._one_column("SELECT formatQuerySingleLine({q:String})", {"q": query})[0]
        except Exception as exc:
            raise ReadOnlyViolation(_first_line(exc)) from None
        try:
            ast = self._command(f"EXPLAIN AST {canonical}")
        except Exception as exc:
            raise ReadOnlyViolation(_first_line(exc)) from None
        return canonical, check_ast(ast, self.table_functions)

    def _command(self, sql: str) -> str:
        """The text result of ``sql``, one line per row (TabSeparated escapes undone)."""
        with self.lock:
            out = self.client.command(sql)
        lines = out if isinstance(out, list) else str(out).split("\n")
        return "\n".join(_unescape_tsv(str(line)) for line in lines)

    def run(self, query: str, max_rows: int | None = None,
            cancelled: Callable[[], bool] = lambda: False) -> QueryResult:
        """Check ``query`` and run it, reading at most ``max_rows`` rows (default: the limit); blocking.

        ``cancelled`` is asked between blocks; when it says so, reading stops (and the query is cancelled).
        Errors of the engine (time limit, memory limit, unknown table) propagate as they are.
        """
        statement, kind = self.check(query)
        limit = min(max_rows or self.limits.max_result_rows, self.limits.max_result_rows)
        if kind != "SelectWithUnionQuery":  # SHOW, DESCRIBE, EXISTS, EXPLAIN: small, and chdb cannot stream them
            with self.lock:
                result = self.client.query(statement)
            found = result.result_rows
            return QueryResult(list(result.column_names), [tuple(r) for r in found[:limit]], len(found) > limit)
        rows: list[tuple[Any, ...]] = []
        truncated = False
        with self.lock, self.client.query_row_block_stream(statement) as stream:
            columns = list(stream.source.column_names)
            for block in stream:
                room = limit - len(rows)
                if len(block) > room:
                    rows.extend(tuple(r) for r in block[:room])
                    truncated = True
                    break
                rows.extend(tuple(r) for r in block)
                if cancelled():
                    break
        if not columns:  # no block came back: the column names come from the statement's structure
            with self.lock:
                columns = [str(r[0]) for r in self.client.query(f"DESCRIBE TABLE ({statement})").result_rows]
        return QueryResult(columns, rows, truncated)

    def close(self) -> None:
        with self.lock:
            self.client.close()


def _connect(dsn: str, settings: dict[str, Any], connect_timeout: float, tls: dict[str, Any]) -> Client:
    parts = urlsplit(dsn)
    if parts.scheme == "chdb":
        return clickhouse_connect.get_client(dsn=f"chdb://{parts.path}", settings=settings)
    server = parse_server_dsn(dsn)  # on a server, settings travel as HTTP parameters, outside the query text
    return clickhouse_connect.get_client(
        host=server.host, port=server.port, username=server.username, password=server.password,
        secure=server.secure, connect_timeout=connect_timeout,
        send_receive_timeout=int(settings["max_execution_time"]) + 30, settings=settings,
        **(tls if server.secure else {}),
    )


_TSV_ESCAPES = {"b": "\b", "f": "\f", "r": "\r", "n": "\n", "t": "\t", "0": "\0", "'": "'", "\\": "\\"}


def _unescape_tsv(text: str) -> str:
    """Undo ClickHouse's TabSeparated escaping of one value (linear time)."""
    if "\\" not in text:
        return text
    out: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            out.append(_TSV_ESCAPES.get(nxt, nxt))
        else:
            out.append(char)
    return "".join(out)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:500]
