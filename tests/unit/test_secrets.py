"""No secrets in logs: credential-looking fields are masked, database URLs lose their password."""

import json

import structlog

from services.common.db import redacted
from services.common.logging import configure_logging, get_logger
from services.common.settings import Settings


def test_log_fields_that_look_like_credentials_are_masked(capsys):
    configure_logging("INFO", json=True, service="test")
    get_logger("t").info("connecting", smtp_password="hunter2", api_token="abc", host="mail")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["smtp_password"] == "***" and line["api_token"] == "***" and line["host"] == "mail"
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def test_database_urls_are_logged_without_password():
    assert redacted("postgresql://execwatch:s3cret@db:5432/execwatch") == \
        "postgresql+psycopg://execwatch:***@db:5432/execwatch"


def test_settings_repr_hides_tokens_and_passwords():
    s = Settings(_env_file=None, smtp_password="pw-123", ingest_sources='{"dept": "tok-456"}')  # type: ignore[arg-type]
    text = repr(s) + str(s.model_dump())
    assert "pw-123" not in text and "tok-456" not in text
