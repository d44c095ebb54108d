"""`execwatch up`: the whole system on one machine, no Docker.

Starts what is not configured (the embedded tansu broker when KAFKA_BOOTSTRAP_SERVERS is unset,
a SQLite file when DATABASE_URL is unset, an SMTP sink when EXECWATCH_SMTP_HOST is unset),
migrates, runs the four services and the staff web as child processes, and with --demo imports the
seed reports through ingest.

It supervises what it started: a service (or the web) that exits is started again with backoff (and says so);
the embedded broker is watched and restarted on the same port if it dies (it keeps memory only:
the services notice it came back empty and re-publish their recent outbox window). SIGINT
(Ctrl-C) and SIGTERM stop everything. What it started (addresses, ports, workdir, pids) is written
to `execwatch.json` in the workdir and in $XDG_RUNTIME_DIR, where every other `execwatch`
command finds it (`execwatch deadletter list` beside a running `execwatch up` needs no
environment).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from services.auth.store import KeyStore
from services.common.db import redacted, upgrade
from services.common.embedded import EmbeddedBroker, MailSink
from services.common.messaging import ensure_topics
from services.common.settings import SERVICES, Settings

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SEEDS = REPO.parent / "shared" / "seeds"
RUNTIME_FILE = "execwatch.json"
#: a service that ran this long before exiting starts again at once (the backoff starts over)
STABLE_AFTER_S = 60.0
MAX_BACKOFF_S = 30.0
#: the staff web: a supervised child like the services (its own module, port and log)
WEB = "web"


# --- discovery ---------------------------------------------------------------------------------------


def runtime_dir() -> Path:
    return Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())


def discovery_paths(workdir: Path | None = None) -> list[Path]:
    """Where `execwatch up` writes what it started, and where other commands look, in order: the
    given workdir (or ./var, the default workdir), then the per-user runtime directory."""
    user = runtime_dir() / (RUNTIME_FILE if os.environ.get("XDG_RUNTIME_DIR") else f"execwatch-{os.getuid()}.json")
    return [(workdir or Path("var")).resolve() / RUNTIME_FILE, user]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def discover(workdir: Path | None = None) -> dict[str, Any] | None:
    """What a running `execwatch up` wrote, if it is still running."""
    for path in discovery_paths(workdir):
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data.get("pid"), int) and _alive(data["pid"]):
            return data
    return None


_CONNECTION_VARS = ("KAFKA_BOOTSTRAP_SERVERS", "EXECWATCH_KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL",
                    "EXECWATCH_DATABASE_URL")


def _configured(environ: MutableMapping[str, str]) -> bool:
    """Does the environment (or ./.env) say where the broker or the database is?"""
    if any(environ.get(name) for name in _CONNECTION_VARS):
        return True
    with contextlib.suppress(OSError):
        lines = Path(".env").read_text().splitlines()
        return any(line.strip().startswith(_CONNECTION_VARS) for line in lines)
    return False


def apply_discovery(environ: MutableMapping[str, str], workdir: Path | None = None) -> dict[str, Any] | None:
    """With no broker or database configured, use what a running `execwatch up` started (its
    broker, databases, ports). A configured environment always wins, whole: never half of each."""
    if _configured(environ):
        return None
    data = discover(workdir)
    if data is None:
        return None
    for name, value in (data.get("env") or {}).items():
        environ.setdefault(name, str(value))
    return data


# --- supervision -------------------------------------------------------------------------------------


class Stop(Exception):
    """SIGINT or SIGTERM: stop everything."""


@dataclass
class Child:
    name: str  # a service, or WEB
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None


@dataclass
class Supervisor:
    work: Path
    env: dict[str, str]
    settings: Settings
    broker: EmbeddedBroker | None = None
    children: dict[str, Child] = field(default_factory=dict)

    def start(self, name: str) -> None:
        """Start (or start again) `python -m services.<name>`, appending to its log."""
        child = self.children.setdefault(name, Child(name, self.work / "logs" / f"{name}.log"))
        log = open(child.log_path, "ab")  # noqa: SIM115 (the child holds it; closed below)
        try:
            child.process = subprocess.Popen([sys.executable, "-m", f"services.{name}"], env=self.env,
                                             stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        child.started_at, child.restart_at = time.monotonic(), None

    def watch(self) -> bool:
        """One round: restart what died. True if anything changed (pids to write down)."""
        changed = False
        now = time.monotonic()
        if self.broker is not None and self.broker.process.poll() is not None:
            code = self.broker.process.returncode
            print(f"! Kafka: the embedded broker exited with code {code}; restarting it on "
                  f"{self.broker.bootstrap} (services re-publish what was in flight)", file=sys.stderr, flush=True)
            self.broker = EmbeddedBroker.start(port=self.broker.port, log_path=self.work / "logs" / "tansu.log")
            ensure_topics(self.broker.bootstrap, self.settings.topic_prefix)
            changed = True
        for child in self.children.values():
            proc = child.process
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self.start(child.name)
                    print(f"• {child.name} restarted (pid {child.process.pid if child.process else '?'})",
                          flush=True)
                    changed = True
                continue
            if proc is None or proc.poll() is None:
                continue
            child.failures = 0 if now - child.started_at >= STABLE_AFTER_S else child.failures + 1
            delay = 0.0 if child.failures == 0 else min(MAX_BACKOFF_S, 2.0 ** (child.failures - 1))
            child.restart_at = now + delay
            print(f"! {child.name} exited with code {proc.returncode}; restarting in {delay:.0f}s "
                  f"(see {child.log_path})", file=sys.stderr, flush=True)
        return changed

    def pids(self) -> dict[str, int]:
        out = {name: c.process.pid for name, c in self.children.items() if c.process and c.process.poll() is None}
        if self.broker is not None:
            out["kafka"] = self.broker.process.pid
        return out

    def stop(self) -> None:
        for child in self.children.values():
            if child.process and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        for child in self.children.values():
            if child.process is None:
                continue
            try:
                child.process.wait(15)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait(5)
        if self.broker:
            self.broker.stop()


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


def _raise_stop(signum: int, _: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def _write_discovery(work: Path, sup: Supervisor, settings: Settings, env: dict[str, str]) -> list[Path]:
    shared = {"KAFKA_BOOTSTRAP_SERVERS": env["KAFKA_BOOTSTRAP_SERVERS"], "DATABASE_URL": env["DATABASE_URL"],
              "EXECWATCH_TOPIC_PREFIX": settings.topic_prefix,
              "EXECWATCH_INGEST_URL": f"http://{settings.http_host}:{settings.ingest_port}"}
    shared |= {f"EXECWATCH_{s.upper()}_DATABASE_URL": settings.database_url_for(s) for s in SERVICES
               if getattr(settings, f"{s}_database_url")}
    shared |= {f"EXECWATCH_{s.upper()}_PORT": str(settings.port_for(s)) for s in SERVICES}
    shared["EXECWATCH_WEB_PORT"] = str(settings.web_port)
    if settings.auth_database_url:
        shared["EXECWATCH_AUTH_DATABASE_URL"] = settings.auth_database_url
    ports: dict[str, int] = {s: settings.port_for(s) for s in SERVICES}
    ports[WEB] = settings.web_port
    data = {"pid": os.getpid(), "workdir": str(work), "bootstrap": env["KAFKA_BOOTSTRAP_SERVERS"],
            "database": redacted(env["DATABASE_URL"]), "ports": ports,
            "pids": sup.pids(), "env": shared}
    written = []
    for path in dict.fromkeys([work / RUNTIME_FILE, *discovery_paths(work)[1:]]):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2))
            os.chmod(tmp, 0o600)  # the database URL may hold a password
            tmp.replace(path)
            written.append(path)
        except OSError as exc:
            print(f"could not write {path}: {exc}", file=sys.stderr)
    return written


def run_local(demo: bool = False, workdir: str = "var", clock: str | None = None) -> int:
    work = Path(workdir).resolve()
    (work / "logs").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    sink: MailSink | None = None
    sup: Supervisor | None = None
    written: list[Path] = []
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        broker: EmbeddedBroker | None = None
        if not env.get("KAFKA_BOOTSTRAP_SERVERS") and not env.get("EXECWATCH_KAFKA_BOOTSTRAP_SERVERS"):
            broker = EmbeddedBroker.start(log_path=work / "logs" / "tansu.log")
            env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
            print(f"• Kafka: embedded tansu broker on {broker.bootstrap} (memory storage)")
        env.setdefault("KAFKA_BOOTSTRAP_SERVERS", env.get("EXECWATCH_KAFKA_BOOTSTRAP_SERVERS", ""))
        if not env.get("DATABASE_URL") and not env.get("EXECWATCH_DATABASE_URL"):
            env["DATABASE_URL"] = f"sqlite:///{work}/execwatch.db"
        env.setdefault("DATABASE_URL", env.get("EXECWATCH_DATABASE_URL", ""))
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
        sup = Supervisor(work, env, settings, broker)
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
            sup.start(service)
        sup.start(WEB)
        base = f"http://{settings.http_host}"
        for name, url in [*((s, f"{base}:{settings.port_for(s)}/readyz") for s in SERVICES),
                          (WEB, f"{base}:{settings.web_port}/healthz")]:
            proc = sup.children[name].process
            assert proc is not None
            _wait_healthy(url, proc)
        written = _write_discovery(work, sup, settings, env)
        print("\nexecwatch is up:")
        for service in SERVICES:
            port = settings.port_for(service)
            print(f"  {service:9} {base}:{port}/docs   metrics {base}:{port}/metrics")
        print(f"  web       {base}:{settings.web_port}/   (staff pages, Korean)")
        print(f"  logs      {work / 'logs'}")
        print(f"  runtime   {', '.join(str(p) for p in written)} (other execwatch commands read it)\n")
        if demo:
            print(f"demo: sign in to the staff pages as the demo 팀장 of {DEMO_STAFF_DIVISION}: "
                  f"{base}:{settings.web_port}/signin?as=staff")
            _demo(made, f"{base}:{settings.ingest_port}", f"{base}:{settings.port_for('budget')}")
        print("Press Ctrl-C to stop.", flush=True)
        while True:
            if sup.watch():
                written = _write_discovery(work, sup, settings, env)
            time.sleep(0.5)
    except (Stop, KeyboardInterrupt) as stop:
        print(f"\nstopping ({stop or 'SIGINT'})…", flush=True)
    except Exception as exc:
        print(f"execwatch up failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    finally:
        for sig in previous:  # a second Ctrl-C must not cut the shutdown short and leave orphans
            signal.signal(sig, signal.SIG_IGN)
        if sup is not None:
            sup.stop()
        if sink:
            sink.stop()
        for path in written:
            with contextlib.suppress(OSError):
                if json.loads(path.read_text()).get("pid") == os.getpid():
                    path.unlink()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code


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
