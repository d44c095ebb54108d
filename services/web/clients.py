"""Typed clients for the budget, programs and notify APIs, called as the signed-in person.

The pages own no data: every figure comes from these calls, each made with the person's own
credential (`Authorization: Bearer …`), so the APIs apply their rules and record who acted.
Models name only the fields the pages use, all with defaults, and ignore the rest, so an API that
adds fields (scope, account, parts, …) or has not yet added them reads the same. Program ids may
contain "/": they are quoted whole in paths.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict

from services.common.settings import Settings


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


M = TypeVar("M", bound=Model)


class UpstreamError(Exception):
    """A read API did not answer usefully; the page says which and why."""

    def __init__(self, service: str, detail: str, status: int | None = None) -> None:
        super().__init__(f"{service}: {detail}")
        self.service, self.detail, self.status = service, detail, status


# ---------------------------------------------------------------- budget


class SourceRef(Model):
    document: str | None = None
    section: str | None = None
    line: int | None = None


class Reported(Model):
    """A 과's or 실's figures of record (a 예산현황's 소계 or 계, a 과별 집행 현황 row), as printed."""

    as_of: date
    original: int | None = None
    current: int | None = None
    committed: int | None = None
    spent: int | None = None
    rate: Decimal | None = None
    unit: str | None = None  # the unit the report prints: each figure is rounded to it
    source_ref: SourceRef | None = None


class Figures(Model):
    """One rollup (과, 실 or 계) of the budget summary: the sum of the programs, and beside it the
    figures of record where a report states them."""

    office: str | None = None
    division: str | None = None
    programs: int = 0
    original: int = 0
    carried_over: int = 0
    supplementary: int = 0
    current: int = 0
    committed: int | None = None
    spent: int = 0
    rate: Decimal | None = None
    plan_rate: Decimal | None = None
    gap: Decimal | None = None
    reported: Reported | None = None


class BudgetSummary(Model):
    fiscal_year: int
    as_of: date | None = None
    divisions: list[Figures] = []
    total: Figures = Figures()


class BudgetProgram(Model):
    program_id: str
    fiscal_year: int | None = None
    title: str | None = None
    office: str | None = None
    division: str | None = None
    category: str | None = None
    scope: str = "record"  # record / part / unlinked; before the API said so, every line was of record
    parent: str | None = None
    account: str | None = None
    original: int | None = None
    carried_over: int | None = None
    supplementary: int | None = None
    current_budget: int | None = None
    committed: int | None = None
    spent: int = 0
    rate: Decimal | None = None
    plan_rate: Decimal | None = None
    gap: Decimal | None = None
    as_of: date | None = None
    level: str | None = None


class HistoryPoint(Model):
    as_of: date
    spent: int = 0
    committed: int | None = None
    rate: Decimal | None = None
    plan_rate: Decimal | None = None


class Amendment(Model):
    before: int | None = None
    change: int = 0
    after: int | None = None
    reason: str | None = None
    effective_date: date | None = None
    recorded_at: datetime | None = None


class PlanPoint(Model):
    month: int
    cumulative_rate: Decimal


class Plan(Model):
    source: str = "default"
    points: list[PlanPoint] = []


class BudgetProgramDetail(BudgetProgram):
    history: list[HistoryPoint] = []
    amendments: list[Amendment] = []
    plan: Plan = Plan()


# ---------------------------------------------------------------- programs


class Contact(Model):
    role: str | None = None
    name: str | None = None
    phone: str | None = None
    email: str | None = None


class ProgramInfo(Model):
    program_id: str
    fiscal_year: int | None = None
    title: str | None = None
    office: str | None = None
    division: str | None = None
    team: str | None = None
    status: str | None = None
    contacts: list[Contact] = []
    purpose: str | None = None
    period_text: str | None = None
    budget_program_ids: list[str] = []
    source_ref: SourceRef | None = None


class WindowChange(Model):
    window_start: date | None = None
    window_end: date | None = None
    window_text: str | None = None
    change: str | None = None
    occurred_at: datetime | None = None
    source_ref: SourceRef | None = None


class Milestone(Model):
    milestone_id: str
    title: str | None = None
    window_start: date | None = None
    window_end: date | None = None
    window_text: str | None = None
    status: str | None = None
    overdue_level: str | None = None
    source_ref: SourceRef | None = None
    history: list[WindowChange] = []


class Progress(Model):
    value: Decimal | None = None
    as_of: date | None = None
    source_ref: SourceRef | None = None


class Target(Model):
    target_id: str
    activity: str | None = None
    unit: str | None = None
    target_value: Decimal | None = None
    progress_value: Decimal | None = None
    progress_as_of: date | None = None
    achieved: Decimal | None = None
    expected: Decimal | None = None
    gap: Decimal | None = None
    status: str | None = None
    source_ref: SourceRef | None = None
    progress: list[Progress] = []


class ProgramTimeline(Model):
    as_of: date | None = None
    program: ProgramInfo
    milestones: list[Milestone] = []
    targets: list[Target] = []


class RegisterItem(Model):
    program_id: str
    title: str | None = None
    division: str | None = None
    status: str | None = None
    milestones: int = 0
    overdue: int = 0
    needs_review: int = 0


class Deadline(Model):
    program_id: str
    program_title: str | None = None
    division: str | None = None
    milestone_id: str
    title: str | None = None
    window_start: date | None = None
    window_end: date
    window_text: str | None = None
    days_left: int | None = None


class ReviewItem(Model):
    program_id: str
    program_title: str | None = None
    division: str | None = None
    title: str | None = None
    window_text: str | None = None
    reason: str | None = None
    source_ref: SourceRef | None = None


# ---------------------------------------------------------------- notify


class Recipient(Model):
    receiver: str | None = None
    name: str | None = None
    role: str | None = None
    told: str | None = None
    told_at: datetime | None = None


class Alert(Model):
    fingerprint: str
    rule: str | None = None
    status: str = "firing"
    severity: str = "info"
    state: str | None = None
    silenced_by: list[str] | str | None = None
    program_id: str | None = None
    summary: str = ""
    labels: dict[str, str] = {}
    received_at: datetime | None = None
    notified_at: datetime | None = None
    resolved_at: datetime | None = None
    acked_at: datetime | None = None
    acked_by: str | None = None
    escalation_level: int = 0
    recipients: list[Recipient] = []

    @property
    def division(self) -> str | None:
        return self.labels.get("과") or self.labels.get("division")


class Silence(Model):
    id: str
    matchers: list[dict[str, Any]] = []
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    created_by: str | None = None
    comment: str | None = None
    state: str | None = None


class Delivery(Model):
    id: int
    channel: str | None = None
    address: str | None = None
    subject: str | None = None
    outcome: str | None = None
    attempts: int = 0
    last_error: str | None = None
    created_at: datetime | None = None


# ---------------------------------------------------------------- the clients


class SignedIn(Model):
    """What notify answers for a sign-in link's token: an access session."""

    token: str
    expires_at: datetime
    identity: dict[str, Any]


class _Client:
    service = "api"

    def __init__(self, http: httpx.AsyncClient, credential: str | None) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {credential}"} if credential else {}

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            resp = await self.http.get(path, params=clean, headers=self.headers)
        except httpx.HTTPError as exc:
            raise UpstreamError(self.service, f"응답 없음 ({type(exc).__name__})") from exc
        if resp.status_code == 404:
            return None
        if resp.status_code >= 400:
            raise UpstreamError(self.service, _detail(resp), resp.status_code)
        return resp.json()

    async def _send(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        try:
            resp = await self.http.request(method, path, json=body, headers=self.headers)
        except httpx.HTTPError as exc:
            raise UpstreamError(self.service, f"응답 없음 ({type(exc).__name__})") from exc
        if resp.status_code >= 400:
            raise UpstreamError(self.service, _detail(resp), resp.status_code)
        return resp.json()


def _detail(resp: httpx.Response) -> str:
    """The API's reason (`{"detail": …}`), else the start of its answer."""
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return (detail if isinstance(detail, str) else resp.text)[:300]


def _pid(program_id: str) -> str:
    return quote(program_id, safe="")


class BudgetClient(_Client):
    service = "budget"

    async def summary(self, fiscal_year: int, as_of: date | None) -> BudgetSummary:
        data = await self._get("/v1/budget/summary", {"fiscal_year": fiscal_year, "as_of": as_of})
        if data is None:
            raise UpstreamError(self.service, "예산 요약이 없습니다", 404)
        return BudgetSummary.model_validate(data)

    async def programs(self, fiscal_year: int | None = None, division: str | None = None,
                       as_of: date | None = None) -> list[BudgetProgram]:
        """Every program of the filter (pages of 1000); `as_of` is passed for APIs that take it."""
        items: list[BudgetProgram] = []
        while True:
            data = await self._get("/v1/budget/programs", {"fiscal_year": fiscal_year, "division": division,
                                                           "as_of": as_of, "limit": 1000, "offset": len(items)})
            page = [BudgetProgram.model_validate(i) for i in (data or {}).get("items", [])]
            items += page
            if len(page) < 1000:
                return items

    async def program(self, program_id: str, fiscal_year: int | None = None) -> BudgetProgramDetail | None:
        data = await self._get(f"/v1/budget/programs/{_pid(program_id)}", {"fiscal_year": fiscal_year})
        return BudgetProgramDetail.model_validate(data) if data else None

    async def unknown_programs(self) -> list[BudgetProgram]:
        data = await self._get("/v1/budget/unknown-programs", {"limit": 1000})
        return [BudgetProgram.model_validate(i) for i in (data or {}).get("items", [])]


class ProgramsClient(_Client):
    service = "programs"

    async def register(self, division: str | None = None) -> list[RegisterItem]:
        items: list[RegisterItem] = []
        while True:
            data = await self._get("/v1/programs", {"division": division, "limit": 1000, "offset": len(items)})
            page = [RegisterItem.model_validate(i) for i in (data or {}).get("items", [])]
            items += page
            if len(page) < 1000:
                return items

    async def program(self, program_id: str) -> ProgramTimeline | None:
        data = await self._get(f"/v1/programs/{_pid(program_id)}")
        return ProgramTimeline.model_validate(data) if data else None

    async def upcoming(self, days: int, division: str | None = None) -> list[Deadline]:
        data = await self._get("/v1/programs/upcoming", {"days": days, "division": division})
        return [Deadline.model_validate(i) for i in (data or {}).get("items", [])]

    async def review(self) -> list[ReviewItem]:
        data = await self._get("/v1/programs/review")
        return [ReviewItem.model_validate(i) for i in (data or {}).get("items", [])]


class NotifyClient(_Client):
    service = "notify"

    async def alerts(self, status: str | None = "firing") -> list[Alert]:
        data = await self._get("/v1/alerts", {"status": status or ""})
        return [Alert.model_validate(i) for i in (data or {}).get("items", [])]

    async def ack(self, fingerprint: str, comment: str | None) -> None:
        """Notify records the caller (the person whose credential this is) as who acknowledged."""
        await self._send("POST", f"/v1/alerts/{quote(fingerprint, safe='')}/ack", {"comment": comment})

    async def silences(self) -> list[Silence]:
        data = await self._get("/v1/silences")
        return [Silence.model_validate(i) for i in (data or {}).get("items", [])]

    async def silence(self, matchers: list[dict[str, str]], ends_at: datetime, comment: str) -> Silence:
        data = await self._send("POST", "/v1/silences", {"matchers": matchers, "ends_at": ends_at.isoformat(),
                                                         "comment": comment})
        return Silence.model_validate(data)

    async def expire_silence(self, silence_id: str) -> None:
        await self._send("DELETE", f"/v1/silences/{quote(silence_id, safe='')}", {})

    async def failed_deliveries(self) -> list[Delivery]:
        data = await self._get("/v1/notifications", {"status": "failed", "limit": 200})
        return [Delivery.model_validate(i) for i in (data or {}).get("items", [])]


    # --- sign-in (Access, served by notify) -------------------------------------------------------

    async def login_link(self, email: str) -> None:
        await self._send("POST", "/v1/auth/login-link", {"email": email})

    async def exchange(self, token: str) -> SignedIn:
        return SignedIn.model_validate(await self._send("POST", "/v1/auth/callback", {"token": token}))

    async def me(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._send("GET", "/v1/auth/me", None)
        return data


class Clients:
    """The three API clients of one person (or of nobody, for signing in)."""

    def __init__(self, http: tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient],
                 credential: str | None) -> None:
        self.budget = BudgetClient(http[0], credential)
        self.programs = ProgramsClient(http[1], credential)
        self.notify = NotifyClient(http[2], credential)


class Upstream:
    """The connection pools to the three APIs, shared by every person; transports can be swapped
    (tests run the services in-process)."""

    def __init__(self, budget: httpx.AsyncClient, programs: httpx.AsyncClient, notify: httpx.AsyncClient) -> None:
        self._http = (budget, programs, notify)

    @classmethod
    def from_settings(cls, settings: Settings,
                      transports: dict[str, httpx.AsyncBaseTransport] | None = None) -> Upstream:
        made = [httpx.AsyncClient(base_url=settings.web_upstream(service), timeout=settings.web_timeout_s,
                                  transport=(transports or {}).get(service))
                for service in ("budget", "programs", "notify")]
        return cls(*made)

    def as_person(self, credential: str | None) -> Clients:
        return Clients(self._http, credential)

    async def aclose(self) -> None:
        for http in self._http:
            await http.aclose()
