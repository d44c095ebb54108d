"""What staff see must be what the reports say, pure: the line and amendments in effect on a
date, the plan basis an alert states, the default curve held back where it cannot judge (before
its start date, small money, before a program's first funding milestone), unknown 원인행위액,
and totals by account."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from services.budget.domain import (
    FROM_THE_START,
    AmendmentPoint,
    Line,
    LineVersion,
    MilestonePoint,
    PlanConfig,
    ProgramBudget,
    RuleConfig,
    SlipConfig,
    alert_figures,
    budget_on,
    by_account,
    evaluate,
    evaluate_slip,
    funding_start,
    of_account,
    over_level,
    plan_rate,
    rollup,
    slip_summary,
    supplementary_on,
    version_on,
    won_text,
)

PLAN = PlanConfig()
B = 10_000_000_000  # 100억원


def prog(spent: int, as_of: date, level: str = "ok", original: int = B, **kw: object) -> ProgramBudget:
    return ProgramBudget("경제정책과/사업", 2025, title="사업", original=original, spent=spent, committed=None,
                         as_of=as_of, level=level, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- as of a date


JAN = LineVersion(date(2025, 1, 31), original=1_000, carried_over=200)
MAY = LineVersion(date(2025, 5, 1), original=1_000, carried_over=200, supplementary=300)  # the 추경 report
UNDATED = LineVersion(FROM_THE_START, original=900)


def test_the_line_in_effect_is_the_latest_on_or_before_the_date():
    assert version_on([MAY, JAN], date(2025, 1, 31)) == JAN
    assert version_on([MAY, JAN], date(2025, 4, 30)) == JAN
    assert version_on([MAY, JAN], date(2025, 5, 1)) == MAY
    assert version_on([MAY, JAN], date(2025, 1, 30)) is None  # nothing stated yet
    assert version_on([MAY, JAN, UNDATED], date(2025, 1, 1)) == UNDATED  # an undated line counts from the start
    assert version_on([JAN, MAY], None) == MAY


def test_a_later_추경_does_not_leak_into_january():
    later = [AmendmentPoint("2025-1차추경", date(2025, 5, 1), 300)]
    assert budget_on([JAN], later, date(2025, 1, 31)) == (1_000, 200, 0)
    assert budget_on([JAN], later, date(2025, 5, 1)) == (1_000, 200, 300)
    # The 추경 report states its 추경: the amendment it already includes is not added again.
    assert budget_on([JAN, MAY], later, date(2025, 6, 30)) == (1_000, 200, 300)
    assert budget_on([JAN, MAY], later, date(2025, 1, 31)) == (1_000, 200, 0)


def test_a_line_stating_its_추경_takes_only_later_amendments():
    second = AmendmentPoint("2025-2차추경", date(2025, 9, 10), -100)
    first = AmendmentPoint("2025-1차추경", date(2025, 5, 1), 300)
    assert supplementary_on(MAY, [first, second], date(2025, 8, 31)) == 300
    assert supplementary_on(MAY, [first, second], date(2025, 9, 30)) == 200
    undated = LineVersion(FROM_THE_START, 1_000, 0, 250)  # states its 추경, no date: replaces all
    assert supplementary_on(undated, [first, second], None) == 250


# ---------------------------------------------------------------- the plan basis


def test_default_curve_is_not_judged_before_its_start_date():
    # 31 January: the curve says 10.3%; 0 spent of 100억 is 10.3억 behind, yet nothing is judged.
    e = evaluate_slip(prog(0, date(2025, 1, 31)), PLAN, SlipConfig())
    assert (e.plan, e.budget.level, e.change, e.held) == (Decimal("10.3"), "ok", None, "before_default_start")
    assert e.held_from == date(2025, 4, 1)
    # From 1 April it is: plan 60×90/181 = 29.8% on 31 March is not judged, 60×111/181 = 36.8% on 21 April is.
    assert evaluate_slip(prog(0, date(2025, 3, 31)), PLAN, SlipConfig()).change is None
    april = evaluate_slip(prog(0, date(2025, 4, 21)), PLAN, SlipConfig())
    assert (april.budget.level, april.change, april.basis) == ("critical", "fire", "default_curve")


def test_default_curve_needs_a_money_gap_as_well():
    # 30 April: the curve says 60×120/181 = 39.8%. Nothing spent of 2억 is 39.8%p but only 0.796억
    # behind: held (threshold 1억). Of 9.9억 it is 3.94억 behind: judged.
    small = evaluate_slip(prog(0, date(2025, 4, 30), original=200_000_000), PLAN, SlipConfig())
    assert (small.plan, small.gap_amount, small.budget.level, small.held) == \
        (Decimal("39.8"), 79_600_000, "ok", "below_gap_amount")
    larger = evaluate_slip(prog(0, date(2025, 4, 30), original=990_000_000), PLAN, SlipConfig())
    assert (larger.gap_amount, larger.budget.level) == (394_020_000, "critical")


def test_a_programs_own_monthly_plan_is_judged_from_january():
    monthly = [(1, Decimal("20")), (12, Decimal("100"))]
    e = evaluate_slip(prog(0, date(2025, 1, 31), original=990_000_000), PLAN, SlipConfig(), monthly)
    assert (e.basis, e.basis_text, e.plan, e.budget.level) == ("monthly_plan", "월별 집행계획", Decimal("20.0"),
                                                                "warning")
    assert "월별 집행계획 기준 계획 20.0%" in slip_summary(e)


def test_no_spending_expected_before_the_first_funding_milestone():
    milestones = [
        MilestonePoint("사업 공고", date(2025, 1, 6), date(2025, 1, 31)),  # not a funding step
        MilestonePoint("서류심사, 현장실사 등 선정평가", date(2025, 3, 3), date(2025, 3, 31)),
        MilestonePoint("협약 체결 및 교부", date(2025, 4, 1), date(2025, 4, 30)),
    ]
    start = funding_start(milestones, 2025, PLAN)
    assert start == date(2025, 3, 3)
    assert plan_rate(date(2025, 1, 31), 2025, PLAN, None, start) == Decimal("0.0")
    assert plan_rate(date(2025, 3, 3), 2025, PLAN, None, start) == Decimal("0.0")
    # 3 March → 30 June is 119 days to 60%: on 30 April (58 days) 60×58/119 = 29.2%
    assert plan_rate(date(2025, 4, 30), 2025, PLAN, None, start) == Decimal("29.2")
    assert plan_rate(date(2025, 6, 30), 2025, PLAN, None, start) == Decimal("60.0")
    judge_all = SlipConfig(default_from=(1, 1), default_min_gap_amount=0)
    jan = evaluate_slip(prog(0, date(2025, 1, 31)), PLAN, judge_all, None, start)
    assert (jan.plan, jan.budget.level, jan.change) == (Decimal("0.0"), "ok", None)
    assert jan.basis_text == "기본 곡선(6월 말 60%, 첫 지원 일정 2025-03-03부터)"


def test_which_milestones_say_when_money_can_move():
    def fs(*ms: MilestonePoint) -> date | None:
        return funding_start(ms, 2025, PLAN)

    march = MilestonePoint("보조금 교부", date(2025, 3, 10), date(2025, 3, 20))
    assert fs(march) == date(2025, 3, 10)
    assert fs(MilestonePoint("보조금 교부", date(2025, 3, 10), None, status="cancelled")) is None
    assert fs(MilestonePoint("보조금 교부", date(2025, 3, 10), None, needs_review=True)) is None
    assert fs(MilestonePoint("성과 점검", date(2025, 3, 10), None)) is None
    assert fs(MilestonePoint("보조금 교부", None, date(2025, 3, 31))) is None  # no start: says nothing
    # Under way on 1 January (began last year, not ended): no delay at all.
    assert fs(march, MilestonePoint("수당 지급", date(2024, 3, 1), date(2025, 12, 31))) is None
    # Ended last year: this year's first funding step counts.
    assert fs(march, MilestonePoint("수당 지급", date(2024, 3, 1), date(2024, 12, 31))) == date(2025, 3, 10)
    assert fs(MilestonePoint("참여기업 선정", date(2025, 1, 1), None)) is None  # from 1 January: the default
    assert funding_start([march], 2025, PlanConfig(funding_keywords=("협약",))) is None


def test_a_default_curve_alert_states_its_basis_and_the_figures_of_record():
    b = ProgramBudget("대학협력과/서울 지역혁신중심 대학지원체계 추진", 2025,
                      title="서울 지역혁신중심 대학지원체계 추진", original=65_648_000_000, spent=3_230_000_000,
                      committed=None, as_of=date(2025, 4, 30))
    ev = evaluate(b, RuleConfig())
    (change,) = ev.changes
    assert change.summary == ("서울 지역혁신중심 대학지원체계 추진 집행률 4.9%(예산현액 65,648백만원 중"
                              " 지출 3,230백만원, 2025-04-30 기준): 기본 곡선(6월 말 60%) 기준 계획 39.8%"
                              "(지출 예정 26,128백만원) 대비 34.9%p 부진")
    figures = alert_figures(ev, "execution_slipped")
    assert {k: figures[k] for k in ("basis", "basis_text", "rate", "current_budget", "spent", "as_of", "plan",
                                    "committed", "commit_rate", "funding_start")} == {
        "basis": "default_curve", "basis_text": "기본 곡선(6월 말 60%)", "rate": Decimal("4.9"),
        "current_budget": 65_648_000_000, "spent": 3_230_000_000, "as_of": "2025-04-30", "plan": Decimal("39.8"),
        "committed": None, "commit_rate": None, "funding_start": None}
    assert figures["gap_amount"] == 26_127_904_000 - 3_230_000_000


def test_parts_and_unlinked_lines_are_never_judged():
    part = prog(0, date(2025, 9, 30), scope="part", parent_program_id="경제정책과/사업", level="warning")
    ev = evaluate(part, RuleConfig())
    assert (ev.budget.level, ev.budget.year_end_level, ev.budget.over_level) == ("ok", "ok", "ok")
    assert [(c.rule, c.change) for c in ev.changes] == [("execution_slipped", "resolve")]
    assert "세부사업이 아닌 항목" in ev.changes[0].summary


# ---------------------------------------------------------------- unknown 원인행위액, accounts


def test_unknown_committed_is_neither_zero_nor_over():
    b = prog(10, date(2025, 1, 31), original=100)
    assert b.commit_rate is None and b.rate == Decimal("10.0")
    assert over_level(b) == "ok"
    lines = [Line("실", "가과", 1_000, 0, 0, None, 100, None), Line("실", "가과", 1_000, 0, 0, 300, 200, None)]
    _, _, total = rollup(lines)
    assert (total.committed, total.committed_unknown, total.commit_rate, total.rate) == \
        (300, 1, None, Decimal("15.0"))
    _, _, known = rollup(lines[1:])
    assert known.commit_rate == Decimal("30.0")


def test_a_fund_never_enters_the_expenditure_total():
    lines = [Line("실", "창업정책과", 1_000, 0, 0, 0, 10, None, "일반회계"),
             Line("실", "창업정책과", 500, 0, 0, 0, 5, None, "특별회계"),
             Line("실", "창업정책과", 70_000, 0, 0, 0, 0, None, "기금"),
             Line("실", "창업정책과", 200, 0, 0, 0, 0, None, None)]
    _, _, total = rollup(of_account(lines, None))
    assert (total.programs, total.current) == (3, 1_700)
    assert [ln.current for ln in of_account(lines, "기금")] == [70_000]
    assert [ln.current for ln in of_account(lines, "미지정")] == [200]
    assert {k: r.current for k, r in by_account(lines).items()} == {
        "일반회계": 1_000, "특별회계": 500, "기금": 70_000, "미지정": 200}


def test_amounts_read_as_in_the_reports():
    assert won_text(65_648_000_000) == "65,648백만원"
    assert won_text(182_600_000) == "183백만원"
    assert won_text(999_999) == "999,999원"
