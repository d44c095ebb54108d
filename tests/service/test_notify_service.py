"""Notify use cases over SQLite with a driven clock (no sleeping): grouping and dedup, resolve,
silences, quiet hours, inhibition, escalation and acknowledgement, retries and dead letters,
webhooks. Email goes to a real SMTP server (mail_sink)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlmodel import col, select

from contracts import AlertEvent, parse_event
from contracts.alerts import Alert, fingerprint
from services.common.db import Database, upgrade
from services.common.embedded import free_port
from services.notify import routing
from services.notify.render import Renderer
from services.notify.service import Dispatcher, ManualClock, Notifier
from services.notify.store import NotifyDelivery, NotifyOutbox
from tests import factories as f

KST = ZoneInfo("Asia/Seoul")
MONDAY_10 = datetime(2025, 2, 3, 10, 0, tzinfo=KST)
담당, 팀장, 과장 = "0221335223@staff.test", "0221335226@staff.test", "0221335210@staff.test"


def slip(severity: str = "warning", status: str = "firing", pid: str = "P-RND", rate: str = "0.0",
         gap: str = "10.3", title: str = "서울형 R&D 지원", division: str = "경제정책과") -> AlertEvent:
    labels = {"fiscal_year": "2025", "program_id": pid, "rule": "execution_slipped"}
    return alert_event(Alert(
        fingerprint=fingerprint("execution_slipped", labels), rule="execution_slipped", status=status,
        severity=severity, program_id=pid, program_title=title, fiscal_year=2025, office="경제실",
        division=division, labels={**labels, "division": division},
        summary=f"{title} 집행률이 계획보다 {gap}%p 낮습니다",
        figures={"rate": Decimal(rate), "plan": Decimal("10.3"), "gap": Decimal(gap),
                 "current_budget": 41_106_204_000, "spent": 0, "committed": 0, "as_of": "2025-01-31"},
        starts_at=datetime(2025, 1, 31, tzinfo=UTC), generator="budget"))


def overdue(severity: str = "warning", status: str = "firing", pid: str = "P-RND") -> AlertEvent:
    labels = {"program_id": pid, "milestone_id": "M1", "rule": "milestone_overdue"}
    return alert_event(Alert(
        fingerprint=fingerprint("milestone_overdue", labels), rule="milestone_overdue", status=status,
        severity=severity, program_id=pid, program_title="서울형 R&D 지원", division="경제정책과",
        office="경제실", labels={**labels, "division": "경제정책과"}, summary="선정평가 일정이 지났습니다",
        figures={"milestone": "선정평가", "window_end": "2025-01-31"},
        starts_at=datetime(2025, 2, 1, tzinfo=UTC), generator="programs"))


def alert_event(a: Alert) -> AlertEvent:
    return AlertEvent(event_id=uuid.uuid4(), occurred_at=datetime(2025, 2, 1, tzinfo=UTC),
                      source=f"execwatch-{a.generator}", key=a.program_id, payload=a)


class World:
    def __init__(self, url: str, settings: Any, routing_text: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        upgrade(url, "notify")
        self.db = Database(url)
        self.settings = settings
        self.clock = ManualClock(MONDAY_10.astimezone(UTC))
        rules = routing.parse(routing_text, settings, "test.yaml") if routing_text else routing.load(settings)
        self.notifier = Notifier(self.db, settings, rules, Renderer(), self.clock)
        self.dispatcher = Dispatcher(self.db, settings, rules, self.clock, rand=lambda: 0.0, transport=transport)

    def feed(self, *events: Any) -> None:
        self.notifier.apply_batch([e if isinstance(e, AlertEvent) else parse_event(e) for e in events])

    async def run(self, **advance: float) -> list[NotifyDelivery]:
        """Move the clock, tick, send; the deliveries made by this step."""
        before = {d.id for d in self.deliveries()}
        if advance:
            self.clock.advance(timedelta(**advance))
        self.notifier.tick()
        await self.dispatcher.flush()
        return [d for d in self.deliveries() if d.id not in before]

    def deliveries(self, channel: str | None = None) -> list[NotifyDelivery]:
        with self.db.read() as s:
            rows = s.exec(select(NotifyDelivery).order_by(col(NotifyDelivery.id))).all()
        return [r for r in rows if channel is None or r.channel == channel]


def emails(ds: list[NotifyDelivery]) -> list[tuple[str, str]]:
    return sorted((d.address, d.subject) for d in ds if d.channel == "email")


@pytest.fixture
def world(sqlite_url, make_settings, mail_sink):
    w = World(sqlite_url, make_settings(database_url=sqlite_url, smtp_port=mail_sink.port,
                                        notify_escalation_after_s=0))
    yield w
    w.db.dispose()


SUBJECT = "[집행 부진] 서울형 R&D 지원 — 집행률 0.0% (계획 대비 −10.3%p)"


async def test_warning_reaches_담당_and_팀장_once_after_group_wait(world, mail_sink):
    world.feed(f.program(), slip())
    assert await world.run(seconds=29) == []  # group_wait is 30 s
    sent = await world.run(seconds=1)
    assert emails(sent) == [(담당, SUBJECT), (팀장, SUBJECT)]
    assert {d.channel for d in sent} == {"email", "inbox"}
    assert sorted(m["To"].addresses[0].addr_spec for m in mail_sink.messages) == [담당, 팀장]
    body = mail_sink.messages[0].get_body(("plain",)).get_content()
    assert "집행률: 0.0% (계획 10.3%" in body and "41,106,204,000원" in body

    world.feed(slip(), slip())  # the same firing alert, again and again
    assert await world.run(minutes=10) == []
    assert len(mail_sink.messages) == 2


async def test_an_alert_that_overtakes_the_register_goes_to_the_contacts_once_they_arrive(world):
    world.feed(slip())  # routed to the division's default contact for now
    assert await world.run(seconds=10) == []
    world.feed(f.program())  # the register catches up within group_wait: the 서무 need not hear
    assert emails(await world.run(seconds=30)) == [(담당, SUBJECT), (팀장, SUBJECT)]
    assert await world.run(minutes=10) == []


async def test_division_digest_and_severity_change(world, mail_sink):
    world.feed(f.program(), f.program("P-TWO", "스마트도시 실증"), slip(), slip(pid="P-TWO", title="스마트도시 실증"))
    sent = await world.run(seconds=30)
    assert [a for a, _ in emails(sent)] == [담당, 팀장]  # one message each for two alerts
    assert all(s.startswith("[경제정책과] 알림 2건 — ") for _, s in emails(sent))
    # a change of severity is news: 과장 hears for the first time, the others in the next interval
    world.feed(slip("critical", rate="0.0", gap="25.0"))
    assert await world.run(seconds=30) == [d for d in world.deliveries() if d.address == 과장] != []
    later = await world.run(minutes=5)
    assert [a for a, _ in emails(later)] == [담당, 팀장]


async def test_resolved_goes_to_those_told_and_silent_resolve_before_telling(world):
    world.feed(f.program(), slip())
    await world.run(seconds=30)
    world.feed(slip("info", status="resolved"))  # budget resolves with severity info
    resolved = await world.run(minutes=5)
    assert emails(resolved) == [(담당, "[해소] " + SUBJECT), (팀장, "[해소] " + SUBJECT)]
    assert await world.run(hours=25) == []  # resolved: no reminder
    # fired and resolved within group_wait: nobody was told, so nothing to take back
    world.feed(slip(pid="P-RND"))
    world.feed(slip("info", status="resolved"))
    assert await world.run(minutes=10) == []


async def test_reminder_after_repeat_interval_unless_acknowledged(world):
    world.feed(f.program(), slip())
    await world.run(seconds=30)
    assert await world.run(hours=23) == []
    reminder = await world.run(hours=1)
    assert emails(reminder) == [(a, "[재알림] " + SUBJECT) for a in (담당, 팀장)]
    world.notifier.ack(slip().payload.fingerprint, "김지영")
    assert await world.run(hours=24) == []


async def test_silence_holds_alerts_and_expiring_it_releases_them(world):
    world.feed(f.program())
    now = world.clock()
    silence = world.notifier.create_silence(
        [routing.matchers({"program": "P-RND"})[0]], None, now + timedelta(hours=2), "김지영", "점검 중")
    world.feed(slip())
    assert await world.run(minutes=10) == []
    assert [s.state for s in world.notifier.alert_states("firing")] == ["suppressed"]
    world.notifier.expire_silence(silence.id)
    assert emails(await world.run(seconds=1)) == [(담당, SUBJECT), (팀장, SUBJECT)]


async def test_silence_ending_by_itself_releases_at_its_end(world):
    world.feed(f.program())
    world.notifier.create_silence([routing.matchers({"rule": "execution_slipped"})[0]], None,
                                  world.clock() + timedelta(hours=1), "김지영", "자료 정정 중")
    world.feed(slip())
    assert await world.run(minutes=59) == []
    assert len(emails(await world.run(minutes=1))) == 2


async def test_quiet_hours_hold_until_next_working_morning(world):
    world.clock.set(datetime(2025, 2, 7, 22, 0, tzinfo=KST).astimezone(UTC))  # Friday night
    world.feed(f.program(), slip("critical", gap="25.0"))
    assert await world.run(seconds=30) == []
    world.clock.set(datetime(2025, 2, 10, 7, 59, tzinfo=KST).astimezone(UTC))
    assert await world.run() == []
    sent = await world.run(minutes=1)  # Monday 08:00
    assert len(emails(sent)) == 3
    assert min(d.sent_at for d in sent).replace(tzinfo=UTC) >= datetime(2025, 2, 9, 23, 0, tzinfo=UTC)


async def test_critical_may_bypass_quiet_hours(sqlite_url, make_settings, mail_sink):
    w = World(sqlite_url, make_settings(database_url=sqlite_url, smtp_port=mail_sink.port,
                                        notify_quiet_critical_bypass=True))
    w.clock.set(datetime(2025, 2, 3, 23, 0, tzinfo=KST).astimezone(UTC))
    w.feed(f.program(), slip("critical", gap="25.0"), slip(pid="P-TWO"))
    assert len(emails(await w.run(seconds=30))) == 3
    w.db.dispose()


async def test_critical_slip_inhibits_lower_alerts_of_its_program_until_resolved(world):
    world.feed(f.program(), slip("critical", gap="25.0"), overdue("warning"))
    first = await world.run(seconds=30)
    assert {d.fingerprints[0] for d in first} == {slip().payload.fingerprint}
    assert all(len(d.fingerprints) == 1 for d in first)
    states = {s.alert.rule: s for s in world.notifier.alert_states("firing")}
    assert states["milestone_overdue"].state == "suppressed"
    assert states["milestone_overdue"].inhibited_by == slip().payload.fingerprint
    world.feed(slip("info", status="resolved"))
    after = await world.run(minutes=5)
    told = dict(emails(after))
    digest = "[경제정책과] 알림 2건 — [일정 지연] 서울형 R&D 지원 — 선정평가 외 1건"
    assert told == {담당: digest, 팀장: digest, 과장: "[해소] " + SUBJECT}  # 과장 is not routed warnings


async def test_escalation_until_acknowledged(sqlite_url, make_settings, mail_sink):
    world = World(sqlite_url, make_settings(database_url=sqlite_url, smtp_port=mail_sink.port,
                                            notify_escalation_after_s=3600))
    world.feed(f.program(), slip("info"))  # info: 담당 only
    assert [a for a, _ in emails(await world.run(seconds=30))] == [담당]
    assert await world.run(minutes=59) == []
    assert await world.run(minutes=1) == []  # an hour without acknowledgement: 팀장's group waits
    up = await world.run(seconds=30)
    assert [a for a, _ in emails(up)] == [팀장]
    assert "제때 확인하지 않아 팀장님께" in next(d for d in up if d.channel == "email").body_text
    world.notifier.ack(slip().payload.fingerprint, "박지은", "확인, 조치 중")
    assert await world.run(hours=3) == []  # 과장 never hears
    [state] = world.notifier.alert_states("firing")
    assert (state.state, state.alert.escalation_level, state.alert.acked_by) == ("acknowledged", 1, "박지은")
    world.db.dispose()


async def test_failed_channel_retries_with_backoff_then_dead_letters_without_blocking_others(
        sqlite_url, make_settings):
    hooks: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hooks.append(request)
        return httpx.Response(200)

    text = ("defaults: {receivers: [ops]}\n"
            "receivers: {ops: {webhook: {url: 'https://hooks.test/x', format: json, secret: k}}}\n")
    w = World(sqlite_url, make_settings(database_url=sqlite_url, smtp_port=free_port(), notify_max_attempts=3,
                                        notify_retry_base_s=60), text, httpx.MockTransport(handler))
    w.feed(f.program(), slip())
    await w.run(seconds=30)
    assert len(hooks) == 1  # the webhook went out although email is down
    mail = w.deliveries("email")
    assert {d.outcome for d in mail} == {"pending"} and [d.attempts for d in mail] == [1, 0]  # round skips the rest
    assert await w.run(seconds=29) == [] and w.deliveries("email")[0].attempts == 1  # not due yet
    await w.run(seconds=1)
    await w.run(seconds=30)  # second row's first failure was due at once
    await w.run(minutes=2)
    await w.run(minutes=10)
    mail = w.deliveries("email")
    assert [(d.outcome, d.attempts) for d in mail] == [("failed", 3), ("failed", 3)]
    with w.db.read() as s:
        dead = [json.loads(r.value) for r in s.exec(select(NotifyOutbox)).all()]
    assert sorted(d["address"] for d in dead) == [담당, 팀장] and all("ConnectionRefused" in d["error"] for d in dead)
    w.db.dispose()


async def test_webhook_payload_is_signed_and_slack_compatible(sqlite_url, make_settings, mail_sink):
    hooks: list[httpx.Request] = []
    def handler(request: httpx.Request) -> httpx.Response:
        hooks.append(request)
        return httpx.Response(204)

    transport = httpx.MockTransport(handler)
    text = ("defaults: {receivers: [slack]}\n"
            "receivers: {slack: {webhook: {url: 'https://hooks.slack.test/T', format: slack, secret: s3}}}\n")
    w = World(sqlite_url, make_settings(database_url=sqlite_url, smtp_port=mail_sink.port), text, transport)
    w.feed(f.program(), slip())
    await w.run(seconds=30)
    [req] = hooks
    ts = req.headers["X-Execwatch-Timestamp"]
    expected = hmac.new(b"s3", ts.encode() + b"." + req.content, hashlib.sha256).hexdigest()
    assert req.headers["X-Execwatch-Signature"] == f"sha256={expected}"
    assert json.loads(req.content)["text"].startswith(f"*{SUBJECT}*")
    assert len(mail_sink.messages) == 2
    w.db.dispose()


async def test_routing_file_overrides_roles_and_recipients(sqlite_url, make_settings, mail_sink, tmp_path: Path):
    text = """
routes:
  - match: {과: 경제정책과}
    roles: {warning: [담당]}
    group_wait: 0s
recipients:
  - match: {program: P-RND}
    role: 담당
    name: 홍길동
    email: hong@seoul.test
"""
    w = World(sqlite_url, make_settings(database_url=sqlite_url, smtp_port=mail_sink.port), text)
    w.feed(f.program(), slip())
    assert emails(await w.run()) == [("hong@seoul.test", SUBJECT)]
    assert str(mail_sink.messages[0]["To"]) == "홍길동 <hong@seoul.test>"
    w.db.dispose()


def moved(new_end: str, severity: str = "warning", pid: str = "P-RND") -> AlertEvent:
    labels = {"program_id": pid, "milestone_id": "M1", "rule": "schedule_moved"}
    return alert_event(Alert(
        fingerprint=fingerprint("schedule_moved", labels), rule="schedule_moved", status="firing",
        severity=severity, program_id=pid, program_title="서울형 R&D 지원", division="경제정책과",
        office="경제실", labels={**labels, "division": "경제정책과"},
        summary=f"선정평가 종료일이 {new_end}로 늦춰졌습니다",
        figures={"milestone": "선정평가", "old_end": "2025-05-31", "new_end": new_end},
        starts_at=datetime(2025, 2, 1, tzinfo=UTC), generator="programs"))


async def test_each_move_of_a_schedule_is_told_even_at_the_same_severity(world):
    world.feed(f.program(), moved("2025-06-30"))
    first = await world.run(seconds=30)
    assert {a for a, _ in emails(first)} == {담당, 팀장}
    world.feed(moved("2025-06-30"))  # the same move, redelivered or re-emitted: nothing new
    assert await world.run(minutes=10) == []
    world.feed(moved("2025-09-30"))  # moved again
    second = await world.run(minutes=10)
    assert {a for a, _ in emails(second)} == {담당, 팀장}
    assert all("2025-09-30" in d.body_text for d in second if d.channel == "email")
