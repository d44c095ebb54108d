"""Staff page latency on the demo data: every seed report imported into budget, programs and
notify (in this process, SQLite), each served by uvicorn on its own port, and the web app reading
them over real HTTP as in production. Sequential requests from one client, after a warm-up.

    python benchmarks/web_pages.py [--requests 30]

Prints p50 / p95 / max per page (ms). The target is under 300 ms per page.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import uvicorn

from services.common.auth import Identity, Role
from services.common.embedded import free_port
from services.common.settings import Settings
from services.web.app import build
from services.web.session import COOKIE
from services.web.session import Identity as WebIdentity
from tests.conftest import SEEDS
from tests.helpers import running
from tests.web.stack import TODAY, demo_stack

PAGES = {
    "오늘 (팀장, 경제정책과)": ("/today", "lead"),
    "과/실 현황 2025-01-31": ("/division?as_of=2025-01-31", "lead"),
    "과/실 현황 최신, 집행액 순": ("/division?sort=spent&dir=desc", "lead"),
    "과/실 현황 xlsx": ("/division?as_of=2025-01-31&format=xlsx", "lead"),
    "사업 (서울형 R&D 지원)": ("/program/" + quote("경제정책과/서울형R&D지원", safe=""), "lead"),
    "알림 (감사: 전체)": ("/alerts", "auditor"),
    "운영": ("/ops", "operator"),
}


async def serve(app: object) -> tuple[str, uvicorn.Server, asyncio.Task[None]]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",  # type: ignore[arg-type]
                                           lifespan="off", access_log=False))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, task


async def main(requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with demo_stack(Path(tmp), SEEDS) as stack:
            servers = {name: await serve(app) for name, app in stack.services.items()}
            settings = Settings(_env_file=None, clock=TODAY.isoformat(), log_json=False,  # type: ignore[call-arg]
                                log_level="WARNING", web_budget_url=servers["budget"][0],
                                web_programs_url=servers["programs"][0], web_notify_url=servers["notify"][0])
            web_app = build(settings)
            people = {"lead": stack.staff("박지은", "경제정책과"), "auditor": Identity("감사", Role.auditor),
                      "operator": Identity("운영자", Role.operator)}
            async with running(web_app, as_role=None):
                base, web_server, web_task = await serve(web_app)
                codec = web_app.state.sessions
                cookies = {k: codec.encode(codec.session(WebIdentity.from_access(who.as_json()), stack.credential(who)))
                           for k, who in people.items()}
                async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                    print(f"{'page':28} {'bytes':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
                    for name, (path, who) in PAGES.items():
                        client.cookies.set(COOKIE, cookies[who])
                        for _ in range(3):
                            r = await client.get(path)
                            assert r.status_code == 200, (path, r.status_code, r.text[:300])
                        times = []
                        for _ in range(requests):
                            started = time.perf_counter()
                            r = await client.get(path)
                            times.append((time.perf_counter() - started) * 1000)
                        times.sort()
                        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                        print(f"{name:28} {len(r.content):>8,} {statistics.median(times):>8.0f} {p95:>8.0f} "
                              f"{times[-1]:>8.0f}")
                web_server.should_exit = True
                await web_task
            for _, server, task in servers.values():
                server.should_exit = True
                await task


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.requests)))
