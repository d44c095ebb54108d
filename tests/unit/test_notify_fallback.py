"""Pure notify rules added for "every alert reaches a person" and "mail is delivered eventually":
routing fallback, signed links, retry decisions, safe header values, failure classes."""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.common.settings import Settings
from services.notify import domain, links, routing
from services.notify.domain import Recipient, route_people
from services.notify.service import ChannelError, UndeliverableError, classify

TEMPLATE = "{phone_digits}@staff.test"
DIVISIONS = {"경제정책과": Recipient("서무", "경제정책과 서무", "econ@staff.test")}
OFFICES = {"경제실": Recipient("서무", "경제실 서무", "office@staff.test")}
CONTACTS = [("담당", "김지영", "02-2133-5223", None), ("팀장", "박지은", "02-2133-5226", None)]
NOW = datetime(2025, 2, 3, 1, 0, tzinfo=UTC)


def test_contacts_of_the_routed_roles_come_first():
    r = route_people(CONTACTS, ["담당", "팀장"], TEMPLATE, "경제정책과", "경제실", DIVISIONS, OFFICES)
    assert r.level == "contacts" and [p.address for p in r.recipients] == ["0221335223@staff.test",
                                                                           "0221335226@staff.test"]


@pytest.mark.parametrize(("contacts", "roles", "division", "office", "level", "address"), [
    ([], ["담당"], "경제정책과", "경제실", "division", "econ@staff.test"),
    # contacts, but none of the routed role: info goes to 담당 only
    ([("팀장", "박지은", "02-2133-5226", None)], ["담당"], "경제정책과", "경제실", "division", "econ@staff.test"),
    # a 담당 without phone or e-mail cannot be addressed
    ([("담당", "김지영", None, None)], ["담당"], "경제정책과", "경제실", "division", "econ@staff.test"),
    ([], ["담당"], "투자유치과", "경제실", "office", "office@staff.test"),
    ([], ["담당"], None, "경제실", "office", "office@staff.test"),
    ([], ["담당"], "투자유치과", "기획조정실", "none", None),
    ([], ["담당"], None, None, "none", None),
])
def test_fallback_from_contacts_to_division_to_office(contacts, roles, division, office, level, address):
    r = route_people(contacts, roles, TEMPLATE, division, office, DIVISIONS, OFFICES)
    assert r.level == level
    assert [p.address for p in r.recipients] == ([address] if address else [])


def test_packaged_routing_has_a_default_contact_for_every_division_of_the_economy_office():
    r = routing.load(Settings(_env_file=None))
    divisions = ["경제정책과", "일자리정책과", "창업정책과", "대학협력과", "금융투자과", "창조산업과", "뷰티패션산업과",
                 "첨단산업과", "산업입지과"]
    assert sorted(r.division_defaults) == sorted(divisions)
    assert all(domain.valid_address(p.address) and p.role == "서무" for p in r.division_defaults.values())
    assert len({p.address for p in r.division_defaults.values()}) == 9
    assert r.office_defaults["경제실"].address.endswith("@staff.seoul.example")


def test_a_default_contact_needs_a_plain_address():
    with pytest.raises(routing.RoutingError, match=r"fallback\.divisions\.경제정책과\.email"):
        routing.parse("fallback: {divisions: {경제정책과: {name: 서무, email: 'a b@x'}}}", Settings(_env_file=None),
                      "r.yaml")


# --- signed links -------------------------------------------------------------------------------------


def test_a_link_is_genuine_single_purpose_and_expires():
    token = links.sign("s3", "ack", "fp1", "kim@x.test", "김지영", NOW + timedelta(days=7))
    claims = links.verify("s3", token, "ack", NOW)
    assert (claims.fingerprint, claims.address, claims.name) == ("fp1", "kim@x.test", "김지영")
    with pytest.raises(links.LinkError) as err:
        links.verify("other", token, "ack", NOW)
    assert err.value.reason == "invalid"
    with pytest.raises(links.LinkError) as err:
        links.verify("s3", token, "ack", NOW + timedelta(days=7))
    assert err.value.reason == "expired"
    with pytest.raises(links.LinkError):
        links.verify("s3", token, "unsubscribe", NOW)  # type: ignore[arg-type]
    body, _, mac = token.partition(".")
    with pytest.raises(links.LinkError):
        links.verify("s3", body[:-1] + ("A" if body[-1] != "A" else "B") + "." + mac, "ack", NOW)


# --- retries --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("transient", "attempts", "now", "max_attempts", "still_news", "expected"), [
    (False, 1, NOW, None, True, "failed"),  # the message itself is wrong: at once
    (True, 40, NOW, None, True, "retry"),  # server down: as long as the window lasts
    (True, 3, NOW + timedelta(hours=12), None, True, "failed"),
    (True, 3, NOW, 3, True, "failed"),
    (True, 1, NOW, None, False, "dropped"),  # its alerts no longer fire
])
def test_after_failure(transient, attempts, now, max_attempts, still_news, expected):
    assert domain.after_failure(transient=transient, attempts=attempts, now=now,
                                retry_until=NOW + timedelta(hours=12), max_attempts=max_attempts,
                                still_news=still_news) == expected


def test_backoff_is_capped():
    assert domain.backoff(30, 30, 600, 0.999) <= timedelta(seconds=600)
    assert domain.backoff(1, 30, 600, 0.0) == timedelta(seconds=15)


@pytest.mark.parametrize(("exc", "transient"), [
    (ConnectionRefusedError(111, "refused"), True),
    (TimeoutError("timed out"), True),
    (smtplib.SMTPServerDisconnected("gone"), True),
    (smtplib.SMTPResponseException(451, b"try later"), True),
    (smtplib.SMTPResponseException(554, b"rejected"), False),
    (smtplib.SMTPRecipientsRefused({"a@x": (450, b"busy")}), True),
    (smtplib.SMTPRecipientsRefused({"a@x": (550, b"no such user")}), False),
    (httpx.ConnectError("down"), True),
    (ChannelError("HTTP 503"), True),
    (ChannelError("HTTP 404", transient=False), False),
    (UndeliverableError("bad address"), False),
    (ValueError("Header values may not contain linefeed"), False),
    (KeyError("anything else"), False),
])
def test_failure_classes(exc, transient):
    assert classify(exc).transient is transient


# --- header values ----------------------------------------------------------------------------------------


def test_header_text_and_addresses():
    assert domain.header_text("김지영\r\nBcc: a@b") == "김지영 Bcc: a@b"
    assert domain.header_text("  주무관\x00\t ") == "주무관"
    assert domain.header_text("[산업입지과] 알림  외 2건") == "[산업입지과] 알림  외 2건"  # spaces kept
    assert domain.valid_address("0221335223@staff.seoul.example")
    for bad in ("kim\r\n@x.test", "kim@x.test\r\nBcc: a@b", "a b@x.test", "<a@x.test>", "a@x", "a@-x.test", ""):
        assert not domain.valid_address(bad), bad


def test_user_regexes_are_bounded():
    assert domain.Matcher("program", "(.+)+X", "=~").matches({"program": "a" * 100_000}) is False
    assert domain.Matcher("과", "경제.*", "=~").matches({"과": "경제정책과"})
    with pytest.raises(domain.RegexError, match="invalid"):
        domain.user_regex("(a)\\1")
    with pytest.raises(domain.RegexError, match="longer than"):
        domain.user_regex("a" * (domain.MAX_REGEX_LENGTH + 1))


def test_a_stored_expression_re2_refuses_silences_nothing():
    assert domain.Matcher("program", "(a)\\1", "=~").matches({"program": "aa"}) is False
    assert domain.Matcher("program", "(a)\\1", "!~").matches({"program": "b"}) is False
