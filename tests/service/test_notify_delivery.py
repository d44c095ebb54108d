"""Every alert reaches a person, and mail is delivered eventually: fallback to the division's or
office's default contact, unroutable alerts counted and visible, a broken name or address failing
alone, SMTP down for a while then back, failed deliveries redriven. Real SMTP conversations
(aiosmtpd) over SQLite with a driven clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from services.common.embedded import MailSink, free_port
from services.common.metrics import REGISTRY
from services.notify.render import Renderer
from services.notify.service import redrive
from services.notify.store import NotifyContact, NotifyOutbox
from tests import factories as f
from tests.service.test_notify_service import SUBJECT, World, emails, overdue, slip, 담당, 팀장

서무 = "economic-policy@staff.seoul.example"  # 경제정책과's default in the packaged routing.yaml
실서무 = "economy-office@staff.seoul.example"


def program_without_contacts(pid: str = "P-RND", division: str = "경제정책과") -> dict[str, Any]:
    event = f.program(pid, division=division)
    event["payload"]["contacts"] = []
    return event


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def make_world(url: str, make_settings: Any, port: int, routing_text: str | None = None, **over: Any) -> World:
    return World(url, make_settings(database_url=url, smtp_port=port, notify_escalation_after_s=0, **over),
                 routing_text)


@pytest.fixture
def world(sqlite_url, make_settings, mail_sink):
    w = make_world(sqlite_url, make_settings, mail_sink.port)
    yield w
    w.db.dispose()


# --- every alert reaches a person ------------------------------------------------------------------


async def test_program_without_contacts_goes_to_the_division_default(world, mail_sink):
    world.feed(program_without_contacts(), slip())
    sent = await world.run(seconds=30)
    assert emails(sent) == [(서무, SUBJECT)]
    [msg] = mail_sink.messages
    assert str(msg["To"]) == f"경제정책과 서무 <{서무}>"
    [state] = world.notifier.alert_states("firing")
    assert state.alert.awaiting_recipients is False
    # the register names people later: they hear of it; the 서무 already told is not told again
    world.feed(f.program())
    assert emails(await world.run(minutes=5)) == [(담당, SUBJECT), (팀장, SUBJECT)]


async def test_division_without_default_falls_back_to_the_office(world, mail_sink):
    world.feed(program_without_contacts("P-NEW", division="투자유치과"),
               slip(pid="P-NEW", title="신규 사업", division="투자유치과"))
    sent = await world.run(seconds=30)
    assert [a for a, _ in emails(sent)] == [실서무]
    assert str(mail_sink.messages[0]["To"]) == f"경제실 서무 <{실서무}>"


async def test_contacts_without_any_address_fall_back_too(sqlite_url, make_settings, mail_sink):
    # addresses are made from phone numbers: a register without phones leaves nobody addressable
    w = make_world(sqlite_url, make_settings, mail_sink.port)
    event = f.program()
    for c in event["payload"]["contacts"]:
        c.pop("phone")
    w.feed(event, slip())
    assert emails(await w.run(seconds=30)) == [(서무, SUBJECT)]
    w.db.dispose()


async def test_an_alert_with_nobody_to_tell_is_counted_and_visible(sqlite_url, make_settings, mail_sink):
    w = make_world(sqlite_url, make_settings, mail_sink.port, "fallback: {divisions: {}, offices: {}}\n")
    before = metric("execwatch_notify_unroutable_total")
    w.feed(program_without_contacts(), slip())
    assert await w.run(minutes=5) == []
    assert metric("execwatch_notify_unroutable_total") == before + 1
    assert metric("execwatch_notify_unroutable_alerts") == 1
    [state] = w.notifier.alert_states("firing")
    assert state.alert.awaiting_recipients is True
    # contacts arrive: routed, and the gauge goes back to 0
    w.feed(f.program())
    assert emails(await w.run(seconds=30)) == [(담당, SUBJECT), (팀장, SUBJECT)]
    assert metric("execwatch_notify_unroutable_alerts") == 0
    w.db.dispose()


# --- one bad delivery fails alone --------------------------------------------------------------------


def _add_contact(w: World, role: str, name: str, email: str) -> None:
    """A contact as an older register may have stored it (before names and addresses were checked)."""
    with w.db.unit_of_work() as s:
        s.add(NotifyContact(program_id="P-RND", role=role, name=name, email=email, division="경제정책과"))


async def test_line_breaks_in_a_name_cannot_forge_headers(world, mail_sink):
    world.feed(f.program())
    with world.db.unit_of_work() as s:
        contact = s.exec(select(NotifyContact).where(NotifyContact.role == "담당")).one()
        contact.name = "김지영\r\nBcc: spy@evil.example"
        s.add(contact)
    world.feed(slip())
    sent = await world.run(seconds=30)
    assert {(d.address, d.outcome) for d in sent if d.channel == "email"} == {(담당, "sent"), (팀장, "sent")}
    mine = next(m for m in mail_sink.messages if 담당 in str(m["To"]))
    assert mine["Bcc"] is None and "\n" not in str(mine["To"])
    assert mine["To"].addresses[0].display_name == "김지영 Bcc: spy@evil.example"


async def test_an_undeliverable_address_fails_alone_with_its_reason(world, mail_sink):
    world.feed(f.program())
    _add_contact(world, "담당", "이은서", "lee\r\nBcc: spy@evil.example")
    world.feed(slip())
    sent = await world.run(seconds=30)
    outcomes = {(d.address, d.outcome) for d in sent if d.channel == "email"}
    assert outcomes == {(담당, "sent"), (팀장, "sent"), ("lee\r\nBcc: spy@evil.example", "failed")}
    [bad] = [d for d in world.deliveries("email") if d.outcome == "failed"]
    assert bad.attempts == 1 and "not a deliverable address" in (bad.error or "")
    assert sorted(m["To"].addresses[0].addr_spec for m in mail_sink.messages) == [담당, 팀장]
    with world.db.read() as s:
        [dead] = [json.loads(r.value) for r in s.exec(select(NotifyOutbox)).all()]
    assert dead["delivery_id"] == bad.id


class RefusingSink(MailSink):
    """A mail server that refuses one mailbox for good (550) and accepts the rest."""

    def __init__(self, refused: str) -> None:
        super().__init__()
        self.refused = refused

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address == self.refused:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"


async def test_a_mailbox_the_server_refuses_fails_alone(sqlite_url, make_settings):
    sink = RefusingSink(팀장).start()
    try:
        w = make_world(sqlite_url, make_settings, sink.port)
        w.feed(f.program(), f.program("P-TWO", "스마트도시 실증"), slip(), overdue(pid="P-TWO"))
        await w.run(seconds=30)
        mail = {d.address: d for d in w.deliveries("email")}
        assert (mail[담당].outcome, mail[팀장].outcome) == ("sent", "failed")
        assert "550" in (mail[팀장].error or "") and mail[팀장].attempts == 1
        assert [m["To"].addresses[0].addr_spec for m in sink.messages] == [담당]
        w.db.dispose()
    finally:
        sink.stop()


class CountingSink(RefusingSink):
    """Counts SMTP sessions (each client greets once per connection)."""

    def __init__(self, refused: str) -> None:
        super().__init__(refused)
        self.sessions = 0

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        self.sessions += 1
        session.host_name = hostname  # what aiosmtpd does itself without this hook
        return responses


async def test_one_smtp_connection_per_round_even_past_a_refused_mailbox(sqlite_url, make_settings):
    sink = CountingSink(팀장).start()
    try:
        w = make_world(sqlite_url, make_settings, sink.port)
        # two 과: two messages each for 담당 and 팀장, in one dispatcher round
        w.feed(f.program(), f.program("P-NEW", "신규 사업", division="투자유치과"), slip(),
               slip(pid="P-NEW", title="신규 사업", division="투자유치과"))
        await w.run(seconds=30)
        outcomes = sorted((d.address, d.outcome) for d in w.deliveries("email"))
        assert outcomes == [(담당, "sent"), (담당, "sent"), (팀장, "failed"), (팀장, "failed")]
        assert len(sink.messages) == 2 and sink.sessions == 1
        w.db.dispose()
    finally:
        sink.stop()


# --- SMTP down, then back -------------------------------------------------------------------------------


async def test_smtp_down_for_minutes_then_back_delivers_everything_once(sqlite_url, make_settings):
    port = free_port()  # nothing listens yet
    w = make_world(sqlite_url, make_settings, port)
    w.feed(f.program(), slip())
    await w.run(seconds=30)
    for _ in range(12):  # 12 minutes of a dead mail server: retried, never given up
        await w.run(minutes=1)
    mail = w.deliveries("email")
    assert {d.outcome for d in mail} == {"pending"} and all(d.attempts >= 3 for d in mail)
    assert all("Connection" in (d.error or "") for d in mail)
    sink = MailSink(port=port).start()
    try:
        await w.run(minutes=5)  # the backoff is capped (300 s with this jitter): both are due again
        await w.run(minutes=5)
        assert {(d.address, d.outcome) for d in w.deliveries("email")} == {(담당, "sent"), (팀장, "sent")}
        assert sorted(m["To"].addresses[0].addr_spec for m in sink.messages) == [담당, 팀장]
    finally:
        sink.stop()
    w.db.dispose()


async def test_a_mail_about_a_resolved_alert_is_dropped_not_retried(sqlite_url, make_settings):
    w = make_world(sqlite_url, make_settings, free_port())
    w.feed(f.program(), slip())
    await w.run(seconds=30)
    w.feed(slip("info", status="resolved"))
    await w.run(minutes=10)
    firing = [d for d in w.deliveries("email") if d.status == "firing"]
    assert {d.outcome for d in firing} == {"dropped"}
    assert {d.outcome for d in w.deliveries("email") if d.status == "resolved"} == {"pending"}  # still retried
    w.db.dispose()


async def test_failed_after_the_retry_window_then_redriven_once_the_server_is_back(sqlite_url, make_settings):
    port = free_port()
    w = make_world(sqlite_url, make_settings, port, notify_retry_for_s=3600)
    w.feed(f.program(), slip())
    await w.run(seconds=30)
    for _ in range(14):
        await w.run(minutes=5)
    mail = w.deliveries("email")
    assert {d.outcome for d in mail} == {"failed"} and max(d.attempts for d in mail) > 5
    with w.db.read() as s:
        assert len(s.exec(select(NotifyOutbox)).all()) == 2  # dead letters: operators are told
    sink = MailSink(port=port).start()
    try:
        assert sorted(redrive(w.db, w.settings, w.clock())) == sorted(d.id for d in mail)
        await w.run()
        assert {(d.address, d.outcome) for d in w.deliveries("email")} == {(담당, "sent"), (팀장, "sent")}
        assert len(sink.messages) == 2
    finally:
        sink.stop()
    w.db.dispose()


def test_notify_redrive_command(sqlite_url, make_settings, tmp_path: Path):
    from services.common.db import Database, upgrade
    from services.notify.store import NotifyDelivery

    upgrade(sqlite_url, "notify")
    db = Database(sqlite_url)
    with db.unit_of_work() as s:
        for i, outcome in enumerate(("failed", "sent", "failed")):
            s.add(NotifyDelivery(alert_event_id=f"n{i}", fingerprint="fp", status="firing",
                                 severity="warning", role="담당", name="김지영", address=f"p{i}@x.test",
                                 subject="s", body_text="b", body_html="b", outcome=outcome, attempts=9,
                                 error="SMTPServerDisconnected"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXECWATCH_", "DATABASE_URL"))}
    env.update(DATABASE_URL=sqlite_url, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    out = subprocess.run([sys.executable, "-m", "services.cli", "notify", "redrive"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "notify: 2 failed deliveries queued again" in out.stdout
    with db.read() as s:
        rows = s.exec(select(NotifyDelivery)).all()
    assert sorted(r.outcome for r in rows) == ["pending", "pending", "sent"]
    assert all(r.attempts == 0 and r.retry_until is not None for r in rows if r.outcome == "pending")
    db.dispose()


async def test_a_template_that_fails_still_tells_the_person(sqlite_url, make_settings, mail_sink, tmp_path: Path):
    (tmp_path / "body.txt.j2").write_text("{{ alerts[0].figures.spent // 0 }}", encoding="utf-8")  # ZeroDivisionError
    w = make_world(sqlite_url, make_settings, mail_sink.port, notify_templates_dir=str(tmp_path))
    w.notifier.renderer = Renderer(tmp_path)
    w.feed(f.program(), slip())
    sent = await w.run(seconds=30)
    assert {(d.address, d.outcome) for d in sent if d.channel == "email"} == {(담당, "sent"), (팀장, "sent")}
    assert "집행률이 계획보다 10.3%p 낮습니다" in mail_sink.messages[0].get_body(("plain",)).get_content()
    w.db.dispose()
