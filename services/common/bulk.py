"""Plain DB-API statements for batches' hot reads and writes (budget's apply, ingest's accept).

A batch writes hundreds of rows per table; SQLAlchemy's per-row parameter processing and the
expanding IN of its statements cost more than the database's own work (profiled: about half of
the apply time). Here each statement is rendered once per dialect, rows are plain tuples, the
column types' own bind processors convert the few values that need it (so SQLite stores dates
exactly as SQLAlchemy would), and PostgreSQL takes inserts by COPY. Driver errors are raised as
SQLAlchemy's (IntegrityError, OperationalError …), which is what the consumer sorts them by.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

Row = tuple[Any, ...]
_MISSING = object()
_CHUNK = 400  # values per IN (...): under SQLite's bound-parameter limit


class Statements:
    """A table's INSERT (or COPY) and UPDATE-by-primary-key for one dialect and column list."""

    def __init__(self, table: sa.Table, columns: Sequence[str], dialect: sa.Dialect) -> None:
        quote = dialect.identifier_preparer.quote
        self.dialect = dialect
        self.copy = dialect.name == "postgresql"
        ph = "?" if dialect.paramstyle == "qmark" else "%s"
        cols = [table.c[name] for name in columns]
        names = ", ".join(quote(c.name) for c in cols)
        self.insert_sql = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({', '.join([ph] * len(cols))})"
        self.copy_sql = f"COPY {quote(table.name)} ({names}) FROM STDIN"
        pk = [c.name for c in table.primary_key.columns]
        rest = [i for i, name in enumerate(columns) if name not in pk]
        keys = [columns.index(name) for name in pk if name in columns]  # an id key: insert only
        self.update_order = rest + keys
        self.update_sql = (f"UPDATE {quote(table.name)} SET "
                           + ", ".join(f"{quote(columns[i])} = {ph}" for i in rest)
                           + " WHERE " + " AND ".join(f"{quote(name)} = {ph}" for name in pk))
        # PostgreSQL: one UPDATE … FROM unnest(one array per column) per batch, instead of a
        # statement per row (or a VALUES list whose thousands of placeholders psycopg parses).
        ordered = [cols[i] for i in self.update_order]
        self.update_from_sql = (
            f"UPDATE {quote(table.name)} AS t SET "
            + ", ".join(f"{quote(columns[i])} = v.{quote(columns[i])}" for i in rest)
            + " FROM unnest(" + ", ".join(f"%s::{c.type.compile(dialect)}[]" for c in ordered) + ") AS v("
            + ", ".join(quote(c.name) for c in ordered) + ") WHERE "
            + " AND ".join(f"t.{quote(name)} = v.{quote(name)}" for name in pk))
        # Rows not yet there, and which they were: INSERT … ON CONFLICT (primary key) DO NOTHING
        # RETURNING the key (an inbox claims a batch's event ids in one statement).
        on_conflict = f" ON CONFLICT ({', '.join(quote(name) for name in pk)}) DO NOTHING RETURNING " + ", ".join(
            quote(name) for name in pk)
        self.insert_new_sql = (
            f"INSERT INTO {quote(table.name)} ({names}) SELECT * FROM unnest("
            + ", ".join(f"%s::{c.type.compile(dialect)}[]" for c in cols) + ")" + on_conflict)
        self.insert_values_sql = f"INSERT INTO {quote(table.name)} ({names}) VALUES {{}}" + on_conflict
        self.row_placeholders = f"({', '.join([ph] * len(cols))})"
        # Binary columns go to the driver as bytes, which sqlite3 and psycopg take as they are
        # (their processor only wraps each value in the driver's Binary).
        self.processors: list[tuple[int, Callable[[Any], Any], dict[Any, Any] | None]] = [
            (i, p, None if isinstance(c.type, sa.JSON) else {}) for i, c in enumerate(cols)
            if not isinstance(c.type, sa.LargeBinary) and (p := c.type._cached_bind_processor(dialect)) is not None]

    def bind(self, rows: Iterable[Row]) -> list[Row]:
        """Rows as the driver takes them (dates as text on SQLite, JSON as text …). The same
        dates, stamps and rates recur across a batch's rows, so converted values are kept."""
        if not self.processors:
            return list(rows)
        out = []
        for row in rows:
            values = list(row)
            for i, process, memo in self.processors:
                value = values[i]
                if value is None:
                    continue
                if memo is None:
                    values[i] = process(value)
                    continue
                bound = memo.get(value, _MISSING)
                if bound is _MISSING:
                    if len(memo) > 10_000:
                        memo.clear()
                    bound = memo[value] = process(value)
                values[i] = bound
            out.append(tuple(values))
        return out

    def insert(self, conn: sa.Connection, rows: list[Row]) -> None:
        if not rows:
            return
        bound = self.bind(rows)
        if self.copy:
            def copy(cur: Any) -> None:
                with cur.copy(self.copy_sql) as cp:
                    for row in bound:
                        cp.write_row(row)
            run(conn, self.copy_sql, copy)
        else:
            run(conn, self.insert_sql, lambda cur: cur.executemany(self.insert_sql, bound))

    def insert_new(self, conn: sa.Connection, rows: list[Row]) -> list[Row]:
        """Insert the rows whose primary key is not there yet (rows repeating a key within
        `rows` included: the first one is inserted); returns the keys inserted."""
        if not rows:
            return []
        bound = self.bind(rows)
        if self.copy:
            arrays = [array_literal(column) for column in zip(*bound, strict=True)]

            def claim(cur: Any) -> list[Row]:
                cur.execute(self.insert_new_sql, arrays)
                inserted: list[Row] = cur.fetchall()
                return inserted
            result: list[Row] = run(conn, self.insert_new_sql, claim)
            return result
        out: list[Row] = []
        per_statement = max(1, _CHUNK // len(bound[0]))
        for start in range(0, len(bound), per_statement):
            chunk = bound[start:start + per_statement]
            sql = self.insert_values_sql.format(", ".join([self.row_placeholders] * len(chunk)))
            params = [value for row in chunk for value in row]

            def claim_chunk(cur: Any, sql: str = sql, params: list[Any] = params) -> list[Row]:
                cur.execute(sql, params)
                inserted: list[Row] = cur.fetchall()
                return inserted
            out += run(conn, sql, claim_chunk)
        return out

    def update(self, conn: sa.Connection, rows: list[Row]) -> None:
        if not rows:
            return
        pick = operator.itemgetter(*self.update_order)
        bound = [pick(r) for r in self.bind(rows)]
        if self.copy:
            arrays = [array_literal(column) for column in zip(*bound, strict=True)]
            run(conn, self.update_from_sql, lambda cur: cur.execute(self.update_from_sql, arrays))
            return
        run(conn, self.update_sql, lambda cur: cur.executemany(self.update_sql, bound))


def array_literal(values: Iterable[Any]) -> str:
    """A PostgreSQL array literal ('{"a","b",NULL}') of the values, for a `%s::type[]` parameter:
    psycopg dumps a Python list element by element in Python (ListDumper: a quarter of the
    PostgreSQL apply time at 7,000 values per batch), while the server parses one text literal
    in C. Numbers go bare; everything else is quoted (stamps contain spaces, strings anything,
    "NULL" as text included): str() of an int, Decimal, date or aware datetime is the input form
    PostgreSQL reads back as the same value (tests/service/test_bulk_statements.py)."""
    out: list[str] = []
    append = out.append
    for value in values:
        kind = type(value)
        if kind is int or kind is Decimal:  # digits, sign, point, exponent, NaN: never quoted
            append(str(value))
        elif kind is str:
            if "\\" in value or '"' in value:
                value = value.replace("\\", "\\\\").replace('"', '\\"')
            append(f'"{value}"')
        elif kind is date or kind is datetime:
            append(f'"{value}"')
        elif value is None:
            append("NULL")
        else:
            append(_quoted(value))
    return "{" + ",".join(out) + "}"


def _quoted(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError("bytes have no array literal here: bind them as a list")
    if isinstance(value, float) and value != value:
        return "NaN"
    text = str(value)  # bool ("True"), float, subclasses of the types above
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run(conn: sa.Connection, sql: str, work: Callable[[Any], Any]) -> Any:
    """`work(cursor)` on the session's own DB-API connection (same transaction), with driver
    errors turned into SQLAlchemy's."""
    dbapi_conn = conn.connection.dbapi_connection
    assert dbapi_conn is not None
    error = conn.dialect.loaded_dbapi.Error
    try:
        # Opening the cursor fails too when the server went away: an outage, which the consumer
        # must see as SQLAlchemy's OperationalError (retry the batch), not as the event's fault.
        cur = dbapi_conn.cursor()
    except error as exc:
        raise sa.exc.DBAPIError.instance(sql, None, exc, error) from exc
    try:
        return work(cur)
    except error as exc:
        raise sa.exc.DBAPIError.instance(sql, None, exc, error) from exc
    finally:
        cur.close()


def select_in(conn: sa.Connection, sql: str, values: Iterable[Any]) -> Iterator[Row]:
    """Rows of `sql` (ending in `IN ({})`) for the values, in chunks; on PostgreSQL as one
    `= ANY(array)` parameter (psycopg parses every placeholder of a query on the client)."""
    unique = sorted(set(values))
    if conn.dialect.name == "postgresql":
        # Text values (ids) as one array literal, which the server parses (see array_literal).
        literal = all(type(v) is str for v in unique)
        any_sql = sql.replace(" IN ({})", " = ANY(%s::text[])" if literal else " = ANY(%s)")
        param: Any = array_literal(unique) if literal else unique

        def fetch_all(cur: Any) -> list[Row]:
            cur.execute(any_sql, [param])
            rows: list[Row] = cur.fetchall()
            return rows
        yield from run(conn, any_sql, fetch_all)
        return
    ph = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start:start + _CHUNK]
        statement = sql.format(", ".join([ph] * len(chunk)))

        def fetch(cur: Any, statement: str = statement, chunk: list[Any] = chunk) -> list[Row]:
            cur.execute(statement, chunk)
            rows: list[Row] = cur.fetchall()
            return rows
        yield from run(conn, statement, fetch)


def select_in_table(conn: sa.Connection, table: sa.Table, columns: Sequence[str], column: str,
                    values: Iterable[Any]) -> Iterator[Row]:
    """The columns of the rows whose `column` is one of the values, converted as SQLAlchemy
    would read them (dates from SQLite's text …)."""
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    cols = [table.c[name] for name in columns]
    sql = (f"SELECT {', '.join(quote(c.name) for c in cols)} FROM {quote(table.name)}"
           f" WHERE {quote(column)} IN ({{}})")
    processors = [(i, p) for i, c in enumerate(cols)
                  if (p := c.type._cached_result_processor(dialect, None)) is not None]
    for row in select_in(conn, sql, values):
        if processors:
            values_ = list(row)
            for i, process in processors:
                values_[i] = process(values_[i])
            row = tuple(values_)
        yield row
