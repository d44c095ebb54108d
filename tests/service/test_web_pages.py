"""The staff pages over HTTP (no browser) on the demo data: people sign in through Access (a
mailed link, an API key, the demo's keys only in the demo), what each page shows comes from the
APIs read as that person, and forms reach notify with the person's credential, so notify records
who acted and refuses what their role or 과 does not allow, whatever the page offered."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import openpyxl
import pytest

from services.common.auth import Identity, Role
from services.common.embedded import MailSink
from services.web.session import COOKIE
from tests.web.stack import LINK_SUBJECT, Stack, demo_stack, mailed_link

PROGRAM = "경제정책과/서울형R&D지원"


@pytest.fixture(scope="module")
def sink() -> Iterator[MailSink]:
    sink = MailSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory, seeds: Path, sink: MailSink) -> AsyncIterator[Stack]:
    async with demo_stack(tmp_path_factory.mktemp("webpages"), seeds, smtp_port=sink.port) as s:
        yield s


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "no form token on the page"
    return found.group(1)


def web_client(stack: Stack, app: object = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app or stack.web), base_url="http://web")


def lead(stack: Stack) -> Identity:
    return stack.staff("박지은", "경제정책과")


async def test_pages_need_a_sign_in_and_the_mailed_link_signs_staff_in(stack: Stack, sink: MailSink) -> None:
    address = await stack.address_of("박지은", "경제정책과")
    async with web_client(stack) as web:
        r = await web.get("/division", params={"as_of": "2025-01-31"})
        assert r.status_code == 303 and r.headers["location"] == "/signin?next=%2Fdivision%3Fas_of%3D2025-01-31"
        page = await web.get(r.headers["location"])
        assert "시연용 로그인" not in page.text  # not the demo
        before = len(sink.messages)
        r = await web.post("/signin/link", data={"email": address, "csrf": csrf(page.text)})
        assert r.status_code == 200 and "로그인 링크를 보냈습니다" in r.text
        url = urlsplit(await mailed_link(sink, before))
        assert address in next(m for m in sink.messages[before:] if m["Subject"] == LINK_SUBJECT)["To"]
        assert f"{url.scheme}://{url.netloc}{url.path}" == "http://web/auth/callback"  # the web's page

        confirm = await web.get(f"{url.path}?{url.query}")  # the mail's link: a button, nothing done yet
        assert confirm.status_code == 200 and COOKIE not in web.cookies
        token = re.search(r'name="token" value="([^"]+)"', confirm.text)
        assert token
        r = await web.post("/auth/callback", data={"token": token.group(1), "csrf": csrf(confirm.text)})
        assert r.status_code == 303 and r.headers["location"] == "/today"
        today = await web.get("/today")
        assert today.status_code == 200 and "경제정책과 팀장 박지은" in today.text
        me = (await stack.notify.get("/v1/audit", params={"action": "auth.sign_in"})).json()
        assert any(address in e["actor"] for e in me)

        # the link works once
        confirm = await web.get(f"{url.path}?{url.query}")
        again = await web.post("/auth/callback", data={"token": token.group(1), "csrf": csrf(confirm.text)})
        assert again.status_code == 401 and "이미 사용" in again.text

    async with web_client(stack) as other:
        page = await other.get("/signin")
        before = len(sink.messages)
        r = await other.post("/signin/link", data={"email": "nobody@staff.test", "csrf": csrf(page.text)})
        assert r.status_code == 200 and "로그인 링크를 보냈습니다" in r.text  # the same answer …
        assert not [m for m in sink.messages[before:] if m["Subject"] == LINK_SUBJECT]  # … and no mail
        # a form without the nonce cookie of this browser (another site's page) is refused
        other.cookies.clear()
        r = await other.post("/signin/link", data={"email": address, "csrf": csrf(page.text)})
        assert r.status_code == 403


async def test_operators_and_auditors_sign_in_with_their_key_systems_do_not(stack: Stack) -> None:
    access = stack.services["notify"].state.access
    _, operator = access.store.create(name="운영 담당", role="operator")
    _, system = access.store.create(name="부서 시스템", role="system", divisions=["경제정책과"])
    async with web_client(stack) as web:
        form = csrf((await web.get("/signin")).text)
        r = await web.post("/signin/key", data={"key": "ewk_nothing_wrong", "csrf": form})
        assert r.status_code == 401 and "API 키가 맞지 않거나" in r.text
        r = await web.post("/signin/key", data={"key": system, "csrf": form})
        assert r.status_code == 403 and COOKIE not in web.cookies
        r = await web.post("/signin/key", data={"key": operator, "csrf": form, "next": "/ops"})
        assert r.status_code == 303 and r.headers["location"] == "/ops"
        assert "검토 대기" in (await web.get("/ops")).text
        # a revoked key ends the sign-in at the next page
        row = access.store.lookup(operator, access.clock())
        assert row is not None
        access.store.revoke(row.id)
        r = await web.get("/today")
        assert r.status_code == 303 and r.headers["location"].startswith("/signin")
        assert COOKIE not in web.cookies


async def test_a_tampered_session_is_no_session(stack: Stack) -> None:
    cookie = stack.cookie(lead(stack))
    sig = cookie.partition(".")[2]
    forged = stack.cookie(Identity("박지은", Role.operator)).partition(".")[0] + "." + sig
    async with web_client(stack) as web:
        web.cookies.set(COOKIE, forged)
        assert (await web.get("/ops")).status_code == 303  # to sign in, not in as an operator


async def test_today_lists_the_divisions_alerts_deadlines_and_rates(stack: Stack) -> None:
    alerts = (await stack.notify.get("/v1/alerts")).json()["items"]
    ours = [a for a in alerts if a["labels"].get("과") == "경제정책과" and a["status"] == "firing"]
    others = [a for a in alerts if a["labels"].get("과") not in ("경제정책과", None)]
    assert ours and others
    async with stack.as_person(lead(stack)) as web:
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
    who = lead(stack)
    async with stack.as_person(who) as web:
        token = csrf((await web.get("/today")).text)
        r = await web.post(f"/alerts/{first['fingerprint']}/ack", data={"csrf": "0" * 32, "comment": ""})
        assert r.status_code == 403  # a form from elsewhere
        r = await web.post(f"/alerts/{first['fingerprint']}/ack", data={"csrf": token, "comment": "확인함"})
        assert r.status_code == 303
        r = await web.post(f"/alerts/{second['fingerprint']}/silence",
                           data={"csrf": token, "period": "7일", "reason": "3월 계약 예정"})
        assert r.status_code == 303
        html = (await web.get("/today")).text
    # notify names the caller whose session the web sent: Access's label for the person
    after = {a["fingerprint"]: a for a in (await stack.notify.get("/v1/alerts")).json()["items"]}
    assert after[first["fingerprint"]]["acked_by"] == who.label == "팀장 박지은 <박지은@staff.test>"
    audit = (await stack.notify.get("/v1/audit", params={"action": "alert.ack"})).json()
    assert any(e["target"] == first["fingerprint"] and e["actor"] == who.label and e["actor_role"] == "staff"
               for e in audit)
    silences = (await stack.notify.get("/v1/silences")).json()["items"]
    mine = [s for s in silences if s["created_by"] == who.label]
    assert len(mine) == 1 and mine[0]["comment"] == "3월 계약 예정"
    assert {m["name"]: m["value"] for m in mine[0]["matchers"]} == {
        "program": second["program_id"], "rule": second["rule"], "과": "경제정책과"}
    assert after[second["fingerprint"]]["state"] == "suppressed"
    assert f'id="alert-{first["fingerprint"]}"' not in html and f'id="alert-{second["fingerprint"]}"' not in html


async def test_notify_refuses_another_divisions_staff_even_when_the_page_offers_the_button(stack: Stack) -> None:
    alerts = (await stack.notify.get("/v1/alerts")).json()["items"]
    other = next(a for a in alerts if a["labels"].get("과") == "일자리정책과" and a["acked_at"] is None
                 and a["state"] == "active")
    async with stack.as_person(lead(stack)) as web:
        page = await web.get("/program/" + quote(other["program_id"], safe=""))
        assert page.status_code == 200
        assert f'action="/alerts/{other["fingerprint"]}/ack"' in page.text  # the web shows the button …
        r = await web.post(f"/alerts/{other['fingerprint']}/ack", data={"csrf": csrf(page.text), "comment": "x"})
        s = await web.post(f"/alerts/{other['fingerprint']}/silence",
                           data={"csrf": csrf(page.text), "period": "7일", "reason": "남의 과"})
        ops = await web.get("/ops")
    assert r.status_code == 403 and "권한이 없습니다" in r.text  # … notify refuses
    assert s.status_code == 403
    assert ops.status_code == 403
    still = {a["fingerprint"]: a for a in (await stack.notify.get("/v1/alerts")).json()["items"]}
    assert still[other["fingerprint"]]["acked_at"] is None and still[other["fingerprint"]]["state"] == "active"
    async with stack.as_person(Identity("운영자", Role.operator)) as web:
        html = (await web.get("/ops")).text
    assert "검토 대기" in html and "알림 끄기" in html


async def test_division_table_downloads_agree_with_the_budget_view(stack: Stack) -> None:
    summary = (await stack.budget.get("/v1/budget/summary", params={"fiscal_year": 2025,
                                                                    "as_of": "2025-01-31"})).json()
    async with stack.as_person(lead(stack)) as web:
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
    async with stack.as_person(lead(stack)) as web:
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
    from services.web.session import Identity as WebIdentity
    from tests.helpers import running

    port = free_port()
    settings = Settings(_env_file=None, web_budget_url=f"http://127.0.0.1:{port}",  # type: ignore[call-arg]
                        web_programs_url=f"http://127.0.0.1:{port}", web_notify_url=f"http://127.0.0.1:{port}",
                        log_json=False)
    app = build(settings)
    async with running(app, as_role=None) as (web,):
        codec = app.state.sessions
        web.cookies.set(COOKIE, codec.encode(codec.session(WebIdentity("박지은", Role.staff, ("경제정책과",)),
                                                           "ews_whatever")))
        r = await web.get("/today")
    assert r.status_code == 502 and "서비스가 응답하지 않았습니다" in r.text


async def test_what_people_type_is_shown_as_text_not_markup(stack: Stack) -> None:
    async with stack.as_person(Identity("<script>alert(1)</script>", Role.operator)) as web:
        html = (await web.get("/alerts")).text
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_auditors_read_every_alert_and_notify_refuses_their_acknowledgement(stack: Stack) -> None:
    alerts = (await stack.notify.get("/v1/alerts", params={"status": ""})).json()["items"]
    async with stack.as_person(Identity("감사관", Role.auditor)) as web:
        html = (await web.get("/alerts")).text
        page = await web.get("/today")
        form_token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        r = await web.post(f"/alerts/{alerts[0]['fingerprint']}/ack",
                           data={"csrf": stack.web.state.sessions.csrf(web.cookies[COOKIE])})
    assert form_token is None  # no action forms for an auditor
    assert all(f'id="alert-{a["fingerprint"]}"' in html for a in alerts)
    assert r.status_code == 403  # the page hid the button; notify is what refuses


async def test_the_demo_sign_in_uses_the_demos_keys_and_only_in_the_demo(stack: Stack) -> None:
    access = stack.services["notify"].state.access
    _, key = access.store.create(name="데모 팀장", role="staff", divisions=["경제정책과"], office="경제실",
                                 title="팀장", email="demo-lead@seoul.go.kr")
    keys = {"staff": key}
    async with web_client(stack) as web:  # not the demo: no such sign-in
        page = await web.get("/signin", params={"as": "staff"})
        assert "시연용 로그인" not in page.text
        r = await web.post("/signin/demo", data={"person": "staff", "csrf": csrf(page.text)})
        assert r.status_code == 404 and COOKIE not in web.cookies
    undemo = stack.make_web(web_demo_keys=keys)  # keys configured, but not the demo: still none
    async with undemo.router.lifespan_context(undemo), web_client(stack, undemo) as web:
        assert "시연용 로그인" not in (await web.get("/signin")).text

    demo = stack.make_web(demo=True, web_demo_keys=keys)
    async with demo.router.lifespan_context(demo), web_client(stack, demo) as web:
        page = await web.get("/signin", params={"as": "staff"})
        assert '<option value="staff" selected>경제정책과 팀장 데모 팀장</option>' in page.text
        r = await web.post("/signin/demo", data={"person": "staff", "csrf": csrf(page.text)})
        assert r.status_code == 303 and r.headers["location"] == "/today"
        today = await web.get("/today")
        assert "경제정책과 팀장 데모 팀장" in today.text
        alert = next(a for a in (await stack.notify.get("/v1/alerts")).json()["items"]
                     if a["labels"].get("과") == "경제정책과" and a["acked_at"] is None)
        r = await web.post(f"/alerts/{alert['fingerprint']}/ack", data={"csrf": csrf(today.text)})
        assert r.status_code == 303
    acked = {a["fingerprint"]: a for a in (await stack.notify.get("/v1/alerts")).json()["items"]}
    assert acked[alert["fingerprint"]]["acked_by"] == "팀장 데모 팀장 <demo-lead@seoul.go.kr>"
