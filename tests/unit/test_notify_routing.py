"""The routing file (validated with errors naming the file and key) and the Korean messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from contracts.alerts import Alert
from services.common.settings import Settings
from services.notify import routing
from services.notify.domain import Recipient
from services.notify.render import Item, Renderer, webhook_payload

SETTINGS = Settings(_env_file=None)
LABELS = {"실": "경제실", "과": "경제정책과", "program": "P-RND", "rule": "execution_slipped", "severity": "warning"}


def test_packaged_routing_file_is_valid_and_gives_the_default_policy():
    r = routing.load(SETTINGS)
    p = r.policy(LABELS)
    assert p.route == "default"
    assert p.roles_for("info") == ("담당",) and p.roles_for("critical") == ("담당", "팀장", "과장")
    assert p.timing.group_wait == timedelta(seconds=30) and p.timing.repeat_interval == timedelta(hours=24)
    assert p.quiet.enabled and p.quiet.timezone == "Asia/Seoul"
    assert p.channels == ("email", "inbox")
    assert len(r.inhibit_rules) == 2


def test_route_per_division_overrides_defaults_and_settings(tmp_path: Path):
    text = """
defaults:
  group_wait: 10s
routes:
  - name: 경제정책과
    match: {과: 경제정책과, severity: [warning, critical]}
    roles: {warning: [담당]}
    repeat_interval: 2d
    quiet_hours: {critical_bypass: true, start: "22:30"}
    receivers: [slack]
receivers:
  slack: {webhook: {url: "https://hooks.example/x", format: slack, secret: s3cret}}
recipients:
  - match: {program: P-RND}
    role: 담당
    name: 홍길동
    email: hong@seoul.example
"""
    r = routing.parse(text, SETTINGS, "test.yaml")
    p = r.policy(LABELS)
    assert p.route == "경제정책과"
    assert p.roles_for("warning") == ("담당",) and p.roles_for("critical") == ("담당", "팀장", "과장")
    assert p.timing.group_wait == timedelta(seconds=10) and p.timing.repeat_interval == timedelta(days=2)
    assert p.quiet.critical_bypass and p.quiet.start.hour == 22 and p.quiet.start.minute == 30
    assert r.receivers["slack"].key == "webhook:slack" and r.receivers["slack"].secret == "s3cret"
    assert r.policy({**LABELS, "severity": "info"}).route == "default"
    assert r.policy({**LABELS, "과": "투자유치과"}).route == "default"
    assert r.overrides(LABELS) == [("담당", "홍길동", None, "hong@seoul.example")]


@pytest.mark.parametrize(("text", "key"), [
    ("defaults: {group_wait: soon}", "defaults.group_wait"),
    ("routes: [{match: {과: x}, roles: {warning: [부장]}}]", "routes.0.roles.warning.0"),
    ("routes: [{match: {과: x}, colour: red}]", "routes.0.colour"),
    ("receivers: {a: {webhook: {url: 'ftp://x'}}}", "receivers.a.webhook.url"),
    ("defaults: {receivers: [nobody]}", "defaults.receivers"),
    ("defaults: {quiet_hours: {timezone: Mars/Base}}", "defaults.quiet_hours.timezone"),
    ("inhibit: [{target: {rule: x}}]", "inhibit.0.source"),
])
def test_invalid_routing_names_the_file_and_the_key(text: str, key: str):
    with pytest.raises(routing.RoutingError) as err:
        routing.parse(text, SETTINGS, "/etc/execwatch/routing.yaml")
    assert "/etc/execwatch/routing.yaml" in str(err.value) and key in str(err.value)


def test_unreadable_or_non_yaml_file_is_a_routing_error(tmp_path: Path):
    missing = Settings(_env_file=None, notify_routing_file=str(tmp_path / "none.yaml"))
    with pytest.raises(routing.RoutingError, match=r"none\.yaml"):
        routing.load(missing)
    with pytest.raises(routing.RoutingError, match="not valid YAML"):
        routing.parse("routes: [", SETTINGS, "x.yaml")


def test_durations():
    assert routing.parse_duration("1h30m") == timedelta(minutes=90)
    assert routing.parse_duration(45) == timedelta(seconds=45)
    with pytest.raises(ValueError):
        routing.parse_duration("-5m")


def alert(**over: object) -> Alert:
    base: dict[str, object] = dict(
        fingerprint="fp1", rule="execution_slipped", status="firing", severity="critical", program_id="P-RND",
        program_title="서울형 R&D 지원", division="경제정책과", office="경제실",
        summary="서울형 R&D 지원 집행률이 계획보다 25.0%p 낮습니다",
        figures={"rate": Decimal("12.3"), "plan": Decimal("37.3"), "gap": Decimal("25.0"),
                 "current_budget": 41_106_204_000, "spent": 5_000_000_000, "committed": 0, "as_of": "2025-03-31"},
        starts_at=datetime(2025, 3, 31, tzinfo=UTC), generator="budget")
    base.update(over)
    return Alert.model_validate(base)


ME = Recipient("담당", "김지영", "kim@x")


def test_single_alert_subject_and_bodies_in_korean():
    m = Renderer(ack_url=lambda fp, r: f"https://notify/v1/ack?token={fp}.{r.address}").render([Item(alert())], ME)
    assert m.subject == "[집행 부진] 서울형 R&D 지원 — 집행률 12.3% (계획 대비 −25.0%p)"
    assert "김지영 담당님께" in m.text and "41,106,204,000원" in m.text and "(계획 37.3%, 차이 −25.0%p)" in m.text
    assert "확인·회신: https://notify/v1/ack?token=fp1.kim@x" in m.text
    assert "<strong>서울형 R&amp;D 지원 집행률" in m.html  # escaped in HTML


def test_digest_of_a_division_and_resolved_and_reminder_subjects():
    r = Renderer()
    two = [Item(alert()), Item(alert(fingerprint="fp2", rule="milestone_overdue", severity="warning",
                                      figures={"milestone": "선정평가", "window_end": "2025-05-31"}))]
    m = r.render(two, ME, division="경제정책과")
    assert m.subject == "[경제정책과] 알림 2건 — [집행 부진] 서울형 R&D 지원 — 집행률 12.3% (계획 대비 −25.0%p) 외 1건"
    assert "1. [집행 부진]" in m.text and "2. [일정 지연] 서울형 R&D 지원 — 선정평가" in m.text
    assert r.render([Item(alert(status="resolved"))], ME).subject.startswith("[해소] [집행 부진]")
    assert r.render([Item(alert())], ME, kind="reminder").subject.startswith("[재알림] [집행 부진]")
    acked = r.render([Item(alert(), acked=True)], ME)
    assert "확인됨" in acked.text


def test_staff_edited_template_wins_over_the_packaged_one(tmp_path: Path):
    (tmp_path / "subject.txt.j2").write_text("[execwatch] {{ alerts|length }}건", encoding="utf-8")
    m = Renderer(tmp_path).render([Item(alert())], ME)
    assert m.subject == "[execwatch] 1건" and "김지영 담당님께" in m.text


def test_webhook_payloads():
    r = Renderer()
    items = [Item(alert())]
    m = r.render(items, ME)
    slack = webhook_payload("slack", m, items, "webhook:s", "alert", "n1")
    assert slack["text"].startswith("*[집행 부진]")
    doc = webhook_payload("json", m, items, "webhook:s", "alert", "n1")
    assert doc["status"] == "firing" and doc["alerts"][0]["fingerprint"] == "fp1"
    assert doc["alerts"][0]["figures"]["rate"] == "12.3"


def test_long_korean_subjects_survive_the_trip_through_mail():
    import email
    import email.policy

    from services.notify.service import build_email
    from services.notify.store import NotifyDelivery

    base = "[산업입지과] 알림 3건 — [집행 부진] 서울시 산업입지 수급계획 수립 — 집행률 0.0% (계획 대비 −10.3%p) 외 2건"
    for cut in range(10, len(base)):
        subject = base[:cut] + " 외 2건"
        d = NotifyDelivery(alert_event_id="n1", fingerprint="fp", status="firing", severity="warning", role="담당",
                           name="김지영", address="kim@staff.test", subject=subject, body_text="본문",
                           body_html="<p>본문</p>")
        raw = build_email(d, SETTINGS, datetime(2025, 2, 3, tzinfo=UTC)).as_bytes()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert parsed["Subject"] == subject
        assert parsed.get_body(("plain",)).get_content().strip() == "본문"
