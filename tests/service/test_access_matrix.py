"""The authorization matrix, generated from the routes: every route of every service × {anonymous,
another 과's staff, own staff, system, operator, auditor} answers 401 / 403 / 2xx as its declared
rule says. A new route is covered automatically, and fails here until it has a rule and a sample
request below."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from faststream.kafka import TestKafkaBroker

from contracts import parse_event
from services.auth.store import KeyStore
from services.budget import service as budget_service
from services.budget.app import build as build_budget
from services.common import auth
from services.common.auth import Identity, Role, RouteInfo, api_routes, session_token, unruled_routes
from services.common.settings import Settings
from services.ingest.app import build as build_ingest
from services.notify import domain as notify_domain
from services.notify import links
from services.notify.app import build as build_notify
from services.notify.service import ManualClock
from services.programs import service as programs_service
from services.programs.app import build as build_programs
from tests import factories as f
from tests.helpers import running
from tests.service.test_notify_service import slip, 담당

OWN, OTHER = "경제정책과", "투자창업과"
CALLERS = ("anonymous", "other_staff", "own_staff", "system", "operator", "auditor")
ROLE_OF = {"other_staff": Role.staff, "own_staff": Role.staff, "system": Role.system, "operator": Role.operator,
           "auditor": Role.auditor}
# Routes that also check the caller's 과 or address: another 과's staff is refused there.
OPEN = {200, 201, 202, 503}
SCOPED = {("GET", "/v1/notifications"), ("GET", "/v1/inbox/{recipient}"),
          ("POST", "/v1/inbox/{recipient}/{delivery_id}/read"), ("POST", "/v1/alerts/{fingerprint}/ack"),
          ("POST", "/v1/silences"), ("DELETE", "/v1/silences/{silence_id}")}


def build_all(settings: Settings, clock: ManualClock) -> dict[str, FastAPI]:
    return {"ingest": build_ingest(settings), "budget": build_budget(settings, start_broker=False),
            "programs": build_programs(settings, start_broker=False, clock=lambda: date(2025, 2, 3)),
            "notify": build_notify(settings, start_broker=False, clock=clock)}


def test_every_route_of_every_service_declares_a_rule(make_settings, sqlite_url):
    apps = build_all(make_settings(database_url=sqlite_url), ManualClock(datetime(2025, 2, 3, tzinfo=UTC)))
    for name, app in apps.items():
        assert unruled_routes(app) == [], f"{name} has routes without an access rule"
        ops = {r.path: r.rule for r in api_routes(app) if r.path in ("/livez", "/readyz", "/healthz", "/metrics")}
        assert all(rule is not None and rule.public for rule in ops.values()) and len(ops) == 4


def test_a_route_without_a_rule_is_found(make_settings, sqlite_url):
    app = build_budget(make_settings(database_url=sqlite_url), start_broker=False)

    @app.get("/v1/forgotten")
    async def forgotten() -> dict[str, str]:
        return {}

    assert unruled_routes(app) == ["['GET'] /v1/forgotten"]


@dataclass
class World:
    settings: Settings
    apps: dict[str, FastAPI]
    clients: dict[str, httpx.AsyncClient]
    headers: dict[str, dict[str, str]]
    fingerprint: str
    delivery_id: int
    store: KeyStore

    def silence(self) -> str:
        notifier = self.apps["notify"].state.notifier
        row = notifier.create_silence([notify_domain.Matcher("과", OWN, "=")], None,
                                      datetime(2025, 2, 4, tzinfo=UTC), "seed", "matrix")
        return str(row.id)

    def ack_link(self) -> str:
        """An acknowledge link as mailed to 담당 (valid for a day of the notify clock)."""
        expires = self.apps["notify"].state.notifier.clock() + timedelta(days=1)
        return links.sign(self.settings.notify_ack_secret.get_secret_value(), "ack", self.fingerprint, 담당,
                          "김지영", expires)


Sample = Callable[[World], dict[str, Any]]


SAMPLES: dict[tuple[str, str], Sample] = {
    ("GET", "/livez"): lambda w: {},
    ("GET", "/readyz"): lambda w: {},
    ("GET", "/healthz"): lambda w: {},
    ("GET", "/metrics"): lambda w: {},
    ("GET", "/asyncapi.json"): lambda w: {},
    ("POST", "/v1/events"): lambda w: {"json": "SNAPSHOT"},
    ("GET", "/v1/events/{event_id}"): lambda w: {"path": {"event_id": w.headers["_event_id"]["id"]}},
    ("GET", "/v1/budget/summary"): lambda w: {"params": {"fiscal_year": 2025}},
    ("GET", "/v1/budget/programs"): lambda w: {},
    ("GET", "/v1/budget/programs/{program_id:path}"): lambda w: {"path": {"program_id": "P-RND"}},
    ("GET", "/v1/budget/unlinked"): lambda w: {},
    ("GET", "/v1/budget/unknown-programs"): lambda w: {},
    ("GET", "/v1/programs"): lambda w: {},
    ("GET", "/v1/programs/overdue"): lambda w: {},
    ("GET", "/v1/programs/upcoming"): lambda w: {},
    ("GET", "/v1/programs/review"): lambda w: {},
    ("GET", "/v1/programs/{program_id:path}"): lambda w: {"path": {"program_id": "P-RND"}},
    ("GET", "/v1/notifications"): lambda w: {"params": {"recipient": 담당}},
    ("GET", "/v1/inbox/{recipient}"): lambda w: {"path": {"recipient": 담당}},
    ("POST", "/v1/inbox/{recipient}/{delivery_id}/read"):
        lambda w: {"path": {"recipient": 담당, "delivery_id": w.delivery_id}},
    ("GET", "/v1/alerts"): lambda w: {},
    ("POST", "/v1/alerts/{fingerprint}/ack"): lambda w: {"path": {"fingerprint": w.fingerprint}, "json": {}},
    # The mail link: the signed token is the credential (public rule), whoever opens it.
    ("GET", "/v1/ack"): lambda w: {"params": {"token": w.ack_link()}},
    ("POST", "/v1/ack"): lambda w: {"params": {"token": w.ack_link()}},
    ("GET", "/v1/silences"): lambda w: {},
    ("POST", "/v1/silences"): lambda w: {"json": {
        "matchers": [{"name": "과", "value": OWN}], "ends_at": "2025-02-04T00:00:00+00:00", "comment": "matrix"}},
    ("DELETE", "/v1/silences/{silence_id}"): lambda w: {"path": {"silence_id": w.silence()}},
    ("POST", "/v1/auth/login-link"): lambda w: {"json": {"email": "nobody@seoul.example"}},
    ("GET", "/v1/auth/callback"): lambda w: {"params": {"token": "x"}},
    ("POST", "/v1/auth/callback"): lambda w: {"data": {"token": auth.login_link_token(
        w.settings.auth_secret.get_secret_value(), Identity("김지영", Role.staff, frozenset({OWN}), email=담당),
        600, datetime.now(UTC))}},
    ("GET", "/v1/auth/me"): lambda w: {},
    ("GET", "/v1/audit"): lambda w: {},
}


def routes(apps: dict[str, FastAPI]) -> Iterator[tuple[str, str, RouteInfo]]:
    for service, app in apps.items():
        for r in api_routes(app):
            for method in sorted(r.methods):
                yield service, method, r


def expected(method: str, route: RouteInfo, caller: str) -> set[int]:
    rule = route.rule
    assert rule is not None
    if rule.public:  # open: answered on its merits (/readyz, /healthz are 503 here: no broker), never refused
        return OPEN
    if caller == "anonymous":
        return {401}
    if not rule.allows(ROLE_OF[caller]):
        return {403}
    if caller == "other_staff" and (method, route.path) in SCOPED:
        return {403}
    return {200, 201, 202}


@pytest.fixture
async def world(make_settings, sqlite_url, mail_sink) -> Any:
    settings = make_settings(database_url=sqlite_url, smtp_port=mail_sink.port, notify_tick_s=3600,
                             auth_secret="matrix-secret-0123456789", notify_ack_secret="matrix-ack-0123456789",
                             auth_writes_per_min=10_000, notify_public_url="http://notify.test")
    clock = ManualClock(datetime(2025, 2, 3, 1, 0, tzinfo=UTC))
    apps = build_all(settings, clock)
    async with TestKafkaBroker(apps["ingest"].state.runtime.broker), \
            running(*apps.values(), as_role=None) as clients:
        store = apps["ingest"].state.access.store
        secret = settings.auth_secret.get_secret_value()
        now = datetime.now(UTC)
        own = Identity("김지영", Role.staff, frozenset({OWN}), office="경제실", email=담당, title="담당")
        headers = {"anonymous": {},
                   "own_staff": {"Authorization": f"Bearer {session_token(secret, own, 600, now)}"}}
        for caller, fields in {"other_staff": {"role": "staff", "divisions": [OTHER], "email": "x@seoul.example"},
                               "system": {"role": "system", "divisions": [OWN]},
                               "operator": {"role": "operator"}, "auditor": {"role": "auditor"}}.items():
            _, key = store.create(name=f"m-{caller}", **fields)  # type: ignore[arg-type]
            headers[caller] = {"Authorization": f"Bearer {key}"}
        # Data to act on: a program of OWN everywhere, a firing alert and an inbox message for 담당.
        ingest = clients[0]
        first = await ingest.post("/v1/events", json=[f.program(), f.budget_line()],
                                  headers={"Authorization": f"Bearer {f.TOKEN}"})
        assert first.status_code == 202, first.text
        headers["_event_id"] = {"id": first.json()["event_ids"][0]}
        events = [parse_event(e) for e in (f.program(), f.budget_line())]
        budget_service.apply_batch(apps["budget"].state.runtime.db,
                                   budget_service.Config.from_settings(settings), events)
        rt_p = apps["programs"].state.runtime
        programs_service.apply_batch(rt_p.db, programs_service.Config.from_settings(settings), events[:1],
                                     date(2025, 2, 3))
        notifier = apps["notify"].state.notifier
        alert = slip()
        notifier.apply_batch([events[0], alert])
        clock.advance(seconds=60)
        notifier.tick()
        await apps["notify"].state.dispatcher.flush()
        inbox = (await clients[3].get(f"/v1/inbox/{담당}", headers=headers["operator"])).json()["items"]
        yield World(settings, apps, dict(zip(apps, clients, strict=True)), headers,
                    alert.payload.fingerprint, inbox[0]["id"], store)


async def test_authorization_matrix(world: World) -> None:
    failures = []
    seen = 0
    for service, method, route in routes(world.apps):
        sample = SAMPLES.get((method, route.path))
        if sample is None:
            failures.append(f"{method} {route.path}: no sample request in SAMPLES (add one for the new route)")
            continue
        for caller in CALLERS:
            req = sample(world)
            body = req.get("json")
            if body == "SNAPSHOT":  # the system publishes as itself
                source = "m-system" if caller == "system" else ("m-operator" if caller == "operator" else "x")
                body = f.snapshot(spent=seen + 1)
                body["source"] = source
            path = route.path.replace(":path}", "}").format(**req.get("path", {}))
            resp = await world.clients[service].request(
                method, path, params=req.get("params"), json=body, data=req.get("data"),
                headers=world.headers[caller])
            world.clients[service].cookies.clear()  # a session cookie from the sign-in sample stays there
            seen += 1
            want = expected(method, route, caller)
            if resp.status_code not in want:
                failures.append(f"{caller:12} {method} {route.path}: {resp.status_code} (want {sorted(want)}) "
                                f"{resp.text[:150]}")
            if resp.status_code == 401:
                assert resp.headers.get("www-authenticate", "").startswith("Bearer"), route.path
    assert not failures, "\n".join(failures)
    assert seen >= 6 * 28


def test_samples_name_only_real_routes(make_settings, sqlite_url):
    apps = build_all(make_settings(database_url=sqlite_url), ManualClock(datetime(2025, 2, 3, tzinfo=UTC)))
    real = {(m, r.path) for _, m, r in routes(apps)}
    assert set(SAMPLES) - real == set()

