"""Access as the issue tried it: what an anonymous caller did, refused; publishing rights by 과;
contacts limited to the mail domains; staff sign-in by a one-time mailed link; their inbox only and
their own 과's alerts; rate limits; the audit log; inbox and notifications without ack tokens."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from faststream.kafka import TestKafkaBroker
from sqlmodel import select

from services.common.settings import DEMO_ACK_SECRET
from services.ingest.app import build as build_ingest
from services.ingest.store import IngestOutbox
from services.notify import links
from services.notify.app import build as build_notify
from services.notify.service import ManualClock
from tests import factories as f
from tests.helpers import bearer, running
from tests.service.test_notify_service import slip, 담당, 팀장

SECRETS = {"auth_secret": "test-auth-secret-0123456789", "notify_ack_secret": "test-ack-secret-0123456789"}


@pytest.fixture
def notify_app(make_settings, sqlite_url, mail_sink):  # type: ignore[no-untyped-def]
    settings = make_settings(database_url=sqlite_url, smtp_port=mail_sink.port, notify_tick_s=3600,
                             notify_public_url="http://notify.test", **SECRETS)
    clock = ManualClock(datetime(2025, 2, 3, 1, 0, tzinfo=UTC))  # Monday 10:00 KST
    return build_notify(settings, start_broker=False, clock=clock), clock, settings


async def seed_alert(app, clock) -> str:  # type: ignore[no-untyped-def]
    from contracts import parse_event

    alert = slip()
    app.state.notifier.apply_batch([parse_event(f.program()), alert])
    clock.advance(seconds=60)
    app.state.notifier.tick()
    await app.state.dispatcher.flush()
    return alert.payload.fingerprint


async def test_what_the_issue_did_anonymously_is_refused(notify_app):
    app, clock, _ = notify_app
    async with running(app, as_role=None) as (anon,):
        fp = await seed_alert(app, clock)
        op = bearer(app, "operator")
        inbox = (await anon.get(f"/v1/inbox/{담당}", headers=op)).json()["items"]
        silence = (await anon.post("/v1/silences", headers=op, json={
            "matchers": [{"name": "과", "value": "경제정책과"}], "ends_at": "2025-02-04T00:00:00+00:00",
            "comment": "x"})).json()
        tries = [
            anon.post(f"/v1/alerts/{fp}/ack", json={"by": "anonymous-attacker"}),
            anon.post("/v1/silences", json={"matchers": [{"name": "severity", "value": ".*", "op": "=~"}],
                                            "ends_at": "2125-01-01T00:00:00+00:00", "created_by": "x",
                                            "comment": "x"}),
            anon.delete(f"/v1/silences/{silence['id']}"),
            anon.post(f"/v1/inbox/{담당}/{inbox[0]['id']}/read"),
            anon.get(f"/v1/inbox/{담당}"),
            anon.get("/v1/notifications"),
            anon.get("/v1/alerts"),
            anon.get("/v1/audit"),
            # an acknowledge link forged with the demo's published secret
            anon.post("/v1/ack", params={"token": links.sign(DEMO_ACK_SECRET, "ack", fp, 담당, "x",
                                                             clock() + timedelta(days=1))}),
        ]
        answers = [await t for t in tries]
        assert [a.status_code for a in answers] == [401] * 8 + [403]
        assert all(a.headers["www-authenticate"].startswith("Bearer") for a in answers[:8])
        # nothing changed: not acknowledged, the silence still there, the message unread
        [alert] = (await anon.get("/v1/alerts", headers=op)).json()["items"]
        assert alert["acked_at"] is None
        assert [s["state"] for s in (await anon.get("/v1/silences", headers=op)).json()["items"]] == ["active"]
        assert (await anon.get(f"/v1/inbox/{담당}", headers=op)).json()["unread"] == 1


async def test_a_token_without_bearer_is_refused_and_failures_are_limited(make_settings, sqlite_url):
    app = build_ingest(make_settings(database_url=sqlite_url, auth_failures_per_min=10))
    async with TestKafkaBroker(app.state.runtime.broker), running(app, as_role=None) as (client,):
        plain = await client.post("/v1/events", headers={"Authorization": f.TOKEN}, json=f.program())
        assert plain.status_code == 401 and plain.headers["www-authenticate"].startswith("Bearer")
        codes = [(await client.post("/v1/events", headers={"Authorization": f"Bearer wrong-{i}"},
                                    json=f.program())).status_code for i in range(12)]
        assert codes[:9] == [401] * 9 and codes[9:] == [429] * 3  # the bare token above was the first failure
        limited = await client.get("/v1/events/x", headers={"Authorization": "Bearer wrong"})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        # the limit is per address and credential: even the right token waits, nothing is stored
        assert (await client.post("/v1/events", headers={"Authorization": f"Bearer {f.TOKEN}"},
                                  json=f.program())).status_code == 429
        with app.state.runtime.db.read() as s:
            assert s.exec(select(IngestOutbox)).all() == []


async def test_writes_are_limited_per_identity(make_settings, sqlite_url, mail_sink):
    settings = make_settings(database_url=sqlite_url, smtp_port=mail_sink.port, auth_writes_per_min=3, **SECRETS)
    app = build_notify(settings, start_broker=False)
    async with running(app) as (client,):
        codes = [(await client.post("/v1/alerts/nope/ack", json={})).status_code for _ in range(4)]
        assert codes == [404, 404, 404, 429]


async def test_a_system_publishes_only_for_its_divisions(make_settings, sqlite_url):
    app = build_ingest(make_settings(database_url=sqlite_url, mail_domains=["seoul.go.kr"]))
    async with TestKafkaBroker(app.state.runtime.broker), running(app, as_role=None) as (client,):
        econ = bearer(app, "system", name="econ-system", divisions=["경제정책과"])
        other = bearer(app, "system", name="invest-system", divisions=["투자창업과"])

        def mine(event: dict, source: str = "econ-system") -> dict:  # type: ignore[type-arg]
            return {**event, "source": source}

        ok = await client.post("/v1/events", headers=econ, json=[mine(f.program()), mine(f.snapshot(spent=1))])
        assert ok.status_code == 202, ok.text
        # another 과's program: by what it says, and by whom it was first published for
        foreign = await client.post("/v1/events", headers=other, json=[
            mine(f.program("P-INV", division="투자창업과"), "invest-system"),
            mine(f.snapshot(spent=2), "invest-system")])
        assert foreign.status_code == 403
        assert foreign.json()["rejected"] == [{"index": 1, "field": "key", "message":
                                               "P-RND: 경제정책과 is not among the 과 granted to invest-system"}]
        moved = await client.post("/v1/events", headers=other,
                                  json=mine(f.program("P-RND", division="투자창업과"), "invest-system"))
        assert moved.status_code == 403
        unknown = await client.post("/v1/events", headers=econ, json=mine(f.snapshot("P-NEW", spent=3)))
        assert unknown.status_code == 403 and "unknown program" in unknown.text
        # contacts: only the configured mail domains
        program = mine(f.program())
        program["payload"]["contacts"][0]["email"] = "someone@attacker.example"
        bad = await client.post("/v1/events", headers=econ, json=program)
        assert bad.status_code == 422
        assert bad.json()["rejected"][0]["field"] == "payload.contacts.0.email"
        program["payload"]["contacts"][0]["email"] = "lee@econ.seoul.go.kr"
        assert (await client.post("/v1/events", headers=econ, json=program)).status_code == 202
        with app.state.runtime.db.read() as s:
            stored = s.exec(select(IngestOutbox)).all()
        assert sorted(r.key for r in stored) == ["P-RND", "P-RND", "P-RND"]  # nothing of the refused batches


async def test_staff_sign_in_by_link_and_act_only_on_their_own(notify_app, mail_sink):
    app, clock, _ = notify_app
    async with running(app, as_role=None) as (client,):
        fp = await seed_alert(app, clock)
        mail_sink.messages.clear()
        unknown = await client.post("/v1/auth/login-link", json={"email": "nobody@seoul.go.kr"})
        asked = await client.post("/v1/auth/login-link", json={"email": 팀장})
        assert unknown.status_code == asked.status_code == 202 and unknown.json() == asked.json()
        [mail] = mail_sink.messages  # only the known address got one
        assert mail["To"].endswith(f"<{팀장}>")
        link = re.search(r"http://notify\.test(/v1/auth/callback\?token=\S+)", mail.get_body(("plain",)).get_content())
        assert link is not None
        page = await client.get(link.group(1))
        assert page.status_code == 200 and "method='post'" in page.text  # opening the link signs nobody in
        token = link.group(1).split("token=")[1]
        signed = await client.post("/v1/auth/callback", data={"token": token})
        assert signed.status_code == 200, signed.text
        session = signed.json()
        assert (session["identity"]["name"], session["identity"]["title"], session["identity"]["divisions"]) == \
            ("박지은", "팀장", ["경제정책과"])
        again = await client.post("/v1/auth/callback", data={"token": token})
        assert again.status_code == 401  # a link works once
        client.cookies.clear()
        lead = {"Authorization": f"Bearer {session['token']}"}

        # their own inbox, never another's; no acknowledge token in what the API returns
        mine = await client.get(f"/v1/inbox/{팀장}", headers=lead)
        assert mine.status_code == 200 and mine.json()["items"]
        assert "token=" not in mine.text.replace("token=(redacted)", "")
        assert (await client.get(f"/v1/inbox/{담당}", headers=lead)).status_code == 403
        assert (await client.get("/v1/notifications", params={"recipient": 담당}, headers=lead)).status_code == 403
        own = (await client.get("/v1/notifications", headers=lead)).json()["items"]
        assert own and {d["address"] for d in own} == {팀장}
        op = bearer(app, "operator")
        everything = await client.get("/v1/notifications", headers=op)
        assert "token=" not in everything.text.replace("token=(redacted)", "")

        # a silence must stay in their 과; the ack records who they are
        wide = await client.post("/v1/silences", headers=lead, json={
            "matchers": [{"name": "severity", "value": ".*", "op": "=~"}], "ends_at": "2025-02-04T00:00:00+00:00",
            "comment": "x"})
        assert wide.status_code == 403
        acked = await client.post(f"/v1/alerts/{fp}/ack", headers=lead, json={"by": "someone else"})
        assert acked.status_code == 200 and acked.json()["acked_by"] == f"팀장 박지은 <{팀장}>"

        other = bearer(app, "staff", name="남", divisions=["투자창업과"], email="nam@seoul.go.kr")
        assert (await client.post(f"/v1/alerts/{fp}/ack", headers=other, json={})).status_code == 403
        auditor = bearer(app, "auditor")
        assert (await client.post(f"/v1/alerts/{fp}/ack", headers=auditor, json={})).status_code == 403

        log = await client.get("/v1/audit", headers=auditor)
        assert log.status_code == 200
        actions = [(e["action"], e["actor"], e["client"]) for e in log.json()]
        assert ("alert.ack", f"팀장 박지은 <{팀장}>", "127.0.0.1") in actions
        assert {"auth.login_link", "auth.sign_in"} <= {a for a, _, _ in actions}
        assert (await client.get("/v1/audit", headers=lead)).status_code == 403


async def test_an_expired_or_forged_session_is_refused(notify_app):
    from services.common.auth import Identity, Role, session_token

    app, _, settings = notify_app
    who = Identity("박지은", Role.staff, frozenset({"경제정책과"}), email=팀장)
    old = session_token(settings.auth_secret.get_secret_value(), who, 60, datetime.now(UTC) - timedelta(hours=1))
    forged = session_token("execwatch-demo-secret", who, 600, datetime.now(UTC))
    async with running(app, as_role=None) as (client,):
        for token in (old, forged):
            assert (await client.get("/v1/alerts", headers={"Authorization": f"Bearer {token}"})).status_code == 401


async def test_staff_lists_are_narrowed_to_their_office(make_settings, sqlite_url):
    from contracts import parse_event
    from services.budget import service as budget_service
    from services.budget.app import build as build_budget

    app = build_budget(make_settings(database_url=sqlite_url), start_broker=False)
    async with running(app, as_role=None) as (client,):
        other = f.budget_line("P-X", division="관광정책과")
        other["payload"]["office"] = "문화본부"
        rt = app.state.runtime
        budget_service.apply_batch(rt.db, budget_service.Config.from_settings(rt.settings),
                                   [parse_event(f.budget_line()), parse_event(other)])
        staff = bearer(app, "staff", name="김", divisions=["경제정책과"], office="경제실", email="kim@seoul.go.kr")
        mine = (await client.get("/v1/budget/programs", headers=staff)).json()["items"]
        assert [p["program_id"] for p in mine] == ["P-RND"]
        elsewhere = await client.get("/v1/budget/programs", params={"office": "문화본부"}, headers=staff)
        assert elsewhere.status_code == 403
        everything = (await client.get("/v1/budget/programs", headers=bearer(app, "auditor"))).json()["items"]
        assert [p["program_id"] for p in everything] == ["P-RND", "P-X"]
