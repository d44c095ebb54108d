"""On SQLite a budget batch is judged before it takes the database's one write lock, so a second
process of the group can write meanwhile; what another writer commits in that time, among what
the batch read, makes the batch apply again under the lock. On PostgreSQL the batch locks its
programs' rows before it writes and checks them the same way. Checked against the same events
applied one writer after the other."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlmodel import select

from contracts import AnyEvent, parse_event
from services.budget import service
from services.budget.metrics import REAPPLIED, record
from services.budget.store import BudgetMilestone
from services.common.db import Database, upgrade
from services.common.settings import Settings
from tests import factories as f
from tests.conftest import _fresh_pg_schema
from tests.service.test_budget_cache import outcome

CFG = service.Config.from_settings(Settings(_env_file=None))


def ev(data: dict[str, Any]) -> AnyEvent:
    return parse_event(data)


def line(pid: str) -> AnyEvent:
    return ev(f.budget_line(pid, original=1_000_000_000))


def path(url: str) -> str:
    return url.removeprefix("sqlite:///")


@pytest.fixture
def another(db_url: str, tmp_path: Any, request: pytest.FixtureRequest) -> Callable[[str], str]:
    """A fresh database of the same kind as `db_url`, for the reference run."""
    def make(name: str) -> str:
        if db_url.startswith("sqlite"):
            return f"sqlite:///{tmp_path}/{name}.db"
        return _fresh_pg_schema(request.getfixturevalue("pg_database"))
    return make


def while_judging(monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], None]) -> list[int]:
    """Runs `meanwhile` once, when the batch judges its first program; returns the calls seen."""
    judge, calls = service._evaluate, []

    def evaluate(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            meanwhile()
        return judge(*args)

    monkeypatch.setattr(service, "_evaluate", evaluate)
    return calls


def sequential(url: str, *batches: list[AnyEvent]) -> tuple[list[Any], ...]:
    upgrade(url, "budget")
    db = Database(url)
    try:
        for batch in batches:
            service.apply_batch(db, CFG, batch)
        return outcome(db)
    finally:
        db.dispose()


def interleaved(url: str, monkeypatch: pytest.MonkeyPatch, before: list[AnyEvent], ours: list[AnyEvent],
                theirs: list[AnyEvent]) -> tuple[service.BatchResult, tuple[list[Any], ...]]:
    """`before` applied, then `ours` by one writer while another applies `theirs` (committed while
    ours is being judged)."""
    upgrade(url, "budget")
    mine, other = Database(url), Database(url)
    try:
        service.apply_batch(mine, CFG, before)
        while_judging(monkeypatch, lambda: service.apply_batch(other, CFG, theirs))
        result = service.apply_batch(mine, CFG, ours)
        monkeypatch.undo()
        return result, outcome(mine)
    finally:
        mine.dispose()
        other.dispose()


def test_another_writer_can_commit_while_a_batch_is_judged(sqlite_url: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    upgrade(sqlite_url, "budget")
    db = Database(sqlite_url)
    try:
        service.apply_batch(db, CFG, [line("A")])

        def write_now() -> None:  # timeout 0: "database is locked" if the batch held the lock
            with sqlite3.connect(path(sqlite_url), timeout=0, isolation_level=None) as other:
                other.execute("BEGIN IMMEDIATE")
                other.execute("INSERT INTO budget_inbox (event_id, processed_at) VALUES ('elsewhere', '2025-01-01')")
                other.execute("COMMIT")

        calls = while_judging(monkeypatch, write_now)
        result = service.apply_batch(db, CFG, [ev(f.snapshot("A", date(2025, 1, 31), 100, 100))])
        assert calls and result.applied == 1 and not result.reapplied
    finally:
        db.dispose()


def test_a_program_written_meanwhile_is_judged_again_with_what_the_other_wrote(
        db_url: str, another: Callable[[str], str], monkeypatch: pytest.MonkeyPatch) -> None:
    january = [ev(f.snapshot("A", date(2025, 1, 31), 10_000_000, 10_000_000))]
    february = [ev(f.snapshot("A", date(2025, 2, 28), 20_000_000, 20_000_000)), line("B")]
    result, seen = interleaved(db_url, monkeypatch, [line("A")], february, january)
    assert result.reapplied and result.applied == 2
    before = REAPPLIED._value.get()
    record(result)  # operators see it
    assert REAPPLIED._value.get() == before + 1
    assert seen == sequential(another("ref"), [line("A")], january, february)
    view = {v["program_id"]: v for v in seen[0]}
    assert view["A"]["snapshots"] == 2 and view["A"]["as_of"] == date(2025, 2, 28)


def test_an_event_applied_meanwhile_by_another_writer_is_a_duplicate(
        sqlite_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = [ev(f.snapshot("A", date(2025, 1, 31), 10_000_000, 10_000_000))]
    result, seen = interleaved(sqlite_url, monkeypatch, [line("A")], snapshot, snapshot)
    assert result.reapplied and (result.applied, result.duplicates) == (0, 1)
    assert seen == sequential(f"sqlite:///{tmp_path}/ref.db", [line("A")], snapshot)
    assert seen[0][0]["snapshots"] == 1


def test_a_milestone_recorded_meanwhile_moves_the_plan_the_batch_judges_by(
        db_url: str, another: Callable[[str], str], monkeypatch: pytest.MonkeyPatch) -> None:
    # C has no view row yet: the other writer records the milestone alone, no stamp moves.
    milestone = [ev(f.milestone("C", "M1", date(2025, 6, 2), date(2025, 7, 31), title="보조사업자 선정"))]
    ours = [line("C"), ev(f.snapshot("C", date(2025, 8, 29), 0, 0))]
    result, seen = interleaved(db_url, monkeypatch, [line("A")], ours, milestone)
    assert result.reapplied
    assert seen == sequential(another("ref"), [line("A")], milestone, ours)
    unmoved = sequential(another("without"), [line("A")], ours)
    assert seen[1] != unmoved[1]  # the milestone is in the alert (its funding start): the check above can fail


def test_sqlite_judges_before_claiming_postgresql_claims_first(db_url: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    upgrade(db_url, "budget")
    db = Database(db_url)
    try:
        claimed: list[bool] = []
        apply = service._apply

        def spy(*args: Any, claim_first: bool = True) -> Any:
            claimed.append(claim_first)
            return apply(*args, claim_first=claim_first)

        monkeypatch.setattr(service, "_apply", spy)
        service.apply_batch(db, CFG, [line("A")])
        service.apply_batch(db, CFG, [ev(f.milestone("A"))])
        # SQLite: computed first, except a batch with a milestone; PostgreSQL: the claim first.
        assert claimed == ([False, True] if db_url.startswith("sqlite") else [True, True])
    finally:
        db.dispose()


def test_a_redelivered_batch_applies_only_its_new_events(db_url: str) -> None:
    upgrade(db_url, "budget")
    db = Database(db_url)
    try:
        january = ev(f.snapshot("A", date(2025, 1, 31), 10_000_000, 10_000_000))
        service.apply_batch(db, CFG, [line("A"), january])
        again = service.apply_batch(db, CFG, [january, ev(f.snapshot("A", date(2025, 2, 28), 30_000_000, 0))])
        # SQLite learns of the duplicate at the claim, after judging: it judges again.
        assert (again.applied, again.duplicates, again.reapplied) == (1, 1, db_url.startswith("sqlite"))
        assert outcome(db)[0][0]["snapshots"] == 2
    finally:
        db.dispose()


def test_postgresql_a_milestone_for_a_program_new_to_the_view_waits_for_the_batch_adding_it(
        db_url: str, another: Callable[[str], str], monkeypatch: pytest.MonkeyPatch) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite writers take turns on the database lock")
    upgrade(db_url, "budget")
    mine, other = Database(db_url), Database(db_url)
    ours = [line("C"), ev(f.snapshot("C", date(2025, 8, 29), 0, 0))]
    milestone = [ev(f.milestone("C", "M1", date(2025, 6, 2), date(2025, 7, 31), title="보조사업자 선정"))]
    holding, go = threading.Event(), threading.Event()
    write = service._write

    def paused_write(batch: Any) -> Any:  # after the batch locked and checked its programs
        if threading.current_thread().name == "ours":
            holding.set()
            go.wait(30)
        return write(batch)

    monkeypatch.setattr(service, "_write", paused_write)
    try:
        service.apply_batch(mine, CFG, [line("A")])
        first = threading.Thread(target=service.apply_batch, args=(mine, CFG, ours), name="ours")
        first.start()
        assert holding.wait(30)
        second = threading.Thread(target=service.apply_batch, args=(other, CFG, milestone), name="theirs")
        second.start()
        second.join(1.0)
        assert second.is_alive()  # the milestone's batch waits for C's lock
        go.set()
        first.join(30)
        second.join(30)
        assert not first.is_alive() and not second.is_alive()
        seen = outcome(mine)
        # The milestone batch came second, as if one writer had applied the two in that order.
        assert seen == sequential(another("ref"), [line("A")], ours, milestone)
        with mine.read() as s:
            held = s.exec(select(BudgetMilestone).where(BudgetMilestone.program_id == "C")).all()
        assert [m.milestone_id for m in held] == ["M1"]
    finally:
        go.set()
        mine.dispose()
        other.dispose()
