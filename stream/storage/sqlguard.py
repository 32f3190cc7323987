"""Read-only SQL check for the ``/sql`` endpoint: one SELECT, SHOW or DESCRIBE statement, nothing else.

The check is a first line; queries also run with ClickHouse's ``readonly=1`` setting, which refuses writes
and table functions (``file()``, ``url()``) in the engine itself.
"""

from __future__ import annotations

import re

ALLOWED = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS")

# Strings and comments in one left-to-right scan: a quoted '--' is text, not a comment.
_TOKENS = re.compile(r"(?P<s>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`)|(?P<c>--[^\n]*|/\*.*?\*/)", re.S)


class ReadOnlyViolation(ValueError):
    """The statement is not a single read-only query."""


def check_read_only(sql: str) -> str:
    """Return the statement without a trailing semicolon, or raise :class:`ReadOnlyViolation`.

    >>> check_read_only("SELECT 1;")
    'SELECT 1'
    >>> check_read_only("SELECT * FROM t WHERE id = 'a--b;c' -- note")
    "SELECT * FROM t WHERE id = 'a--b;c'"
    >>> check_read_only("DROP TABLE x")
    Traceback (most recent call last):
    ...
    stream.storage.sqlguard.ReadOnlyViolation: only SELECT, SHOW and DESCRIBE are allowed here, not DROP
    """
    text = _TOKENS.sub(lambda m: m.group("s") or " ", sql).strip()
    bare = _TOKENS.sub(lambda m: "''" if m.group("s") else " ", text).rstrip().rstrip(";").rstrip()
    if not bare:
        raise ReadOnlyViolation("empty query: send one SELECT, SHOW or DESCRIBE statement")
    if ";" in bare:
        raise ReadOnlyViolation("one statement per request: remove the ';' between statements")
    first = bare.split(None, 1)[0].upper()
    if first not in ALLOWED:
        raise ReadOnlyViolation(f"only SELECT, SHOW and DESCRIBE are allowed here, not {first}")
    if re.search(r"\bINTO\s+OUTFILE\b", bare, re.I):
        raise ReadOnlyViolation("INTO OUTFILE is not allowed: the SQL endpoint is read-only")
    return text.rstrip().rstrip(";").rstrip()
