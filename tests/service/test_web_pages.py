"""The staff pages over HTTP (no browser) on the demo data: what each page shows comes from the
read APIs, forms reach notify as the signed-in person, and the rules on who may do what hold."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import httpx
import openpyxl
import pytest

from services.web.session import COOKIE, Identity
from tests.web.stack import Stack, demo_stack

PROGRAM = "경제정책과/서울형R&D지원"


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory, seeds: Path) -> AsyncIterator[Stack]:
    async with demo_stack(tmp_path_factory.mktemp("webpages"), seeds) as s:
        yield s


def as_person(stack: Stack, identity: Identity) -> httpx.AsyncClient:
    cookie = stack.web.state.sessions.encode(identity)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.web), base_url="http://web",
                             cookies={COOKIE: cookie})


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "no form token on the page"
    return found.group(1)


TEAM_LEAD = Identity("박지은", "팀장", "경제정책과")


async def test_pages_need_a_sign_in_and_come_back_after_it(stack: Stack) -> None:
    r = await stack.client.get("/division", params={"as_of": "2025-01-31"})
    assert r.status_code == 303 and r.headers["location"] == "/signin?next=%2Fdivision%3Fas_of%3D2025-01-31"
    r = await stack.client.post("/signin", data={"name": "박지은", "role": "팀장", "division": "경제정책과",
                                                 "next": "/division?as_of=2025-01-31"})
    assert r.status_code == 303 and r.headers["location"] == "/division?as_of=2025-01-31"
    assert COOKIE in r.cookies
    # another site as `next` is refused: back to 오늘
    r = await stack.client.post("/signin", data={"name": "x", "role": "operator", "next": "https://evil.example/"})
    assert r.headers["location"] == "/today"


async def test_a_tampered_session_is_no_session(stack: Stack) -> None:
    cookie = stack.web.state.sessions.encode(TEAM_LEAD)
    sig = cookie.partition(".")[2]
    forged = stack.web.state.sessions.encode(Identity("박지은", "operator")).partition(".")[0] + "." + sig
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.web), base_url="http://web",
                                 cookies={COOKIE: forged}) as web:
        assert (await web.get("/ops")).status_code == 303  # to sign in, not in as an operator


async def test_today_lists_the_divisions_alerts_deadlines_and_rates(stack: Stack) -> None:
    alerts = (await stack.notify.get("/v1/alerts")).json()["items"]
    ours = [a for a in alerts if a["labels"].get("과") == "경제정책과" and a["status"] == "firing"]
    others = [a for a in alerts if a["labels"].get("과") not in ("경제정책과", None)]
    assert ours and others
    async with as_person(stack, TEAM_LEAD) as web:
        html = (await web.get("/today")).text
    for a in ours:
        assert f'id="alert-{a["fingerprint"]}"' in html
    for a in others:
        assert f'id="alert-{a["fingerprint"]}"' not in html
    upcoming = (await stack.programs.get("/v1/programs/upcoming", params={"days": 14,
                                                                          "division": "경제정책과"})).json()
    assert upcoming["items"]
    for d in upcoming["items"]:
        assert d["title"] in html
    assert "서울형 R&amp;D 지원" in html and "41,106" in html  # 예산현액 in 백만원 as the report prints it


async def test_acknowledge_and_silence_reach_notify_as_the_person(stack: Stack) -> None:
    alerts = (await stack.notify.get("/v1/alerts")).json()["items"]
    target = [a for a in alerts if a["labels"].get("과") == "경제정책과" and a["acked_at"] is None]
    first, second = target[0], target[1]
    async with as_person(stack, TEAM_LEAD) as web:
        token = csrf((await web.get("/today")).text)
        r = await web.post(f"/alerts/{first['fingerprint']}/ack", data={"csrf": "0" * 32, "comment": ""})
        assert r.status_code == 403  # a form from elsewhere
        r = await web.post(f"/alerts/{first['fingerprint']}/ack", data={"csrf": token, "comment": "확인함"})
        assert r.status_code == 303
        r = await web.post(f"/alerts/{second['fingerprint']}/silence",
                           data={"csrf": token, "period": "7일", "reason": "3월 계약 예정"})
        assert r.status_code == 303
        html = (await web.get("/today")).text
    after = {a["fingerprint"]: a for a in (await stack.notify.get("/v1/alerts")).json()["items"]}
    assert after[first["fingerprint"]]["acked_by"] == "경제정책과 팀장 박지은"
    silences = (await stack.notify.get("/v1/silences")).json()["items"]
    mine = [s for s in silences if s["created_by"] == "경제정책과 팀장 박지은"]
    assert len(mine) == 1 and mine[0]["comment"] == "3월 계약 예정"
    assert {m["name"]: m["value"] for m in mine[0]["matchers"]} == {"program": second["program_id"],
                                                                  "rule": second["rule"]}
    assert after[second["fingerprint"]]["state"] == "suppressed"
    assert f'id="alert-{first["fingerprint"]}"' not in html and f'id="alert-{second["fingerprint"]}"' not in html


async def test_staff_cannot_act_on_another_divisions_alert_nor_open_ops(stack: Stack) -> None:
    alerts = (await stack.notify.get("/v1/alerts")).json()["items"]
    other = next(a for a in alerts if a["labels"].get("과") == "일자리정책과")
    async with as_person(stack, TEAM_LEAD) as web:
        token = csrf((await web.get("/today")).text)
        assert (await web.post(f"/alerts/{other['fingerprint']}/ack", data={"csrf": token})).status_code == 403
        assert (await web.get("/ops")).status_code == 403
    async with as_person(stack, Identity("운영자", "operator")) as web:
        html = (await web.get("/ops")).text
    assert "검토 대기" in html and "알림 끄기" in html


async def test_division_table_downloads_agree_with_the_budget_view(stack: Stack) -> None:
    summary = (await stack.budget.get("/v1/budget/summary", params={"fiscal_year": 2025,
                                                                    "as_of": "2025-01-31"})).json()
    async with as_person(stack, TEAM_LEAD) as web:
        r = await web.get("/division", params={"as_of": "2025-01-31", "unit": "천원", "format": "csv"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
        x = await web.get("/division", params={"as_of": "2025-01-31", "format": "xlsx"})
        sorted_html = (await web.get("/division", params={"as_of": "2025-01-31", "sort": "spent",
                                                          "dir": "desc", "division": "경제정책과"})).text
    assert rows[1][:3] == ["구분", "부서", "세부사업"] and "천원" in rows[0][0]
    assert rows[1][9:] == ["세부사업 합 본예산", "세부사업 합 예산현액", "세부사업 합 집행액", "소계·계 출처"]
    # each 소계 and the 계: the report's figures as printed, and the sum of the programs beside
    for d in [*summary["divisions"], {**summary["total"], "division": None}]:
        row = next(r for r in rows[1:] if (r[0], r[1]) == (("소계", d["division"]) if d["division"] else ("계", "")))
        reported = d["reported"]
        assert row[12] == "보고서 (2025-01-31 기준)"
        assert [int(v) for v in row[3:6]] == [reported[k] // 1000 for k in ("original", "current", "spent")]
        assert row[6] == reported["rate"]
        assert [int(v) for v in row[9:12]] == [round(d[k] / 1000) for k in ("original", "current", "spent")]
    ws = openpyxl.load_workbook(io.BytesIO(x.content)).active
    assert ws is not None
    sheet = list(ws.iter_rows(values_only=True))
    [total] = [r for r in sheet if r[0] == "계"]
    assert total[3:6] == (668_901, 682_752, 49_232)  # 001's 계 as printed (백만원)
    assert total[9:12] == tuple(round(summary["total"][k] / 1_000_000) for k in ("original", "current", "spent"))
    # sorted by 집행액, largest first, inside the 과; the 소계 stays first
    spent = [int(v.replace(",", "")) for v in re.findall(
        r'<tr class="program" data-division="경제정책과">.*?</th>\s*<td>[\d,-]+</td><td>[\d,-]+</td><td>([\d,]+)</td>',
        sorted_html, re.S)]
    assert spent and spent == sorted(spent, reverse=True)
    assert sorted_html.index('class="subtotal"') < sorted_html.index('class="program"')


async def test_program_page_reads_both_services_and_unknown_program_is_404(stack: Stack) -> None:
    async with as_person(stack, TEAM_LEAD) as web:
        r = await web.get("/program/" + quote(PROGRAM, safe=""))
        missing = await web.get("/program/" + quote("경제정책과/없는사업", safe=""))
    assert r.status_code == 200
    assert "spending-chart" in r.text and "서울형 R&amp;D 지원사업 공고" in r.text and "02-2133-5226" in r.text
    assert "001_74008803e39ce1ad.txt" in r.text  # the source lines of the report
    assert missing.status_code == 404 and "사업이 없습니다" in missing.text


async def test_an_unreachable_api_is_a_page_that_says_so(tmp_path: Path) -> None:
    from services.common.embedded import free_port
    from services.common.settings import Settings
    from services.web.app import build
    from tests.helpers import running

    port = free_port()
    settings = Settings(_env_file=None, web_budget_url=f"http://127.0.0.1:{port}",  # type: ignore[call-arg]
                        web_programs_url=f"http://127.0.0.1:{port}", web_notify_url=f"http://127.0.0.1:{port}",
                        log_json=False)
    app = build(settings)
    async with running(app) as (web,):
        web.cookies.set(COOKIE, app.state.sessions.encode(TEAM_LEAD))
        r = await web.get("/today")
    assert r.status_code == 502 and "서비스가 응답하지 않았습니다" in r.text


async def test_what_people_type_is_shown_as_text_not_markup(stack: Stack) -> None:
    async with as_person(stack, Identity("<script>alert(1)</script>", "operator")) as web:
        html = (await web.get("/alerts")).text
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_auditors_read_every_alert_but_do_not_act(stack: Stack) -> None:
    alerts = (await stack.notify.get("/v1/alerts", params={"status": ""})).json()["items"]
    async with as_person(stack, Identity("감사관", "auditor")) as web:
        html = (await web.get("/alerts")).text
        page = await web.get("/today")
        form_token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        r = await web.post(f"/alerts/{alerts[0]['fingerprint']}/ack",
                           data={"csrf": stack.web.state.sessions.csrf(web.cookies[COOKIE])})
    assert form_token is None  # no action forms for an auditor
    assert all(f'id="alert-{a["fingerprint"]}"' in html for a in alerts)
    assert r.status_code == 403


async def test_demo_link_fills_in_the_sign_in(stack: Stack) -> None:
    r = await stack.client.get("/signin", params={"name": "박지은", "role": "팀장", "division": "경제정책과"})
    assert 'value="박지은"' in r.text
    assert '<option value="경제정책과" selected>' in r.text and '<option value="팀장" selected>' in r.text
