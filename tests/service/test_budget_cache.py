"""The budget batch's state cache changes nothing: the same stream gives the same view, alerts
and outbox whether each batch finds its programs in the cache or loads them from the database,
and whether one process or two (taking turns, as after a rebalance) apply it. On SQLite and
PostgreSQL (the hot writes are plain DB-API there, COPY on PostgreSQL)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
from sqlmodel import select

from contracts import AnyEvent, parse_event
from services.budget import service
from services.budget.store import BudgetAlert, BudgetOutbox, BudgetProgram
from services.common.db import Database, upgrade
from services.common.settings import Settings
from tests import factories as f

FY = 2025


def ev(data: dict[str, Any]) -> AnyEvent:
    return parse_event(data)


def stream() -> list[AnyEvent]:
    """Six programs through a year: lines (one restated from a later date), a 추경, a monthly
    plan, a funding milestone, and month-end snapshots whose pace makes every rule fire and
    resolve somewhere (slips, over-execution, year-end risk), with a correction and a repeat."""
    rng = random.Random(7)
    pids = [f"C{i}" for i in range(6)]
    out = [ev(f.envelope("budget.line_set", p, {"program_id": p, "fiscal_year": FY, "title": f"사업 {p}",
                                                "office": "경제실", "division": "경제정책과",
                                                "original": 1_000_000_000 * (i + 1)}))
           for i, p in enumerate(pids)]
    out.append(ev(f.milestone("C1", "M1", date(2025, 3, 3), date(2025, 4, 30), title="보조사업자 선정")))
    out.append(ev(f.envelope("budget.plan_set", "C2", {"program_id": "C2", "fiscal_year": FY, "points": [
        {"month": 3, "cumulative_rate": "30"}, {"month": 12, "cumulative_rate": "100"}]})))
    spent = dict.fromkeys(pids, 0)
    for month in range(1, 13):
        as_of = date(FY, month + 1, 1) - timedelta(days=1) if month < 12 else date(FY, 12, 31)
        for i, p in enumerate(pids):
            budget = 1_000_000_000 * (i + 1)
            spent[p] += rng.choice([0, 0, budget // 40, budget // 8, budget // 3])
            out.append(ev(f.snapshot(p, as_of, spent[p], spent[p])))
        if month == 5:
            out.append(ev(f.envelope("budget.amended", "C3", {
                "program_id": "C3", "fiscal_year": FY, "amendment_id": "1회 추경", "before": 4_000_000_000,
                "change": 500_000_000, "after": 4_500_000_000, "reason": "1회 추경",
                "effective_date": "2025-05-15"})))
            out.append(ev(f.snapshot("C0", as_of, spent["C0"] + 1, spent["C0"] + 1, revision=1)))
            out.append(ev(f.snapshot("C0", as_of, 0, 0)))  # the same as-of again: a repeat
        if month == 7:
            out.append(ev(f.envelope("budget.line_set", "C4", {
                "program_id": "C4", "fiscal_year": FY, "title": "사업 C4", "original": 4_000_000_000,
                "effective_date": "2025-07-15"})))
    return out


def outcome(db: Database) -> tuple[list[Any], list[Any], list[str]]:
    with db.read() as s:
        views = [{k: v for k, v in r.model_dump().items() if k != "updated_at"}
                 for r in s.exec(select(BudgetProgram).order_by(BudgetProgram.program_id)).all()]
        alerts = [(a.event_id, a.rule, a.status, a.severity, a.summary, a.figures)
                  for a in s.exec(select(BudgetAlert).order_by(BudgetAlert.event_id)).all()]
        outbox = sorted(o.event_id for o in s.exec(select(BudgetOutbox)).all())
    return views, alerts, outbox


def run(url: str, batches: list[list[AnyEvent]], writers: int, cold: bool) -> tuple[list[Any], ...]:
    upgrade(url, "budget")
    cfg = service.Config.from_settings(Settings(_env_file=None))
    dbs = [Database(url) for _ in range(writers)]
    try:
        for n, batch in enumerate(batches):
            db = dbs[n % writers]
            if cold:
                service.cache_of(db).clear()
            service.apply_batch(db, cfg, batch)
        return outcome(dbs[0])
    finally:
        for db in dbs:
            db.dispose()


@pytest.mark.parametrize("size", [1, 7])
def test_cached_batches_write_what_uncached_ones_do(db_url: str, size: int, tmp_path: Any) -> None:
    events = stream()
    batches = [events[i:i + size] for i in range(0, len(events), size)]
    warm = run(db_url, batches, writers=1, cold=False)
    cold = run(f"sqlite:///{tmp_path}/cold.db", batches, writers=1, cold=True)
    views, alerts, outbox = warm
    assert warm == cold
    assert len(views) == 6 and len(outbox) == len(alerts)
    rules = {(rule, status) for _, rule, status, *_ in alerts}
    assert {("execution_slipped", "firing"), ("over_execution", "firing"), ("year_end_risk", "firing")} <= rules


def test_two_writers_taking_turns_see_each_others_writes(db_url: str, tmp_path: Any) -> None:
    """Two processes on the same database (a rebalance moved the partition, or the programs
    topic's partition went to the other member): each one's cache is stale after the other
    wrote, and the view rows' stamps tell it so."""
    events = stream()
    batches = [events[i:i + 5] for i in range(0, len(events), 5)]
    assert run(db_url, batches, writers=2, cold=False) == run(f"sqlite:///{tmp_path}/one.db", batches, writers=1,
                                                              cold=True)


def run_bounded(url: str, batches: list[list[AnyEvent]], cache_programs: int) -> tuple[list[Any], ...]:
    upgrade(url, "budget")
    cfg = replace(service.Config.from_settings(Settings(_env_file=None)), cache_programs=cache_programs)
    db = Database(url)
    try:
        for batch in batches:
            service.apply_batch(db, cfg, batch)
            assert len(service.cache_of(db).held) <= cache_programs
        return outcome(db)
    finally:
        db.dispose()


@pytest.mark.parametrize("cache_programs", [1, 4])
def test_a_bounded_cache_writes_what_uncached_batches_do(db_url: str, cache_programs: int, tmp_path: Any) -> None:
    """Programs evicted from the bounded cache (least recently written first) are loaded again
    when next seen: the outcome is the one of batches that never find anything cached."""
    events = stream()
    batches = [events[i:i + 5] for i in range(0, len(events), 5)]
    assert run_bounded(db_url, batches, cache_programs) == run(f"sqlite:///{tmp_path}/cold.db", batches,
                                                                 writers=1, cold=True)


def test_the_cache_evicts_the_least_recently_written_program() -> None:
    cache = service.StateCache(max_keys=2)
    entry: Any = object()
    for key in [("A", FY), ("B", FY), ("A", FY), ("C", FY)]:
        cache.put(key, entry)
    assert list(cache.held) == [("A", FY), ("C", FY)]  # B was written least recently


def daily() -> list[AnyEvent]:
    """Two programs with a snapshot every calendar day of the year: a pace that stops over the
    summer (year-end risk fires) and picks up in the autumn, so the year-end projection's
    look-back anchor moves every day through months of held points."""
    out = [ev(f.envelope("budget.line_set", p, {"program_id": p, "fiscal_year": FY, "title": f"사업 {p}",
                                                "office": "경제실", "division": "경제정책과",
                                                "original": 1_000_000_000}))
           for p in ("D0", "D1")]
    spent = {"D0": 0, "D1": 0}
    day = date(FY, 1, 2)
    while day.year == FY:
        for p, summer in (("D0", 0), ("D1", 1_000_000)):
            spent[p] += summer if 6 <= day.month <= 9 else 3_000_000 if day.month < 6 else 9_000_000
            out.append(ev(f.snapshot(p, day, spent[p], spent[p])))
        day += timedelta(days=1)
    return out


def test_held_snapshot_points_stay_within_the_look_back_window(db_url: str, tmp_path: Any) -> None:
    """Daily snapshots through the year-end months: the cache keeps each program's points back
    to the projection's look-back window only (bounded by programs, not by the days applied),
    and the view and alerts are those of batches that load the history from the database."""
    events = daily()
    batches = [events[i:i + 6] for i in range(0, len(events), 6)]
    upgrade(db_url, "budget")
    cfg = service.Config.from_settings(Settings(_env_file=None))
    db = Database(db_url)
    widest = 0
    try:
        for batch in batches:
            service.apply_batch(db, cfg, batch)
            for h in service.cache_of(db).held.values():
                if h.history:
                    widest = max(widest, (max(h.history) - min(h.history)).days)
        warm = outcome(db)
        held = service.cache_of(db).held
        d0, d1 = held[("D0", FY)].history, held[("D1", FY)].history
        assert d0 and d1
        assert all(a is b for a, b in zip(sorted(d0), sorted(d1), strict=True))  # one date object per day
    finally:
        db.dispose()
    # the look-back (window + 46 days), the pruning slack (30 days) and a batch's 3 days
    assert 100 < widest <= cfg.year_end.window_days + 46 + 30 + 3
    assert warm == run(f"sqlite:///{tmp_path}/cold.db", batches, writers=1, cold=True)
    rules = {(rule, status) for _, rule, status, *_ in warm[1]}
    assert ("year_end_risk", "firing") in rules
