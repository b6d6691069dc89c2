"""INSERT columns written in ClickHouse's Native layout by C, not value by value in Python.

clickhouse-driver serialises a block column by column through one function,
``write_column`` (called by its ``BlockOutputStream``); for arrays it walks every row
in Python, which was the largest part of the collector's time after decoding. This
module replaces that function, in the driver's stream module only, with one that hands
the column types our tables use (integers, Float64, DateTime, String,
LowCardinality(String) and arrays of those) to ``_otlpdecode.encode_column``, which
writes the same bytes. Anything else (another type, a value that needs the driver's
conversion or would make it raise) goes to the driver's own ``write_column``, so its
errors and conversions are unchanged. The driver also copies every column into new
lists to cut it into blocks; ``column_chunks`` skips that for the columns the store
copied for the insert (``own_column``), which the garbage collector does not visit.

The hook is installed only on the driver versions it was checked against
(``tests/tracestore/test_native_columns.py`` compares its bytes with the driver's and what a
real server reads back); on others, or without the extension, the driver writes
everything itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from clickhouse_driver import client
from clickhouse_driver.columns import service
from clickhouse_driver.util import helpers

from tracestore.compiled_columns import EncodedColumn

try:
    from tracestore import _otlpdecode
except ImportError:  # not built
    _otlpdecode = None

DRIVER_VERSIONS = ((0, 2, 11), (0, 2, 12))  # [first, past-the-end): those the hook was checked on
ARRAY = 0x100
SCALARS = {  # the codes of _otlpdecode.c's N_* enum
    "UInt8": 1,
    "UInt16": 2,
    "UInt32": 3,
    "UInt64": 4,
    "Int8": 5,
    "Int16": 6,
    "Int32": 7,
    "Int64": 8,
    "DateTime": 3,  # seconds as UInt32; the driver passes ints through as they are
    "Float64": 9,
    "String": 10,
    "LowCardinality(String)": 11,
}


def column_code(spec: str) -> int | None:
    """The encoder's code for a column type as the server names it, or None."""
    if spec.startswith("Array(") and spec.endswith(")"):
        inner = SCALARS.get(spec[6:-1])
        return None if inner is None else inner | ARRAY
    return SCALARS.get(spec)


def encode(spec: str, items: list) -> bytes | None:
    """The column's Native bytes (state prefix and data), or None: the driver's job."""
    code = column_code(spec)
    if code is None or _otlpdecode is None:
        return None
    return _otlpdecode.encode_column(code, items)


class OwnColumn(list):
    """A column's values copied for one insert: nothing else holds the list, so the driver
    may write it as it is, and the garbage collector need not visit it."""

    __slots__ = ()


def own_column(values: Iterable[Any]) -> OwnColumn:
    column = OwnColumn(values)
    if _otlpdecode is not None:
        _otlpdecode.untrack(column)  # no cycle can pass through a list only the insert holds
    return column


def column_chunks(columns: Sequence[Any], n: int) -> Iterator[list]:
    """The driver's ``column_chunks``, without its copy of every column when the
    columns are ``OwnColumn``s or ``EncodedColumn``s that fit one block."""
    if columns and all(type(c) in (OwnColumn, EncodedColumn) for c in columns):
        if 0 < len(columns[0]) <= n:
            yield list(columns)
            return
        if any(type(c) is EncodedColumn for c in columns):
            raise ValueError(f"{len(columns[0])} encoded rows do not fit one block of {n}")
    yield from helpers.column_chunks(columns, n)


def write_column(
    context: Any, column_name: str, column_spec: str, items: Any, buf: Any, types_check=False
) -> None:
    """The driver's ``write_column``, with the columns we can encode encoded in C."""
    if type(items) is EncodedColumn:
        if column_code(column_spec) != items.code:
            raise ValueError(
                f"column {column_name} is {column_spec}, not the type its bytes were written for"
            )
        buf.write(items.data)
        return
    settings = context.client_settings
    if (
        not types_check
        and type(items) in (list, OwnColumn)
        and not settings["strings_as_bytes"]
        and settings.get("strings_encoding", "utf-8") == "utf-8"
    ):
        data = encode(column_spec, items)
        if data is not None:
            buf.write(data)
            return
    service.write_column(context, column_name, column_spec, items, buf, types_check=types_check)


def install() -> bool:
    """Put ``write_column`` in the driver's block writer and ``column_chunks`` in its
    client (once); False where not checked."""
    import clickhouse_driver
    from clickhouse_driver.streams import native

    if native.write_column is write_column:
        return True
    first, past = DRIVER_VERSIONS
    if (
        _otlpdecode is None
        or not first <= tuple(clickhouse_driver.VERSION) < past
        or native.write_column is not service.write_column  # someone else's hook
        or client.column_chunks is not helpers.column_chunks
    ):
        return False
    client.column_chunks = column_chunks
    native.write_column = write_column
    return True
