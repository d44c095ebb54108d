"""The budget apply gives the same view, alerts, outbox and snapshot series whatever the batch
boundaries, and applies every event id once: a seeded random year of many programs (daily
snapshots with corrections, repeats, late ones and redelivered event ids, lines restated from a
later date, 추경, monthly plans, funding milestones, programs whose line arrives late) applied in
random batch sizes with the state cache, against the same stream applied one event per batch
with the cache cleared (every batch loads its programs, every id is claimed on its own). On
SQLite and PostgreSQL: the hot path's shortcuts (the inbox claim, the snapshot and judgement
fast paths, execution-only view updates) meet the plainest path of the same code."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

import pytest
from sqlmodel import select

from contracts import AnyEvent, parse_event
from services.budget import service
from services.budget.store import BudgetInbox, BudgetSnapshot
from services.common.db import Database, upgrade
from services.common.settings import Settings
from tests import factories as f
from tests.service.test_budget_cache import outcome

FY = 2025


def stream(seed: int, programs: int = 16) -> tuple[list[AnyEvent], int]:
    """The events, and how many of them repeat an id already in the stream."""
    rng = random.Random(seed)
    pids = [f"R{i:02d}" for i in range(programs)]
    budgets = {p: rng.choice([50_000_000, 900_000_000, 5_000_000_000, 40_000_000_000]) for p in pids}
    late = set(rng.sample(pids, 3))  # their line arrives in the middle of the year
    pace = {p: rng.choice([0.1, 0.5, 1.0, 1.5]) for p in pids}  # slow ones slip, fast ones overspend

    def line(p: str, original: int, effective: date | None = None) -> AnyEvent:
        payload: dict[str, Any] = {"program_id": p, "fiscal_year": FY, "title": f"사업 {p}", "office": "경제실",
                                   "division": rng.choice(["경제정책과", "일자리정책과"]), "original": original,
                                   "category": rng.choice([None, "보조", "기본경비"])}
        if effective is not None:
            payload["effective_date"] = effective.isoformat()
        return parse_event(f.envelope("budget.line_set", p, payload))

    out = [line(p, budgets[p]) for p in pids if p not in late]
    out.append(parse_event(f.milestone(pids[1], "M1", date(FY, 3, 3), date(FY, 4, 30), title="보조사업자 선정")))
    out.append(parse_event(f.envelope("budget.plan_set", pids[2], {"program_id": pids[2], "fiscal_year": FY, "points": [
        {"month": 3, "cumulative_rate": "20"}, {"month": 6, "cumulative_rate": "50"},
        {"month": 12, "cumulative_rate": "100"}]})))
    spent = dict.fromkeys(pids, 0)
    held: dict[str, tuple[date, int]] = {}
    repeats = 0
    for day in range(0, 365, 5):
        as_of = date(FY, 1, 2) + timedelta(days=day)
        if day == 120:
            out += [line(p, budgets[p]) for p in sorted(late)]
            out.append(line(pids[3], budgets[pids[3]] * 2, date(FY, 5, 15)))  # restated from a later date
            out.append(parse_event(f.envelope("budget.amended", pids[4], {
                "program_id": pids[4], "fiscal_year": FY, "amendment_id": "1회 추경", "before": budgets[pids[4]],
                "change": budgets[pids[4]] // 2, "after": budgets[pids[4]] * 3 // 2, "reason": "1회 추경",
                "effective_date": "2025-05-01"})))
        for p in pids:
            if rng.random() < 0.2:
                continue
            spent[p] += int(pace[p] * rng.choice([0, 0, budgets[p] // 400, budgets[p] // 150, budgets[p] // 60,
                                                  budgets[p] // 25]))
            committed = rng.choice([spent[p], spent[p] + budgets[p] // 20, None])
            out.append(parse_event(f.snapshot(p, as_of, spent[p], committed or 0)))
            held[p] = (as_of, 0)
            roll = rng.random()
            if roll < 0.04:  # a correction: the same day, a higher revision
                out.append(parse_event(f.snapshot(p, as_of, spent[p] + 1, spent[p] + 1, revision=1)))
                held[p] = (as_of, 1)
            elif roll < 0.07:  # the same day and revision again (a repeat under another id)
                out.append(parse_event(f.snapshot(p, as_of, 0, 0, revision=held[p][1])))
            elif roll < 0.10 and day >= 8:  # a late one, older than the one held
                out.append(parse_event(f.snapshot(p, as_of - timedelta(days=6), 1, 1)))
        if rng.random() < 0.5 and len(out) > 10:  # redelivered: the same event id again
            for e in rng.sample(out[-40:], rng.randint(1, 4)):
                out.append(e)
                repeats += 1
    return out, repeats


def run(url: str, batches: list[list[AnyEvent]], cold: bool) -> tuple[Any, ...]:
    upgrade(url, "budget")
    cfg = service.Config.from_settings(Settings(_env_file=None))
    db = Database(url)
    try:
        duplicates = applied = 0
        for batch in batches:
            if cold:
                service.cache_of(db).clear()
            result = service.apply_batch(db, cfg, batch)
            duplicates += result.duplicates
            applied += result.applied
        with db.read() as s:
            series = sorted((r.program_id, r.as_of, r.revision, r.spent, r.committed, r.event_id)
                            for r in s.exec(select(BudgetSnapshot)).all())
            inbox = len(s.exec(select(BudgetInbox)).all())
        return (*outcome(db), series, inbox, applied, duplicates)
    finally:
        db.dispose()


@pytest.mark.parametrize("seed", [3])
def test_random_batches_write_what_one_event_batches_do(db_url: str, seed: int, tmp_path: Any) -> None:
    events, repeats = stream(seed)
    rng = random.Random(seed)
    batches, i = [], 0
    while i < len(events):
        size = rng.choice([1, 3, 17, 60, 250])
        batches.append(events[i:i + size])
        i += size
    fast = run(db_url, batches, cold=False)
    plain = run(f"sqlite:///{tmp_path}/plain.db", [[e] for e in events], cold=True)
    views, alerts, outbox, series, inbox, applied, duplicates = fast
    assert fast == plain
    # every id claimed once; a redelivered id is a duplicate (as is a same-day repeat under a
    # new id, which is not applied either); the series holds each applied snapshot once
    assert inbox == len({e.event_id for e in events}) and duplicates >= repeats
    assert applied < inbox and len(series) == len({(p, d, r) for p, d, r, *_ in series})
    assert len(views) == 16 and len(outbox) == len(alerts) > 0
    assert {rule for _, rule, *_ in alerts} == {"execution_slipped", "over_execution", "year_end_risk"}
