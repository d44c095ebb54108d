"""Health tells the truth: /livez says the process works, /readyz (and /healthz) say whether
the service can do its job — database, broker, no outbox row and no consumer stuck past its
threshold, every registered check — and the ages are metrics."""

from __future__ import annotations

import asyncio

from services.budget import service as budget_service
from services.budget.app import build as build_budget
from services.common.embedded import free_port
from services.common.runtime import Check
from services.ingest.app import build as build_ingest
from tests import factories as f
from tests.helpers import eventually, running

AUTH = {"Authorization": f"Bearer {f.TOKEN}"}


async def test_an_outbox_row_waiting_too_long_makes_the_service_not_ready(sqlite_url, make_settings):
    settings = make_settings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", database_url=sqlite_url,
                             broker_connect_timeout_s=1.0, health_outbox_max_age_s=1.0)
    app = build_ingest(settings)
    rt = app.state.runtime
    calls = {"mail": 0}

    async def mail_check() -> Check:
        calls["mail"] += 1
        return Check(False, {"oldest_undelivered_age_s": 7200.0})

    rt.add_health_check("mail", mail_check)
    async with running(app) as (client,):
        live = await client.get("/livez")
        assert live.status_code == 200 and live.json()["dead_tasks"] == []
        assert (await client.post("/v1/events", headers=AUTH, json=[f.program()])).status_code == 202
        await asyncio.sleep(1.5)  # the broker never answers: the row waits
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["database"] is True and body["broker"] is False
        outbox = body["checks"]["outbox:ingest_outbox"]
        assert outbox["ok"] is False and outbox["oldest_pending_age_s"] >= 1.0
        assert body["checks"]["mail"] == {"ok": False, "oldest_undelivered_age_s": 7200.0} and calls["mail"] == 1
        assert (await client.get("/healthz")).json()["checks"].keys() == body["checks"].keys()
        assert (await client.get("/livez")).status_code == 200  # alive, just not ready: no restart
        metrics = (await client.get("/metrics")).text
        line = next(m for m in metrics.splitlines()
                    if m.startswith('execwatch_outbox_oldest_pending_age_seconds{table="ingest_outbox"}'))
        assert float(line.split()[-1]) >= 1.0


async def test_a_consumer_that_stops_committing_with_messages_waiting_is_reported(kafka, sqlite_url, make_settings,
                                                                                   monkeypatch):
    settings = make_settings(kafka_bootstrap_servers=kafka.bootstrap, database_url=sqlite_url,
                             health_consumer_stall_s=1.0, broker_watch_interval_s=0.3)
    app = build_budget(settings)
    release = asyncio.Event()
    real_apply = budget_service.apply_batch
    loop = asyncio.get_running_loop()

    def stuck_apply(db, cfg, events):  # type: ignore[no-untyped-def]
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result()  # a handler that hangs
        return real_apply(db, cfg, events)

    monkeypatch.setattr(budget_service, "apply_batch", stuck_apply)
    ingest = build_ingest(settings)
    async with running(app, ingest) as (client, ingest_client):
        assert (await client.get("/readyz")).status_code == 200
        resp = await ingest_client.post("/v1/events", headers=AUTH, json=[f.budget_line(), f.snapshot(spent=5)])
        assert resp.status_code == 202

        async def stalled() -> dict | None:
            r = await client.get("/readyz")
            check = r.json()["checks"]["consumer:execwatch-budget"]
            return check if r.status_code == 503 and not check["ok"] else None

        check = await eventually(stalled, timeout=60, what="the stalled consumer reported")
        # stalled over the 1 s limit; /readyz shows it rounded to 0.1 s (1.04 s reads 1.0)
        assert check["lag"] >= 1 and check["stalled_s"] >= 1.0
        release.set()

        async def recovered() -> bool:
            return (await client.get("/readyz")).status_code == 200
        await eventually(recovered, timeout=60, what="ready again once it commits")
