"""`services.common.bulk` writes what SQLAlchemy would: rows inserted and updated through its
statements (on PostgreSQL: COPY, and one UPDATE … FROM unnest of array literals) read back
equal to the same rows written through SQLAlchemy Core, on SQLite and PostgreSQL, for values
that need quoting (quotes, backslashes, braces, commas, spaces, "NULL" as text), NULLs,
negative and large amounts, Decimals, dates and aware timestamps."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from services.common import bulk

_TRICKY = ["", "NULL", "null", 'a"b', "a\\b", "\\\"", "{x}", "a,b", " lead", "trail ", "사업 1", "'", "a\tb"]


def _table(name: str) -> tuple[sa.MetaData, sa.Table]:
    meta = sa.MetaData()
    table = sa.Table(
        name, meta,
        sa.Column("k", sa.String(40), primary_key=True), sa.Column("n", sa.Integer, primary_key=True),
        sa.Column("text", sa.String(200)), sa.Column("amount", sa.BigInteger), sa.Column("rate", sa.Numeric(9, 1)),
        sa.Column("day", sa.Date), sa.Column("at", sa.DateTime(timezone=True)), sa.Column("flag", sa.Boolean))
    return meta, table


def _rows(rng: random.Random, n: int) -> list[tuple[Any, ...]]:
    def maybe(value: Any) -> Any:
        return None if rng.random() < 0.15 else value
    start = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    return [(f"k{i}{rng.choice(_TRICKY)}", i, maybe(rng.choice(_TRICKY) + rng.choice(_TRICKY)),
             maybe(rng.choice([0, -1, 10**15, -(10**15), rng.randrange(-10**12, 10**12)])),
             maybe(Decimal(rng.randrange(-99999, 99999)).scaleb(-1)),
             maybe(date(2025, 1, 1) + timedelta(days=rng.randrange(365))),
             maybe(start + timedelta(seconds=rng.randrange(10**7), microseconds=rng.randrange(10**6))),
             maybe(rng.random() < 0.5))
            for i in range(n)]


def _read(conn: sa.Connection, table: sa.Table) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(sa.select(table).order_by(table.c.k, table.c.n))]


def test_bulk_insert_and_update_write_what_core_writes(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    try:
        meta, fast = _table("bulk_fast")
        _, core = _table("bulk_core")
        core.to_metadata(meta)
        meta.create_all(engine)
        columns = [c.name for c in fast.columns]
        rng = random.Random(14)
        rows = _rows(rng, 300)
        # New values for every column but the key, for two thirds of the rows.
        updated = [(r[0], r[1], *_rows(rng, 1)[0][2:]) for r in rows if rng.random() < 0.67]
        with engine.begin() as conn:
            statements = bulk.Statements(fast, columns, conn.dialect)
            statements.insert(conn, rows)
            statements.update(conn, updated)
            conn.execute(core.insert(), [dict(zip(columns, r, strict=True)) for r in rows])
            conn.execute(core.update().where(core.c.k == sa.bindparam("pk_k"), core.c.n == sa.bindparam("pk_n")),
                         [{"pk_k": r[0], "pk_n": r[1], **dict(zip(columns[2:], r[2:], strict=True))}
                          for r in updated])
        with engine.connect() as conn:
            got, want = _read(conn, fast), _read(conn, meta.tables["bulk_core"])
            assert len(got) == len(rows)
            assert got == want
            # and select_in finds exactly the keys asked for, quoting included
            asked = {r[0] for r in rows[::3]} | {"absent", 'absent"'}
            sql = f"SELECT k FROM {fast.name} WHERE k IN ({{}})"
            assert {r[0] for r in bulk.select_in(conn, sql, asked)} == {r[0] for r in rows[::3]}
    finally:
        engine.dispose()


def test_array_literal_quotes_what_postgresql_would_misread() -> None:
    assert bulk.array_literal([1, None, "NULL", 'a"b\\c', Decimal("-1.5"), date(2025, 1, 2)]) == (
        '{1,NULL,"NULL","a\\"b\\\\c",-1.5,"2025-01-02"}')


def test_insert_new_inserts_and_returns_only_keys_not_there(db_url: str) -> None:
    """An inbox claim: keys already stored, and a key repeated within the rows, are not inserted
    again (nor returned); every other row is, with its values, on both databases."""
    engine = sa.create_engine(db_url)
    try:
        meta = sa.MetaData()
        table = sa.Table("bulk_inbox", meta, sa.Column("event_id", sa.String(36), primary_key=True),
                         sa.Column("at", sa.DateTime(timezone=True)))
        meta.create_all(engine)
        at = datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
        stored = [f"e{i}" for i in range(0, 1000, 3)]
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"event_id": e, "at": at - timedelta(days=1)} for e in stored])
        asked = [f"e{i}" for i in range(1000)] + ["e1", "e4", 'e"', "e\\"]  # repeats, quoting
        with engine.begin() as conn:
            statements = bulk.Statements(table, ["event_id", "at"], conn.dialect)
            inserted = statements.insert_new(conn, [(e, at) for e in asked])
        assert sorted(r[0] for r in inserted) == sorted(set(asked) - set(stored))
        with engine.connect() as conn:
            rows = dict(conn.execute(sa.select(table.c.event_id, table.c.at)).all())
        assert len(rows) == len(set(asked))
        # (SQLite gives the stamps back naive, SQLAlchemy's way, whoever wrote them)
        assert {e for e, when in rows.items() if when.replace(tzinfo=UTC) == at} == set(asked) - set(stored)
    finally:
        engine.dispose()
