"""Every JSON API's OpenAPI, fuzzed by schemathesis in-process: no request — valid or not — gets a
5xx, and what a route answers matches the response model it declares.

The four services run their real lifespans (migrations, access tables, background tasks; no
broker), with a little data in them so that the read routes have rows to serialise, and are called
as an operator. The web's routes are HTML pages and forms, not a JSON API: not fuzzed here.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import response_schema_conformance

from contracts import parse_event
from services.budget import service as budget_service
from services.budget.app import build as build_budget
from services.common.settings import Settings
from services.ingest.app import build as build_ingest
from services.notify.app import build as build_notify
from services.notify.service import ManualClock
from services.programs import service as programs_service
from services.programs.app import build as build_programs
from tests import factories as f
from tests.conftest import _fresh_pg_schema
from tests.helpers import bearer
from tests.service.test_notify_service import overdue, slip

# Bounded: 35 operations × valid and invalid input × 2 databases, about 800 requests in ~25 s
# (20 examples an operation took ~50 s of the suite's 10 minutes; 10 still reach every operation
# with valid and invalid bodies and parameters, on both databases).
pytestmark = pytest.mark.integration

EXAMPLES = 10
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
CHECKS = [schemathesis.checks.not_a_server_error, response_schema_conformance]


@dataclass
class Stack:
    apps: dict[str, FastAPI]
    headers: dict[str, dict[str, str]]


def _closed_port() -> int:
    """A port nothing listens on: mail the fuzzer triggers fails to send instead of going anywhere."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seed(apps: dict[str, FastAPI], settings: Settings) -> None:
    """A program with a budget line, an execution snapshot and a milestone, and two firing alerts."""
    events = [parse_event(e) for e in (f.program(), f.budget_line(), f.snapshot(spent=1_000_000, committed=2_000_000),
                                       f.milestone(), f.program("P-B", "창업 지원", "투자창업과"),
                                       f.budget_line("P-B", 900_000_000, "창업 지원", "투자창업과"))]
    budget_service.apply_batch(apps["budget"].state.runtime.db, budget_service.Config.from_settings(settings), events)
    programs_service.apply_batch(apps["programs"].state.runtime.db, programs_service.Config.from_settings(settings),
                                 events, date(2025, 2, 3))
    apps["notify"].state.notifier.apply_batch([events[0], slip(), overdue()])


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # PostgreSQL refuses what SQLite stores (NUL in text): both, as in production and the demo.
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('openapi') / 'execwatch.db'}"
    else:
        url = _fresh_pg_schema(request.getfixturevalue("pg_database"))
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=url, topic_prefix="fuzz.", log_json=False, log_level="ERROR",
        smtp_port=_closed_port(), notify_tick_s=3600, auth_writes_per_min=1_000_000,
        auth_secret="fuzz-auth-secret-0123456789", notify_ack_secret="fuzz-ack-secret-0123456789",
        notify_public_url="http://notify.test", recipient_address_template="{phone_digits}@staff.test")
    clock = ManualClock(datetime(2025, 2, 3, 1, 0, tzinfo=UTC))
    apps = {"ingest": build_ingest(settings, start_broker=False),
            "budget": build_budget(settings, start_broker=False),
            "programs": build_programs(settings, start_broker=False, clock=lambda: date(2025, 2, 3)),
            "notify": build_notify(settings, start_broker=False, clock=clock)}
    schemas = {}
    try:
        for name, app in apps.items():  # loading the schema starts the app's lifespan (kept until the end)
            schemas[name] = schemathesis.openapi.from_asgi("/openapi.json", app)
        _seed(apps, settings)
        yield Stack(apps, {name: bearer(app) for name, app in apps.items()})
    finally:
        asgi.shutdown_lifespans()


def fuzz_operation(operation: APIOperation, mode: GenerationMode, headers: dict[str, str]) -> tuple[int, str | None]:
    """Requests sent, and the (shrunk) failing case as schemathesis describes it, if any."""
    seen: list[Case] = []

    @FUZZ
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        seen.append(case)
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:  # nothing about this operation can be invalid (it takes no input)
        return len(seen), None
    except (Exception, BaseExceptionGroup) as exc:
        return len(seen), f"{operation.label} [{mode.value}]: {exc}\n  {seen[-1].as_curl_command()}"
    return len(seen), None


def fuzz(stack: Stack, service: str) -> tuple[int, int, list[str]]:
    """Every operation, with valid and with invalid input: (operations, requests, failures)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", stack.apps[service])
    operations = requests = 0
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in ("/healthz", "/readyz"):  # 503 by design here: no broker, so not ready; no input
            continue
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            sent, failure = fuzz_operation(operation, mode, stack.headers[service])
            requests += sent
            if failure:
                failures.append(failure)
    return operations, requests, failures


@pytest.mark.parametrize("service", ["ingest", "budget", "programs", "notify"])
def test_openapi_no_server_errors_and_responses_as_declared(stack: Stack, service: str) -> None:
    operations, requests, failures = fuzz(stack, service)
    print(f"{service}: {operations} operations, {requests} requests")
    assert operations >= 4 and requests >= operations * 5
    assert not failures, "\n".join(failures)
