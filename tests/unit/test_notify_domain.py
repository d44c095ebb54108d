"""Notify's pure rules: recipients, matchers, silences, inhibition, quiet hours, grouping, backoff."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.notify import domain as d

KST = ZoneInfo("Asia/Seoul")
CONTACTS = [("과장", "이병철", "02-2133-5210", None), ("팀장", "박지은", "02-2133-5226", None),
            ("담당", "김지영", "02-2133-5223", None)]
TEMPLATE = "{phone_digits}@staff.test"


def kst(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=KST)


def test_severity_decides_roles_by_default():
    def names(sev: str) -> list[str]:
        return [r.name for r in d.choose_recipients(CONTACTS, d.roles_for(sev), TEMPLATE)]

    assert names("info") == ["김지영"]
    assert names("warning") == ["김지영", "박지은"]
    assert names("critical") == ["김지영", "박지은", "이병철"]


def test_one_message_per_address_and_highest_role_kept():
    contacts = [("담당", "김", "02-1111-2222", "same@x"), ("팀장", "김", None, "same@x")]
    assert d.choose_recipients(contacts, ("담당", "팀장"), TEMPLATE) == [d.Recipient("팀장", "김", "same@x")]


def test_contact_without_phone_or_email_has_no_address():
    assert d.choose_recipients([("담당", "김", None, None)], ("담당",), TEMPLATE) == []


def test_configured_recipient_replaces_the_register_contact_of_that_role():
    merged = d.apply_overrides(CONTACTS, [("담당", "홍길동", None, "hong@x")])
    assert [r.address for r in d.choose_recipients(merged, ("담당",), TEMPLATE)] == ["hong@x"]


def test_escalation_walks_up_the_chain_above_the_routed_roles():
    chain = d.ROLE_CHAIN
    assert d.escalated_roles(("담당",), chain, 0) == ("담당",)
    assert d.escalated_roles(("담당",), chain, 1) == ("담당", "팀장")
    assert d.escalated_roles(("담당", "팀장"), chain, 1) == ("담당", "팀장", "과장")
    assert not d.can_escalate(("담당", "팀장", "과장"), chain, 0)
    start = datetime(2025, 2, 3, tzinfo=UTC)
    assert d.escalation_due_at(start, 1, timedelta(hours=4)) == start + timedelta(hours=8)


def test_same_firing_alert_is_not_news():
    assert d.is_news(None, "firing", "warning")
    assert not d.is_news(d.KnownAlert("firing", "warning"), "firing", "warning")
    assert d.is_news(d.KnownAlert("firing", "warning"), "firing", "critical")
    assert d.is_news(d.KnownAlert("firing", "warning"), "resolved", "info")
    assert not d.is_news(None, "resolved", "info")


def test_matchers():
    labels = {"과": "경제정책과", "rule": "execution_slipped", "severity": "warning"}
    assert d.Matcher("과", "경제정책과").matches(labels)
    assert d.Matcher("severity", "info", "!=").matches(labels)
    assert d.Matcher("rule", "execution_.*", "=~").matches(labels)
    assert not d.Matcher("rule", "execution", "=~").matches(labels)  # anchored, like Alertmanager
    assert d.Matcher("실", ".+", "!~").matches(labels)  # a missing label is the empty string


def test_silence_mutes_only_while_active():
    s = d.Silence("s1", (d.Matcher("program", "P-RND"),), kst(2025, 2, 3, 9), kst(2025, 2, 3, 12))
    labels = {"program": "P-RND"}
    assert d.silenced_by(labels, [s], kst(2025, 2, 3, 8)) is None  # pending
    assert d.silenced_by(labels, [s], kst(2025, 2, 3, 10)) == s
    assert d.silenced_by({"program": "P-OTHER"}, [s], kst(2025, 2, 3, 10)) is None
    assert d.silenced_by(labels, [s], kst(2025, 2, 3, 12)) is None  # ends_at is exclusive
    assert d.silence_state(s.starts_at, s.ends_at, kst(2025, 2, 3, 13)) == "expired"


def test_critical_slip_inhibits_lower_alerts_of_the_same_program_only():
    rule = d.InhibitRule(source=(d.Matcher("rule", "execution_slipped"), d.Matcher("severity", "critical")),
                         target=(), equal=("program",), severity="lower")
    slip = d.AlertView("a", "firing", "critical", {"rule": "execution_slipped", "program": "P", "severity": "critical"})
    late = d.AlertView("b", "firing", "warning", {"rule": "milestone_overdue", "program": "P", "severity": "warning"})
    other = d.AlertView("c", "firing", "warning", {"rule": "milestone_overdue", "program": "Q", "severity": "warning"})
    grave = d.AlertView("e", "firing", "critical",
                        {"rule": "milestone_overdue", "program": "P", "severity": "critical"})
    assert d.inhibited_by(late, [slip, late], [rule]) == slip
    assert d.inhibited_by(other, [slip, other], [rule]) is None
    assert d.inhibited_by(grave, [slip], [rule]) is None  # not lower
    assert d.inhibited_by(slip, [slip], [rule]) is None  # never itself
    resolved = d.AlertView("a", "resolved", "critical", slip.labels)
    assert d.inhibited_by(late, [resolved], [rule]) is None


def test_quiet_hours_hold_until_the_next_working_morning():
    q = d.QuietHours(start=time(21), end=time(8), weekends=True, holidays=frozenset({date(2025, 3, 3)}))
    assert d.quiet_until(kst(2025, 2, 3, 10), q) is None  # Monday morning
    assert d.quiet_until(kst(2025, 2, 3, 22), q) == kst(2025, 2, 4, 8)  # Monday night
    assert d.quiet_until(kst(2025, 2, 4, 7, 59), q) == kst(2025, 2, 4, 8)  # before the morning
    assert d.quiet_until(kst(2025, 2, 7, 21, 30), q) == kst(2025, 2, 10, 8)  # Friday night → Monday
    assert d.quiet_until(kst(2025, 2, 8, 14), q) == kst(2025, 2, 10, 8)  # Saturday afternoon
    assert d.quiet_until(kst(2025, 2, 28, 22), q) == kst(2025, 3, 4, 8)  # holiday Monday skipped
    assert d.quiet_until(datetime(2025, 2, 3, 13, tzinfo=UTC), q) == kst(2025, 2, 4, 8)  # 22:00 KST
    assert d.quiet_until(kst(2025, 2, 8, 14), d.QuietHours(weekends=False)) is None
    assert d.quiet_until(kst(2025, 2, 3, 22), d.QuietHours(enabled=False)) is None


T = d.Timing(timedelta(seconds=30), timedelta(minutes=5), timedelta(hours=24))
OFF = d.QuietHours(enabled=False)
NOW = datetime(2025, 2, 3, 1, tzinfo=UTC)


def test_group_waits_then_respects_group_interval():
    assert d.next_flush_on_news(None, None, NOW, T) == NOW + timedelta(seconds=30)
    # news soon after a message waits for the group interval
    assert d.next_flush_on_news(None, NOW, NOW + timedelta(minutes=1), T) == NOW + timedelta(minutes=5)
    # a group already due sooner stays due sooner
    assert d.next_flush_on_news(NOW, None, NOW + timedelta(seconds=10), T) == NOW


def test_flush_sends_news_as_a_digest_and_then_only_reminders():
    members = [d.Member("a", "firing", "warning"), d.Member("b", "firing", "critical")]
    plan = d.plan_flush(members, None, NOW, T, OFF)
    assert plan.kind == "alert" and plan.send == ("b", "a")  # most severe first
    assert plan.next_flush_at == NOW + T.repeat_interval
    told = [d.Member("a", "firing", "warning", sent_status="firing", sent_severity="warning"),
            d.Member("b", "firing", "critical", sent_status="firing", sent_severity="critical")]
    assert d.plan_flush(told, NOW, NOW + timedelta(hours=1), T, OFF).kind is None
    reminder = d.plan_flush(told, NOW, NOW + T.repeat_interval, T, OFF)
    assert reminder.kind == "reminder" and set(reminder.send) == {"a", "b"}


def test_resolved_told_only_to_those_told_of_the_firing():
    told = d.Member("a", "resolved", "warning", sent_status="firing", sent_severity="warning")
    never = d.Member("b", "resolved", "warning")
    plan = d.plan_flush([told, never], NOW, NOW, T, OFF)
    assert plan.kind == "alert" and plan.send == ("a",)
    assert set(plan.drop) == {"a", "b"}
    assert d.plan_flush([never], None, NOW, T, OFF) == d.FlushPlan(None, (), ("b",), None)


def test_muted_alert_waits_for_the_end_of_its_silence():
    end = NOW + timedelta(hours=2)
    plan = d.plan_flush([d.Member("a", "firing", "warning", muted_until=end, muted=True)], None, NOW, T, OFF)
    assert plan.kind is None and plan.next_flush_at == end


def test_acknowledged_alerts_are_not_repeated():
    acked = d.Member("a", "firing", "warning", acked=True, sent_status="firing", sent_severity="warning")
    plan = d.plan_flush([acked], NOW, NOW + T.repeat_interval, T, OFF)
    assert plan.kind is None and plan.next_flush_at is None


def test_quiet_hours_defer_unless_critical_may_bypass():
    night = kst(2025, 2, 3, 23)
    q = d.QuietHours()
    plan = d.plan_flush([d.Member("a", "firing", "critical")], None, night, T, q)
    assert plan.kind is None and plan.deferred and plan.next_flush_at == kst(2025, 2, 4, 8)
    bypass = d.QuietHours(critical_bypass=True)
    assert d.plan_flush([d.Member("a", "firing", "critical")], None, night, T, bypass).kind == "alert"
    assert d.plan_flush([d.Member("a", "firing", "warning")], None, night, T, bypass).deferred


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    assert d.backoff(1, 30, 3600, 0.0) == timedelta(seconds=15)
    assert d.backoff(1, 30, 3600, 0.999999) < timedelta(seconds=30)
    assert d.backoff(3, 30, 3600, 1.0) == timedelta(seconds=120)
    assert d.backoff(20, 30, 3600, 1.0) == timedelta(seconds=3600)
