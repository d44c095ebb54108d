"""The 세부사업 of record: 001's 예산현황 is what the published budget lines say as of its 기준일.

Every figure below is typed from 001's 예산현황 table ("’25. 1. 31. 기준", 백만원), not computed
by the importer."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from services.ingest.importer.cli import map_files
from services.ingest.importer.events import DocumentResult, map_report
from services.ingest.importer.identity import ProgramRegistry
from services.ingest.importer.report import parse_report
from services.ingest.importer.reporting import render
from services.ingest.importer.verify import verify_documents
from tests.report_001 import SUBTOTALS, TOTAL

M = 1_000_000  # 백만원
AS_OF = date(2025, 1, 31)


def _seed(seeds: Path, prefix: str) -> Path:
    found = sorted(seeds.glob(f"{prefix}_*.txt"))
    if not found:
        pytest.skip(f"seed {prefix} absent")
    return found[0]


@pytest.fixture(scope="module")
def january(seeds: Path) -> DocumentResult:
    return map_report(parse_report(_seed(seeds, "001")), ProgramRegistry())


def _lines(doc: DocumentResult, scope: str | None = None) -> dict[str, Any]:
    return {e.key: e.payload for e in doc.envelopes if e.event_type == "budget.line_set"
            and (scope is None or e.payload.scope == scope)}


def _snapshots(doc: DocumentResult, as_of: date = AS_OF) -> dict[str, Any]:
    return {e.key: e.payload for e in doc.envelopes
            if e.event_type == "budget.execution_snapshot" and e.payload.as_of == as_of}


def _rollup(doc: DocumentResult) -> tuple[dict[str, list[int]], dict[str, int]]:
    """(본예산, 예산현액, 집행액, rows) per 과 over the record lines, as a budget view would add them."""
    records, snaps = _lines(doc, "record"), _snapshots(doc)
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for pid, line in records.items():
        if line.account == "기금":
            continue
        row = per[line.division]
        row[0] += line.original
        row[1] += line.current_budget
        row[2] += snaps[pid].spent if pid in snaps else 0
        row[3] += 1
    return per, {pid: snaps[pid].spent for pid in snaps}


def test_every_division_subtotal_and_the_total_are_the_reports(january):
    per, _ = _rollup(january)
    assert set(per) == set(SUBTOTALS)
    for division, printed in SUBTOTALS.items():
        original, current, spent, rows = per[division]
        tolerance = rows * M // 2  # every row is printed rounded to 백만원
        for got, want in zip((original, current, spent), printed, strict=True):
            assert abs(got - want * M) <= tolerance, (division, got, want)
    total = [sum(p[i] for p in per.values()) for i in range(3)]
    rows = sum(p[3] for p in per.values())
    for got, want in zip(total, TOTAL[:3], strict=True):
        assert abs(got - want * M) <= rows * M // 2
    # 7.2 % as printed
    assert round(100 * total[2] / total[1], 1) == 7.2


def test_record_lines_are_only_rows_of_the_summary(january):
    records = _lines(january, "record")
    assert all(p.parent_program_id is None and p.effective_date == AS_OF for p in records.values())
    assert {p.account for p in records.values()} == {"일반회계"}
    # 001's 예산현황 has 122 세부사업 rows (15+20+18+8+12+15+15+7+12 per 과)
    assert len(records) == 122
    assert sum(1 for p in records.values() if p.division == "경제정책과") == 15
    parts = _lines(january, "part")
    assert parts and all(p.parent_program_id in records for p in parts.values())
    assert not set(parts) & set(records)


def test_children_are_parts_of_their_record(january):
    parts = {p.title: p.parent_program_id for p in _lines(january, "part").values()}
    assert parts["2025 서울 로봇쇼(서울경제진흥원 출연금)"] == "경제정책과/서울경제진흥원출연"
    assert parts["홍릉 일대 도시재생뉴딜사업 지원(R&D지원센터 공사비)"] == "첨단산업과/홍릉일대도시재생뉴딜사업지원"
    rise = "대학협력과/서울지역혁신중심대학지원체계추진"
    assert {t for t, parent in parts.items() if parent == rise} == {
        "서울 지역혁신중심대학지원체계 추진", "서울 RISE 센터 운영",
        "캠퍼스타운 사업(창업형)", "캠퍼스타운 사업(단위형)"}
    registered = {e.key: e.payload for e in january.envelopes if e.event_type == "program.registered"}
    robot = next(k for k, p in registered.items() if p.title.startswith("2025 서울 로봇쇼"))
    assert (registered[robot].kind, registered[robot].parent_program_id) == ("part", "경제정책과/서울경제진흥원출연")


def test_record_figures_and_execution_of_record(january):
    lines, snaps = _lines(january, "record"), _snapshots(january)
    rise = "대학협력과/서울지역혁신중심대학지원체계추진"
    # the report prints 65,648 / 3,226 (4.9 %), not the 43,998 of one of its detail rows
    assert abs(lines[rise].current_budget - 65_648 * M) < M // 2
    assert abs(snaps[rise].spent - 3_226 * M) < M // 2
    # a summary-only row: the 예산현황 집행액, no 원인행위액 printed there
    assert (snaps["경제정책과/개포디지털혁신파크운영"].spent, snaps["경제정책과/개포디지털혁신파크운영"].committed) == (
        113 * M, None)
    # a detail table (천원) that is the 세부사업 gives the exact figures: 837천원 (예산현황: 1 백만원)
    hub = snaps["창업정책과/서울창업허브공덕운영"]
    assert (hub.committed, hub.spent) == (837_000, 837_000)
    assert lines["창업정책과/서울창업허브공덕운영"].original == 17_233_628_000
    # 0.1 백만원 is kept as printed
    assert lines["금융투자과/국고보조금반환"].original == 100_000
    # a detail figure that disagrees with the 예산현황 (1,51362 misprint) is not published for the record
    assert snaps["첨단산업과/양재AI혁신지구육성"].spent == 1_513 * M
    assert any(x.program_id == "첨단산업과/양재AI혁신지구육성" for x in january.execution_choices)


def test_one_line_and_one_snapshot_per_program(january):
    lines = [e.key for e in january.envelopes if e.event_type == "budget.line_set"]
    snaps = [(e.key, e.payload.as_of) for e in january.envelopes if e.event_type == "budget.execution_snapshot"]
    assert len(lines) == len(set(lines))
    assert len(snaps) == len(set(snaps))


def test_the_fund_is_not_in_the_expenditure_total(january):
    funds = [p for p in _lines(january).values() if p.account == "기금"]
    assert [(p.division, p.original, p.scope) for p in funds] == [("창업정책과", 59_303_000_000, "unlinked")]
    per, _ = _rollup(january)
    assert abs(per["창업정책과"][1] - 71_912 * M) <= per["창업정책과"][3] * M // 2
    assert january.accounts()["기금/unlinked"]["original"] == 59_303_000_000


def test_unlinked_rows_are_listed_and_held_out(january):
    unlinked = _lines(january, "unlinked")
    assert {u.program_id for u in january.unlinked} == set(unlinked)
    names = {u.name for u in january.unlinked}
    # the 뷰티 rows add up to no 세부사업 of record (뷰티산업육성 지원 1,347): never guessed
    assert {"서울뷰티허브 조성", "뷰티 비즈니스 아카데미 운영", "유망 뷰티기업 마케팅 지원"} <= names


def test_near_duplicate_names_link_by_amount(january):
    how = {link.name: (link.record_name, link.how) for link in january.links}
    assert how["캠퍼스타운 기업성장센터 운영"] == ("캠퍼스타운 기업성장센터 관리·운영", "amount")
    assert how["마곡산업단지 정책심의회 운영"] == ("마곡산업단지 정책심의위원회 운영", "amount")
    assert "캠퍼스타운기업성장센터운영" not in " ".join(_lines(january))


def test_import_report_lists_links_children_unlinked_and_accounts(seeds):
    summary = map_files([_seed(seeds, "001"), _seed(seeds, "000")], progress=False)
    data = json.loads(json.dumps(summary.as_dict(), default=str))
    doc = data["documents"][0]
    assert {c["name"] for c in doc["children"]} >= {"서울영화센터 건립", "서울영화센터 운영(건립예산 별도)"}
    assert all(c["parent_id"] for c in doc["children"])
    assert any(k["how"] == "amount" for k in doc["links"])
    assert any(u["account"] == "기금" for u in doc["unlinked"])
    assert set(doc["accounts"]) >= {"일반회계/record", "일반회계/part", "기금/unlinked"}
    assert doc["record_checks"] and all(c["ok"] for c in doc["record_checks"])
    text = render(summary)
    for heading in ("하위 항목 children", "연결 안 됨 unlinked", "회계별 accounts", "예산현황 대조"):
        assert heading in text
    assert "서울영화센터 건립 -> 서울영화센터 건립 및 운영" in text


def test_supplementary_takes_effect_after_january(seeds):
    summary = map_files([_seed(seeds, "001"), _seed(seeds, "000")], progress=False)
    amended = [e for e in summary.envelopes if e.event_type == "budget.amended"]
    records = {e.key for e in summary.documents[0].envelopes
               if e.event_type == "budget.line_set" and e.payload.scope == "record"}
    assert amended and all(e.key in records for e in amended)
    # 000 prints no date of its own; its 추경 is "’25.6월 추가경정예산": in force by the end of June
    assert {e.payload.effective_date for e in amended} == {date(2025, 6, 30)}


def test_alias_parts_link_a_row_below_a_record(tmp_path, seeds):
    aliases = tmp_path / "aliases.yaml"
    aliases.write_text("뷰티패션산업과/뷰티산업육성지원:\n  division: 뷰티패션산업과\n"
                       "  parts: [서울뷰티허브 조성]\n", encoding="utf-8")
    summary = map_files([_seed(seeds, "001")], aliases=aliases, progress=False)
    doc = summary.documents[0]
    child = next(c for c in doc.children if c.name == "서울뷰티허브 조성")
    assert (child.parent_id, child.how) == ("뷰티패션산업과/뷰티산업육성지원", "alias")
    assert "서울뷰티허브 조성" not in {u.name for u in doc.unlinked}


# ---------------------------------------------------------------- end-to-end reconciliation


def _view(doc: DocumentResult, count: set[str]) -> dict[str, Any]:
    """A budget summary JSON as the view would answer, adding lines of the given scopes."""
    lines, snaps = _lines(doc), _snapshots(doc)
    per: dict[str, dict[str, int]] = defaultdict(lambda: {"current": 0, "spent": 0})
    for pid, line in lines.items():
        if line.scope in count:
            per[line.division]["current"] += line.current_budget
            per[line.division]["spent"] += snaps[pid].spent if pid in snaps else 0
    total = {k: sum(v[k] for v in per.values()) for k in ("current", "spent")}
    return {"divisions": [{"office": "경제실", "division": d, **v} for d, v in per.items()],
            "offices": [{"office": "경제실", **total}], "total": total}


def _verify(doc: DocumentResult, answer: dict[str, Any]) -> Any:
    urls: list[str] = []

    def fetch(url: str) -> dict[str, Any]:
        urls.append(url)
        return answer

    ticks = iter(range(1000))
    [result] = verify_documents([doc], "http://budget", timeout=3, fetch=fetch, stream=_Sink(),
                                clock=lambda: float(next(ticks)), sleep=lambda _: None)
    return result, urls


class _Sink:
    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        pass


def test_verification_agrees_with_a_view_of_the_records(january):
    result, urls = _verify(january, _view(january, {"record"}))
    assert result.ok and result.checked == 20  # 9 소계 + 계, 예산현액 and 집행액
    assert urls == ["http://budget/v1/budget/summary?fiscal_year=2025&as_of=2025-01-31"]


def test_verification_names_the_cause_of_a_difference(january):
    result, urls = _verify(january, _view(january, {"record", "part"}))
    assert not result.ok and len(urls) > 1  # it waited for the view before giving up
    by_label = {(d.label, d.column): d for d in result.differences}
    film = by_label[("창조산업과 소계", "예산현액")]
    assert film.report == 56_546 * M and "part" in film.cause
    assert ("경제정책과 소계", "예산현액") in by_label and ("계", "예산현액") in by_label
    unreachable = verify_documents([january], "http://budget", timeout=0, fetch=_refuse, stream=_Sink())
    assert unreachable[0].error and not unreachable[0].ok


def _refuse(url: str) -> dict[str, Any]:
    import httpx

    raise httpx.ConnectError("refused")


def test_import_exits_non_zero_when_the_budget_view_disagrees(monkeypatch, tmp_path, seeds, capsys):
    import argparse

    from services.ingest.importer import cli
    from services.ingest.importer.publish import PublishResult

    def fake_import(paths, *args: Any, **kwargs: Any):
        summary = map_files(paths, progress=False)
        summary.published = PublishResult(accepted=len(summary.envelopes))
        return summary

    answers: dict[str, dict[str, Any]] = {}
    monkeypatch.setattr(cli, "import_files", fake_import)
    monkeypatch.setattr(cli, "verify_documents", lambda docs, url, timeout, stream, token=None: verify_documents(
        docs, url, 0, fetch=lambda _: answers["view"], stream=stream))
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    report = tmp_path / "report.json"
    args = parser.parse_args([str(_seed(seeds, "001")), "--token", "t", "--state", "", "--report", str(report),
                              "--quiet"])
    january = map_files([_seed(seeds, "001")], progress=False).documents[0]
    answers["view"] = _view(january, {"record"})
    assert cli.run(args) == 0
    assert json.loads(report.read_text("utf-8"))["verification"][0]["ok"] is True
    answers["view"] = _view(january, {"record", "unlinked"})
    assert cli.run(args) == 4
    out = capsys.readouterr().out
    assert "불일치 뷰티패션산업과 소계 예산현액" in out and "unlinked lines counted in the total" in out
    assert cli.run(parser.parse_args([*map(str, [_seed(seeds, "001")]), "--token", "t", "--state", "",
                                      "--no-verify", "--quiet"])) == 0


def test_the_state_file_remembers_scopes(seeds, tmp_path):
    from services.ingest.importer.identity import registry_from_json, registry_to_json

    summary = map_files([_seed(seeds, "001")], progress=False)
    assert summary.registry is not None
    again = registry_from_json(json.loads(json.dumps(registry_to_json(summary.registry))))
    part = again.programs["첨단산업과/홍릉일대도시재생뉴딜사업지원/홍릉일대도시재생뉴딜사업지원(R&D지원센터공사비)"]
    assert (part.scope, part.parent) == ("part", "첨단산업과/홍릉일대도시재생뉴딜사업지원")
    assert again.programs["경제정책과/서울형R&D지원"].account == "일반회계"
    # a later report's row by the part's name never resolves to the part, only to records
    match = again.resolve("홍릉 일대 도시재생뉴딜사업 지원", "첨단산업과", "later.txt")
    assert match.program_id == "첨단산업과/홍릉일대도시재생뉴딜사업지원"


def test_every_subtotal_and_the_total_are_published_as_printed(january):
    """The printed 소계 and 계 are facts of record: one division snapshot per 과 and one for the 실,
    each exactly the report's figures (no rounding difference, unlike the sum of the rows)."""
    facts = {e.key: e for e in january.envelopes if e.event_type == "budget.division_snapshot"}
    want = {f"division:경제실/{d}": (d, figures) for d, figures in SUBTOTALS.items()}
    want["division:경제실/"] = (None, TOTAL[:3])
    assert set(facts) == set(want)
    for key, (division, (original, current, spent)) in want.items():
        p = facts[key].payload
        assert (p.office, p.division, p.fiscal_year, p.as_of, p.unit) == ("경제실", division, 2025, AS_OF, "백만원")
        assert (p.original, p.current, p.committed, p.spent) == (original * M, current * M, None, spent * M), key
        assert p.source_ref.section == "예산현황" and p.source_ref.line is not None
    # 창업정책과's 소계 is printed above its heading (after 일자리정책과's rows): still its own
    lines = _seed_lines(january)
    assert lines[facts["division:경제실/창업정책과"].payload.source_ref.line - 1].split() == \
        ["소", "계", "71,880", "71,912", "66,929", "542", "0.8"]
    assert lines[facts["division:경제실/"].payload.source_ref.line - 1].startswith("계 668,901 682,752")


def _seed_lines(doc: DocumentResult) -> list[str]:
    return Path(doc.path).read_text(encoding="utf-8").splitlines()
