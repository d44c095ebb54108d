"""The importer against the real ingest app (real broker, both databases): a second import of
the same reports is all duplicates and publishes nothing new."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from services.ingest.app import build as build_ingest
from services.ingest.importer.cli import import_files
from tests.helpers import running

TOKEN = "importer-token"  # the default report-importer token of Settings.ingest_sources


class _LoopTransport(httpx.BaseTransport):
    """Sync httpx transport that runs each request on the test's event loop (import_files is sync)."""

    def __init__(self, client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client, self.loop = client, loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def go() -> httpx.Response:
            return await self.client.request(request.method, request.url.path, content=request.read(),
                                             headers={"Authorization": request.headers["Authorization"],
                                                      "Content-Type": "application/json"})

        resp = asyncio.run_coroutine_threadsafe(go(), self.loop).result(120)
        return httpx.Response(resp.status_code, content=resp.content, headers={"Content-Type": "application/json"})


async def test_second_import_is_all_duplicates(kafka, db_url, make_settings, seeds):
    files = sorted(seeds.glob("*.txt"))
    if not files:
        pytest.skip("no seed reports")
    settings = make_settings(kafka_bootstrap_servers=kafka.bootstrap, database_url=db_url)
    async with running(build_ingest(settings)) as (ingest,):
        client = httpx.Client(transport=_LoopTransport(ingest, asyncio.get_running_loop()), base_url="http://svc")

        def run_import():
            return import_files(files, "http://svc", TOKEN, progress=False, client=client)

        first = await asyncio.to_thread(run_import)
        total = len(first.envelopes)
        assert first.published is not None and not first.published.failed
        assert first.published.rejected == []
        assert first.published.accepted == total > 0

        second = await asyncio.to_thread(run_import)
        assert [e.event_id for e in second.envelopes] == [e.event_id for e in first.envelopes]
        assert second.published is not None
        assert (second.published.accepted, second.published.duplicates) == (0, total)

        resp = await ingest.get(f"/v1/events/{first.envelopes[0].event_id}")
        assert resp.status_code == 200
