"""The import report staff read: counts, reconciliation, unusable lines, programs to link, how each
section's budget rows were linked to the 세부사업 of record (children, alias and amount links,
unlinked rows), totals per account, and the published record lines against the report's own
소계/계 (and, after publishing, against the budget view: see `verify.py`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from services.ingest.importer.events import AnyEnvelope, DocumentResult
from services.ingest.importer.identity import ProgramRegistry
from services.ingest.importer.model import Reconciliation
from services.ingest.importer.publish import PublishResult
from services.ingest.importer.verify import Verification, render_verification

KIND_LABELS = {
    "program.registered": "사업 등록 program.registered",
    "budget.line_set": "예산 budget.line_set",
    "budget.execution_snapshot": "집행 현황 budget.execution_snapshot",
    "budget.amended": "추경 budget.amended",
    "budget.division_snapshot": "과/실 보고 수치 budget.division_snapshot",
    "milestone.set": "일정 milestone.set",
    "target.set": "목표 target.set",
}
CAUSES = {
    "the document's own subtotal differs from its rows": "문서 자체의 합계가 행의 합과 다름 (원문 불일치)",
    "column shift: a value seems to sit in the wrong column": "열 밀림: 값이 다른 열에 인쇄됨 (원문 확인 필요)",
}


@dataclass
class ImportSummary:
    documents: list[DocumentResult] = field(default_factory=list)
    published: PublishResult | None = None  # None for a dry run
    dry_run: bool = False
    registry: ProgramRegistry | None = None  # what the run knows, for the state file
    last_listed: list[AnyEnvelope] = field(default_factory=list)  # milestones and targets, latest reports
    verifications: list[Verification] = field(default_factory=list)  # the budget view vs the reports

    @property
    def envelopes(self) -> list[AnyEnvelope]:
        return [e for d in self.documents for e in d.envelopes]

    def counts(self) -> Counter[str]:
        return Counter(e.event_type for e in self.envelopes)

    @property
    def unreadable(self) -> list[DocumentResult]:
        return [d for d in self.documents if d.error]

    def as_dict(self) -> dict[str, Any]:
        pub = self.published
        return {
            "dry_run": self.dry_run,
            "counts": dict(self.counts()),
            "documents": [{
                "path": d.path, "kind": d.kind, "reference_year": d.reference_year, "error": d.error,
                "counts": dict(d.counts()),
                "reconciliation": [{
                    "table": label, "row_line": r.row_line, "label": r.label, "column": r.column,
                    "printed": r.printed, "computed": r.computed, "tolerance": r.tolerance, "ok": r.ok,
                    "cause": r.cause} for label, r in d.reconciliations],
                "inconsistencies": [{"line": i.line, "program_id": i.program_id, "text": i.text}
                                    for i in d.inconsistencies],
                "issues": [{"line": i.line, "reason": i.reason, "text": i.text} for i in d.issues],
                "unmatched": [{"line": u.line, "name": u.name, "division": u.division,
                               "program_id": u.program_id} for u in d.unmatched],
                "document_date": d.document_date,
                "links": [{"line": k.line, "section": k.section, "name": k.name, "record_id": k.record_id,
                           "record_name": k.record_name, "how": k.how} for k in d.links],
                "children": [{"line": c.line, "section": c.section, "name": c.name, "program_id": c.program_id,
                              "parent_id": c.parent_id, "parent_name": c.parent_name, "how": c.how}
                             for c in d.children],
                "unlinked": [{"line": u.line, "section": u.section, "name": u.name, "program_id": u.program_id,
                              "division": u.division, "account": u.account, "original": u.original,
                              "current": u.current, "reason": u.reason} for u in d.unlinked],
                "execution_choices": [{"line": x.line, "program_id": x.program_id, "name": x.name,
                                       "detail_spent": x.detail_spent, "record_spent": x.record_spent}
                                      for x in d.execution_choices],
                "accounts": d.accounts(),
                "record_checks": [{
                    "as_of": t.as_of, "label": fig.label, "division": fig.division, "column": column,
                    "printed": printed, "published": value, "tolerance": fig.tolerance, "ok": ok}
                    for t in d.record_tables for fig, column, printed, value, ok in t.checks(d.envelopes)],
                "division_execution": [{
                    "line": x.line, "division": x.division, "kind": x.kind,
                    "as_of": x.as_of.isoformat() if x.as_of else None, "unit": x.unit,
                    "current": x.current, "committed": x.committed, "spent": x.spent,
                    "committed_rate": None if x.committed_rate is None else str(x.committed_rate),
                    "spent_rate": None if x.spent_rate is None else str(x.spent_rate)} for x in d.division_execution],
                "national_rows": [{"line": r.line, "name": r.name, "parent": r.parent, "kind": r.kind,
                                   "headers": list(r.headers), "amounts": list(r.amounts)}
                                  for r in d.national_rows],
            } for d in self.documents],
            "verification": [v.as_dict() for v in self.verifications],
            "published": None if pub is None else {
                "accepted": pub.accepted, "duplicates": pub.duplicates, "failed": pub.failed,
                "unsent": pub.unsent,
                "rejected": [r.__dict__ for r in pub.rejected]},
        }


def _won(n: int | None) -> str:
    return "미상" if n is None else f"{n:,}원"


HOW = {"name": "이름 일치", "alias": "별칭표", "amount": "금액 일치 (본예산·예산현액, 단위 반올림 이내)",
       "sum": "여러 행의 합이 세부사업 금액과 일치", "amount-differs": "같은 이름, 금액은 세부사업의 일부",
       "sub-item": "세부사업 이름 + 괄호 안 세부 항목", "funded-through": "괄호 안 재원이 세부사업 (출연금 등)",
       "printed-again": "같은 세부사업이 다시 인쇄됨", "earlier": "이전 보고서에서 하위 항목으로 연결됨"}


def _links_block(d: DocumentResult) -> list[str]:
    out: list[str] = []
    renamed = [k for k in d.links if k.how != "name"]
    if d.links:
        out.append(f"  세부사업 연결 linked to the 세부사업 of record: {len(d.links)} rows "
                   f"({len(d.links) - len(renamed)} by name)")
        for k in renamed:
            out.append(f"    {d.name}:{k.line}: {k.name} -> {k.record_name} [{k.record_id}] — {HOW.get(k.how, k.how)}")
    if d.children:
        out.append(f"  하위 항목 children (part of a 세부사업; shown on its page, never in a total): {len(d.children)}")
        for c in d.children:
            out.append(f"    {d.name}:{c.line}: {c.name} -> {c.parent_name} [{c.parent_id}] — {HOW.get(c.how, c.how)}")
    if d.unlinked:
        out.append(f"  연결 안 됨 unlinked (held out of totals until the alias table links them): {len(d.unlinked)}")
        for u in d.unlinked:
            out.append(f"    {d.name}:{u.line}: {u.name} ({u.division or '과 미상'}, {u.account}, 본예산 "
                       f"{_won(u.original)}) [{u.program_id}] — {u.reason}")
    for x in d.execution_choices:
        out.append(f"  {d.name}:{x.line}: 집행액 차이 {x.name}: 상세 표 {_won(x.detail_spent)} vs 예산현황 "
                   f"{_won(x.record_spent)}; 예산현황 값을 게시 (the 예산현황 is the figure of record)")
    accounts = d.accounts()
    if accounts:
        out.append("  회계별 accounts (lines / 본예산 / 예산현액):")
        for key, sums in accounts.items():
            account, scope = key.split("/")
            note = {"record": "합계 포함", "part": "하위 항목, 합계 제외", "unlinked": "연결 안 됨, 합계 제외"}[scope]
            if account == "기금":
                note += "; 기금은 세출 합계에 들어가지 않음"
            out.append(f"    {account} {scope}: {sums['lines']} / {_won(sums['original'])} / "
                       f"{_won(sums['current'])} ({note})")
    for t in d.record_tables:
        checks = t.checks(d.envelopes)
        bad = [c for c in checks if not c[4]]
        out.append(f"  예산현황 대조 published record lines vs the report's 소계/계 (기준일 {t.as_of}): "
                   f"{len(checks) - len(bad)} of {len(checks)} agree within rounding")
        for fig, column, printed, value, _ in bad:
            out.append(f"    {fig.label} {column}: 보고서 {_won(printed)} / 게시 {_won(value)} "
                       f"(차 {value - printed:+,}원, 허용 {fig.tolerance:,}원)")
    return out


def _recon_line(label: str, r: Reconciliation) -> str:
    if r.ok:
        diff = r.printed - r.computed
        note = "일치 reconciles" + (f" (반올림 차 {diff:+,}원)" if diff else "")
    else:
        cause = CAUSES.get(r.cause or "", r.cause or "원인 불명")
        note = f"불일치 off by {r.printed - r.computed:+,}원 — {cause}"
    return f"  {label} · {r.label} · {r.column}: 인쇄 {_won(r.printed)} / 계산 {_won(r.computed)}  {note}"


def render(summary: ImportSummary, verbose_ok: bool = False) -> str:
    """Plain-text import report (Korean labels, English keys), one block per document."""
    out: list[str] = []
    head = "가져오기 미리보기 (dry run: nothing published)" if summary.dry_run else "가져오기 결과 import report"
    out.append(f"== {head} ==")
    for d in summary.documents:
        out.append("")
        out.append(f"# {d.path}")
        if d.error:
            out.append(f"  읽을 수 없음 cannot read: {d.error}")
            continue
        out.append(f"  종류 kind: {d.kind}, 기준연도 reference year: {d.reference_year or '-'}")
        counts = d.counts()
        if counts:
            out.append("  이벤트 events:")
            for kind, label in KIND_LABELS.items():
                if counts.get(kind):
                    out.append(f"    {label}: {counts[kind]}")
        else:
            out.append("  이벤트 없음 no events: the document has no budget, schedule or target this importer uses")
        bad = [(lbl, r) for lbl, r in d.reconciliations if not r.ok]
        good = [(lbl, r) for lbl, r in d.reconciliations if r.ok]
        if d.reconciliations:
            out.append(f"  합계 검증 reconciliation: {len(good)} reconcile, {len(bad)} off")
            for lbl, r in (d.reconciliations if verbose_ok else bad):
                out.append(_recon_line(lbl, r))
            if not verbose_ok and good:
                labels = sorted({f"{r.label}" for _, r in good})
                out.append(f"  일치 reconciles within rounding: {', '.join(labels)}")
        if d.division_execution:
            out.append(f"  과별 집행 현황 division execution ({len(d.division_execution)} rows; each 과 row "
                       "published as budget.division_snapshot, the 계 shown here only):")
            for x in d.division_execution:
                spent = _won(x.spent) if x.spent is not None else "-"
                current = _won(x.current) if x.current is not None else "-"
                out.append(f"    {d.name}:{x.line}: {x.division} 예산현액 {current} 지출액 {spent}"
                           f" ({x.spent_rate if x.spent_rate is not None else '-'}%) as of {x.as_of or '-'}")
        if d.national_rows:
            rows = [r for r in d.national_rows if r.kind == "row"]
            out.append(f"  국가 계획 예산표 national table: {len(rows)} programs "
                       f"({sum(1 for r in rows if r.parent)} 내역사업), published as programs and budget lines of "
                       "the national government (scope unlinked: never in a Seoul total)")
        for inc in d.inconsistencies:
            out.append(f"  {d.name}:{inc.line}: 불일치 row inconsistent: {inc.text}")
        if d.issues:
            out.append(f"  사용하지 못한 줄 lines not used / doubts ({len(d.issues)}):")
            for i in d.issues:
                text = f" — {i.text[:80]}" if i.text else ""
                out.append(f"    {d.name}:{i.line}: {i.reason}{text}")
        out.extend(_links_block(d))
        if d.unmatched:
            out.append(f"  연결 필요 unmatched programs to link ({len(d.unmatched)}): add to the alias table "
                       "if one is an existing program")
            for u in d.unmatched:
                out.append(f"    {d.name}:{u.line}: {u.name} ({u.division or '과 미상'}) -> new id {u.program_id}")
    total = summary.counts()
    out.append("")
    out.append("== 합계 totals: " + (", ".join(f"{k} {v}" for k, v in sorted(total.items())) or "no events"))
    pub = summary.published
    if pub is not None:
        out.append(f"   게시 published: accepted {pub.accepted}, duplicates {pub.duplicates}, "
                   f"rejected {len(pub.rejected)}")
        for rej in pub.rejected:
            out.append(f"   거부 rejected {rej.event_type} {rej.key} ({rej.event_id}): {rej.field}: {rej.message}")
        if pub.failed:
            out.append(f"   실패 failed: {pub.failed}; {pub.unsent} events not sent")
    if summary.verifications:
        out.append("")
        out.extend(render_verification(summary.verifications))
    return "\n".join(out)


def render_dry_run(summary: ImportSummary) -> str:
    """What would be published, readable: one line per event, grouped by program."""
    out: list[str] = []
    by_key: dict[str, list[AnyEnvelope]] = {}
    for e in summary.envelopes:
        by_key.setdefault(e.key, []).append(e)
    for key, events in by_key.items():
        out.append(f"[{key}]")
        for e in events:
            out.append(f"  - {_describe(e)}")
    return "\n".join(out)


def _describe(e: AnyEnvelope) -> str:
    p = e.payload
    t = e.event_type
    if t == "program.registered":
        people = ", ".join(f"{c.role} {c.name}" for c in p.contacts)
        return f"사업 등록: {p.title} ({p.division or '과 미상'}{'/' + p.team if p.team else ''}) {people}"
    if t == "budget.line_set":
        cur = _won(p.current) if p.current is not None else "(예산현액 비움)"
        scope = {"record": "", "part": f" [하위 항목 of {p.parent_program_id}]", "unlinked": " [연결 안 됨]"}[p.scope]
        return (f"예산 {p.fiscal_year} ({p.account or '회계 미상'}, {p.effective_date or '일자 미상'} 기준){scope}: "
                f"본예산 {_won(p.original)}, 이월 등 {_won(p.carried_over)}, 예산현액 {cur}")
    if t == "budget.execution_snapshot":
        return f"집행 {p.as_of}: 원인행위 {_won(p.committed)}, 지출 {_won(p.spent)}"
    if t == "budget.division_snapshot":
        who = p.division or f"{p.office} 계"
        return (f"과/실 보고 수치 {who} {p.as_of}: 본예산 {_won(p.original)}, 예산현액 {_won(p.current)}, "
                f"원인행위 {_won(p.committed)}, 지출 {_won(p.spent)}")
    if t == "budget.amended":
        when = p.effective_date or "시행일 미상"
        return (f"추경 {p.amendment_id} ({when}): 기정 {_won(p.before)} + 증감 {p.change:+,}원 = {_won(p.after)}")
    if t == "milestone.set":
        window = f"{p.window_start or '…'} ~ {p.window_end or '…'}"
        flags = (" [검토 필요]" if p.needs_review else "") + (f" [{p.recurrence}]" if p.recurrence else "")
        return f"일정 ({p.status}): {p.title} — {p.window_text or ''} → {window}{flags}"
    if t == "target.set":
        return f"목표: {p.activity} {p.target_value}{p.unit}"
    return t
