"""`execwatch up`: the whole system on one machine, no Docker.

Starts what is not configured (the embedded tansu broker when KAFKA_BOOTSTRAP_SERVERS is unset,
a SQLite file when DATABASE_URL is unset, an SMTP sink when EXECWATCH_SMTP_HOST is unset),
migrates, runs the four services and the staff web as child processes, and with --demo imports the
seed reports through ingest. Ctrl-C stops everything.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from services.auth.store import KeyStore
from services.common.db import redacted, upgrade
from services.common.embedded import EmbeddedBroker, MailSink
from services.common.messaging import ensure_topics
from services.common.settings import SERVICES, Settings

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SEEDS = REPO.parent / "shared" / "seeds"


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with code {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not healthy after {timeout:.0f}s")


def run_local(demo: bool = False, workdir: str = "var", clock: str | None = None) -> int:
    work = Path(workdir).resolve()
    (work / "logs").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    broker: EmbeddedBroker | None = None
    sink: MailSink | None = None
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        if not env.get("KAFKA_BOOTSTRAP_SERVERS") and not env.get("EXECWATCH_KAFKA_BOOTSTRAP_SERVERS"):
            broker = EmbeddedBroker.start(log_path=work / "logs" / "tansu.log")
            env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
            print(f"• Kafka: embedded tansu broker on {broker.bootstrap} (memory storage)")
        if not env.get("DATABASE_URL") and not env.get("EXECWATCH_DATABASE_URL"):
            env["DATABASE_URL"] = f"sqlite:///{work}/execwatch.db"
        if not env.get("EXECWATCH_SMTP_HOST"):
            sink = MailSink(maildir=work / "mail", echo=True).start()
            env["EXECWATCH_SMTP_HOST"], env["EXECWATCH_SMTP_PORT"] = "127.0.0.1", str(sink.port)
            env.setdefault("EXECWATCH_NOTIFY_PUBLIC_URL", f"http://127.0.0.1:{env.get('EXECWATCH_NOTIFY_PORT', 8704)}")
            print(f"• Mail: local SMTP sink on 127.0.0.1:{sink.port}; messages saved in {work / 'mail'}")
        # Mails link to the staff web: a program's page, and the sign-in link's confirmation page.
        web = f"http://127.0.0.1:{env.get('EXECWATCH_WEB_PORT', 8705)}"
        env.setdefault("EXECWATCH_NOTIFY_PROGRAM_URL", f"{web}/program/{{program_id}}")
        env.setdefault("EXECWATCH_AUTH_LOGIN_URL", f"{web}/auth/callback")
        if demo and not clock and not env.get("EXECWATCH_CLOCK"):
            clock = "2025-02-15"  # the seed reports speak of early 2025: judge schedules as of then
        if demo:
            env["EXECWATCH_DEMO"] = "true"  # demo tokens and secrets are accepted only so
            # Show mail within seconds, whatever the hour: staff defaults wait 30 s and hold at night.
            env.setdefault("EXECWATCH_NOTIFY_GROUP_WAIT_S", "5")
            env.setdefault("EXECWATCH_NOTIFY_QUIET_HOURS", "false")
        else:
            _real_secrets(env, work)
        if clock:
            env["EXECWATCH_CLOCK"] = clock
            print(f"• Clock: programs judge schedules as of {clock}")
        env.setdefault("EXECWATCH_LOG_JSON", "true")
        os.environ.update(env)
        settings = Settings()
        print(f"• Database: {redacted(settings.database_url)}")
        assert settings.kafka_bootstrap_servers
        ensure_topics(settings.kafka_bootstrap_servers, settings.topic_prefix)
        for service in SERVICES:  # one at a time: SQLite prefers a single migrating writer
            upgrade(settings.database_url_for(service), service)
        upgrade(settings.auth_db_url, "auth")
        made = demo_identities(settings, work) if demo else {}
        if made:  # the demo sign-in of the web offers these people (and only in the demo)
            env["EXECWATCH_WEB_DEMO_KEYS"] = json.dumps({k: made[k]["key"] for k in ("staff", "operator", "auditor")})
        for service in SERVICES:
            log = open(work / "logs" / f"{service}.log", "ab")  # noqa: SIM115 (closed with the process)
            children[service] = subprocess.Popen([sys.executable, "-m", f"services.{service}"], env=env,
                                                 stdout=log, stderr=subprocess.STDOUT)
        web_log = open(work / "logs" / "web.log", "ab")  # noqa: SIM115 (closed with the process)
        children["web"] = subprocess.Popen([sys.executable, "-m", "services.web"], env=env, stdout=web_log,
                                           stderr=subprocess.STDOUT)
        base = f"http://{settings.http_host}"
        for service in SERVICES:
            _wait_healthy(f"{base}:{settings.port_for(service)}/healthz", children[service])
        _wait_healthy(f"{base}:{settings.web_port}/healthz", children["web"])
        print("\nexecwatch is up:")
        for service in SERVICES:
            port = settings.port_for(service)
            print(f"  {service:9} {base}:{port}/docs   metrics {base}:{port}/metrics")
        print(f"  web       {base}:{settings.web_port}/   (staff pages, Korean)")
        print(f"  logs      {work / 'logs'}\n")
        if demo:
            print(f"demo: sign in to the staff pages as the demo 팀장 of {DEMO_STAFF_DIVISION}: "
                  f"{base}:{settings.web_port}/signin?as=staff")
            _demo(made, f"{base}:{settings.ingest_port}", f"{base}:{settings.port_for('budget')}")
        print("Press Ctrl-C to stop.")
        while True:
            for name, proc in children.items():
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; see {work / 'logs' / name}.log",
                          file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping…")
        return 0
    finally:
        for proc in children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in children.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if sink:
            sink.stop()
        if broker:
            broker.stop()


def _real_secrets(env: dict[str, str], work: Path) -> None:
    """Outside the demo the built-in tokens and secrets are refused: a local run without its own
    gets random secrets, made once and kept in the work folder (owner only) so links and sessions
    survive a restart, and no configured publishers (make keys: `execwatch keys`)."""
    for name in ("EXECWATCH_AUTH_SECRET", "EXECWATCH_NOTIFY_ACK_SECRET", "EXECWATCH_WEB_SESSION_SECRET"):
        if not env.get(name):
            path = work / "secrets" / name.lower()
            if not path.exists():
                path.parent.mkdir(mode=0o700, exist_ok=True)
                path.write_text(secrets.token_urlsafe(32))
                path.chmod(0o600)
                print(f"• {name} not set: made one, kept in {path}")
            env[name] = path.read_text().strip()
    env.setdefault("EXECWATCH_INGEST_SOURCES", "{}")


DEMO_STAFF_DIVISION, DEMO_STAFF_OFFICE = "경제정책과", "경제실"


def demo_identities(settings: Settings, workdir: Path) -> dict[str, dict[str, str | None]]:
    """The demo's own identities: the importer (every 과), a 팀장 of one 과, an operator, an auditor. Saved
    (mode 600) in the work directory as well, for scripts."""
    store = KeyStore(settings.auth_db_url)
    made: dict[str, dict[str, str | None]] = {}
    specs: list[tuple[str, str, dict[str, Any]]] = [
        ("importer", "report-importer", {"role": "system", "divisions": ["*"]}),
        ("staff", "데모 팀장", {"role": "staff", "divisions": [DEMO_STAFF_DIVISION], "office": DEMO_STAFF_OFFICE,
                              "title": "팀장", "email": f"demo-lead@{settings.mail_domains[0]}"}),
        ("operator", "demo-operator", {"role": "operator"}),
        ("auditor", "demo-auditor", {"role": "auditor"}),
    ]
    for label, name, fields in specs:
        row, key = store.create(name=name, created_by="execwatch up --demo", note="demo", **fields)
        made[label] = {"name": name, "role": row.role, "divisions": ",".join(row.divisions) or None, "key": key}
    store.dispose()
    path = workdir / "demo-keys.json"
    path.write_text(json.dumps(made, ensure_ascii=False, indent=2), "utf-8")
    path.chmod(0o600)
    return made


def _demo(made: dict[str, dict[str, str | None]], ingest_url: str, budget_url: str) -> None:
    from services.ingest.importer.cli import import_files
    from services.ingest.importer.verify import render_verification, verify_documents

    print("demo identities (demo only; saved in demo-keys.json):")
    for label, who in made.items():
        rights = f" 과={who['divisions']}" if who["divisions"] else ""
        print(f"  {label:9} {who['name']} ({who['role']}{rights})  Authorization: Bearer {who['key']}")

    seeds = Path(os.environ.get("EXECWATCH_SEEDS", DEFAULT_SEEDS))
    files = sorted(seeds.glob("*.txt"))
    if not files:
        print(f"demo: no seed reports in {seeds}; set EXECWATCH_SEEDS", file=sys.stderr)
        return
    token = made["importer"]["key"] or ""
    print(f"demo: importing {len(files)} reports from {seeds} through {ingest_url}")
    summary = import_files(files, ingest_url=ingest_url, token=token, source="report-importer")
    # The check that the view staff read equals the reports it came from (소계 per 과, 계).
    reader = made["operator"]["key"] or ""
    for line in render_verification(verify_documents(summary.documents, budget_url, timeout=120, token=reader)):
        print(line)
    print("demo: imported; alert emails are printed below as notify sends them\n")
