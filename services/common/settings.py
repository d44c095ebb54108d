"""One settings class for every service, read from the environment (and `.env`).

Names are `EXECWATCH_*`; the two that operators set most also answer to their common names
(`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`). Secrets are SecretStr so they never reach a log.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ServiceName = Literal["ingest", "budget", "programs", "notify"]
SERVICES: tuple[ServiceName, ...] = ("ingest", "budget", "programs", "notify")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXECWATCH_", env_file=".env", extra="ignore")

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
    ensure_topics: bool = Field(default=True, description="create missing topics at start (partitions from contracts)")
    consumer_batch_size: int = Field(default=500, ge=1)
    consumer_batch_timeout_ms: int = Field(default=100, ge=1)
    consumer_session_timeout_ms: int = Field(
        default=10_000, ge=1000, description="group session; a consumer's first join waits about half of it"
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

    # --- logging ---------------------------------------------------------------------------------
    log_level: str = "INFO"
    log_json: bool = True

    # --- ingest ----------------------------------------------------------------------------------
    ingest_sources: dict[str, SecretStr] = Field(
        default_factory=lambda: {"demo-system": SecretStr("demo-token"), "report-importer": SecretStr("importer-token")},
        description='JSON {"source": "token"}: department systems allowed to publish, and their tokens',
    )
    ingest_max_batch: int = Field(default=1000, ge=1)
    relay_interval_s: float = Field(default=0.5, gt=0)

    # --- budget ----------------------------------------------------------------------------------
    plan_midyear_rate: Decimal = Field(default=Decimal("60"), description="planned 집행률 by 30 June (신속집행)")
    slip_warning_gap: Decimal = Field(default=Decimal("10"), description="percentage points behind plan")
    slip_critical_gap: Decimal = Field(default=Decimal("20"))
    slip_min_budget: int = Field(default=0, ge=0, description="no slip alert below this 예산현액 (원)")

    # --- programs --------------------------------------------------------------------------------
    overdue_grace_days: int = Field(default=0, ge=0)
    check_interval_s: float = Field(default=60.0, gt=0)
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

    @field_validator("ingest_sources", mode="before")
    @classmethod
    def _sources_from_json(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value

    def database_url_for(self, service: ServiceName) -> str:
        specific: str | None = getattr(self, f"{service}_database_url")
        return specific or self.database_url

    def port_for(self, service: ServiceName) -> int:
        port: int = getattr(self, f"{service}_port")
        return port

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
