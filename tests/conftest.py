"""Shared fixtures: settings, SQLite and PostgreSQL databases, the real broker, an SMTP sink.

Real parts are started here, once per session: the tansu broker on a free port, a fresh
PostgreSQL database on 127.0.0.1:5432 (dropped at the end), an aiosmtpd server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from services.common.embedded import EmbeddedBroker, MailSink
from services.common.settings import Settings

PG_ADMIN_URL = os.environ.get("EXECWATCH_TEST_PG", "postgresql://127.0.0.1:5432/test")
SEEDS = Path(__file__).resolve().parents[1].parent / "shared" / "seeds"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath) or "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka() -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A throw-away database per test session, so runs never see each other's rows."""
    name = f"execwatch_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fresh_pg_schema(pg_database: str) -> str:
    """Each test gets its own schema in the session database (search_path in the URL)."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{pg_database}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/execwatch.db"
    return _fresh_pg_schema(request.getfixturevalue("pg_database"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/execwatch.db"


@pytest.fixture
def mail_sink() -> Iterator[MailSink]:
    sink = MailSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        base: dict[str, object] = {
            "topic_prefix": f"t{uuid.uuid4().hex[:8]}.",
            "log_json": False,
            "log_level": "WARNING",
            "relay_interval_s": 0.2,
            "consumer_batch_timeout_ms": 50,
            "consumer_session_timeout_ms": 2000,
            "recipient_address_template": "{phone_digits}@staff.test",
            "notify_ack_secret": "test-ack-secret-not-the-demo-one",
        }
        base.update(overrides)
        return Settings(_env_file=None, **base)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session")
def seeds() -> Path:
    if not SEEDS.is_dir():
        pytest.skip("shared/seeds is not beside the checkout")
    return SEEDS
