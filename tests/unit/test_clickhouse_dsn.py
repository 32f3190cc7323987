"""Server DSNs: user and password percent-decoded; TLS settings reach clickhouse-connect."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from stream.config import Settings, mask_dsn
from stream.errors import UserError
from stream.storage import clickhouse
from stream.storage.clickhouse import ClickHouse, parse_server_dsn


def test_user_and_password_are_percent_decoded() -> None:
    password = "p@ss:w/rd%20?#"
    dsn = f"http://{quote('ops@corp', safe='')}:{quote(password, safe='')}@db.internal:8123/mon"
    server = parse_server_dsn(dsn)
    assert (server.username, server.password, server.host, server.port, server.database, server.secure) == (
        "ops@corp", password, "db.internal", 8123, "mon", False)
    assert "p%40ss" not in mask_dsn(dsn) and mask_dsn(dsn).endswith(":***@db.internal:8123/mon")
    assert parse_server_dsn("https://db").port == 8443 and parse_server_dsn("https://db").secure


def _captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def get_client(**kwargs: Any) -> object:
        seen.update(kwargs)
        return object()

    monkeypatch.setattr(clickhouse.clickhouse_connect, "get_client", get_client)
    return seen


def test_tls_settings_reach_clickhouse_connect(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ca.pem", "c.pem", "c.key"):
        (tmp_path / name).write_text("pem")
    s = Settings(clickhouse_dsn="https://u:p%2Fw@ch:9443/db", clickhouse_ca_file=tmp_path / "ca.pem",
                 clickhouse_client_cert=tmp_path / "c.pem", clickhouse_client_key=tmp_path / "c.key")
    seen = _captured(monkeypatch)
    ch = ClickHouse(s.dsn, s.clickhouse_database, tls=s.clickhouse_tls)
    assert ch.database == "db"
    assert {k: seen[k] for k in ("host", "port", "username", "password", "secure", "ca_cert", "client_cert",
                                 "client_cert_key", "verify")} == {
        "host": "ch", "port": 9443, "username": "u", "password": "p/w", "secure": True,
        "ca_cert": str(tmp_path / "ca.pem"), "client_cert": str(tmp_path / "c.pem"),
        "client_cert_key": str(tmp_path / "c.key"), "verify": True}
    plain = _captured(monkeypatch)
    ClickHouse("http://ch:8123", tls=s.clickhouse_tls)
    assert "ca_cert" not in plain and plain["secure"] is False  # TLS options only for https://


def test_a_missing_tls_file_is_one_line(tmp_path: Path) -> None:
    s = Settings(clickhouse_dsn="https://ch/db", clickhouse_ca_file=tmp_path / "nope.pem")
    with pytest.raises(UserError, match=r"ClickHouse TLS file .*nope.pem \(ca_cert\) is not a readable file"):
        ClickHouse(s.dsn, tls=s.clickhouse_tls)
