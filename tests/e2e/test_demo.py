"""The demo path as a user runs it, checked against the source document.

`execwatch up --demo` starts the embedded broker, the four services and the staff web as their own
processes, a SQLite file and an SMTP sink, and imports the seed reports through ingest. What staff then see
through the APIs must equal the January business report (001, table 예산현황, "’25. 1. 31. 기준",
백만원): the figures below are typed from that table, not computed by our code. The system is
started once for the whole module (it is the heaviest test of the suite).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from services.common.embedded import free_port
from tests.report_001 import ROWS as ROWS_OF
from tests.report_001 import SUBTOTALS, TOTAL

pytestmark = pytest.mark.integration

MILLION = 1_000_000
AS_OF = "2025-01-31"

#: 001 예산현황 (tests/report_001.py): 과 → (본예산, 예산현액, 집행액 소계, rows in the table).
DIVISIONS: dict[str, tuple[int, int, int, int]] = {d: (*SUBTOTALS[d], ROWS_OF[d]) for d in SUBTOTALS}
#: single rows of the same table: 세부사업 → (예산현액, 집행액 in 백만원, 집행률 as printed).
ROWS = {
    "서울 지역혁신중심 대학지원체계 추진": (65_648, 3_226, "4.9"),
    "서울 동행일자리": (94_291, 19_773, "21.0"),
    "서울영화센터 건립 및 운영": (23_398, 7_064, "30.2"),
}


def _tolerance(rows: int) -> int:
    """Each printed row is rounded to 1 백만원 on its own, and so is the printed 소계."""
    return (rows + 1) * MILLION // 2


@dataclass
class Demo:
    proc: subprocess.Popen[str]
    workdir: Path
    ports: dict[str, int]
    lines: list[str] = field(default_factory=list)
    #: one keep-alive client for the module's few hundred API reads, not a client and a
    #: connection per read
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=20))

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def get(self, service: str, path: str, **params: Any) -> httpx.Response:
        """As the demo's operator (every API asks who is calling)."""
        return self.http.get(self.url(service, path), params=params,
                             headers={"Authorization": f"Bearer {self.key('operator')}"})

    def key(self, label: str) -> str:
        keys = json.loads((self.workdir / "demo-keys.json").read_text("utf-8"))
        return str(keys[label]["key"])

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            assert self.proc.poll() is None, f"execwatch up exited:\n{self.output()}"
            time.sleep(0.5)
        raise AssertionError(f"{text!r} not printed within {timeout:.0f}s:\n{self.output()[-4000:]}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, seeds: Path) -> Iterator[Demo]:
    workdir = tmp_path_factory.mktemp("demo")
    ports = {svc: free_port() for svc in ("ingest", "budget", "programs", "notify", "web")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "EXECWATCH_", "DATABASE_URL"))}
    env.update({f"EXECWATCH_{svc.upper()}_PORT": str(p) for svc, p in ports.items()},
               EXECWATCH_SEEDS=str(seeds), EXECWATCH_CONSUMER_SESSION_TIMEOUT_MS="2000")
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "up", "--demo", "--workdir", str(workdir)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    d = Demo(proc, workdir, ports)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            d.lines.append(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        d.wait_for_line("demo: imported", timeout=300)
        yield d
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        reader.join(10)
        d.http.close()


def _summary(demo: Demo) -> dict[str, Any]:
    r = demo.get("budget", "/v1/budget/summary", fiscal_year=2025, as_of=AS_OF)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _settled(probe: Any, timeout: float = 120.0, quiet: float = 6.0) -> Any:
    """The probe's value once it has stopped changing for `quiet` seconds (consumers caught up)."""
    deadline = time.monotonic() + timeout
    last, since = probe(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(1.5)
        now = probe()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    return last


@pytest.fixture(scope="module")
def settled_summary(demo: Demo) -> dict[str, Any]:
    """The summary as of the report date once it stopped changing: waited for once, read by the
    tests that compare it with the report (each checks its own figures of it)."""
    summary: dict[str, Any] = _settled(lambda: _summary(demo))
    return summary


def test_division_totals_as_of_the_report_date_equal_the_report(settled_summary: dict[str, Any]) -> None:
    summary = settled_summary
    by_division = {d["division"]: d for d in summary["divisions"]}
    problems = []
    for name, (original, current, spent, rows) in DIVISIONS.items():
        got = by_division.get(name)
        if got is None:
            problems.append(f"{name}: missing from the summary")
            continue
        tol = _tolerance(rows)
        for label, want, have in (("본예산", original, got["original"]), ("예산현액", current, got["current"]),
                                  ("집행액", spent, got["spent"])):
            if abs(have - want * MILLION) > tol:
                problems.append(f"{name} {label}: report {want:,} 백만원, view {have / MILLION:,.1f} 백만원")
    extra = set(by_division) - set(DIVISIONS)
    assert not extra, f"divisions in the view that the 세출 table does not have: {extra}"
    total = summary["total"]
    tol = _tolerance(sum(r for *_, r in DIVISIONS.values()))
    for label, want, have in (("본예산", TOTAL[0], total["original"]), ("예산현액", TOTAL[1], total["current"]),
                              ("집행액", TOTAL[2], total["spent"])):
        if abs(have - want * MILLION) > tol:
            problems.append(f"계 {label}: report {want:,} 백만원, view {have / MILLION:,.1f} 백만원")
    if str(total["rate"]) != TOTAL[3]:
        problems.append(f"계 집행률: report {TOTAL[3]} %, view {total['rate']} %")
    assert not problems, "\n".join(problems)


def test_reads_need_a_key_and_the_demo_prints_its_own(demo: Demo) -> None:
    url = demo.url("budget", "/v1/budget/summary")
    assert httpx.get(url, params={"fiscal_year": 2025}, timeout=10).status_code == 401
    assert "demo identities" in demo.output()
    assert f"Authorization: Bearer {demo.key('operator')}" in demo.output()  # what a newcomer copies
    assert _summary(demo)["total"]["programs"] > 50  # the January report's programs are in the view


def test_the_reports_subtotals_and_total_are_in_the_view_as_printed(settled_summary: dict[str, Any]) -> None:
    """Beside the sums (within rounding, above), the view holds the report's own 소계 and 계: exactly."""
    summary = settled_summary
    reported = {d["division"]: d["reported"] for d in summary["divisions"]}
    for name, (original, current, spent, _) in DIVISIONS.items():
        got = reported.get(name) or {}
        assert (got.get("original"), got.get("current"), got.get("spent")) == (
            original * MILLION, current * MILLION, spent * MILLION), name
    total = summary["total"]["reported"]
    assert (total["original"], total["current"], total["spent"]) == tuple(v * MILLION for v in TOTAL[:3])
    assert total["rate"] == TOTAL[3] and total["as_of"] == AS_OF


def test_the_demo_prints_its_own_reconciliation_with_the_report(demo: Demo) -> None:
    """What `execwatch import` checks after publishing: the view against the report's 소계/계."""
    lines = [line for line in demo.lines if "figures agree with the report" in line]
    assert lines, demo.output()[-3000:]
    assert all("— 일치" in line for line in lines), "".join(lines)


def _all(demo: Demo, service: str, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        r = demo.get(service, path, limit=1000, offset=len(items))
        assert r.status_code == 200, r.text
        page = r.json()["items"]
        items += page
        if len(page) < 1000:
            return items


def test_every_listed_program_page_answers(demo: Demo) -> None:
    budget = _all(demo, "budget", "/v1/budget/programs")
    programs = _all(demo, "programs", "/v1/programs")
    assert len(budget) >= 119 and programs
    failures = []
    for service, path, items in (("budget", "/v1/budget/programs/", budget), ("programs", "/v1/programs/", programs)):
        for item in items:
            r = demo.get(service, path + quote(item["program_id"], safe=""))
            if r.status_code != 200:
                failures.append(f"{service} {item['program_id']}: {r.status_code}")
    assert not failures, "\n".join(failures[:20])


def _program_as_of(demo: Demo, title: str) -> dict[str, Any]:
    matches = [p for p in _all(demo, "budget", "/v1/budget/programs") if p.get("title") == title]
    record = [p for p in matches if p.get("scope", "record") == "record"]
    assert len(record) == 1, f"{title}: {len(record)} programs of record ({[p['program_id'] for p in matches]})"
    r = demo.get("budget", "/v1/budget/programs/" + quote(record[0]["program_id"], safe=""), as_of=AS_OF)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.mark.parametrize("title", list(ROWS))
def test_program_figures_equal_the_report_row(demo: Demo, title: str) -> None:
    current, spent, rate = ROWS[title]
    p = _program_as_of(demo, title)
    assert abs(p["current_budget"] - current * MILLION) <= MILLION // 2
    assert abs(p["spent"] - spent * MILLION) <= MILLION // 2
    assert str(p["rate"]) == rate


def test_alerts_state_the_report_figures_and_reach_someone(demo: Demo) -> None:
    def alerts() -> list[dict[str, Any]]:
        r = demo.get("notify", "/v1/alerts", status="")
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    items = _settled(lambda: sorted((a["fingerprint"], a["state"], len(a["recipients"])) for a in alerts()),
                     timeout=150, quiet=12)
    assert items is not None
    full = alerts()
    nobody = [a["summary"] for a in full if a["status"] == "firing" and not a["recipients"]
              and not a.get("silenced_by") and not a.get("inhibited_by")]
    assert not nobody, f"alerts with nobody to tell: {nobody[:10]}"
    summary_rows = {p["program_id"]: p for p in _all(demo, "budget", "/v1/budget/programs")}
    wrong = []
    for a in full:
        figures = a.get("figures") or {}
        if "rate" not in figures or a["program_id"] not in summary_rows:
            continue
        r = demo.get("budget", "/v1/budget/programs/" + quote(a["program_id"], safe=""), as_of=figures["as_of"])
        view = r.json()
        if str(figures["rate"]) != str(view["rate"]):
            wrong.append(f"{a['summary']}: alert says {figures['rate']} %, the view as of {figures['as_of']} "
                         f"says {view['rate']} %")
    assert not wrong, "\n".join(wrong)


def test_the_demo_lead_signs_in_to_the_staff_web_and_reads_the_division_table(demo: Demo) -> None:
    link = demo.url("web", "/signin?as=staff")
    assert link in demo.output()  # printed by `execwatch up --demo`
    with httpx.Client(base_url=demo.url("web", ""), timeout=30) as web:
        page = web.get("/signin", params={"as": "staff"})
        assert page.status_code == 200, page.text
        form = re.search(r'action="/signin/demo".*?name="csrf" value="([0-9a-f]+)"', page.text, re.S)
        assert form, page.text
        r = web.post("/signin/demo", data={"person": "staff", "csrf": form.group(1)})
        assert r.status_code == 303 and r.headers["location"] == "/today", r.text
        table = web.get("/division", params={"as_of": AS_OF})
    assert table.status_code == 200, table.text
    assert "경제정책과 팀장 데모 팀장" in table.text  # signed in as the demo's 팀장, read as them
    assert 'class="subtotal" data-division="경제정책과"' in table.text


def test_mail_arrives_and_ctrl_c_stops_everything(demo: Demo) -> None:
    mail = demo.workdir / "mail"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (mail.is_dir() and any(mail.glob("*.eml"))):
        assert demo.proc.poll() is None, demo.output()
        time.sleep(1)
    messages = sorted(mail.glob("*.eml"))
    assert messages, "no alert mail within 2 minutes of the import"
    first = messages[0].read_bytes()
    assert b"Subject:" in first and b"Date:" in first
    # alert mails link to the program's page of the staff web
    texts = []
    for path in messages:
        mail = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(mail, EmailMessage)
        part = mail.get_body(("plain",))
        texts.append(part.get_content() if isinstance(part, EmailMessage) else "")
    assert any(demo.url("web", "/program/") in t for t in texts), texts[0][:2000]
    demo.proc.send_signal(signal.SIGINT)
    demo.proc.wait(60)
    assert demo.proc.returncode == 0, demo.output()
    assert "execwatch is up" in demo.output() and "demo: imported" in demo.output()
    leftover = subprocess.run(["pgrep", "-s", str(demo.proc.pid)], capture_output=True, text=True).stdout.split()
    assert leftover == [], f"processes left running: {leftover}"
