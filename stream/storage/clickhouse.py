"""One ClickHouse client for both DSN kinds: ``chdb:///abs/path`` (in-process engine) and ``http(s)://``.

chdb calls are synchronous and chdb allows one engine per process, so every call goes through one client
guarded by a lock; async callers use the ``a*`` methods, which run the call in a thread, never on the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from stream.config import mask_dsn
from stream.errors import UserError, quiet_logger


def _chdb_path(dsn: str) -> Path:
    path = urlsplit(dsn).path
    if not path.startswith("/"):
        raise UserError(f"ClickHouse DSN {dsn!r} needs an absolute path: use chdb:///abs/path")
    return Path(path)


@dataclass(frozen=True)
class ServerAddress:
    """An ``http(s)://user:password@host:port/database`` DSN, user and password percent-decoded."""

    host: str
    port: int
    username: str
    password: str
    database: str
    secure: bool


def parse_server_dsn(dsn: str) -> ServerAddress:
    """Split a server DSN; a password with ``@``, ``:`` or ``/`` is given percent-encoded (``%40``, ``%3A``, ``%2F``).

    >>> server = parse_server_dsn("https://analyst%40corp:p%40ss%3Aw%2Frd@db.internal/monitoring")
    >>> server.username, server.password, server.port, server.database
    ('analyst@corp', 'p@ss:w/rd', 8443, 'monitoring')
    >>> parse_server_dsn("http://db:8123").username
    'default'
    """
    parts = urlsplit(dsn)
    secure = parts.scheme == "https"
    return ServerAddress(
        host=parts.hostname or "localhost", port=parts.port or (8443 if secure else 8123),
        username=unquote(parts.username) if parts.username else "default",
        password=unquote(parts.password) if parts.password else "",
        database=unquote(parts.path.strip("/")), secure=secure)


class ClickHouse:
    """A thread-safe facade over a clickhouse-connect client; ``tls``: clickhouse-connect's ``ca_cert``,
    ``client_cert``, ``client_cert_key`` and ``verify`` for an https:// server (`Settings.clickhouse_tls`)."""

    def __init__(self, dsn: str, database: str = "driftwarden", connect_timeout: float = 5.0,
                 tls: dict[str, Any] | None = None) -> None:
        self.dsn = dsn
        self.database = (parse_server_dsn(dsn).database or database) if dsn.startswith("http") else database
        self._lock = threading.Lock()
        self.client = self._connect(dsn, connect_timeout, tls or {})
        self.embedded = dsn.startswith("chdb:")

    @staticmethod
    def _connect(dsn: str, connect_timeout: float, tls: dict[str, Any]) -> Client:
        scheme = urlsplit(dsn).scheme
        shown = mask_dsn(dsn)
        if scheme == "chdb":
            path = _chdb_path(dsn)
            path.mkdir(parents=True, exist_ok=True)
            try:
                return clickhouse_connect.get_client(dsn=f"chdb://{path}")
            except Exception as exc:  # chdb raises plain RuntimeErrors, e.g. when another process holds the dir
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise UserError(
                    f"cannot open the embedded ClickHouse at {path} ({first[:200]}): is another driftwarden "
                    "using this data directory? Stop it or set DRIFTWARDEN_DATA_DIR"
                ) from exc
        if scheme not in ("http", "https"):
            raise UserError(
                f"unsupported ClickHouse DSN {shown!r}: use chdb:///abs/path or http://user:pass@host:8123/db"
            )
        server = parse_server_dsn(dsn)
        for name, path in tls.items():
            if name != "verify" and not Path(path).is_file():
                raise UserError(f"ClickHouse TLS file {path} ({name}) is not a readable file")
        try:
            with quiet_logger("clickhouse_connect"):
                return clickhouse_connect.get_client(
                    host=server.host, port=server.port, username=server.username, password=server.password,
                    secure=server.secure, connect_timeout=connect_timeout, send_receive_timeout=60,
                    **(tls if server.secure else {}),
                )
        except Exception as exc:
            text = str(exc)
            reason = "connection refused" if "Connection refused" in text or "NewConnectionError" in text \
                else text.splitlines()[0][:200] if text else type(exc).__name__
            raise UserError(f"cannot reach ClickHouse at {shown} ({reason}): check DRIFTWARDEN_CLICKHOUSE_DSN") \
                from exc

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        with self._lock:
            return self.client.command(sql, parameters=parameters)

    def query_rows(
        self, sql: str, parameters: dict[str, Any] | None = None, column_formats: dict[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self._lock:
            result = self.client.query(sql, parameters=parameters, column_formats=column_formats)
        return list(result.column_names), [tuple(row) for row in result.result_rows]

    def insert(self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str],
               settings: dict[str, Any] | None = None) -> None:
        if not rows:
            return
        with self._lock:
            self.client.insert(table, list(rows), column_names=list(column_names), database=self.database,
                               settings=settings)

    async def aquery_rows(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        return await asyncio.to_thread(self.query_rows, sql)

    def close(self) -> None:
        with self._lock:
            self.client.close()
