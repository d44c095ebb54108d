"""What each service documents about itself: `/openapi.json` gives every route a typed body for
its success answer, `POST /v1/events` documents the contracts' event union exactly (a real event
validates against it, one without `event_type` does not), and `/asyncapi.json` documents each
channel's payload as the events its topics carry."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import date
from typing import Any

import httpx
import jsonschema_rs
import pytest
from fastapi import FastAPI

from contracts import EVENT_MODELS
from contracts.topics import BUDGET, PROGRAMS
from services.budget.app import build as build_budget
from services.common.settings import Settings
from services.ingest.app import build as build_ingest
from services.notify.app import build as build_notify
from services.programs.app import build as build_programs
from tests import factories as f

#: Prometheus' text format, served by the runtime's shell; the one route documented without a body schema.
UNTYPED = {("get", "/metrics")}
PROGRAM_EVENTS = set(PROGRAMS.event_types)
#: What each service's subscriber reads (the topics it consumes; ingest's inbound topic carries any event).
CONSUMED = {"ingest": set(EVENT_MODELS), "budget": PROGRAM_EVENTS | set(BUDGET.event_types),
            "programs": PROGRAM_EVENTS, "notify": PROGRAM_EVENTS | {"alert"}}


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FastAPI]]:
    # Documents only: no lifespan (no database, no broker) is needed to serve them.
    url = f"sqlite:///{tmp_path_factory.mktemp('docs') / 'execwatch.db'}"
    settings = Settings(_env_file=None, database_url=url, log_json=False,  # type: ignore[call-arg]
                        notify_ack_secret="docs-ack-secret-not-the-demo-one")
    yield {"ingest": build_ingest(settings, start_broker=False),
           "budget": build_budget(settings, start_broker=False),
           "programs": build_programs(settings, start_broker=False, clock=lambda: date(2025, 2, 3)),
           "notify": build_notify(settings, start_broker=False)}


async def fetch(app: FastAPI, path: str) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
        response = await client.get(path)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


@pytest.fixture(scope="module")
async def openapi(apps: dict[str, FastAPI]) -> AsyncIterator[dict[str, dict[str, Any]]]:
    yield {name: await fetch(app, "/openapi.json") for name, app in apps.items()}


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = spec["components"]["schemas"][name]
    return schema


def refs(node: Any) -> set[str]:
    """Every `$ref` in a document."""
    if isinstance(node, dict):
        return {node["$ref"]} if isinstance(node.get("$ref"), str) else set().union(*map(refs, node.values()))
    if isinstance(node, list):
        return set().union(*map(refs, node)) if node else set()
    return set()


@pytest.mark.parametrize("service", ["ingest", "budget", "programs", "notify"])
def test_every_route_documents_its_success_body(openapi: dict[str, dict[str, Any]], service: str) -> None:
    spec = openapi[service]
    routes = 0
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            routes += 1
            success = {code: r for code, r in op["responses"].items() if code.startswith("2")}
            assert success, f"{method} {path}: no 2xx answer documented"
            if (method, path) in UNTYPED:
                continue
            for code, answer in success.items():
                assert answer.get("content"), f"{method} {path} {code}: no body documented"
                for media, content in answer["content"].items():
                    schema = content.get("schema") or {}
                    assert schema, f"{method} {path} {code} {media}: a bare schema"
                    if media == "application/json":
                        typed = resolve(spec, schema)
                        assert typed.keys() & {"properties", "items", "anyOf", "oneOf", "additionalProperties"}, \
                            f"{method} {path} {code}: the JSON body has no shape: {typed}"
            for code, answer in op["responses"].items():  # errors too: a model each
                for media, content in answer.get("content", {}).items():
                    assert content.get("schema"), f"{method} {path} {code} {media}: a bare schema"
    assert routes >= 4
    # every reference resolves
    known = {f"#/components/schemas/{name}" for name in spec.get("components", {}).get("schemas", {})}
    assert refs(spec) <= known, refs(spec) - known


def test_the_read_apis_name_their_bodies(openapi: dict[str, dict[str, Any]]) -> None:
    def body(service: str, method: str, path: str, code: str = "200") -> str:
        content = openapi[service]["paths"][path][method]["responses"][code]["content"]
        return str(content["application/json"]["schema"].get("$ref", "")).rsplit("/", 1)[-1]

    assert body("budget", "get", "/v1/budget/summary") == "Summary"
    assert body("budget", "get", "/v1/budget/programs/{program_id}") == "ProgramDetail"
    assert body("programs", "get", "/v1/programs/{program_id}") == "ProgramDetail"
    assert body("notify", "post", "/v1/silences", "201") == "SilenceOut"
    # CSV is documented as the alternative body of the routes that answer it
    summary = openapi["budget"]["paths"]["/v1/budget/summary"]["get"]["responses"]["200"]["content"]
    assert set(summary) == {"application/json", "text/csv"}
    # and the rates are strings, the amounts integers
    figures = openapi["budget"]["components"]["schemas"]["TotalFigures"]["properties"]
    assert figures["current"]["type"] == "integer"
    assert {"type": "string"} in figures["rate"]["anyOf"]


def test_post_events_documents_the_event_union(openapi: dict[str, dict[str, Any]]) -> None:
    spec = openapi["ingest"]
    op = spec["paths"]["/v1/events"]["post"]
    body = op["requestBody"]["content"]["application/json"]["schema"]
    one, many, batch = body["anyOf"]
    # one event: the union discriminated by event_type, every event type of the contracts in it
    assert one["discriminator"]["propertyName"] == "event_type"
    mapping = one["discriminator"]["mapping"]
    assert set(mapping) == set(EVENT_MODELS)
    for event_type, model in EVENT_MODELS.items():
        ref = f"#/components/schemas/{model.__name__}"
        assert mapping[event_type] == ref and {"$ref": ref} in one["oneOf"]
        event = spec["components"]["schemas"][model.__name__]
        assert event["properties"]["event_type"]["const"] == event_type
        assert "event_type" in event["required"]  # as at the door
    assert many["type"] == "array" and many["items"] == one
    assert resolve(spec, batch)["properties"]["events"]["items"] == one
    # answers: the 202 model and a model for each refusal
    answers = op["responses"]
    assert answers["202"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/AcceptedEvents"}
    for code in ("400", "401", "403", "409", "413", "422", "429"):
        schema = answers[code]["content"]["application/json"]["schema"]
        options = [resolve(spec, s) for s in schema.get("anyOf", [schema])]
        assert all("error" in o["properties"] for o in options), code
    assert "rejected" in resolve(spec, answers["422"]["content"]["application/json"]["schema"])["properties"]
    assert "conflicts" in resolve(spec, answers["409"]["content"]["application/json"]["schema"])["properties"]


def test_the_documented_event_schema_is_the_doors_rule(openapi: dict[str, dict[str, Any]]) -> None:
    spec = openapi["ingest"]
    body = spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    validator = jsonschema_rs.Draft202012Validator({**body, "components": spec["components"]})
    events = [f.program(), f.budget_line(), f.snapshot(), f.milestone()]
    for event in events:
        assert not list(validator.iter_errors(event)), event["event_type"]
    assert validator.is_valid(events) and validator.is_valid({"events": events})
    untyped = {k: v for k, v in f.program().items() if k != "event_type"}
    assert not validator.is_valid(untyped)  # refused at the door too (tests/unit/test_contracts.py)
    assert not validator.is_valid({**f.program(), "event_type": "program.guess"})
    assert not validator.is_valid({**f.budget_line(), "unknown": 1})


@pytest.mark.parametrize("service", ["ingest", "budget", "programs", "notify"])
async def test_asyncapi_documents_every_channels_payload(apps: dict[str, FastAPI], service: str) -> None:
    doc = await fetch(apps[service], "/asyncapi.json")
    schemas = doc["components"]["schemas"]
    assert "EmptyPayload" not in schemas
    assert doc["channels"]
    for name, channel in doc["channels"].items():
        for message_ref in channel["messages"].values():
            message = doc["components"]["messages"][message_ref["$ref"].rsplit("/", 1)[-1]]
            payload = schemas[message["payload"]["$ref"].rsplit("/", 1)[-1]]
            assert payload["discriminator"] == "event_type", name
            carried = {option["properties"]["event_type"]["const"] for option in payload["oneOf"]}
            assert carried == CONSUMED[service], name
            for option in payload["oneOf"]:
                assert {"event_id", "event_type", "payload"} <= set(option["required"])
    known = {f"#/components/schemas/{n}" for n in schemas}
    dangling = {r for r in refs(doc) if r.startswith("#/components/schemas/")} - known
    assert not dangling, json.dumps(sorted(dangling))
