"""Alembic histories match the SQLModel tables, on SQLite and PostgreSQL: a model change
without its migration fails here."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import services.auth.store
import services.budget.store
import services.ingest.store
import services.notify.store
import services.programs.store  # noqa: F401  (tables register on SQLModel.metadata)
from services.common.db import make_engine, upgrade
from services.common.settings import SERVICES


@pytest.mark.parametrize("service", [*SERVICES, "auth"])
def test_head_matches_models(db_url, service):
    upgrade(db_url, service)
    upgrade(db_url, service)  # idempotent: a restart migrates nothing
    engine = make_engine(db_url)
    prefix = f"{service}_"

    def include(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return (getattr(table, "name", name) or "").startswith(prefix)

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": include, "compare_type": True,
                                                     "version_table": f"alembic_version_{service}"})
        diff = compare_metadata(ctx, SQLModel.metadata)
    engine.dispose()
    assert diff == [], f"{service}: models and migrations differ; run `execwatch db revision {service} -m ...`"
