"""The front door under hostile or careless input (issue #11): what ingest accepts can always be
stored and published; what it refuses is refused early, as JSON, and stores nothing."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from faststream import Context
from faststream.kafka import TestKafkaBroker
from faststream.kafka.message import KafkaMessage
from sqlmodel import select

from contracts import MAX_EVENT_BYTES, content_hash, dump_event, parse_event
from contracts.limits import TITLE_MAX
from services.common.db import IngestDeadLetter
from services.ingest import service
from services.ingest.app import build
from services.ingest.domain import scoped_id
from services.ingest.store import IngestOutbox
from tests import factories as f
from tests.helpers import bearer, running

AUTH = {"Authorization": f"Bearer {f.TOKEN}"}
OTHER = {"Authorization": "Bearer other-token"}
SOURCES = {f.SOURCE: f.TOKEN, "other-system": "other-token"}
MiB = 1024 * 1024


def stored(app: Any) -> list[IngestOutbox]:
    with app.state.runtime.db.read() as s:
        return list(s.exec(select(IngestOutbox).order_by(IngestOutbox.id)).all())


@pytest.fixture
def app(make_settings, db_url):
    return build(make_settings(database_url=db_url, ingest_sources=SOURCES), start_broker=False)


class Upload:
    """A request body that counts how much of it the server pulled."""

    def __init__(self, total: int, chunk: int = MiB) -> None:
        self.total, self.chunk, self.pulled = total, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        while sent < self.total:
            self.pulled += 1
            piece = b" " * min(self.chunk, self.total - sent)
            sent += len(piece)
            yield piece


async def test_a_ten_megabyte_title_is_refused_at_the_door(app):
    event = f.program(title="가" * 10_000_000)
    async with running(app, as_role=None) as (client,):
        resp = await client.post("/v1/events", headers=AUTH, content=json.dumps(event, ensure_ascii=False))
        # 30 MB of UTF-8: over the body limit, refused before it is parsed.
        assert resp.status_code == 413
        assert resp.json() == {"error": f"request body is {len(json.dumps(event, ensure_ascii=False).encode()):,}"
                                        f" bytes; at most {16 * MiB:,} bytes per request"}
        resp = await client.post("/v1/events", headers=AUTH, json=f.program(title="x" * 10_000_000))
        assert resp.status_code == 422  # 10 MB of ASCII fits the body, not the contract
        assert resp.json()["rejected"] == [
            {"index": 0, "field": "payload.title", "message": f"String should have at most {TITLE_MAX} characters"}]
    assert stored(app) == []


async def test_committed_ten_to_the_thirty_is_422(app):
    async with running(app, as_role=None) as (client,):
        resp = await client.post("/v1/events", headers=AUTH, json=f.snapshot(committed=10**30))
        assert resp.status_code == 422
        assert resp.json()["rejected"] == [{"index": 0, "field": "payload.committed",
                                            "message": "Input should be less than or equal to 1000000000000000"}]
    assert stored(app) == []


async def test_nul_in_program_id_is_422_json(app):
    event = f.snapshot(pid="P-\x00RND")
    async with running(app, as_role=None) as (client,):
        resp = await client.post("/v1/events", headers=AUTH, json=event)
        assert resp.status_code == 422 and resp.headers["content-type"] == "application/json"
        fields = {r["field"]: r["message"] for r in resp.json()["rejected"]}
        assert fields == {"key": "control characters (NUL, CR, LF, tab, …) are not allowed here",
                          "payload.program_id": "control characters (NUL, CR, LF, tab, …) are not allowed here"}
        status = await client.get("/v1/events/%00", headers=AUTH)
        assert status.status_code == 422 and status.headers["content-type"] == "application/json"
    assert stored(app) == []


async def test_a_hundred_megabyte_body_without_a_token_is_401_unread(app):
    async with running(app, as_role=None) as (client,):
        for headers, error in (
                ({}, "authentication required: send Authorization: Bearer <token>"),
                ({"Authorization": f.TOKEN}, "send Authorization: Bearer <token>"),
                ({"Authorization": "Bearer wrong"}, "unknown, revoked or expired credential")):
            upload = Upload(100 * MiB)
            resp = await client.post("/v1/events", headers=headers, content=upload)
            assert resp.status_code == 401
            assert upload.pulled <= 1, f"read {upload.pulled} MiB of an unauthenticated body"
            assert resp.headers["www-authenticate"].startswith("Bearer")
            assert resp.json() == {"error": error}


async def test_an_authenticated_body_is_read_only_up_to_the_limit(app):
    async with running(app, as_role=None) as (client,):
        upload = Upload(100 * MiB)  # streamed: no Content-Length to refuse it by
        resp = await client.post("/v1/events", headers=AUTH, content=upload)
        assert resp.status_code == 413
        assert resp.json() == {"error": f"request body is over {16 * MiB:,} bytes; at most {16 * MiB:,} bytes "
                                        "per request"}
        assert upload.pulled <= 17


@pytest.mark.parametrize("body", [b"{not json", b"NaN", b'{"events": [Infinity]}', b"\xff\xfe", b" [NaN]",
                                  b'[{"event_type": "budget.execution_snapshot", "x": -Infinity}]'])
async def test_a_body_that_is_not_json_is_400_json(app, body):
    async with running(app, as_role=None) as (client,):
        resp = await client.post("/v1/events", headers=AUTH, content=body)
        assert resp.status_code == 400
        assert resp.json()["error"].startswith("the body is not JSON")


async def test_an_array_read_in_one_pass_stores_what_item_by_item_reading_stores(make_settings, db_url, tmp_path):
    """A JSON array of valid events is validated in one pass (`parse_event_array`); the same events
    as {"events": [...]} go item by item. Both store the same bytes and content hashes."""
    events = [f.program("P-A"), f.budget_line("P-A"), f.snapshot("P-A", spent=5), f.milestone("P-A")]
    rows = []
    for n, body in enumerate([json.dumps(events), json.dumps({"events": events})]):
        url = db_url if n == 0 else f"sqlite:///{tmp_path}/second.db"
        app = build(make_settings(database_url=url, ingest_sources=SOURCES, topic_prefix="same."), start_broker=False)
        async with running(app, as_role=None) as (client,):
            resp = await client.post("/v1/events", headers=AUTH, content=body)
            assert resp.status_code == 202, resp.text
        rows.append([(r.event_id, r.topic, r.key, bytes(r.value), r.content_hash) for r in stored(app)])
    assert rows[0] == rows[1] and len(rows[0]) == len(events)
    assert [r[4] for r in rows[0]] == [content_hash(parse_event(e)) for e in events]


async def test_one_invalid_event_in_an_array_is_named_by_its_index_and_field(app):
    events = [f.snapshot("P-A"), f.snapshot("P-B", spent=-1), f.snapshot("P-C")]
    async with running(app, as_role=None) as (client,):
        resp = await client.post("/v1/events", headers=AUTH, json=events)
    assert resp.status_code == 422
    assert [(r["index"], r["field"]) for r in resp.json()["rejected"]] == [(1, "payload.spent")]
    assert stored(app) == []


async def test_the_same_id_with_other_content_is_409_naming_both_hashes(app):
    first = f.snapshot(spent=5)
    second = copy.deepcopy(first)
    second["payload"]["spent"] = 6
    async with running(app, as_role=None) as (client,):
        assert (await client.post("/v1/events", headers=AUTH, json=first)).status_code == 202
        resp = await client.post("/v1/events", headers=AUTH, json=[f.snapshot(), second])
        assert resp.status_code == 409
        stored_hash, submitted_hash = content_hash(parse_event(first)), content_hash(parse_event(second))
        conflict = resp.json()["conflicts"][0]
        assert resp.json()["conflicts"] == [{
            "index": 1, "event_id": first["event_id"], "source": f.SOURCE,
            "stored_hash": stored_hash, "submitted_hash": submitted_hash, "message": conflict["message"]}]
        assert stored_hash in conflict["message"] and submitted_hash in conflict["message"]
        # The same content again, in another order and spelling, is a duplicate.
        again = json.dumps(dict(reversed(list(first.items()))), indent=1)
        resp = await client.post("/v1/events", headers=AUTH, content=again)
        assert resp.status_code == 202 and resp.json()["duplicates"] == 1
    assert [r.source_event_id for r in stored(app)] == [first["event_id"]]  # all or nothing


async def test_within_one_request_the_same_id_twice_with_other_content_is_409(app):
    first = f.snapshot(spent=5)
    second = copy.deepcopy(first)
    second["payload"]["spent"] = 6
    async with running(app, as_role=None) as (client,):
        resp = await client.post("/v1/events", headers=AUTH, json=[first, second])
        assert resp.status_code == 409 and resp.json()["conflicts"][0]["index"] == 1
    assert stored(app) == []


async def test_another_source_with_the_same_id_is_accepted_as_its_own(app):
    mine = f.snapshot(spent=5)
    theirs = f.snapshot(spent=9, event_id=mine["event_id"])
    theirs["source"] = "other-system"
    async with running(app, as_role=None) as (client,):
        assert (await client.post("/v1/events", headers=AUTH, json=mine)).status_code == 202
        resp = await client.post("/v1/events", headers=OTHER, json=theirs)
        assert resp.status_code == 202
        scoped = scoped_id("other-system", mine["event_id"])
        assert resp.json() == {"accepted": 1, "duplicates": 0, "event_ids": [mine["event_id"]],
                               "published_as": {mine["event_id"]: scoped}}
        resend = await client.post("/v1/events", headers=OTHER, json=theirs)
        assert resend.json()["duplicates"] == 1
        status = (await client.get(f"/v1/events/{scoped}", headers=AUTH)).json()
        assert (status["source"], status["source_event_id"]) == ("other-system", mine["event_id"])
    rows = stored(app)
    assert [(r.source, r.event_id) for r in rows] == [(f.SOURCE, mine["event_id"]), ("other-system", scoped)]
    published = [json.loads(r.value) for r in rows]
    assert [(p["event_id"], p["payload"]["spent"]) for p in published] == [(mine["event_id"], 5), (scoped, 9)]


@pytest.mark.parametrize(("email", "status"), [("kim@seoul.go.kr", 202), ("kim@econ.seoul.go.kr", 202),
                                               ("kim@gmail.com", 422), ("kim@notseoul.go.kr", 422)])
async def test_contact_mail_must_be_in_the_configured_domains(make_settings, db_url, email, status):
    # EXECWATCH_MAIL_DOMAINS as an operator would write it: comma-separated, any case.
    app = build(make_settings(database_url=db_url, ingest_sources=SOURCES, mail_domains=" @Seoul.go.kr,"),
                start_broker=False)
    event = f.program()
    event["payload"]["contacts"][0]["email"] = email
    async with running(app, as_role=None) as (client,):
        resp = await client.post("/v1/events", headers=AUTH, json=event)
        assert resp.status_code == status
        if status == 422:
            assert resp.json()["rejected"] == [{
                "index": 0, "field": "payload.contacts.0.email",
                "message": "e-mail domain not accepted; allowed: seoul.go.kr (EXECWATCH_MAIL_DOMAINS)"}]


# --- the inbound topic -----------------------------------------------------------------------------


@pytest.fixture
def kafka_app(make_settings, sqlite_url):
    return build(make_settings(database_url=sqlite_url, ingest_sources=SOURCES))


async def _inbound(app: Any, *messages: tuple[bytes, str]) -> list[tuple[bytes, dict[str, str]]]:
    """Publish (value, token) records to the inbound topic; return the dead letters."""
    rt = app.state.runtime
    s = rt.settings
    dead: list[tuple[bytes, dict[str, str]]] = []

    @rt.broker.subscriber(s.topic("execwatch.deadletter"))
    async def dlq(body: Any, message: KafkaMessage = Context("message")) -> None:
        dead.append((message.body, message.headers))

    async with TestKafkaBroker(rt.broker) as br, running(app, as_role=None):
        for value, token in messages:
            await br.publish(value, s.topic("execwatch.inbound"), key=b"P-RND", headers={"x-execwatch-token": token})
    return dead


async def test_a_one_and_a_half_megabyte_inbound_message_is_dead_lettered_with_the_reason(kafka_app):
    big = json.dumps(f.program(title="x" * 1_500_000)).encode()
    ok = f.program()
    dead = await _inbound(kafka_app, (big, f.TOKEN), (json.dumps(ok).encode(), f.TOKEN))
    assert [r.source_event_id for r in stored(kafka_app)] == [ok["event_id"]]
    [(value, headers)] = dead
    assert headers["x-error-stage"] == "contract"
    assert json.loads(headers["x-error"]) == [{
        "field": "(event)", "input": None,
        "message": f"event is {len(big):,} bytes; at most {MAX_EVENT_BYTES:,} bytes are accepted"
                   f" (dead letter holds its first {MAX_EVENT_BYTES:,} bytes)"}]
    assert value == big[:MAX_EVENT_BYTES]


async def test_inbound_amount_out_of_range_is_dead_lettered_not_stored(kafka_app):
    bad = json.dumps(f.snapshot(committed=10**30)).encode()
    dead = await _inbound(kafka_app, (bad, f.TOKEN))
    assert stored(kafka_app) == []
    [(value, headers)] = dead
    assert value == bad and headers["x-error-stage"] == "contract"
    assert json.loads(headers["x-error"])[0]["field"] == "payload.committed"


async def test_inbound_same_id_other_content_is_dead_lettered_naming_both_hashes(kafka_app):
    first = f.snapshot(spent=5)
    second = copy.deepcopy(first)
    second["payload"]["spent"] = 6
    theirs = copy.deepcopy(second)
    theirs["source"] = "other-system"
    dead = await _inbound(kafka_app, (json.dumps(first).encode(), f.TOKEN), (json.dumps(second).encode(), f.TOKEN),
                          (json.dumps(first).encode(), f.TOKEN), (json.dumps(theirs).encode(), "other-token"))
    rows = stored(kafka_app)
    assert [(r.source, r.source_event_id) for r in rows] == [(f.SOURCE, first["event_id"]),
                                                             ("other-system", first["event_id"])]
    [(value, headers)] = dead
    assert value == json.dumps(second).encode() and headers["x-error-stage"] == "conflict"
    assert content_hash(parse_event(first)) in headers["x-error"]
    assert content_hash(parse_event(second)) in headers["x-error"]


async def test_an_inbound_record_that_fails_for_another_reason_is_set_aside_alone(kafka_app, monkeypatch):
    """A record that makes the batch's unit of work fail (here a bug triggered by its title) is found
    by accepting the batch's records one by one: it is dead-lettered (stage apply, in the topic and in
    ingest's database) and the records beside it are stored; the offsets move on."""
    rt = kafka_app.state.runtime
    s = rt.settings
    accept = service.accept

    def buggy(db: Any, submissions: Any, *args: Any, **kwargs: Any) -> service.Outcome:
        if any(b"POISON" in sub.data for sub in submissions):
            raise RuntimeError("a bug this title triggers")
        return accept(db, submissions, *args, **kwargs)

    monkeypatch.setattr(service, "accept", buggy)
    dead: list[tuple[bytes, dict[str, str]]] = []

    @rt.broker.subscriber(s.topic("execwatch.deadletter"))
    async def dlq(body: Any, message: KafkaMessage = Context("message")) -> None:
        dead.append((message.body, message.headers))

    before, poison, after = f.program("P-A"), f.program("P-B", title="POISON"), f.program("P-C")
    values = [json.dumps(e).encode() for e in (before, poison, after)]
    async with TestKafkaBroker(rt.broker) as br, running(kafka_app, as_role=None):
        await br.publish_batch(*values, topic=s.topic("execwatch.inbound"), headers={"x-execwatch-token": f.TOKEN})
    assert [r.source_event_id for r in stored(kafka_app)] == [before["event_id"], after["event_id"]]
    [(value, headers)] = dead
    assert value == values[1] and headers["x-error-stage"] == "apply"
    assert headers["x-error"] == "RuntimeError: a bug this title triggers"
    with rt.db.read() as session:
        letters = session.exec(select(IngestDeadLetter)).all()
    assert [(d.stage, d.error, d.value) for d in letters] == [
        ("apply", "RuntimeError: a bug this title triggers", values[1])]


async def test_inbound_publishing_rights_are_access_rules(kafka_app):
    """The inbound topic takes access's keys: another 과's program, or a key that may not publish,
    is dead-lettered (stage auth) and nothing of it stored."""
    rt = kafka_app.state.runtime
    s = rt.settings
    dead: list[tuple[bytes, dict[str, str]]] = []

    @rt.broker.subscriber(s.topic("execwatch.deadletter"))
    async def dlq(body: Any, message: KafkaMessage = Context("message")) -> None:
        dead.append((message.body, message.headers))

    def key_of(headers: dict[str, str]) -> str:
        return headers["Authorization"].removeprefix("Bearer ")

    def econ(event: dict[str, Any]) -> bytes:
        return json.dumps({**event, "source": "econ-system"}).encode()

    async with TestKafkaBroker(rt.broker) as br, running(kafka_app, as_role=None):
        system = key_of(bearer(kafka_app, "system", name="econ-system", divisions=["경제정책과"]))
        staff = key_of(bearer(kafka_app, "staff", name="econ-system", divisions=["경제정책과"], email="k@seoul.go.kr"))
        foreign, own, by_staff = (econ(f.program("P-INV", division="투자창업과")), econ(f.program()),
                                  econ(f.program("P-STAFF")))
        for value, token in ((foreign, system), (own, system), (by_staff, staff)):
            await br.publish(value, s.topic("execwatch.inbound"), key=b"P", headers={"x-execwatch-token": token})
    assert [r.key for r in stored(kafka_app)] == ["P-RND"]
    assert [(v, h["x-error-stage"], h["x-error"]) for v, h in dead] == [
        (foreign, "auth", "key: P-INV: 투자창업과 is not among the 과 granted to econ-system"),
        (by_staff, "auth", "role staff may not publish")]


async def test_records_standing_alone_state_a_program_only_when_accepted(app):
    """On the inbound topic each record stands alone: a program.registered in the batch lets its
    snapshots through, but one that is refused does not."""
    async with running(app, as_role=None):
        access = app.state.access
        _, key = access.store.create(name="econ-system", role="system", divisions=["경제정책과"])
        who = access.resolve(key)
        events = [f.program("P-INV", division="투자창업과"), f.snapshot("P-INV", spent=1),
                  f.program("P-NEW"), f.snapshot("P-NEW", spent=2)]
        submissions = [service.Submission({**e, "source": "econ-system"}, who) for e in events]
        outcome = service.accept(app.state.runtime.db, submissions, service.policy_from(app.state.runtime.settings),
                                 access, all_or_nothing=False)
        assert [(p.index, p.stage, p.errors[0].message) for p in outcome.forbidden] == [
            (0, "rights", "P-INV: 투자창업과 is not among the 과 granted to econ-system"),
            (1, "rights", "P-INV: unknown program; publish it with its 과 first (program.registered or "
                          "budget.line_set)")]
        assert [a.index for a in outcome.accepted] == [2, 3] and outcome.rejected == []
        assert access.store.owners(["P-INV", "P-NEW"]) == {"P-NEW": "경제정책과"}
    assert [r.key for r in stored(app)] == ["P-NEW", "P-NEW"]


async def test_a_batch_is_stored_as_published_with_its_hash_and_time(app):
    # The outbox rows are written with plain DB-API statements (COPY on PostgreSQL): what the ORM
    # reads back must be what was published, hashed and stamped, in the request's order.
    events = [f.snapshot(pid=f"P-{i}", spent=i) for i in range(3)]
    before = datetime.now(UTC)
    async with running(app, as_role=None) as (client,):
        resp = await client.post("/v1/events", headers=AUTH, json=events)
        assert resp.status_code == 202 and resp.json()["accepted"] == 3
        status = (await client.get(f"/v1/events/{events[1]['event_id']}", headers=AUTH)).json()
    rows = stored(app)
    assert [r.event_id for r in rows] == [e["event_id"] for e in events]
    for row, data in zip(rows, events, strict=True):
        event = parse_event(data)
        assert row.value == dump_event(event) and row.content_hash == content_hash(event)
        assert (row.topic.endswith("execwatch.budget"), row.key, row.source, row.source_event_id) == (
            True, data["key"], f.SOURCE, data["event_id"])
        assert row.published_at is None
        created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
        assert before - timedelta(seconds=1) <= created <= datetime.now(UTC)
    assert datetime.fromisoformat(status["accepted_at"]).replace(tzinfo=UTC) >= before - timedelta(seconds=1)


def _hash_as_main_stored_it(data: dict[str, Any]) -> str:
    """The content hash as ingest computed it before orjson: `json.dumps` of the model's JSON data."""
    canonical = json.dumps(parse_event(data).model_dump(mode="json"), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(canonical).hexdigest()


async def test_an_event_stored_before_the_faster_hash_is_still_a_duplicate(app):
    # Rows stored by the previous version keep their hashes: a resend after the upgrade must be a
    # duplicate (the same hash), and other content a conflict naming the stored hash.
    event = f.program("P-한글", title="서울형 \"R&D\" 지원 \\ 한글 ①😀")
    event["payload"]["purpose"] = "골목상권 활성화\n\t- 점포당 최대 ₩3,000,000"
    old_hash = _hash_as_main_stored_it(event)
    changed = copy.deepcopy(event)
    changed["payload"]["purpose"] = "골목상권 활성화"
    async with running(app, as_role=None) as (client,):
        with app.state.runtime.db.unit_of_work() as s:  # the tables exist once the app has started
            s.add(IngestOutbox(event_id=event["event_id"], topic="execwatch.programs", key="P-한글",
                               value=dump_event(parse_event(event)), source=f.SOURCE,
                               source_event_id=event["event_id"], content_hash=old_hash))
        resend = await client.post("/v1/events", headers=AUTH, json=[event])
        conflict = await client.post("/v1/events", headers=AUTH, json=[changed])
    assert resend.status_code == 202 and (resend.json()["accepted"], resend.json()["duplicates"]) == (0, 1)
    assert conflict.status_code == 409
    assert [(c["stored_hash"], c["submitted_hash"]) for c in conflict.json()["conflicts"]] == [
        (old_hash, _hash_as_main_stored_it(changed))]
    assert [r.content_hash for r in stored(app)] == [old_hash]


@pytest.mark.parametrize("configured, expected", [(0, None), (3, 3)])
async def test_requests_are_accepted_a_few_at_a_time_and_all_of_them_stored(make_settings, db_url, configured,
                                                                             expected):
    """EXECWATCH_INGEST_ACCEPT_CONCURRENCY (0: one at a time on SQLite, four on PostgreSQL): the
    rest wait their turn, and every request is stored."""
    import asyncio
    from types import SimpleNamespace

    from services.ingest.api import accepting

    app = build(make_settings(database_url=db_url, ingest_sources=SOURCES, ingest_accept_concurrency=configured),
                start_broker=False)
    bodies = [[f.snapshot(f"P-{n}-{i}") for i in range(20)] for n in range(8)]
    async with running(app, as_role=None) as (client,):
        answers = await asyncio.gather(*(client.post("/v1/events", headers=AUTH, json=b) for b in bodies))
        turns = accepting(SimpleNamespace(app=app))  # type: ignore[arg-type]
    assert [a.status_code for a in answers] == [202] * len(bodies)
    assert len(stored(app)) == sum(len(b) for b in bodies)
    assert turns._value == (expected or (1 if db_url.startswith("sqlite") else 4))  # all turns given back
