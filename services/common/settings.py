"""One settings class for every service, read from the environment (and `.env`).

Names are `EXECWATCH_*`; the two that operators set most also answer to their common names
(`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`). Secrets are SecretStr so they never reach a log.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: The acknowledge-link secret shipped for the demo: anything but the demo refuses to start with it.
DEMO_ACK_SECRET = "execwatch-ack"

ServiceName = Literal["ingest", "budget", "programs", "notify"]
SERVICES: tuple[ServiceName, ...] = ("ingest", "budget", "programs", "notify")

# Values that ship in the code: fine for the demo, refused by a real start (services.common.auth).
DEMO_AUTH_SECRET = "execwatch-demo-secret"
DEMO_ACK_SECRET = "execwatch-ack"
DEMO_TOKENS = frozenset({"demo-token", "importer-token", "change-me", "change-me-too"})
DEMO_WEB_SECRET = "execwatch-web"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXECWATCH_", env_file=".env", extra="ignore")

    demo: bool = Field(
        default=False, description="run as the demo (`execwatch up --demo`): demo secrets and tokens are allowed"
    )

    # --- Kafka -----------------------------------------------------------------------------------
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "EXECWATCH_KAFKA_BOOTSTRAP_SERVERS"),
        description="host:port[,host:port]; unset means `execwatch up` starts the embedded broker",
    )
    topic_prefix: str = Field(default="", description="isolates tests and side-by-side deployments")
    kafka_idempotence: bool = Field(
        default=False, description="enable for Apache Kafka; the embedded tansu broker does not support it"
    )
    broker_connect_timeout_s: float = Field(
        default=20.0, gt=0, description="wait this long for Kafka at start, then keep retrying in the background"
    )
    ensure_topics: bool = Field(default=True, description="create missing topics at start (partitions from contracts)")
    consumer_batch_size: int = Field(
        default=2000, ge=1,
        description="most records per consumed batch; a consumer that keeps up gets what arrived since the last "
                    "fetch (fewer), one catching up gets this many: the per-batch costs (inbox and state reads, "
                    "the transaction, the offset commit) spread over more events"
    )
    consumer_batch_timeout_ms: int = Field(default=100, ge=1)
    # aiokafka's default is 500 ms. A broker may hold a fetch that found nothing for that long even
    # when records arrive meanwhile (tansu does): at 2,000 events/s HTTP → budget view p50 went
    # 165 → 33 ms and p99 298 → 184 ms with 50 ms (docs/benchmarks.md). With a backlog fetches
    # return at once, so only an idle consumer's empty fetches get more frequent (20/s).
    consumer_fetch_max_wait_ms: int = Field(
        default=50, ge=1,
        description="longest the broker may hold a fetch that finds no new records"
    )
    consumer_pipeline_depth: int = Field(
        default=1, ge=0, le=8,
        description="batches decoded and queued while one is applied (their offsets are committed only after "
                    "their database commit); 0 = fetch, apply and commit one batch at a time"
    )
    consumer_session_timeout_ms: int = Field(
        default=10_000, ge=1000, description="group session; a consumer's first join waits about half of it"
    )
    broker_watch_interval_s: float = Field(
        default=5.0, gt=0, description="how often each service checks the broker still has its data, and "
                                      "measures its consumers' lag and progress"
    )
    relay_republish_window_s: float = Field(
        default=3600.0, ge=0, description="after the broker lost its data, re-publish what the outbox sent "
                                          "in this many seconds (consumers are idempotent)"
    )
    relay_republish_max_rows: int = Field(default=10_000, ge=0, description="…at most this many rows (newest)")
    relay_marker_max_age_s: float = Field(
        default=5.0, ge=0, description="a relay publishes without reading the broker's marker again if it was "
                                       "read successfully this recently (the broker watch reads it every "
                                       "broker_watch_interval_s); after a failed publish it is always read again"
    )

    # --- health ----------------------------------------------------------------------------------
    health_outbox_max_age_s: float = Field(
        default=300.0, gt=0, description="/readyz fails when an outbox row waits longer than this to be published"
    )
    health_consumer_stall_s: float = Field(
        default=300.0, gt=0, description="/readyz fails when a consumer with messages waiting has not committed "
                                         "a batch for this long"
    )

    # --- storage ---------------------------------------------------------------------------------
    database_url: str = Field(
        default="sqlite:///var/execwatch.db",
        validation_alias=AliasChoices("DATABASE_URL", "EXECWATCH_DATABASE_URL"),
    )
    ingest_database_url: str | None = None
    budget_database_url: str | None = None
    programs_database_url: str | None = None
    notify_database_url: str | None = None

    # --- HTTP ------------------------------------------------------------------------------------
    http_host: str = "127.0.0.1"
    ingest_port: int = 8701
    budget_port: int = 8702
    programs_port: int = 8703
    notify_port: int = 8704
    ingest_relay_port: int = Field(default=8706, description="health and metrics of `execwatch serve ingest-relay`")

    # --- logging ---------------------------------------------------------------------------------
    log_level: str = "INFO"
    log_json: bool = True

    # --- ingest ----------------------------------------------------------------------------------
    ingest_sources: dict[str, SecretStr] = Field(
        default_factory=lambda: {
            "demo-system": SecretStr("demo-token"),
            "report-importer": SecretStr("importer-token"),
        },
        description='JSON {"source": "token"}: department systems allowed to publish, and their tokens',
    )
    ingest_max_batch: int = Field(default=1000, ge=1)
    ingest_max_body_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="largest HTTP request body; larger is refused (413) unread"
    )
    relay_interval_s: float = Field(default=0.5, gt=0)
    # Python runs one thread at a time: accepts in several threads at once cost ≈ 12 % more CPU per
    # event than one after another (switching, contention), which SQLite, whose writers take turns
    # anyway, never pays back; PostgreSQL does, by overlapping each accept's round trips.
    ingest_accept_concurrency: int = Field(
        default=0, ge=0, description="HTTP requests accepted at once per process (each in a worker thread; "
                                     "the rest wait their turn, read); 0: 1 on SQLite, 4 on PostgreSQL"
    )
    # A relay in the accepting process takes a large share of its one core (the producer's
    # encoding, the marking: ≈ 40 % in docs/benchmarks.md); as its own process it leaves the core
    # to accepting. Both coordinate through the outbox and the leader lock, so either way each row
    # is published once per round and marked once.
    ingest_relay_inline: bool = Field(
        default=True, description="publish ingest's outbox from the ingest process itself; false when "
                                  "`execwatch serve ingest-relay` runs the relay as its own process"
    )
    ingest_relay_poll_s: float = Field(
        default=0.02, gt=0, description="how often the relay as its own process looks for new outbox rows "
                                        "(no commit in its process wakes it)"
    )

    # --- budget ----------------------------------------------------------------------------------
    plan_midyear_rate: Decimal = Field(default=Decimal("60"), description="planned 집행률 by 30 June (신속집행)")
    slip_warning_gap: Decimal = Field(default=Decimal("10"), description="percentage points behind plan")
    slip_critical_gap: Decimal = Field(default=Decimal("20"))
    slip_min_budget: int = Field(default=0, ge=0, description="no slip alert below this 예산현액 (원)")
    slip_default_from: str = Field(
        default="04-01", pattern=r"^\d{2}-\d{2}$",
        description="MM-DD from which slips against the default curve are alerted (a program's own monthly "
                    "plan is judged all year): first-quarter spending follows 공모/선정/교부, not a straight line")
    slip_default_min_gap_amount: int = Field(
        default=100_000_000, ge=0,
        description="원: a default-curve slip is alerted only when 계획 금액 − 지출액 also exceeds this")
    plan_funding_keywords: list[str] = Field(
        default_factory=lambda: ["선정", "협약", "교부", "지급", "공모", "계약"],
        description="JSON list: milestone titles with any of these mark when a program's money can move; the "
                    "default curve of a program starts at its first such milestone of the year (0 before)")
    plan_midyear_date: str = Field(default="06-30", pattern=r"^\d{2}-\d{2}$",
                                   description="MM-DD of the first-half target (신속집행)")
    plan_excluded_categories: list[str] = Field(
        default_factory=lambda: ["기본경비", "전출금", "국고보조금 반환"],
        description="JSON list: categories (or program titles) with no execution plan and no slip alerts",
    )
    year_end_risk_from: str = Field(default="09-01", pattern=r"^\d{2}-\d{2}$",
                                    description="MM-DD from which 불용 위험 is evaluated")
    year_end_risk_rate: Decimal = Field(default=Decimal("90"), description="projected 집행률 below this: warning")
    year_end_critical_rate: Decimal = Field(default=Decimal("70"), description="projected 집행률 below this: critical")
    year_end_window_days: int = Field(default=60, ge=7, description="pace measured over this many recent days")
    budget_consumer_group: str = Field(default="execwatch-budget",
                                       description="a new group replays the budget topic from the start")
    budget_cache_programs: int = Field(
        default=200_000, ge=1,
        description="programs whose state the budget service keeps between batches (least recently written "
                    "evicted first, reloaded when next seen): ≈ 2.5 KB each, ≈ 7 KB more from the year-end start")
    budget_metrics_refresh_s: float = Field(default=15.0, gt=0, description="division gauges are refreshed this often")

    # --- programs --------------------------------------------------------------------------------
    overdue_grace_days: int = Field(default=0, ge=0, description="days after a window's end before it is late")
    overdue_warning_after_days: int = Field(
        default=1, ge=1, description="late by fewer days than this is severity info (1 = warning at once)"
    )
    overdue_critical_after_days: int = Field(default=30, ge=1, description="late by this many days is critical")
    moved_critical_days: int = Field(
        default=30, ge=1, description="a milestone slipped this many days past its first planned end is critical"
    )
    deadline_reminder_days: list[int] = Field(
        default_factory=lambda: [7, 1], description="D-n reminders before a window's end (JSON list), once each"
    )
    target_tolerance_pp: Decimal = Field(
        default=Decimal("10"), ge=0, description="target progress may trail the elapsed share by this many %p"
    )
    target_critical_gap_pp: Decimal = Field(default=Decimal("30"), ge=0, description="%p behind that is critical")
    check_interval_s: float = Field(default=60.0, gt=0)
    programs_group_id: str = Field(default="execwatch-programs", description="a new group replays the topic")
    clock: str | None = Field(default=None, description="ISO date to freeze the clock at (replays, demos)")

    # --- notify ----------------------------------------------------------------------------------
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    mail_from: str = "execwatch@seoul.example"
    recipient_address_template: str = Field(
        default="{phone_digits}@staff.seoul.example",
        description="address for a contact without email; fields: name, phone_digits, role",
    )
    notify_routing_file: str | None = Field(
        default=None, description="routing YAML; unset means services/notify/routing.yaml (validated at start)"
    )
    notify_templates_dir: str | None = Field(
        default=None, description="directory of edited Jinja2 templates; files there win over the packaged ones"
    )
    notify_group_wait_s: float = Field(default=30.0, ge=0, description="first message of a new group waits this long")
    notify_group_interval_s: float = Field(default=300.0, ge=0, description="between messages of one group")
    notify_repeat_interval_s: float = Field(default=86_400.0, gt=0, description="reminder of still-firing alerts")
    notify_quiet_hours: bool = Field(default=True, description="hold staff messages at night and on weekends")
    notify_quiet_start: str = "21:00"
    notify_quiet_end: str = Field(default="08:00", description="messages held overnight go out at this time")
    notify_quiet_weekends: bool = True
    notify_quiet_critical_bypass: bool = False
    notify_timezone: str = "Asia/Seoul"
    notify_escalation_after_s: float = Field(default=14_400.0, ge=0, description="0 disables escalation")
    notify_tick_s: float = Field(default=1.0, gt=0, description="scheduler period (due groups, escalations)")
    notify_max_attempts: int | None = Field(
        default=None, ge=1, description="give up after this many tries even within the retry window (unset: no cap)"
    )
    notify_retry_for_s: float = Field(
        default=12 * 3600.0, gt=0,
        description="a delivery is retried this long (while its alerts still fire), then failed; redrive resends",
    )
    notify_retry_base_s: float = Field(default=30.0, gt=0, description="first retry delay; doubles, with jitter")
    notify_retry_max_s: float = Field(default=600.0, gt=0, description="cap of the retry delay")
    notify_webhook_timeout_s: float = Field(default=10.0, gt=0)
    notify_claim_lease_s: float = Field(
        default=300.0, ge=30,
        description="a dispatcher round's claim on its deliveries; a replica that dies holds them this long",
    )
    notify_consumer_group: str = Field(default="execwatch-notify",
                                       description="one group for every notify replica; a new group replays alerts")
    notify_ack_secret: SecretStr = Field(
        default=SecretStr(DEMO_ACK_SECRET),
        description="signs acknowledge links; the default is the demo's, refused unless EXECWATCH_DEMO",
    )
    notify_ack_link_ttl_s: float = Field(default=7 * 86_400.0, gt=0, description="acknowledge links expire")
    notify_public_url: str | None = Field(default=None, description="base URL of the notify API, for links in mail")
    notify_program_url: str | None = Field(
        default=None,
        description="link to a program's page, with {program_id} (URL-encoded); unset: the budget service's "
                    "/v1/budget/programs/{program_id} on http_host:budget_port",
    )
    mail_from_name: str = Field(default="execwatch 알림", description="display name in From:")

    # --- web (staff pages; reads the other services over HTTP, owns no data) ---------------------
    web_port: int = 8705
    web_budget_url: str | None = Field(default=None, description="base URL of the budget API; unset: local port")
    web_programs_url: str | None = Field(default=None, description="base URL of the programs API; unset: local port")
    web_notify_url: str | None = Field(default=None, description="base URL of the notify API; unset: local port")
    web_session_secret: SecretStr = Field(
        default=SecretStr(DEMO_WEB_SECRET),
        description="encrypts and signs the web's session cookies; the default is the demo's, refused unless "
                    "EXECWATCH_DEMO")
    web_session_hours: float = Field(default=8.0, gt=0,
                                     description="a sign-in lasts this long (at most as long as its access session)")
    web_demo_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="demo only (JSON, set by `execwatch up --demo`): API keys of the people the demo sign-in "
                    "offers, by label; ignored unless EXECWATCH_DEMO")
    web_timeout_s: float = Field(default=5.0, gt=0, description="per request to a read API")

    # --- access (docs/security.md) ------------------------------------------------------------------
    auth_database_url: str | None = Field(
        default=None, description="where API keys, audit log and login-link use live; unset: DATABASE_URL")
    auth_secret: SecretStr = Field(default=SecretStr(DEMO_AUTH_SECRET),
                                   description="signs staff sessions and sign-in links (demo value refused)")
    auth_login_url: str | None = Field(
        default=None,
        description="where mailed sign-in links point (the staff web's /auth/callback, which exchanges the token "
                    "at notify); unset: notify's own confirmation page")
    auth_session_ttl_s: int = Field(default=8 * 3600, ge=60, description="a staff session lasts this long")
    auth_login_ttl_s: int = Field(default=900, ge=60, description="a sign-in link is valid this long, once")
    auth_failures_per_min: int = Field(default=10, ge=1,
                                       description="failed authentications per credential and per address")
    auth_writes_per_min: int = Field(default=120, ge=1, description="write requests per identity and per address")
    mail_domains: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["seoul.go.kr", "seoul.example"],
        description="contacts in events may only have addresses in these domains (or their subdomains); "
                    "JSON list or comma-separated")

    @field_validator("mail_domains", mode="before")
    @classmethod
    def _domains_from_text(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else text.split(",")
        if isinstance(value, list | tuple):  # compared lower-case, without a leading @
            return [str(d).strip().lower().lstrip("@") for d in value if str(d).strip()]
        return value

    @field_validator("ingest_sources", "web_demo_keys", mode="before")
    @classmethod
    def _sources_from_json(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value

    def database_url_for(self, service: ServiceName) -> str:
        specific: str | None = getattr(self, f"{service}_database_url")
        return specific or self.database_url

    @property
    def auth_db_url(self) -> str:
        """Every service reads identities from here; by default the one shared database."""
        return self.auth_database_url or self.database_url

    def port_for(self, service: ServiceName) -> int:
        port: int = getattr(self, f"{service}_port")
        return port

    def web_upstream(self, service: Literal["budget", "programs", "notify"]) -> str:
        configured: str | None = getattr(self, f"web_{service}_url")
        return (configured or f"http://{self.http_host}:{self.port_for(service)}").rstrip("/")

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
