"""The staff pages in a real browser (Debian's Chromium driven by Playwright), over the demo data:
the seed reports imported into in-process budget, programs and notify services, plus one later
report that moves a milestone of 서울형 R&D 지원.

One journey (sign in by the mailed link → 오늘 → acknowledge, recorded by notify as the signed-in
person → the program's chart and moved milestone → 과 현황 on 2025-01-31 → the xlsx read back) and
one accessibility sweep (axe-core on every page, signed in with an operator's API key). Screenshots
of each page go to var/screenshots/.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import uvicorn

from services.common.embedded import MailSink, free_port
from services.web.domain import amount
from tests.factories import envelope
from tests.web.stack import Stack, demo_stack, mailed_link

playwright_api = pytest.importorskip("playwright.async_api")

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("EXECWATCH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"

PROGRAM = "경제정책과/서울형R&D지원"
TITLE = "서울형 R&D 지원"
#: A later report (typed for the test) moves 001's "’25. 3월" 공고 of 서울형 R&D 지원 to April.
LATER_REPORT = "2025년 2월 업무보고 (시험 자료)"
MOVE = envelope("milestone.set", PROGRAM, {
    "program_id": PROGRAM, "milestone_id": "서울형R&D지원사업공고", "title": "서울형 R&D 지원사업 공고",
    "window_start": "2025-04-01", "window_end": "2025-04-30", "window_text": "’25. 4월",
    "source_ref": {"document": LATER_REPORT, "section": "서울형 R&D 지원", "line": 812},
})
MOVE["occurred_at"] = datetime(2025, 2, 28, tzinfo=UTC).isoformat()

#: 001 예산현황 (’25. 1. 31. 기준, 백만원), typed from the report: 경제정책과 소계 and 계.
REPORT_SUBTOTAL = {"division": "경제정책과", "본예산": "120,664", "예산현액": "120,809", "집행액": "183",
                   "집행률": "0.2"}
REPORT_TOTAL = {"본예산": "668,901", "예산현액": "682,752", "집행액": "49,232", "집행률": "7.2"}


@dataclass
class Site:
    stack: Stack
    base: str
    browser: Any
    sink: MailSink


@pytest.fixture(scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory, seeds: Path) -> AsyncIterator[Site]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    port = free_port()
    sink = MailSink().start()
    try:
        async with demo_stack(tmp_path_factory.mktemp("web"), seeds, extra=[MOVE], smtp_port=sink.port,
                              web_url=f"http://127.0.0.1:{port}") as stack:
            server = uvicorn.Server(uvicorn.Config(stack.web, host="127.0.0.1", port=port, log_level="warning",
                                                   lifespan="off"))
            task = asyncio.create_task(server.serve())
            while not server.started:
                await asyncio.sleep(0.05)
            async with playwright_api.async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    yield Site(stack, f"http://127.0.0.1:{port}", browser, sink)
                finally:
                    await browser.close()
                    server.should_exit = True
                    await task
    finally:
        sink.stop()


async def new_page(site: Site) -> Any:
    context = await site.browser.new_context(locale="ko-KR", accept_downloads=True,
                                             viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(site.base + "/today")
    assert "/signin" in page.url  # not signed in: sent to sign in
    return page


async def open_mailed_link(site: Site, name: str, division: str, page: Any | None = None) -> Any:
    """Ask for a sign-in link as this person and open it from the mail: the confirmation page."""
    page = page or await new_page(site)
    await page.fill("#email", await site.stack.address_of(name, division))
    before = len(site.sink.messages)
    await page.click("button:has-text('로그인 링크 받기')")
    await page.locator("p[role='status']").wait_for()
    await page.goto(await mailed_link(site.sink, before))
    return page


async def sign_in_with_key(site: Site, role: str, name: str) -> Any:
    _, key = site.stack.services["notify"].state.access.store.create(name=name, role=role)
    page = await new_page(site)
    await page.fill("#key", key)
    await page.click("button:has-text('키로 로그인')")
    await page.wait_for_url("**/today")
    return page


async def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def cells(row_texts: list[str]) -> dict[str, str]:
    keys = ("부서", "구분", "본예산", "예산현액", "집행액", "집행률", "계획", "계획 대비")
    return dict(zip(keys, (t.strip() for t in row_texts), strict=False))


async def subtotal_row(page: Any, division: str) -> dict[str, str]:
    row = page.locator(f"tr.subtotal[data-division='{division}']")
    return cells(await row.locator("th, td").all_inner_texts())


async def test_journey_sign_in_acknowledge_program_division_xlsx(site: Site, tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    page = await new_page(site)
    await shot(page, "01-signin")
    await open_mailed_link(site, "박지은", "경제정책과", page)
    await shot(page, "01-signin-link")
    await page.click("form[action='/auth/callback'] button")
    await page.wait_for_url("**/today")
    assert "경제정책과 팀장 박지은" in await page.locator("form.who").inner_text()

    # 오늘: the 과's active alerts, with this program's among them
    alert = page.locator("li.alert", has_text=TITLE).first
    await alert.wait_for()
    assert await page.locator("h2", has_text="14일 안에 마감").count() == 1
    assert await page.locator("section[aria-labelledby='h-programs'] tbody tr").count() > 0
    await shot(page, "02-today")
    fingerprint = (await alert.get_attribute("id") or "").removeprefix("alert-")
    await alert.locator("input[name='comment']").fill("3월 공고 후 집행 예정")
    await alert.locator("button:has-text('확인')").click()
    await page.wait_for_url("**/today#done")
    assert await page.locator(f"#alert-{fingerprint}").count() == 0  # no longer waiting for action

    # notify recorded who acknowledged: the person whose session the web sent; the 알림 page shows it
    acked = {a["fingerprint"]: a for a in (await site.stack.notify.get("/v1/alerts")).json()["items"]}
    address = await site.stack.address_of("박지은", "경제정책과")
    assert acked[fingerprint]["acked_by"] == f"팀장 박지은 <{address}>"
    await page.goto(site.base + "/alerts?acked=yes")
    row = page.locator(f"#alert-{fingerprint}")
    assert "박지은" in await row.inner_text()
    await shot(page, "03-alerts")

    # its program: the chart and the moved milestone with the report that moved it
    await row.locator("a", has_text="사업 보기").click()
    await page.wait_for_url("**/program/**")
    assert await page.locator("h1").inner_text() == TITLE
    chart = page.locator("svg#spending-chart")
    assert await chart.is_visible()
    assert await chart.locator("polyline.plan").count() == 1
    assert await chart.locator("circle.dot").count() >= 1  # the 2025-01-31 snapshot
    move = page.locator("li.move")
    assert await move.count() == 1
    text = await move.inner_text()
    assert "2025-03-01 ~ 2025-03-31" in text and "2025-04-01 ~ 2025-04-30" in text and LATER_REPORT in text
    await shot(page, "04-program")

    # 과 현황 on the report's date: the 소계 as the report prints it (백만원), the view's sum of
    # the programs beside it
    await page.goto(site.base + "/division?as_of=2025-01-31")
    summary = (await site.stack.budget.get("/v1/budget/summary",
                                           params={"fiscal_year": 2025, "as_of": "2025-01-31"})).json()
    view = next(d for d in summary["divisions"] if d["division"] == "경제정책과")
    shown = await subtotal_row(page, "경제정책과")
    assert (shown["본예산"], shown["예산현액"], shown["집행액"]) == (
        REPORT_SUBTOTAL["본예산"], REPORT_SUBTOTAL["예산현액"], REPORT_SUBTOTAL["집행액"])
    sums = cells(await page.locator("tr.beside[data-division='경제정책과']").locator("th, td").all_inner_texts())
    assert sums["구분"] == "세부사업 합"
    assert sums["본예산"].split()[0] == amount(view["original"], "백만원") == "120,665"  # 120,664.973
    assert "(반올림 차 +1)" in sums["본예산"]
    await shot(page, "05-division")

    # units: the same 소계 in 억원
    await page.select_option("#unit", "억원")
    await page.click("button:has-text('보기')")
    assert (await subtotal_row(page, "경제정책과"))["집행액"] == amount(view["reported"]["spent"], "억원")

    # the xlsx, read back
    await page.goto(site.base + "/division?as_of=2025-01-31")
    async with page.expect_download() as info:
        await page.click("a:has-text('Excel (xlsx)')")
    download = await info.value
    target = tmp_path / download.suggested_filename
    await download.save_as(target)
    assert target.name == "budget-2025-2025-01-31.xlsx"
    ws = openpyxl.load_workbook(target).active
    rows = list(ws.iter_rows(values_only=True))
    assert "2025-01-31 기준" in rows[0][0] and "백만원" in rows[0][0]
    sub = next(r for r in rows if r[0] == "소계" and r[1] == "경제정책과")
    assert sub[3:6] == (120_664, 120_809, 183)  # as 001 prints it
    assert sub[9:12] == (round(view["original"] / 1e6), round(view["current"] / 1e6), round(view["spent"] / 1e6))
    assert next(r for r in rows if r[0] == "계")[3:6] == (668_901, 682_752, 49_232)
    assert sum(1 for r in rows if r[0] == "세부사업" and r[1] == "경제정책과") >= 15
    await page.context.close()


async def test_division_page_prints_the_reports_subtotal_and_total(site: Site) -> None:
    page = await sign_in_with_key(site, "auditor", "감사관")
    await page.goto(site.base + "/division?as_of=2025-01-31")
    shown = await subtotal_row(page, "경제정책과")
    total = cells(await page.locator("tr.total").locator("th, td").all_inner_texts())
    await page.context.close()
    assert {k: shown[k] for k in ("본예산", "예산현액", "집행액", "집행률")} == \
        {k: v for k, v in REPORT_SUBTOTAL.items() if k != "division"}
    assert {k: total[k] for k in ("본예산", "예산현액", "집행액", "집행률")} == REPORT_TOTAL


async def test_every_page_passes_axe_without_serious_violations(site: Site) -> None:
    from axe_playwright_python.async_playwright import Axe

    axe = Axe()
    found: dict[str, list[str]] = {}
    page = await new_page(site)
    for name in ("/signin", "/auth/callback"):
        if name == "/auth/callback":
            await open_mailed_link(site, "박지은", "경제정책과", page)
        result = await axe.run(page)
        found[name] = [f"{v['id']}: {v['help']}" for v in result.response["violations"]
                       if v.get("impact") in ("serious", "critical")]
    await page.context.close()
    page = await sign_in_with_key(site, "operator", "운영자")
    pages = {"today": "/today", "division": "/division?as_of=2025-01-31", "program": "/program/" + quote(PROGRAM),
             "alerts": "/alerts", "ops": "/ops"}
    for name, path in pages.items():
        response = await page.goto(site.base + path)
        assert response is not None and response.status == 200, path
        await shot(page, f"a11y-{name}")
        result = await axe.run(page)
        found[path] = [f"{v['id']} ({v['impact']}): {v['help']} × {len(v['nodes'])}"
                       for v in result.response["violations"] if v.get("impact") in ("serious", "critical")]
    await page.context.close()
    problems = {k: v for k, v in found.items() if v}
    assert not problems, problems

