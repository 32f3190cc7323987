"""The read-only check of the /sql endpoint."""

from __future__ import annotations

import pytest

from stream.storage.sqlguard import ReadOnlyViolation, check_read_only


@pytest.mark.parametrize("sql", [
    "SELECT 1", "select * from t;", "WITH x AS (SELECT 1) SELECT * FROM x", "SHOW TABLES FROM driftwarden",
    "DESCRIBE driftwarden.alerts", "DESC t", "SELECT 'DROP TABLE x; --' AS s", "/* hi */ SELECT 1 -- bye",
])
def test_read_only_statements_pass(sql: str) -> None:
    assert check_read_only(sql)


@pytest.mark.parametrize(("sql", "message"), [
    ("DROP TABLE t", "not DROP"), ("INSERT INTO t VALUES (1)", "not INSERT"), ("", "empty query"),
    ("SELECT 1; DROP TABLE t", "one statement"), ("-- SELECT 1\nALTER TABLE t DELETE WHERE 1", "not ALTER"),
    ("SELECT 1 INTO OUTFILE '/tmp/x'", "INTO OUTFILE"), ("/* SELECT */ TRUNCATE t", "not TRUNCATE"),
    ("SYSTEM SHUTDOWN", "not SYSTEM"), ("SET readonly = 0", "not SET"),
])
def test_everything_else_is_refused_with_the_reason(sql: str, message: str) -> None:
    with pytest.raises(ReadOnlyViolation, match=message):
        check_read_only(sql)


def test_quoted_comment_markers_are_text() -> None:
    assert check_read_only("SELECT * FROM t WHERE m = 'a--b' AND n = '/*x*/'") == \
        "SELECT * FROM t WHERE m = 'a--b' AND n = '/*x*/'"
