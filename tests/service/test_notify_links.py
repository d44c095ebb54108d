"""Mail a person can act on, and acknowledge links mail scanners cannot trigger: through the notify
app (TestKafkaBroker, SQLite, driven clock) and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import pytest
from faststream.kafka import TestKafkaBroker

from contracts import AlertEvent, dump_event
from contracts.alerts import Alert, fingerprint
from services.notify import links
from services.notify.app import InsecureSettings, build, check_secrets
from services.notify.service import ManualClock
from tests import factories as f
from tests.helpers import running

PID = "경제정책과/서울기업지원센터 운영 및 창업기업 성장 지원"  # long enough to make backtracking hopeless
START = datetime(2025, 2, 3, 1, 0, tzinfo=UTC)  # Monday 10:00 KST


def slip(summary: str = "서울기업지원센터 운영 집행률이 계획보다 10.3%p 낮습니다", **figures: Any) -> AlertEvent:
    labels = {"fiscal_year": "2025", "program_id": PID, "rule": "execution_slipped"}
    return AlertEvent(event_id=uuid.uuid4(), occurred_at=START, source="execwatch-budget", key=PID, payload=Alert(
        fingerprint=fingerprint("execution_slipped", labels), rule="execution_slipped", status="firing",
        severity="warning", program_id=PID, program_title="서울기업지원센터 운영", fiscal_year=2025, office="경제실",
        division="경제정책과", labels=labels, summary=summary,
        figures={"rate": Decimal("0.0"), "plan": Decimal("10.3"), "gap": Decimal("10.3"),
                 "current_budget": 1_234_000_000, "spent": 0, "committed": 0, "as_of": "2025-01-31", **figures},
        starts_at=START, generator="budget"))


@pytest.fixture
def notify(make_settings, sqlite_url, mail_sink):
    clock = ManualClock(START)
    settings = make_settings(database_url=sqlite_url, smtp_port=mail_sink.port, notify_tick_s=3600,
                             notify_public_url="http://notify.test", notify_ack_link_ttl_s=7 * 86400,
                             notify_program_url="https://execwatch.test/v1/budget/programs/{program_id}")
    app = build(settings, clock=clock)
    return app, settings, clock


async def told(app: Any, settings: Any, clock: ManualClock, *events: AlertEvent) -> None:
    """Feed the register and the alerts, let group_wait pass, send."""
    br = app.state.runtime.broker
    await br.publish(json.dumps(f.program(PID, "서울기업지원센터 운영")).encode(), settings.topic("execwatch.programs"),
                     key=PID.encode())
    for e in events:
        await br.publish(dump_event(e), settings.topic("execwatch.alerts"), key=PID.encode())
    clock.advance(seconds=30)
    app.state.notifier.tick()
    await app.state.dispatcher.flush()


async def test_mail_has_date_sender_name_program_link_basis_and_next_action(notify, mail_sink):
    app, settings, clock = notify
    async with TestKafkaBroker(app.state.runtime.broker), running(app):
        await told(app, settings, clock, slip(basis="default_curve"))
    담당 = next(m for m in mail_sink.messages if m["To"].addresses[0].display_name == "김지영")
    assert parsedate_to_datetime(담당["Date"]) == START + timedelta(seconds=30)
    sender = 담당["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("execwatch 알림", "execwatch@seoul.example")
    text = 담당.get_body(("plain",)).get_content()
    link = f"https://execwatch.test/v1/budget/programs/{quote(PID, safe='')}"
    assert "%2F" in link and f"- 사업 페이지: {link}" in text
    assert "- 판단 기준: 이 사업의 집행계획이 없어 기본 집행 곡선(상반기 신속집행 목표)에 비추어 판단했습니다." in text
    assert "- 요청 사항: 월별 집행계획을 제출하시거나, 부진 사유와 조치 계획을 회신해 주십시오." in text
    html = 담당.get_body(("html",)).get_content()
    assert f'href="{link}"' in html and "판단 기준" in html


async def test_the_budget_services_wording_of_the_basis_wins(notify, mail_sink):
    app, settings, clock = notify
    wording = "이 사업의 월별 집행계획(1월 5.0%)에 비추어 판단했습니다."
    async with TestKafkaBroker(app.state.runtime.broker), running(app):
        await told(app, settings, clock, slip(basis="plan", basis_text=wording))
    text = mail_sink.messages[0].get_body(("plain",)).get_content()
    assert f"- 판단 기준: {wording}" in text


def _token(body: str) -> str:
    return body.split("http://notify.test/v1/ack?token=", 1)[1].split()[0]


async def test_ack_link_opens_a_page_and_only_post_acknowledges(notify, mail_sink):
    app, settings, clock = notify
    alert = slip(summary="<script>alert('x')</script> 집행 부진")
    async with TestKafkaBroker(app.state.runtime.broker), running(app) as (client,):
        await told(app, settings, clock, alert)
        msg = next(m for m in mail_sink.messages if m["To"].addresses[0].display_name == "김지영")
        token = _token(msg.get_body(("plain",)).get_content())
        # Whoever opens the link is not signed in: the signed link is the credential.
        operator = {"Authorization": client.headers.pop("Authorization")}

        for _ in range(3):  # a mail scanner, a preview, the person: none of them acknowledges
            page = await client.get("/v1/ack", params={"token": token})
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<script>" not in page.text and "&lt;script&gt;" in page.text
        assert "확인합니다" in page.text and page.headers["cache-control"] == "no-store"
        [a] = (await client.get("/v1/alerts", headers=operator)).json()["items"]
        assert (a["state"], a["acked_at"]) == ("active", None)

        done = await client.post("/v1/ack", params={"token": token}, data={"comment": "<b>3월</b> 교부 예정"})
        assert done.status_code == 200 and "확인되었습니다" in done.text and "&lt;b&gt;3월" in done.text
        [a] = (await client.get("/v1/alerts", headers=operator)).json()["items"]
        address = msg["To"].addresses[0].addr_spec
        assert (a["state"], a["acked_by"]) == ("acknowledged", f"김지영 <{address}>")


async def test_expired_tampered_or_foreign_tokens_are_refused(notify, mail_sink):
    app, settings, clock = notify
    async with TestKafkaBroker(app.state.runtime.broker), running(app) as (client,):
        await told(app, settings, clock, slip())
        token = _token(mail_sink.messages[0].get_body(("plain",)).get_content())
        body, _, mac = token.partition(".")
        claims = json.loads(links._unb64(body))
        other = links._b64(json.dumps({**claims, "f": "0000000000000000"}).encode())
        forged = links.sign("another-secret", "ack", claims["f"], claims["a"], claims["n"], clock() + timedelta(1))
        for bad in (f"{other}.{mac}", f"{body}.{mac[:-2]}AA", forged, "", "no-dot"):
            r = await client.post("/v1/ack", params={"token": bad})
            assert r.status_code == 403 and "사용할 수 없는 링크" in r.text, bad
        clock.advance(days=7, seconds=1)
        assert (await client.get("/v1/ack", params={"token": token})).status_code == 410
        expired = await client.post("/v1/ack", params={"token": token})
        assert expired.status_code == 410 and "기한이 지난 링크" in expired.text
        [a] = (await client.get("/v1/alerts")).json()["items"]
        assert a["acked_at"] is None


async def test_a_pathological_silence_regex_cannot_freeze_the_service(notify):
    app, settings, clock = notify
    async with TestKafkaBroker(app.state.runtime.broker), running(app) as (client,):
        await told(app, settings, clock, slip())
        created = await client.post("/v1/silences", json={
            "matchers": [{"name": "program", "value": "(.+)+X", "op": "=~"}],
            "ends_at": (clock() + timedelta(hours=1)).isoformat(), "created_by": "김지영", "comment": "시험"})
        assert created.status_code == 201, created.text
        # With backtracking this is 2^30 steps per label and never returns; RE2 runs in linear time.
        alerts = await asyncio.wait_for(client.get("/v1/alerts"), timeout=60)
        assert [a["state"] for a in alerts.json()["items"]] == ["active"]
        assert (await asyncio.wait_for(client.get("/healthz"), timeout=60)).status_code == 200
        app.state.notifier.tick()  # the scheduler matches silences too
        for value, why in (("(a)\\1", "invalid regular expression"), ("a" * 600, "at most 512")):
            r = await client.post("/v1/silences", json={
                "matchers": [{"name": "program", "value": value, "op": "=~"}],
                "ends_at": (clock() + timedelta(hours=1)).isoformat(), "created_by": "김", "comment": "x"})
            assert r.status_code == 422 and why in r.text


def test_the_demo_secret_is_refused_unless_run_as_the_demo(make_settings, sqlite_url):
    demo_secret = make_settings(database_url=sqlite_url, notify_ack_secret="execwatch-ack")
    with pytest.raises(InsecureSettings, match="demo"):
        build(demo_secret)
    with pytest.raises(InsecureSettings, match="empty"):
        check_secrets(make_settings(notify_ack_secret=""))
    check_secrets(make_settings(notify_ack_secret="execwatch-ack", demo=True))
    check_secrets(make_settings())
