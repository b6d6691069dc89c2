"""The ClickHouse seam: one small interface, two backends chosen by one URL.

Only this module talks to a ClickHouse driver (with ``native_columns``, the
column writer it puts into the driver). Callers hand it SQL with
``%(name)s`` parameters, or named columns for an insert; identifiers (table and
column names) are checked against a strict pattern because they cannot be
parameters.
"""

from __future__ import annotations

import argparse
import re
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

DEFAULT_URL = "chdb:./data/sidetrace"
DEFAULT_DATABASE = "sidetrace"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class StoreError(Exception):
    """A ClickHouse problem explained in one line, fit to print to a user."""


class StoreRefused(StoreError):
    """ClickHouse refused an insert for its data (a value its column cannot hold), not
    for being unreachable or busy: sending the same rows again fails again."""


# ClickHouse error codes that blame the data of an insert, on both stores.
_CONTENT_ERRORS = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH (also clickhouse-driver's own, client side)
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        190,  # SIZES_OF_ARRAYS_DOESNT_MATCH
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    }
)
# What converting Python values to a column raises in the client (driver or Arrow).
_CONVERSION_ERRORS = (OverflowError, TypeError, ValueError, struct.error)


def _refused_content(exc: BaseException) -> bool:
    """True when ``exc`` (from an insert) blames the rows, not the connection."""
    code = getattr(exc, "code", None)
    if code is None:
        match = re.search(r"\bCode: (\d+)\.", str(exc))
        code = int(match.group(1)) if match else None
    if code is not None:
        return code in _CONTENT_ERRORS
    return isinstance(exc, _CONVERSION_ERRORS)


def check_identifier(name: str) -> str:
    """Identifiers cannot be bound as parameters, so they must match a strict pattern."""
    if not _IDENTIFIER.match(name):
        raise StoreError(f"invalid identifier {name!r}")
    return name


class Store(Protocol):
    """What every component may ask of ClickHouse."""

    url: str
    database: str
    server_version: tuple[int, int]
    native_inserts: bool  # insert takes EncodedColumn values (a column's Native bytes)

    def execute(self, sql: str) -> None:
        """Run DDL or any statement without a result."""

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        """Run a SELECT with ``%(name)s`` parameters and return its rows."""

    def insert(self, table: str, columns: Mapping[str, Sequence[Any]]) -> None:
        """Insert named columns (equal lengths) as one block."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class StoreURL:
    kind: str  # "native" or "chdb"
    host: str = "127.0.0.1"
    port: int = 9000
    user: str = "default"
    password: str = ""
    database: str = DEFAULT_DATABASE
    path: str = ""


def parse_url(url: str) -> StoreURL:
    """Parse ``chdb:PATH`` or ``clickhouse://[user[:password]@]host[:port]/database``."""
    if url.startswith("chdb:"):
        path, _, query = url[len("chdb:") :].partition("?database=")
        if not path:
            raise StoreError(f"bad ClickHouse URL {url!r}: chdb: needs a path, e.g. chdb:./data")
        database = query or DEFAULT_DATABASE
        if not _IDENTIFIER.match(database):
            raise StoreError(f"bad ClickHouse URL {url!r}: invalid database name {database!r}")
        return StoreURL(kind="chdb", path=path, database=database)
    parts = urlsplit(url)
    if parts.scheme != "clickhouse":
        raise StoreError(
            f"bad ClickHouse URL {url!r}: expected chdb:PATH or "
            "clickhouse://[user[:password]@]host[:port]/database"
        )
    try:
        port = parts.port or 9000
    except ValueError as exc:
        raise StoreError(f"bad ClickHouse URL {url!r}: {exc}") from None
    if not parts.hostname:
        raise StoreError(f"bad ClickHouse URL {url!r}: missing host")
    database = parts.path.lstrip("/") or DEFAULT_DATABASE
    if not _IDENTIFIER.match(database):
        raise StoreError(f"bad ClickHouse URL {url!r}: invalid database name {database!r}")
    return StoreURL(
        kind="native",
        host=parts.hostname,
        port=port,
        user=unquote(parts.username) if parts.username else "default",
        password=unquote(parts.password) if parts.password else "",
        database=database,
    )


def _insert_sql(table: str, columns: Mapping[str, Sequence[Any]]) -> tuple[str, int]:
    names = [check_identifier(c) for c in columns]
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise StoreError(f"insert into {table}: columns have different lengths {sorted(lengths)}")
    return f"INSERT INTO {check_identifier(table)} ({', '.join(names)})", (lengths or {0}).pop()


class NativeStore:
    """A ClickHouse server over the native protocol, one client per thread."""

    RETRIES = 3

    def __init__(self, url: str, parsed: StoreURL, connect_timeout: float = 5.0) -> None:
        self.url = url
        self._parsed = parsed
        self._timeout = connect_timeout
        self.database = parsed.database
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()
        from tracestore import native_columns

        # the driver's column writer, with our columns done in C
        self.native_inserts = native_columns.install()
        self.server_version = self._probe()

    def _client(self, database: str | None = None) -> Any:
        from clickhouse_driver import Client

        client = getattr(self._local, "client", None)
        if client is None or database is not None:
            p = self._parsed
            client = Client(
                p.host,
                port=p.port,
                user=p.user,
                password=p.password,
                database=database or p.database,
                connect_timeout=self._timeout,
                send_receive_timeout=300,
                settings={
                    "allow_experimental_low_cardinality_type": 1,
                    # On a cluster, an INSERT into a Distributed table returns once every
                    # shard has its rows: what one statement wrote, the next one reads
                    # (the tiering job decides, copies, then marks), and the collector
                    # acknowledges its spool only for data the shards hold.
                    "insert_distributed_sync": 1,
                },
            )
            if database is None:
                self._local.client = client
                with self._lock:
                    self._clients.append(client)
        return client

    def _probe(self) -> tuple[int, int]:
        """Connect once, create the database if missing, and read the server version."""
        p = self._parsed
        where = f"{p.host}:{p.port}"
        try:
            boot = self._client(database="default")
            boot.execute(f"CREATE DATABASE IF NOT EXISTS {check_identifier(p.database)}")
            boot.disconnect()
            version = self._run(lambda c: c.execute("SELECT version()"))[0][0]
        except StoreError:
            raise
        except Exception as exc:  # the driver raises many types; explain them once
            raise StoreError(explain_driver_error(exc, where, p)) from None
        major, minor = (int(x) for x in str(version).split(".")[:2])
        return major, minor

    def _run(self, call: Any) -> Any:
        """Run ``call(client)``, reconnecting with backoff on network errors."""
        from clickhouse_driver import errors

        delay = 0.2
        for attempt in range(self.RETRIES):
            client = self._client()
            try:
                return call(client)
            except (errors.NetworkError, errors.SocketTimeoutError, EOFError, OSError):
                client.disconnect()
                if attempt == self.RETRIES - 1:
                    raise
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def execute(self, sql: str) -> None:
        self._wrap(lambda c: c.execute(sql))

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        return self._wrap(lambda c: c.execute(sql, dict(params or {})))

    def insert(self, table: str, columns: Mapping[str, Sequence[Any]]) -> None:
        sql, rows = _insert_sql(table, columns)
        if rows == 0:
            return
        from tracestore.native_columns import EncodedColumn, own_column

        data = [  # the driver may write these as they are
            v if type(v) is EncodedColumn else own_column(v) for v in columns.values()
        ]
        try:
            self._wrap(lambda c: c.execute(sql + " VALUES", data, columnar=True))
        except StoreError as exc:
            if exc.__cause__ is not None and _refused_content(exc.__cause__):
                raise StoreRefused(str(exc)) from exc.__cause__
            raise

    def _wrap(self, call: Any) -> Any:
        try:
            return self._run(call)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(explain_driver_error(exc, self.url_safe, self._parsed)) from exc

    @property
    def url_safe(self) -> str:
        return f"{self._parsed.host}:{self._parsed.port}/{self.database}"

    def close(self) -> None:
        with self._lock:
            for client in self._clients:
                client.disconnect()
            self._clients.clear()


def explain_driver_error(exc: Exception, where: str, parsed: StoreURL) -> str:
    """Turn a clickhouse-driver exception into one line naming what is wrong."""
    from clickhouse_driver import errors

    if isinstance(exc, errors.ServerException):
        code = exc.code
        first_line = str(exc.message).strip().splitlines()[0] if exc.message else str(exc)
        if code in (192, 193, 516):
            return f"ClickHouse at {where} refused user {parsed.user!r}: wrong user or password"
        if code == 81:
            return f"ClickHouse at {where}: database {parsed.database!r} does not exist"
        return f"ClickHouse at {where} error {code}: {first_line[:300]}"
    if isinstance(exc, errors.NetworkError | errors.SocketTimeoutError | OSError | EOFError):
        return f"cannot reach ClickHouse at {where}: {str(exc).splitlines()[0][:200]}"
    return f"ClickHouse at {where}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"


class EmbeddedStore:
    """chDB: the real ClickHouse engine in this process, stored at a path.

    Only one process may own the path, and a process may open only one path.
    Each store is one chDB session (its own current database) used behind a lock;
    ``chdb:PATH?database=NAME`` selects another database under the same path.
    """

    native_inserts = False

    def __init__(self, url: str, parsed: StoreURL) -> None:
        try:
            from chdb import session
        except ImportError:
            raise StoreError(
                f"{url}: the embedded engine is not installed: "
                "pip install 'sidetrace[embedded]', or use clickhouse://"
            ) from None

        self.url = url
        self.database = parsed.database
        self._lock = threading.RLock()
        try:
            self._session = session.Session(parsed.path)
            self._session.query(f"CREATE DATABASE IF NOT EXISTS {self.database}")
            self._session.query(f"USE {self.database}")
            self._session.query("SET output_format_json_quote_64bit_integers = 0")
            version = self._text("SELECT version()").strip().strip('"')
        except Exception as exc:
            raise StoreError(f"cannot open embedded ClickHouse at {parsed.path!r}: {exc}") from None
        major, minor = (int(x) for x in version.split(".")[:2])
        self.server_version = (major, minor)

    def _text(self, sql: str, fmt: str = "CSV") -> str:
        with self._lock:
            result = self._session.query(sql, fmt)
        return result.bytes().decode() if result is not None else ""

    def execute(self, sql: str) -> None:
        try:
            self._text(sql)
        except Exception as exc:
            raise StoreError(f"embedded ClickHouse: {str(exc).strip().splitlines()[0]}") from exc

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        import json

        text = substitute(sql, params) if params else sql
        try:
            out = self._text(text, "JSONCompactEachRow")
        except Exception as exc:
            raise StoreError(f"embedded ClickHouse: {str(exc).strip().splitlines()[0]}") from exc
        return [_tuplify(json.loads(line)) for line in out.splitlines() if line]

    def insert(self, table: str, columns: Mapping[str, Sequence[Any]]) -> None:
        import pyarrow as pa

        sql, rows = _insert_sql(table, columns)
        if rows == 0:
            return
        try:
            data = pa.table({name: _arrow(values) for name, values in columns.items()})  # noqa: F841
        except (pa.ArrowException, *_CONVERSION_ERRORS) as exc:
            raise StoreRefused(f"embedded ClickHouse cannot take {table} rows: {exc}") from exc
        try:
            with self._lock:
                self._session.query(f"{sql} SELECT * FROM Python(data)")
        except Exception as exc:
            refused = StoreRefused if _refused_content(exc) else StoreError
            raise refused(f"embedded ClickHouse: {str(exc).strip().splitlines()[0]}") from exc

    def close(self) -> None:
        with self._lock:
            self._session.close()


def _arrow(values: Sequence[Any]) -> Any:
    import pyarrow as pa

    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    array = pa.array(values)
    if pa.types.is_list(array.type) and pa.types.is_null(array.type.value_type):
        array = array.cast(pa.list_(pa.string()))  # only empty lists: ClickHouse casts these
    return array


def _tuplify(row: list) -> tuple:
    """JSON rows come back as lists; native rows are tuples of tuples for tuples."""
    return tuple(row)


def substitute(sql: str, params: Mapping[str, Any]) -> str:
    """Client-side parameter binding with clickhouse-driver's own escaping."""
    from clickhouse_driver.util.escape import escape_param

    return sql % {key: escape_param(value, None) for key, value in params.items()}


_OPEN: dict[tuple[str, str], Store] = {}
_OPEN_LOCK = threading.Lock()


def open_store(url: str) -> Store:
    """Open (or reuse, for chDB whose path one process owns) the store named by ``url``."""
    parsed = parse_url(url)
    if parsed.kind == "chdb":
        with _OPEN_LOCK:
            key = (parsed.path, parsed.database)
            store = _OPEN.get(key)
            if store is None:
                store = EmbeddedStore(url, parsed)
                _OPEN[key] = store
            return store
    return NativeStore(url, parsed)


def add_clickhouse_flag(parser: argparse.ArgumentParser) -> None:
    """The one ``--clickhouse`` flag every role that reads or writes the store takes."""
    parser.add_argument(
        "--clickhouse",
        default=DEFAULT_URL,
        help="store URL: chdb:PATH (embedded) or clickhouse://user:pass@host:9000/db",
    )
