"""The hot path's `judge` against `evaluate`, the rules of record: over many seeded random
programs (amounts, dates across the year, monthly plans, funding starts, excluded categories,
lines that are not programs of record, year-end histories, held levels) both must reach the
same levels and the same plan, gap and projection, to the printed digit."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest

from services.budget.domain import (
    PlanConfig,
    ProgramBudget,
    RuleConfig,
    SlipConfig,
    evaluate,
    execution_rate,
    judge,
    with_execution,
)

LEVELS = ("ok", "warning", "critical")
CONFIGS = [
    RuleConfig(),
    RuleConfig(PlanConfig(excluded=frozenset({"기본경비"})), SlipConfig(default_from=(1, 1), default_min_gap_amount=0)),
    RuleConfig(PlanConfig(midyear_rate=Decimal("55.5")), SlipConfig(min_budget=50_000_000, warning_gap=Decimal("7.5"))),
]


def random_program(rng: random.Random) -> tuple[ProgramBudget, list[tuple[int, Decimal]] | None,
                                                 list[tuple[date, int]], date | None]:
    budget = rng.choice([rng.randint(1, 10_000), rng.randint(1, 10**8), rng.randint(10**9, 10**13)])
    spent = rng.choice([0, rng.randint(0, budget), rng.randint(0, 2 * budget), budget * rng.randint(0, 1000) // 1000])
    committed = rng.choice([None, spent, rng.randint(0, 2 * budget)])
    as_of = rng.choice([None, date(2025, 1, 1) + timedelta(days=rng.randint(0, 364)), date(2024, 12, 15)])
    b = ProgramBudget(
        "P", 2025, title=rng.choice(["사업", "기본경비"]), category=rng.choice([None, "기본경비", "보조"]),
        original=rng.choice([None, budget, budget, budget]), carried_over=rng.choice([0, budget // 7]),
        supplementary=rng.choice([0, budget // 3, -(budget // 5)]), committed=committed, spent=spent, as_of=as_of,
        level=rng.choice(LEVELS), over_level=rng.choice(("ok", "critical")), year_end_level=rng.choice(LEVELS),
        scope=rng.choice(["record", "record", "part", "unlinked"]))  # type: ignore[arg-type]
    monthly = None
    if rng.random() < 0.3:
        months = sorted(rng.sample(range(1, 13), rng.randint(1, 5)))
        rates = sorted(Decimal(rng.randint(0, 1000)) / 10 for _ in months)
        monthly = list(zip(months, rates, strict=True))
    history = []
    if as_of is not None and rng.random() < 0.6:
        history = [(as_of - timedelta(days=rng.randint(1, 150)), rng.randint(0, spent + 1)) for _ in range(5)]
    start = rng.choice([None, None, date(2025, 3, rng.randint(1, 31)), date(2025, 8, 1)])
    return b, monthly, history, start


@pytest.mark.parametrize("cfg", CONFIGS)
def test_judge_decides_exactly_as_evaluate(cfg: RuleConfig) -> None:
    rng = random.Random(20251126)
    changed = 0
    for _ in range(4000):
        b, monthly, history, start = random_program(rng)
        full = evaluate(b, cfg, monthly, history, start)
        fast = judge(b, cfg, monthly, history, start)
        expected = (full.budget.level, full.budget.over_level, full.budget.year_end_level,
                    full.plan, full.gap, full.projected)
        assert tuple(fast) == expected, (b, monthly, history, start)
        assert [str(v) for v in fast[3:]] == [str(v) for v in expected[3:]]
        changed += bool(full.changes)
    assert changed > 500  # the sample reaches every rule's changes, not just the quiet path


def test_execution_rate_rounds_half_up_like_the_reports() -> None:
    assert str(execution_rate(1_234_500, 10_000_000)) == "12.3"  # 12.345 → 12.3 (0.1 digits)
    assert str(execution_rate(1_235, 10_000)) == "12.4"  # 12.35 exactly: half up
    assert str(execution_rate(0, 5)) == "0.0"
    assert str(execution_rate(-1, 1_000_000)) == "-0.0"  # as Decimal's quantize prints it
    assert execution_rate(5, 0) is None


def test_with_execution_is_replace_without_the_cached_rates() -> None:
    b = ProgramBudget("P", 2025, original=1_000, spent=100, as_of=date(2025, 3, 1))
    assert b.rate == Decimal("10.0")
    moved = with_execution(b, 300, 250, date(2025, 4, 1), 1)
    assert moved == ProgramBudget("P", 2025, original=1_000, committed=300, spent=250, as_of=date(2025, 4, 1),
                                  revision=1)
    assert (moved.rate, b.rate) == (Decimal("25.0"), Decimal("10.0"))


def test_integer_rate_equals_the_decimal_quotient_quantized() -> None:
    """rate_tenths replaces Decimal(spent) * 100 / budget quantized half-up to 0.1: the same
    digits, ties and signs included, for amounts up to 10^13 원."""
    rng = random.Random(14)
    for _ in range(50_000):
        budget = rng.choice([rng.randint(1, 10_000), rng.randint(1, 10**13)])
        spent = rng.choice([rng.randint(0, 2 * budget), rng.randint(-budget, budget),
                            (budget * rng.randint(0, 2000) + budget // 2) // 2000])
        expected = (Decimal(spent) * 100 / budget).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
        assert str(execution_rate(spent, budget)) == str(expected), (spent, budget)
