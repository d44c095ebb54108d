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


_MIGRATE = """
import sys
from services.common.db import Database, upgrade
from services.common.leader import exclusive
url = sys.argv[1]
with exclusive(Database(url), "migrate:ingest"):
    print("locked", flush=True)
    upgrade(url, "ingest")
"""


def test_processes_sharing_a_sqlite_file_migrate_one_after_another(tmp_path):
    """ingest and its relay process start together on one SQLite file: the file lock makes the second
    wait while the first migrates (both at once failed with "index … already exists")."""
    import subprocess
    import sys
    import time

    from services.common.db import Database
    from services.common.leader import exclusive

    url = f"sqlite:///{tmp_path}/shared.db"
    with exclusive(Database(url), "migrate:ingest"):
        waiting = subprocess.Popen([sys.executable, "-c", _MIGRATE, url], stdout=subprocess.PIPE, text=True)
        time.sleep(1.5)  # ample for the child to start and reach the lock
        assert waiting.poll() is None  # still waiting for the lock this process holds
    out, _ = waiting.communicate(timeout=60)
    assert waiting.returncode == 0 and out.strip() == "locked"
    racers = [subprocess.Popen([sys.executable, "-c", _MIGRATE, url], stderr=subprocess.PIPE, text=True)
              for _ in range(3)]
    for racer in racers:
        _, err = racer.communicate(timeout=60)
        assert racer.returncode == 0, err[-2000:]
