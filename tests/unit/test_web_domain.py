"""Pure rules of the staff pages: units as the report rounds them, the 예산현황 table, who sees
which alert, the chart, milestone moves, the session cookie and the xlsx."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal

import openpyxl

from services.common.auth import Role
from services.common.settings import Settings
from services.web import domain, export
from services.web.clients import (
    Alert,
    BudgetProgram,
    BudgetProgramDetail,
    BudgetSummary,
    Figures,
    HistoryPoint,
    Milestone,
    Plan,
    PlanPoint,
    Recipient,
    Reported,
    SourceRef,
    WindowChange,
)
from services.web.session import Identity, SessionCodec, startup_problems

M = 1_000_000


def test_amounts_round_half_up_as_the_report_prints_them() -> None:
    # 001: 경제정책과 집행액 183,xxx,xxx 원 prints as 183 (백만원); half a unit rounds up
    assert domain.amount(182_500_000, "백만원") == "183"
    assert domain.amount(182_499_999, "백만원") == "182"
    assert domain.amount(120_809_000_000, "백만원") == "120,809"
    assert domain.amount(120_809_000_000, "억원") == "1,208"
    assert domain.amount(120_809_000_000, "천원") == "120,809,000"
    assert domain.amount(None, "백만원") == "-"
    assert domain.signed_pp(Decimal("-10.3")) == "-10.3%p" and domain.signed_pp(Decimal("0")) == "0.0%p"


def _summary() -> BudgetSummary:
    return BudgetSummary(fiscal_year=2025, as_of=date(2025, 1, 31), divisions=[
        Figures(office="경제실", division="경제정책과", original=120_664 * M, current=120_809 * M, spent=183 * M,
                rate=Decimal("0.2"), plan_rate=Decimal("10.3")),
        Figures(office="경제실", division="일자리정책과", original=252_628 * M, current=252_957 * M, spent=27_360 * M,
                rate=Decimal("10.8"), plan_rate=Decimal("10.3")),
    ], total=Figures(original=373_292 * M, current=373_766 * M, spent=27_543 * M, rate=Decimal("7.4")))


def _program(pid: str, division: str, spent: int, scope: str = "record", original: int | None = 1000 * M,
             rate: str = "1.0") -> BudgetProgram:
    return BudgetProgram(program_id=pid, title=pid.split("/")[-1], division=division, scope=scope,
                         original=original, current_budget=original, spent=spent, rate=Decimal(rate),
                         plan_rate=Decimal("10.3"))


def test_report_table_keeps_subtotals_from_the_view_and_only_records_as_rows() -> None:
    programs = [
        _program("경제정책과/서울형R&D지원", "경제정책과", 1 * M, rate="0.0"),
        _program("경제정책과/기본경비", "경제정책과", 23 * M, rate="6.8"),
        _program("경제정책과/서울경제진흥원출연/로봇쇼", "경제정책과", 0, scope="part"),
        _program("경제정책과/미연결", "경제정책과", 0, scope="unlinked"),
        _program("경제정책과/예산없음", "경제정책과", 5 * M, original=None),
        _program("일자리정책과/서울동행일자리", "일자리정책과", 19_773 * M, rate="21.0"),
    ]
    table = domain.report_table(_summary(), programs)
    assert [b.division for b in table.blocks] == ["경제정책과", "일자리정책과"]
    first = table.blocks[0]
    assert first.subtotal.current == 120_809 * M  # the view's rollup, not a sum of the rows shown
    assert [r.label for r in first.rows] == ["서울형R&D지원", "기본경비"]
    assert first.subtotal.versus == Decimal("-10.1")
    rows = table.all_rows()
    assert [r.kind for r in rows] == ["계", "소계", "사업", "사업", "소계", "사업"]

    by_spent = domain.report_table(_summary(), programs, "spent", descending=True)
    assert [b.division for b in by_spent.blocks] == ["일자리정책과", "경제정책과"]
    assert [r.label for r in by_spent.blocks[1].rows] == ["기본경비", "서울형R&D지원"]
    only = domain.report_table(_summary(), programs, division="일자리정책과")
    assert [b.division for b in only.blocks] == ["일자리정책과"]


def _reported_summary(spent_sum: int = 183_240_000, as_of: date = date(2025, 1, 31)) -> BudgetSummary:
    """001's 경제정책과 and 계 (백만원, typed from the report) beside sums of programs that carry
    exact 천원 figures (the 본예산 of its programs adds up to 120,664.973 백만원)."""
    econ = Reported(as_of=as_of, original=120_664 * M, current=120_809 * M, spent=183 * M, rate=Decimal("0.2"),
                    unit="백만원")
    whole = Reported(as_of=as_of, original=668_901 * M, current=682_752 * M, spent=49_232 * M,
                     rate=Decimal("7.2"), unit="백만원")
    return BudgetSummary(fiscal_year=2025, as_of=date(2025, 1, 31), divisions=[
        Figures(office="경제실", division="경제정책과", programs=15, original=120_664_973_000,
                current=120_809_973_000, spent=spent_sum, rate=Decimal("0.2"), plan_rate=Decimal("10.3"),
                reported=econ),
    ], total=Figures(programs=122, original=668_903 * M, current=682_754 * M, spent=49_232 * M,
                     rate=Decimal("7.2"), reported=whole))


def test_subtotals_print_the_reports_figures_with_the_sum_of_programs_beside() -> None:
    programs = [_program("경제정책과/서울형R&D지원", "경제정책과", 1 * M)]
    table = domain.report_table(_reported_summary(), programs)
    sub = table.blocks[0].subtotal
    assert (sub.original, sub.current, sub.spent, sub.rate) == (120_664 * M, 120_809 * M, 183 * M, Decimal("0.2"))
    assert sub.of_record == date(2025, 1, 31) and sub.versus == Decimal("-10.1")
    beside = sub.beside
    assert beside is not None and beside.label == "세부사업 합"
    assert domain.amount(beside.original, "백만원") == "120,665"
    assert beside.note("original", "백만원") == "반올림 차 +1"
    assert beside.note("original", "천원") == "반올림 차 +973"
    assert beside.note("spent", "백만원") == "반올림 차 +0"  # 0.24 백만원: the sign says which way
    assert (table.total.original, table.total.current) == (668_901 * M, 682_752 * M)
    assert table.total.beside is not None and table.total.beside.note("current", "백만원") == "반올림 차 +2"
    assert table.total.beside.note("spent", "백만원") is None  # the same figure
    assert domain.of_record_text(table) == "2025-01-31 기준"
    # more than rounding explains (16 rows of half a 백만원 at most): said so, not called rounding
    off = domain.report_table(_reported_summary(spent_sum=200 * M), programs).blocks[0].subtotal.beside
    assert off is not None and off.note("spent", "백만원") == "차이 +17" and not off.within_rounding("spent")
    # the downloads carry both: the printed figures, the sums and where the printed ones come from
    rows = list(openpyxl.load_workbook(io.BytesIO(export.to_xlsx(table, "백만원"))).active.iter_rows(values_only=True))
    sub_row = next(r for r in rows if r[0] == "소계")
    assert sub_row[3:6] == (120_664, 120_809, 183)
    assert sub_row[9:13] == (120_665, 120_810, 183, "보고서 (2025-01-31 기준)")
    program_row = next(r for r in rows if r[0] == "세부사업")
    assert program_row[9:13] == (None, None, None, None)


def test_an_older_report_is_shown_beside_newer_sums() -> None:
    """Programs with figures after the report's 기준일: the 소계 is their sum, the report's beside."""
    summary = _reported_summary().model_copy(update={"as_of": None})
    later = _program("경제정책과/서울형R&D지원", "경제정책과", 1 * M).model_copy(update={"as_of": date(2025, 2, 28)})
    sub = domain.report_table(summary, [later]).blocks[0].subtotal
    assert sub.of_record is None and sub.original == 120_664_973_000
    assert sub.beside is not None and sub.beside.label == "보고서 (2025-01-31 기준)"
    assert sub.beside.original == 120_664 * M and sub.beside.note("original", "백만원") is None
    # without reported figures, the sums as before
    plain = domain.report_table(_summary(), []).blocks[0].subtotal
    assert plain.beside is None and plain.of_record is None and plain.current == 120_809 * M


def _alert(fp: str, division: str, names: list[str], **kw: object) -> Alert:
    return Alert(fingerprint=fp, severity=kw.pop("severity", "warning"), labels={"과": division},  # type: ignore[arg-type]
                 recipients=[Recipient(name=n, receiver=f"{n}@staff.test") for n in names], program_id=f"{division}/x",
                 rule="execution_slipped", **kw)


def test_who_sees_and_answers_for_which_alert() -> None:
    lead = Identity("박지은", Role.staff, ("경제정책과",), title="팀장")
    officer = Identity("김지영", Role.staff, ("경제정책과",), title="담당", email="김지영@staff.test")
    namesake = Identity("김지영", Role.staff, ("경제정책과",), title="담당", email="another@staff.test")
    auditor = Identity("감사", Role.auditor)
    ours_to_officer = _alert("a", "경제정책과", ["김지영", "박지은"])
    ours_to_other = _alert("b", "경제정책과", ["이민수"])
    theirs = _alert("c", "일자리정책과", ["홍길동"])
    assert [domain.may_see(lead, a) for a in (ours_to_officer, ours_to_other, theirs)] == [True, True, False]
    assert [domain.mine(officer, a) for a in (ours_to_officer, ours_to_other, theirs)] == [True, False, False]
    assert not domain.mine(namesake, ours_to_officer)  # by address when Access knows it, not by name
    assert [domain.mine(lead, a) for a in (ours_to_officer, ours_to_other, theirs)] == [True, True, False]
    assert all(domain.may_see(auditor, a) for a in (ours_to_officer, ours_to_other, theirs))
    acked = _alert("d", "경제정책과", [], acked_at=datetime(2025, 2, 1, tzinfo=UTC))
    silenced = _alert("e", "경제정책과", [], state="suppressed")
    assert not domain.needs_action(acked) and not domain.needs_action(silenced)
    assert domain.needs_action(ours_to_officer)
    critical = _alert("f", "경제정책과", [], severity="critical")
    assert domain.by_urgency([ours_to_officer, critical])[0] is critical
    flt = domain.AlertFilter(division="경제정책과", acked="no")
    assert [a.fingerprint for a in (ours_to_officer, theirs, acked) if flt.admits(a)] == ["a"]
    assert domain.silence_matchers(ours_to_officer) == [
        {"name": "program", "value": "경제정책과/x", "op": "="},
        {"name": "rule", "value": "execution_slipped", "op": "="},
        {"name": "과", "value": "경제정책과", "op": "="}]  # notify lets staff silence only inside their 과


def test_chart_places_plan_at_month_ends_and_snapshots_on_their_days() -> None:
    detail = BudgetProgramDetail(
        program_id="p", fiscal_year=2025, spent=0,
        plan=Plan(points=[PlanPoint(month=6, cumulative_rate=Decimal("60")),
                          PlanPoint(month=12, cumulative_rate=Decimal("100"))]),
        history=[HistoryPoint(as_of=date(2025, 1, 31), rate=Decimal("0.2")),
                 HistoryPoint(as_of=date(2025, 12, 31), rate=Decimal("100"))])
    c = domain.spending_chart(detail, 2025, today=date(2025, 2, 15), width=412, height=142)
    # plot 352 × 100 from (48, 12): 1 Jan at x=48, 31 Dec at x=400; 0 % at y=112, 100 % at y=12
    assert c.plan.split()[0] == "48.0,112.0" and c.plan.split()[-1] == "400.0,12.0"
    assert c.actual_dots[0][:2] == (round(48 + 30 / 364 * 352, 1), round(112 - 0.2, 1))
    assert c.actual_dots[-1][:2] == (400.0, 12.0)
    assert c.today_x == round(48 + 45 / 364 * 352, 1)
    assert [label for _, label in c.y_ticks] == ["0%", "25%", "50%", "75%", "100%"]


def test_moves_name_old_and_new_window_and_the_report() -> None:
    ref = SourceRef(document="2월 업무보고", line=812)
    m = Milestone(milestone_id="m", history=[
        WindowChange(window_start=date(2025, 3, 1), window_end=date(2025, 3, 31), change="initial"),
        WindowChange(window_start=date(2025, 3, 1), window_end=date(2025, 3, 31), change="same"),
        WindowChange(window_start=date(2025, 4, 1), window_end=date(2025, 4, 30), change="later", source_ref=ref),
    ])
    [move] = domain.moves(m)
    assert (move.old, move.new, move.source) == ("2025-03-01 ~ 2025-03-31", "2025-04-01 ~ 2025-04-30",
                                                 "2월 업무보고 812행")
    assert domain.moved([m, Milestone(milestone_id="n")]) == [m]


def test_session_cookie_rejects_tampering_and_expiry() -> None:
    codec = SessionCodec("secret", 3600)
    who = Identity("박지은", Role.staff, ("경제정책과",), email="a@staff.test", title="팀장")
    session = codec.session(who, "ews_token", now=1000)
    value = codec.encode(session)
    assert codec.decode(value, now=2000) == session and session.expires_at == 1000 + 3600
    assert codec.decode(value, now=1000 + 3601) is None
    assert SessionCodec("other", 3600).decode(value, now=2000) is None
    data, _, sig = value.partition(".")
    assert codec.decode(data[:-2] + "xx." + sig, now=2000) is None
    assert codec.csrf(value) != codec.csrf(codec.encode(codec.session(who, "ews_token", now=1001)))
    # never longer than the access session it carries
    assert codec.session(who, "ews_token", expires_at=1600, now=1000).expires_at == 1600


def test_access_identity_as_the_pages_name_it() -> None:
    me = {"name": "박지은", "role": "staff", "divisions": ["경제정책과"], "office": "경제실", "email": "a@x",
          "title": "팀장", "key_id": None, "via": "session"}
    who = Identity.from_access(me)
    assert who.label == "경제정책과 팀장 박지은" and who.answers_for_division and who.can_act
    system = Identity.from_access({"name": "importer", "role": "system", "divisions": ["*"]})
    assert system.divisions == () and not system.can_act
    auditor = Identity.from_access({"name": "감사관", "role": "auditor"})
    assert auditor.label == "감사 감사관" and auditor.sees_everything and not auditor.can_act


def test_the_web_refuses_the_demo_secret_unless_it_is_the_demo() -> None:
    def settings(**kw: object) -> Settings:
        return Settings(_env_file=None, **kw)  # type: ignore[arg-type]

    assert startup_problems(settings()) == [
        "EXECWATCH_WEB_SESSION_SECRET is the demo secret or shorter than 16 characters"]
    assert startup_problems(settings(web_session_secret="short")) != []
    assert startup_problems(settings(demo=True)) == []
    assert startup_problems(settings(web_session_secret="a-long-random-secret-for-real")) == []


def test_xlsx_has_the_table_in_the_unit_with_numbers() -> None:
    table = domain.report_table(_summary(), [_program("경제정책과/기본경비", "경제정책과", 23 * M, rate="6.8")])
    ws = openpyxl.load_workbook(io.BytesIO(export.to_xlsx(table, "백만원"))).active
    assert ws is not None
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][0] == "2025년 예산현황 (2025-01-31 기준, 단위: 백만원)"
    assert rows[1] == export.HEADERS
    assert rows[2][:7] == ("계", None, None, 373_292, 373_766, 27_543, 7.4)
    assert rows[3][:7] == ("소계", "경제정책과", None, 120_664, 120_809, 183, 0.2)
    assert rows[4][:6] == ("세부사업", "경제정책과", "기본경비", 1000, 1000, 23)
