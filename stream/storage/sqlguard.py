"""Statement check of the read-only SQL endpoint, on the tree of ClickHouse's own parser (``EXPLAIN AST``).

The engine is the guard (the endpoint's session runs with ``readonly=1``, see
:mod:`stream.storage.readonly_sql`); this check refuses early and clearly what the engine would refuse, and
what the embedded engine does NOT refuse under ``readonly=1`` (measured on chdb 26: the scalar ``file()``
function reads any file, ``INTO OUTFILE`` writes one). It walks the text of ``EXPLAIN AST`` line by line
(linear time; no regular expression runs on the query text itself):

- the statement is a ``SELECT`` (``SelectWithUnionQuery``), ``SHOW``, ``DESCRIBE``, ``EXISTS`` or an
  ``EXPLAIN`` of a ``SELECT``;
- no ``FORMAT``, ``INTO OUTFILE`` or ``SETTINGS`` clause (limits are the service's);
- table functions only from :data:`ALLOWED_TABLE_FUNCTIONS`; a function named like any other table function
  (``file``, ``url``, ``remote``, ``s3``, ...) is refused wherever it appears.
"""

from __future__ import annotations

from collections.abc import Collection

ALLOWED_TABLE_FUNCTIONS = frozenset({
    "numbers", "numbers_mt", "zeros", "zeros_mt", "generaterandom", "generate_series", "generateseries",
    "values", "view", "null", "format",
})
"""Table functions that read nothing outside the query (lower case)."""

ALWAYS_REFUSED = frozenset({"file", "filecluster", "url", "urlcluster", "remote", "remotesecure", "cluster",
                            "clusterallreplicas", "s3", "s3cluster", "hdfs", "mysql", "postgresql", "jdbc", "odbc",
                            "executable", "input", "python", "sqlite", "mongodb", "redis", "azureblobstorage"})
"""Refused even if the engine's list of table functions (passed to :func:`check_ast`) lacks them."""

_TOP_LEVEL = ("SelectWithUnionQuery", "Show", "Describe", "Exists", "Explain")


class ReadOnlyViolation(ValueError):
    """The statement is not one read-only query that the SQL endpoint runs."""


def check_ast(ast: str, table_functions: Collection[str] = ()) -> str:
    """The top-level node of ``ast`` (``EXPLAIN AST`` output) if it is an allowed statement, else
    :class:`ReadOnlyViolation`.

    ``table_functions`` are the engine's table function names (``system.table_functions``); every one not in
    :data:`ALLOWED_TABLE_FUNCTIONS` is refused, as a table function or as a scalar function of that name.

    >>> check_ast("SelectWithUnionQuery (children 1)\\n ExpressionList (children 1)")
    'SelectWithUnionQuery'
    >>> check_ast("Function file (children 1)")
    Traceback (most recent call last):
    ...
    stream.storage.sqlguard.ReadOnlyViolation: only SELECT, SHOW, DESCRIBE, EXISTS and EXPLAIN run here, not Function
    """
    refused = ({n.lower() for n in table_functions} | ALWAYS_REFUSED) - ALLOWED_TABLE_FUNCTIONS
    lines = [line for line in ast.splitlines() if line.strip()]
    if not lines:
        raise ReadOnlyViolation("empty query: send one SELECT, SHOW or DESCRIBE statement")
    head = lines[0].split(None, 1)[0]
    if not head.startswith(_TOP_LEVEL):
        raise ReadOnlyViolation(
            f"only SELECT, SHOW, DESCRIBE, EXISTS and EXPLAIN run here, not {head[:60]}")
    stack: list[tuple[int, str]] = []  # (indent, node) of the ancestors of the current line
    for number, line in enumerate(lines):
        if _unbalanced(line):
            raise ReadOnlyViolation("names with line breaks or unbalanced parentheses are not allowed here")
        indent = len(line) - len(line.lstrip(" "))
        words = line.split()
        node = words[0]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else ""
        if number and indent == 1 and head == "SelectWithUnionQuery" and node != "ExpressionList":
            raise ReadOnlyViolation("FORMAT and INTO OUTFILE are not allowed here: the endpoint answers in JSON")
        if number and indent == 1 and head == "Explain" and node != "SelectWithUnionQuery":
            raise ReadOnlyViolation("only EXPLAIN of a SELECT is allowed here, without options")
        if node == "Set":
            raise ReadOnlyViolation("SETTINGS are not allowed in the query: the service sets the limits")
        if node == "Function" and len(words) > 1:
            name = words[1].lower()
            if name in refused or (parent == "TableExpression" and name not in ALLOWED_TABLE_FUNCTIONS):
                raise ReadOnlyViolation(
                    f"{words[1][:60]}() is not allowed here: the SQL endpoint reads only Driftwarden's tables "
                    f"(and {', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))})")
        stack.append((indent, node))
    return head


def _unbalanced(line: str) -> bool:
    """Whether the parentheses outside quoted literals do not balance (a name with a line break in it)."""
    depth, quoted, escaped = 0, False, False
    for char in line:
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == "'":
                quoted = False
        elif char == "'":
            quoted = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return True
    return depth != 0 or quoted
