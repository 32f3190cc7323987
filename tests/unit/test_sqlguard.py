"""The statement check of the /sql endpoint, on `EXPLAIN AST` texts printed by chdb 26.9 (copied verbatim).

The engine-level behaviour (readonly session, limits, streaming) is covered against a running service in
tests/integration/test_security.py.
"""

from __future__ import annotations

import pytest

from stream.storage.sqlguard import ReadOnlyViolation, check_ast

TABLE_FUNCTIONS = ("file", "url", "remote", "numbers", "zeros", "s3", "format", "python", "generateRandom")

SELECT_1 = """SelectWithUnionQuery (children 1)
 ExpressionList (children 1)
  SelectQuery (children 1)
   ExpressionList (children 1)
    Literal UInt64_1"""

FROM_FILE = """SelectWithUnionQuery (children 1)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 1)
    Asterisk
   TablesInSelectQuery (children 1)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      Function file (children 1)
       ExpressionList (children 1)
        Literal '/proc/self/environ'"""

URL_IN_SUBQUERY = """SelectWithUnionQuery (children 1)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 1)
    Asterisk
   TablesInSelectQuery (children 1)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      Subquery (children 1)
       SelectWithUnionQuery (children 1)
        ExpressionList (children 1)
         SelectQuery (children 2)
          ExpressionList (children 1)
           Asterisk
          TablesInSelectQuery (children 1)
           TablesInSelectQueryElement (children 1)
            TableExpression (children 1)
             Function url (children 1)
              ExpressionList (children 3)
               Literal 'http://x/y'
               Literal 'CSV'
               Literal 'a String'"""

NUMBERS_JOIN_ZEROS = """SelectWithUnionQuery (children 1)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 1)
    Asterisk
   TablesInSelectQuery (children 2)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      Function numbers (alias n) (children 1)
       ExpressionList (children 1)
        Literal UInt64_10
    TablesInSelectQueryElement (children 2)
     TableExpression (children 1)
      Function zeros (alias z) (children 1)
       ExpressionList (children 1)
        Literal UInt64_3
     TableJoin (children 1)
      Literal UInt64_1"""

SCALAR_FILE = SELECT_1.replace("Literal UInt64_1", "Function file (children 1)\n     ExpressionList (children 1)\n"
                                                   "      Literal '/etc/passwd'")
SCALAR_FORMAT = SELECT_1.replace("Literal UInt64_1", "Function format (children 1)\n     ExpressionList (children 2)\n"
                                                     "      Literal '{}'\n      Literal 'a'")
INTO_OUTFILE = SELECT_1.replace("SelectWithUnionQuery (children 1)", "SelectWithUnionQuery (children 2)") + \
    "\n Literal '/tmp/x'"
FORMAT_JSON = SELECT_1.replace("SelectWithUnionQuery (children 1)", "SelectWithUnionQuery (children 2)") + \
    "\n Identifier JSON"
WITH_SETTINGS = SELECT_1.replace("  SelectQuery (children 1)", "  SelectQuery (children 2)") + "\n   Set"
INSERT = "InsertQuery   (children 3)\n Identifier d\n Identifier t\n" + SELECT_1.replace("\n", "\n ")
EXPLAIN_SELECT = "Explain EXPLAIN (children 1)\n" + "\n".join(" " + line for line in SELECT_1.splitlines())
EXPLAIN_INSERT = "Explain EXPLAIN AST (children 1)\n InsertQuery (children 1)\n  Identifier t"
ALIAS_WITH_NEWLINE = SELECT_1.replace("Literal UInt64_1", "Literal UInt64_1 (alias a\n  Function file)")


@pytest.mark.parametrize(("ast", "kind"), [
    (SELECT_1, "SelectWithUnionQuery"), (NUMBERS_JOIN_ZEROS, "SelectWithUnionQuery"),
    (SCALAR_FORMAT, "SelectWithUnionQuery"), ("ShowTables (children 1)\n Identifier d", "ShowTables"),
    ("DescribeQuery (children 1)\n TableExpression (children 1)\n  TableIdentifier d.t", "DescribeQuery"),
    ("ExistsTableQuery d t (children 2)\n Identifier d\n Identifier t", "ExistsTableQuery"),
    (EXPLAIN_SELECT, "Explain"),
    (SELECT_1.replace("UInt64_1", "'it\\'s (not'"), "SelectWithUnionQuery"),  # quoted parentheses are text
])
def test_read_only_statements_pass(ast: str, kind: str) -> None:
    assert check_ast(ast, TABLE_FUNCTIONS) == kind


@pytest.mark.parametrize(("ast", "message"), [
    (FROM_FILE, r"file\(\) is not allowed"), (URL_IN_SUBQUERY, r"url\(\) is not allowed"),
    (SCALAR_FILE, r"file\(\) is not allowed"), (INSERT, "not InsertQuery"), (INTO_OUTFILE, "INTO OUTFILE"),
    (FORMAT_JSON, "FORMAT"), (WITH_SETTINGS, "SETTINGS are not allowed"), (EXPLAIN_INSERT, "only EXPLAIN of a SELECT"),
    (ALIAS_WITH_NEWLINE, "line breaks"), ("", "empty query"), ("AlterQuery (children 1)", "not AlterQuery"),
    (NUMBERS_JOIN_ZEROS.replace("Function zeros", "Function mysterytable"), r"mysterytable\(\) is not allowed"),
    (FROM_FILE.replace("Function file", "Function FILE"), r"FILE\(\) is not allowed"),
    (FROM_FILE.replace("Function file", "Function remoteSecure"), r"remoteSecure\(\) is not allowed"),
])
def test_everything_else_is_refused_with_the_reason(ast: str, message: str) -> None:
    with pytest.raises(ReadOnlyViolation, match=message):
        check_ast(ast, TABLE_FUNCTIONS)


def test_the_engines_table_functions_are_refused_even_as_scalars() -> None:
    python_scalar = SCALAR_FILE.replace("Function file", "Function Python")
    with pytest.raises(ReadOnlyViolation, match=r"Python\(\) is not allowed"):
        check_ast(python_scalar, TABLE_FUNCTIONS)
    custom = SCALAR_FILE.replace("Function file", "Function newfangled")
    assert check_ast(custom, TABLE_FUNCTIONS) == "SelectWithUnionQuery"
    with pytest.raises(ReadOnlyViolation, match="newfangled"):
        check_ast(custom, (*TABLE_FUNCTIONS, "newFangled"))

