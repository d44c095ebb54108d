"""Operators read what was set aside with `execwatch deadletter list`, from each service's own
database (a broker restart does not erase it), and send it again with `redrive`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from kafka import KafkaProducer
from sqlmodel import select

from services import cli
from services.common.db import BudgetDeadLetter, Database, IngestDeadLetter, record_dead_letter, upgrade
from services.common.deadletters import read_dead_letters
from services.common.messaging import ensure_topics
from services.common.settings import get_settings
from tests import factories as f
from tests.helpers import read_to_end


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", "deadletter", *args], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def cli_here(monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """`execwatch deadletter …` run by `services.cli.main` in this process, in `env`: the same
    code as the command (its parsing, settings and output), without a second or more of Python
    start-up per call. Each test still runs the command as a process once."""

    def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        capsys.readouterr()
        try:
            code = cli.main(["deadletter", *args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["execwatch", "deadletter", *args], code, out, err)

    yield run
    get_settings.cache_clear()  # not the settings of this test's environment for later tests


def test_dead_letter_topic_is_listed_with_who_and_why(kafka, make_settings):
    settings = make_settings()
    ensure_topics(kafka.bootstrap, settings.topic_prefix)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    for i in range(3):
        producer.send(settings.topic("execwatch.deadletter"), f"bad {i}".encode(), key=f"P{i}".encode(),
                      headers=[("x-error", f"payload.spent: must be ≥ 0 ({i})".encode()),
                               ("x-error-stage", b"contract"), ("x-error-service", b"budget"),
                               ("x-original-topic", b"execwatch.budget"), ("x-original-offset", str(i).encode())])
    producer.flush()
    producer.close()

    letters = list(read_dead_letters(kafka.bootstrap, settings.topic_prefix, limit=2))
    assert [(d.key, d.value) for d in letters] == [("P1", b"bad 1"), ("P2", b"bad 2")]  # newest 2
    assert letters[0].error == "payload.spent: must be ≥ 0 (1)"

    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "EXECWATCH_TOPIC_PREFIX": settings.topic_prefix}
    out = _cli("list", "--topic", "--show-value", env=env)
    assert out.returncode == 0, out.stderr
    assert "3 dead letter(s)" in out.stdout
    assert "service=budget stage=contract" in out.stdout and "value: bad 0" in out.stdout


def test_stored_dead_letters_are_listed_and_redriven_to_their_topic(kafka, db_url, make_settings, cli_here):
    settings = make_settings()
    ensure_topics(kafka.bootstrap, settings.topic_prefix)
    budget_topic, programs_topic = settings.topic("execwatch.budget"), settings.topic("execwatch.programs")
    for service in ("ingest", "budget"):
        upgrade(db_url, service)
    db = Database(db_url)
    snap, big = f.snapshot("P-1", spent=5), f.program("P-3")
    record_dead_letter(db, BudgetDeadLetter, ref=f"{budget_topic}:2:41", stage="apply", topic=budget_topic,
                       error="OverflowError: Python int too large to convert to SQLite INTEGER",
                       key=b"P-1", value=json.dumps(snap).encode(), partition=2, offset=41)
    record_dead_letter(db, BudgetDeadLetter, ref=f"{budget_topic}:2:41", stage="apply", topic=budget_topic,
                       error="the same message redelivered", key=b"P-1", value=b"{}", partition=2, offset=41)
    record_dead_letter(db, IngestDeadLetter, ref="ingest_outbox:9", stage="relay", topic=programs_topic,
                       error="MessageSizeTooLargeError: too large", key=b"P-3", value=json.dumps(big).encode())
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "DATABASE_URL": db_url,
           "EXECWATCH_TOPIC_PREFIX": settings.topic_prefix}

    out = _cli("list", env=env)
    assert out.returncode == 0, out.stderr
    assert "2 dead letter(s)" in out.stdout  # the redelivered one is recorded once
    assert "ingest:1" in out.stdout and "stage=relay key=P-3" in out.stdout and "pending" in out.stdout
    assert "budget:1" in out.stdout and f"from {budget_topic}@2:41" in out.stdout
    assert "OverflowError: Python int too large" in out.stdout

    out = cli_here("redrive", "budget:1", env=env)
    assert out.returncode == 0, out.stderr
    assert "1 dead letter(s) redriven" in out.stdout
    assert cli_here("redrive", "budget:7", env=env).returncode == 2  # no such dead letter: said, not ignored
    out = cli_here("redrive", "--all", env=env)  # what is left: the ingest one
    assert "ingest:1" in out.stdout and "1 dead letter(s) redriven" in out.stdout
    assert "0 dead letter(s)" in cli_here("list", "--pending", env=env).stdout

    got = {topic: [(r.key, json.loads(r.value)["event_id"]) for r in read_to_end(kafka.bootstrap, topic)]
           for topic in (budget_topic, programs_topic)}
    assert got == {budget_topic: [(b"P-1", snap["event_id"])], programs_topic: [(b"P-3", big["event_id"])]}
    with db.read() as s:
        assert all(d.redriven_at is not None for d in s.exec(select(BudgetDeadLetter)).all())
    db.dispose()
