"""No SQL outside the storage floor: every statement lives in ``tracestore/``.

Components and the roof call tracestore functions; a SQL string anywhere else means
the schema is known in two places again. This reads every string constant (plain and
f-string parts) of every module outside the floor and fails on text that looks like a
ClickHouse statement, naming the file and line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.support import ROOT

OUTSIDE_FLOOR = ("collector", "dashboard", "sidecar", "sidetrace", "runtime")

SQL = re.compile(
    r"\bSELECT\b[\s\S]*\bFROM\b"
    r"|\bINSERT\s+INTO\b"
    r"|\bALTER\s+TABLE\b"
    r"|\b(?:CREATE|ATTACH|DETACH)\s+(?:OR\s+REPLACE\s+)?"
    r"(?:TEMPORARY\s+)?(?:TABLE|(?:MATERIALIZED\s+)?VIEW|DATABASE|DICTIONARY)\b"
    r"|\bDROP\s+(?:TABLE|VIEW|DATABASE|DICTIONARY|PARTITION)\b"
    r"|\bOPTIMIZE\s+TABLE\b"
    r"|\bTRUNCATE\s+(?:TABLE\b|\w+)"
    r"|\bSYSTEM\s+(?:FLUSH|STOP|START|SYNC|DROP|RELOAD|KILL)\b"
    r"|\bSHOW\s+(?:CREATE|TABLES|DATABASES)\b"
    r"|\bKILL\s+(?:QUERY|MUTATION)\b"
    r"|\b(?:UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b"
    # Fragments composed into a statement elsewhere: clauses, and bound parameters.
    r"|\b(?:PREWHERE|GROUP\s+BY|ORDER\s+BY|ARRAY\s+JOIN|LIMIT\s+\d+\s+BY)\b"
    r"|\bWHERE\s+\w+\s*(?:=|!=|<|>|<=|>=|IN)\s"
    r"|\w+\s*(?:=|!=|<|>|<=|>=|\bIN)\s*(?:\w+\()*%\(\w+\)s"
)

# Strings that read as SQL but are not storage statements, each with the reason.
NOT_STORAGE = {
    # The demo's inventory service pretends to query its own Postgres: these are the
    # ``db.query.text`` values its spans record, never sent to any database.
    ("sidetrace/demo/http_apps.py", "UPDATE stock SET reserved = reserved + 1 WHERE sku = $1"),
    ("sidetrace/demo/http_apps.py", "SELECT available FROM stock WHERE sku = $1"),
}


def modules() -> list[Path]:
    return sorted(path for top in OUTSIDE_FLOOR for path in (ROOT / top).rglob("*.py"))


def string_parts(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of every string constant, f-string parts included; docstrings left out."""
    skip = set()  # docstrings, and the pieces of f-strings (read whole below)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(value) for value in node.values)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                skip.add(id(body[0].value))
    parts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            parts.append((node.lineno, text))
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
        ):
            parts.append((node.lineno, node.value))
    return parts


def sql_strings(path: Path) -> list[str]:
    relative = path.relative_to(ROOT).as_posix()
    found = []
    for line, text in string_parts(ast.parse(path.read_text(encoding="utf-8"))):
        if SQL.search(text) and (relative, text) not in NOT_STORAGE:
            found.append(f"{relative}:{line}: {' '.join(text.split())[:100]}")
    return found


@pytest.mark.parametrize(
    "text",
    [
        "SELECT count() FROM spans",
        "INSERT INTO edges_minute (minute) SELECT 1",
        "ALTER TABLE {} DROP PARTITION ID '{}'",
        "SHOW CREATE TABLE {}",
        "OPTIMIZE TABLE spans FINAL",
        "SYSTEM FLUSH LOGS",
        "CREATE MATERIALIZED VIEW v TO t AS SELECT 1",
        "DROP TABLE IF EXISTS t",
        "TRUNCATE TABLE spans",
        "service_name IN %(services)s AND span_kind IN %(kinds)s",
        "ts >= toDateTime(%(from_s)s)",
        "GROUP BY {}, minute",
        "WHERE day = {}",
    ],
)
def test_the_pattern_knows_sql(text: str) -> None:
    assert SQL.search(text)


@pytest.mark.parametrize(
    "text",
    [
        "select a service",
        "rows per INSERT at most",
        "Time of one INSERT into ClickHouse.",
        "from",
        "%(asctime)s %(levelname)s %(name)s: %(message)s",
        "sorted by start, group by service in the UI",
    ],
)
def test_the_pattern_passes_prose(text: str) -> None:
    assert not SQL.search(text)


def test_no_sql_outside_the_storage_floor() -> None:
    found = [hit for path in modules() for hit in sql_strings(path)]
    assert not found, "SQL outside tracestore/:\n" + "\n".join(found)
