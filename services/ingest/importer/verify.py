"""End-to-end reconciliation: after publishing, does the budget view say what the report says?

For every 예산현황 table an import published, `GET /v1/budget/summary?fiscal_year=Y&as_of=<기준일>`
is compared per 과 (예산현액 `current`, 집행액 `spent`) and for the 계 (the office's rollup) with
the report's own 소계/계, within the rounding the table allows. The view fills asynchronously, so
the check polls until everything agrees or the timeout passes, then names every difference with
its likely cause, worked out from what the import itself published (a difference equal to the
parts of that 과, its unlinked rows, its 기금, or a 추경 dated after the 기준일 says which rule the
view broke).
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TextIO

import httpx

from services.ingest.importer.events import AnyEnvelope, DocumentResult, RecordFigures, RecordTable

DEFAULT_BUDGET_URL = "http://127.0.0.1:8702"
COLUMNS = (("예산현액", "current"), ("집행액", "spent"))


@dataclass(frozen=True)
class Difference:
    label: str  # "경제정책과 소계" / "계"
    column: str  # 예산현액 / 집행액
    report: int
    view: int | None  # None: the view does not list it
    tolerance: int
    cause: str


@dataclass
class Verification:
    document: str
    fiscal_year: int
    as_of: date
    url: str
    checked: int = 0
    differences: list[Difference] = field(default_factory=list)
    error: str | None = None  # the view could not be read at all
    waited: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and not self.differences

    def as_dict(self) -> dict[str, Any]:
        return {"document": self.document, "fiscal_year": self.fiscal_year, "as_of": self.as_of.isoformat(),
                "url": self.url, "checked": self.checked, "ok": self.ok, "error": self.error,
                "waited_seconds": round(self.waited, 1),
                "differences": [d.__dict__ for d in self.differences]}


def _summary_url(base: str, fiscal_year: int, as_of: date) -> str:
    return f"{base.rstrip('/')}/v1/budget/summary?fiscal_year={fiscal_year}&as_of={as_of.isoformat()}"


def view_figures(data: dict[str, Any], office: str | None) -> dict[str | None, dict[str, int]]:
    """Per 과 (and None for the office's 계) the view's `current` and `spent`."""
    out: dict[str | None, dict[str, int]] = {}
    for item in data.get("divisions", []):
        if office and item.get("office") not in (office, None):
            continue
        row = out.setdefault(item.get("division"), {"current": 0, "spent": 0})
        for _, key in COLUMNS:
            row[key] += int(item.get(key) or 0)
    offices = [o for o in data.get("offices", []) if o.get("office") == office]
    whole = offices[0] if offices else data.get("total") or {}
    out[None] = {key: int(whole.get(key) or 0) for _, key in COLUMNS}
    return out


def _explanations(envelopes: Sequence[AnyEnvelope], table: RecordTable, division: str | None,
                  column: str) -> dict[str, int]:
    """Amounts the import published that the view must NOT count in this 과 as of the 기준일: if a
    difference equals one of them, that is the likely cause."""
    def mine(p: Any) -> bool:
        return division is None or p.division == division

    lines = {e.key: e.payload for e in envelopes if e.event_type == "budget.line_set"}
    found: dict[str, int] = {}

    def add(label: str, amount: int) -> None:
        if amount:
            found[label] = found.get(label, 0) + amount

    for p in lines.values():
        if not mine(p):
            continue
        what = ("기금 lines counted in the 세출 total" if p.account == "기금" else
                "part lines (하위 항목) counted in the total" if p.scope == "part" else
                "unlinked lines counted in the total" if p.scope == "unlinked" else None)
        if what and column == "예산현액":
            add(what, p.current_budget)
        if p.effective_date and table.as_of and p.effective_date > table.as_of and p.scope == "record":
            add("a later document's line used for this as_of", p.current_budget if column == "예산현액" else 0)
    for e in envelopes:
        p = e.payload
        if e.event_type == "budget.amended" and column == "예산현액":
            line = lines.get(e.key)
            if line is not None and mine(line) and (p.effective_date is None or
                                                    (table.as_of and p.effective_date > table.as_of)):
                add("a 추경 dated after the 기준일 leaked into this as_of", p.change)
        if e.event_type == "budget.execution_snapshot" and column == "집행액":
            line = lines.get(e.key)
            if line is not None and mine(line) and line.scope != "record" and p.as_of == table.as_of:
                add(f"{line.scope} snapshots counted in the total", p.spent)
    return found


def likely_cause(report: int, view: int | None, published: int, tolerance: int,
                 explanations: dict[str, int], column: str) -> str:
    if view is None:
        return "the view lists no line of this 과 (events not yet consumed, rejected, or another division name)"
    if abs(published - report) > tolerance:
        return "the importer's own record lines already differ from the report (see 예산현황 대조)"
    diff = view - published
    labels = list(explanations)
    for size in range(1, len(labels) + 1):  # the fewest rules broken that explain the whole difference
        for combo in itertools.combinations(labels, size):
            if abs(diff - sum(explanations[c] for c in combo)) <= tolerance:
                return " + ".join(combo)
    if diff > 0:
        return ("the view counts more than the records: part/unlinked/기금 lines, a later line, snapshot or 추경, "
                "or lines another system published for this 과")
    if column == "집행액" and view == 0:
        return "no execution as of the 기준일 in the view: the 예산현황 집행액 snapshots were not applied"
    return "the view counts less than the records: record lines or snapshots missing (not consumed or rejected)"


def compare(doc: DocumentResult, table: RecordTable, data: dict[str, Any],
            everything: Sequence[AnyEnvelope] | None = None) -> tuple[int, list[Difference]]:
    """`everything`: all envelopes of the import (a later document's 추경 explains a difference too)."""
    view = view_figures(data, table.office)
    published_all = list(everything) if everything is not None else doc.envelopes
    published = table.published(doc.envelopes)
    checked, out = 0, []
    for fig in table.printed:
        for column, key in COLUMNS:
            report = fig.current if key == "current" else fig.spent
            if report is None:
                continue
            checked += 1
            got = view.get(fig.division, {}).get(key) if fig.division in view else None
            if got is not None and abs(got - report) <= fig.tolerance:
                continue
            mine = published.get(fig.division, (0, 0, 0))[1 if key == "current" else 2]
            cause = likely_cause(report, got, mine, fig.tolerance,
                                 _explanations(published_all, table, fig.division, column), column)
            out.append(Difference(fig.label, column, report, got, fig.tolerance, cause))
    return checked, out


Fetch = Callable[[str], dict[str, Any]]


def _http_fetch(client: httpx.Client) -> Fetch:
    def fetch(url: str) -> dict[str, Any]:
        resp = client.get(url, timeout=10)
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data
    return fetch


def verify_documents(documents: Sequence[DocumentResult], budget_url: str = DEFAULT_BUDGET_URL,
                     timeout: float = 60.0, interval: float = 1.0, fetch: Fetch | None = None,
                     stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], None] = time.sleep, token: str | None = None) -> list[Verification]:
    """Poll the budget view until every 예산현황 of `documents` agrees, or `timeout` seconds pass.
    `token`: a credential that may read the budget view (staff, operator or auditor)."""
    targets: list[tuple[DocumentResult, RecordTable]] = [
        (d, t) for d in documents for t in d.record_tables if t.as_of is not None and t.printed]
    if not targets:
        return []
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client = httpx.Client(headers=headers) if fetch is None else None
    get = fetch or _http_fetch(client)  # type: ignore[arg-type]
    out = stream if stream is not None else sys.stderr
    everything = [e for d in documents for e in d.envelopes]
    start = clock()
    results: list[Verification] = []
    try:
        while True:
            results = []
            for doc, table in targets:
                assert table.as_of is not None
                url = _summary_url(budget_url, table.fiscal_year, table.as_of)
                v = Verification(doc.name, table.fiscal_year, table.as_of, url)
                try:
                    v.checked, v.differences = compare(doc, table, get(url), everything)
                except (httpx.HTTPError, ValueError) as exc:
                    v.error = f"{url}: {exc.__class__.__name__}: {exc}"
                results.append(v)
            elapsed = clock() - start
            agree = sum(v.checked - len(v.differences) for v in results)
            total = sum(v.checked for v in results)
            state = "unreachable" if any(v.error for v in results) else f"{agree}/{total} figures agree"
            out.write(f"\r예산 뷰 대조 budget view: {state} ({elapsed:.0f}s / {timeout:.0f}s)   ")
            out.flush()
            if all(v.ok for v in results) or elapsed >= timeout:
                out.write("\n")
                break
            sleep(interval)
    finally:
        if client is not None:
            client.close()
    for v in results:
        v.waited = clock() - start
    return results


def render_verification(results: Sequence[Verification]) -> list[str]:
    out: list[str] = []
    for v in results:
        head = f"== 예산 뷰 대조 end-to-end reconciliation: {v.document}, as of {v.as_of} =="
        out.append(head)
        if v.error:
            out.append(f"   확인 불가 could not read the budget view: {v.error}")
            continue
        out.append(f"   {v.checked - len(v.differences)} of {v.checked} figures agree with the report "
                   f"(소계 per 과 and the 계; 예산현액, 집행액){'' if v.differences else ' — 일치'}")
        for d in v.differences:
            got = "없음 (not listed)" if d.view is None else f"{d.view:,}원"
            diff = "" if d.view is None else f", 차 {d.view - d.report:+,}원"
            out.append(f"   불일치 {d.label} {d.column}: 보고서 {d.report:,}원 / 예산 뷰 {got}{diff} "
                       f"(허용 {d.tolerance:,}원) — {d.cause}")
    return out


__all__ = ["DEFAULT_BUDGET_URL", "Difference", "RecordFigures", "Verification", "compare", "render_verification",
           "verify_documents", "view_figures"]
