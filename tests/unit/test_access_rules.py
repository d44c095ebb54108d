"""Access rules without a server: signed tokens, limits, start checks, contact domains, keys."""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from contracts import parse_event
from services.auth.cli import add_arguments, run
from services.auth.store import KeyStore, hash_key
from services.common import runtime
from services.common.auth import (
    LINK_PREFIX,
    SESSION_PREFIX,
    Access,
    Identity,
    RateLimiter,
    Role,
    session_token,
    sign,
    startup_problems,
    verify,
)
from services.common.settings import Settings
from services.ingest.domain import Policy, policy_problems
from tests import factories as f

NOW = datetime(2025, 2, 3, 1, 0, tzinfo=UTC)
REAL = {"auth_secret": "a" * 32, "notify_ack_secret": "b" * 32, "ingest_sources": "{}"}


def test_signed_tokens_expire_and_are_bound_to_their_purpose_and_secret():
    who = Identity("박지은", Role.staff, frozenset({"경제정책과"}), email="lead@seoul.go.kr", title="팀장")
    token = session_token("s" * 20, who, 600, NOW)
    assert verify("s" * 20, SESSION_PREFIX, token, NOW)["sub"] == "박지은"
    assert verify("s" * 20, SESSION_PREFIX, token, NOW + timedelta(seconds=601)) is None  # expired
    assert verify("t" * 20, SESSION_PREFIX, token, NOW) is None  # another secret
    assert verify("s" * 20, LINK_PREFIX, token, NOW) is None  # a session is not a sign-in link
    _, mac = token.removeprefix(SESSION_PREFIX).split(".")
    tampered = sign("x", SESSION_PREFIX, {"sub": "운영자", "exp": NOW.timestamp() + 600}).split(".")[0] + "." + mac
    assert verify("s" * 20, SESSION_PREFIX, tampered, NOW) is None


def test_rate_limiter_counts_a_sliding_minute():
    now = [0.0]
    limiter = RateLimiter(3, 60, clock=lambda: now[0])
    assert [limiter.hit("a") for _ in range(4)] == [None, None, None, 60]
    assert limiter.hit("b") is None  # per key
    now[0] = 30.0
    assert limiter.retry_after("a") == 30
    now[0] = 60.5
    assert limiter.hit("a") is None


def test_demo_credentials_are_refused_outside_the_demo():
    problems = startup_problems(Settings(_env_file=None))
    assert len(problems) == 3 and "demo-system, report-importer" in problems[0]
    assert startup_problems(Settings(_env_file=None, demo=True)) == []
    assert startup_problems(Settings(_env_file=None, **REAL)) == []  # type: ignore[arg-type]
    short = Settings(_env_file=None, **{**REAL, "auth_secret": "short"})  # type: ignore[arg-type]
    assert startup_problems(short) == ["EXECWATCH_AUTH_SECRET is the demo secret or shorter than 16 characters"]


def test_serve_refuses_to_start_with_demo_credentials(tmp_path):
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path}/x.db", log_json=False)
    with pytest.raises(SystemExit, match="refusing to start: EXECWATCH_INGEST_SOURCES has demo tokens"):
        runtime.serve(lambda s: pytest.fail("must not get this far"), "budget", settings)  # type: ignore[arg-type]


def test_contacts_only_in_the_configured_mail_domains():
    event = f.program()
    event["payload"]["contacts"][0]["email"] = "kim@econ.seoul.go.kr"
    event["payload"]["contacts"][1]["email"] = "park@seoul.go.kr.attacker.example"
    domains = Settings(_env_file=None, mail_domains='["Seoul.go.kr"]').mail_domains  # type: ignore[arg-type]
    problems = policy_problems(parse_event(event), Policy(mail_domains=tuple(domains)))
    assert [(p.field, p.message, p.input) for p in problems] == [
        ("payload.contacts.1.email", "e-mail domain not accepted; allowed: seoul.go.kr (EXECWATCH_MAIL_DOMAINS)",
         "park@seoul.go.kr.attacker.example")]


def test_publishing_rights():
    econ = Identity("econ", Role.system, frozenset({"경제정책과"}))
    assert econ.may_publish("경제정책과") and not econ.may_publish("투자창업과") and not econ.may_publish(None)
    assert Identity("importer", Role.system, frozenset({"*"})).may_publish(None)
    staff = Identity("kim", Role.staff, frozenset({"경제정책과"}))
    assert staff.owns("경제정책과") and not staff.owns("투자창업과") and not staff.owns(None)
    assert Identity("op", Role.operator).owns("투자창업과")
    assert not Identity("aud", Role.auditor).owns("경제정책과")


class Owners:
    """The program owners' store, as `Access.publish_problems` reads it, counting the lookups."""

    def __init__(self, owners: dict[str, str]) -> None:
        self.owners_of, self.lookups = owners, 0

    def owners(self, program_ids: list[str]) -> dict[str, str]:
        self.lookups += 1
        return {p: self.owners_of[p] for p in program_ids if p in self.owners_of}


@pytest.mark.parametrize("who", [Identity("importer", Role.system, frozenset({"*"})), Identity("op", Role.operator)])
def test_a_publisher_granted_every_division_is_refused_nothing_without_a_lookup(who):
    owners = Owners({"P-RND": "경제정책과"})
    access = Access(Settings(_env_file=None), "ingest", owners)  # type: ignore[arg-type]
    events = [parse_event(f.program("P-RND", division="투자창업과")), parse_event(f.snapshot("P-NEW"))]
    assert access.publish_problems(who, events) == [] and owners.lookups == 0
    econ = Identity("econ", Role.system, frozenset({"경제정책과"}))
    assert [i for i, _ in access.publish_problems(econ, events)] == [0, 1] and owners.lookups == 1


def keys(store: KeyStore, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return run(parser.parse_args(list(argv)), store)


def test_keys_are_printed_once_stored_hashed_rotated_revoked_and_audited(tmp_path, capsys):
    store = KeyStore(f"sqlite:///{tmp_path}/auth.db")
    assert keys(store, "create", "econ-system", "--role", "system") == 2  # a system needs its 과
    assert keys(store, "create", "econ-system", "--role", "system", "--division", "경제정책과") == 0
    key = capsys.readouterr().out.split("keep it secret): ")[1].strip()
    [row] = store.keys()
    assert row.key_hash == hash_key(key) and key not in row.model_dump_json()
    assert store.lookup(key, datetime.now(UTC)) is not None
    assert store.lookup(key[:-1] + ("A" if key[-1] != "A" else "B"), datetime.now(UTC)) is None

    assert keys(store, "grant", row.id, "--division", "경제정책과", "--division", "투자창업과") == 0
    assert keys(store, "rotate", row.id) == 0
    new_key = capsys.readouterr().out.split("keep it secret): ")[1].split()[0]
    assert store.lookup(key, datetime.now(UTC)) is None  # the old key stopped
    fresh = store.lookup(new_key, datetime.now(UTC))
    assert fresh is not None and fresh.divisions == ["경제정책과", "투자창업과"]
    assert keys(store, "revoke", "econ-system") == 0
    assert store.lookup(new_key, datetime.now(UTC)) is None
    actions = [e.action for e in reversed(store.audit_log())]
    assert actions == ["key.create", "rights.change", "key.rotate", "key.revoke"]
    store.dispose()


def test_a_rotated_key_may_keep_working_for_a_grace_period(tmp_path, capsys):
    store = KeyStore(f"sqlite:///{tmp_path}/auth.db")
    store.migrate()
    row, key = store.create(name=f"s-{uuid.uuid4().hex[:4]}", role="operator")
    assert keys(store, "rotate", row.id, "--grace-hours", "1") == 0
    assert store.lookup(key, datetime.now(UTC)) is not None
    assert store.lookup(key, datetime.now(UTC) + timedelta(hours=2)) is None
    store.dispose()
