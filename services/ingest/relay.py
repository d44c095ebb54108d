"""Ingest's outbox relay as its own process: `execwatch serve ingest-relay`.

Run it beside ingest processes started with `EXECWATCH_INGEST_RELAY_INLINE=false`, so that the
accepting processes spend their core on accepting. It publishes what any of them committed, in id
order, as the inline relay does; with several relay processes on PostgreSQL one leads (the
`relay:ingest_outbox` lock) and the others wait. SQLite has no such lock (every relay leads): there,
run one relay in all, this one or ingest's inline one, or rows go out twice (consumers drop the
second copy, but it is work for nothing). Nothing wakes it on a commit (that happens in
another process), so it polls every `EXECWATCH_INGEST_RELAY_POLL_S` (20 ms: one indexed query of
the pending rows; it is what a row waits at most before its round starts). Its own HTTP port
(`EXECWATCH_INGEST_RELAY_PORT`) serves /livez, /readyz and /metrics."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.leader import LeaderRelay
from services.common.runtime import Runtime, http_app, serve
from services.common.settings import Settings, get_settings
from services.ingest.store import IngestOutbox


def build(settings: Settings, *, start_broker: bool = True) -> FastAPI:
    rt = Runtime.create("ingest", settings)
    relay = LeaderRelay(rt.db, IngestOutbox, rt.publish_raw)
    rt.background.append(lambda: relay.run(settings.ingest_relay_poll_s))
    app = http_app(rt, "execwatch ingest relay", start_broker=start_broker)
    app.state.relay = relay
    return app


def main() -> None:
    settings = get_settings()
    serve(build, "ingest", settings, role="ingest-relay", port=settings.ingest_relay_port)


if __name__ == "__main__":
    main()
