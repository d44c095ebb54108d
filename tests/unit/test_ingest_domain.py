"""Ingest's content hash, computed from the bytes it stores, is the contracts' content hash: a
resend of an event stored before (hashed from the model) stays a duplicate, never a conflict."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import given

from contracts import EVENT_MODELS, Alert, AlertEvent, content_hash, dump_event, parse_event
from services.ingest import domain
from tests.unit.test_contract_properties import SETTINGS, events


@SETTINGS
@given(events)
def test_the_hash_of_the_encoded_event_is_the_contract_hash(data):
    event = parse_event(data)
    checked = domain.check(0, data, event.source, domain.Policy(mail_domains=("seoul.go.kr",)))
    if isinstance(checked, domain.Problem):  # policy (a contact's mail domain): not hashed
        assert checked.stage == "policy"
        return
    assert checked.value == dump_event(event) == event.model_dump_json().encode("utf-8")
    assert checked.source_event_id == str(event.event_id)
    assert checked.content_hash == content_hash(event)
    assert domain.content_hash_of(dump_event(parse_event(json.dumps(data)))) == content_hash(event)


def test_a_korean_event_hashes_as_stored_before():
    data = {"event_id": "0b6f3c1e-3f1a-4b7e-9a4e-2d1c5e8f9a01", "event_type": "budget.execution_snapshot",
            "occurred_at": "2025-03-31T09:00:00.123456+09:00", "source": "재정-시스템", "key": "2025-경제-001",
            "payload": {"program_id": "2025-경제-001", "fiscal_year": 2025, "as_of": "2025-03-31",
                        "committed": 10**15, "spent": 0, "revision": 3,
                        "source_ref": {"document": "예산현황 (3월) \\ \"집행\"", "line": 7}}}
    checked = domain.check(0, data, "재정-시스템", domain.Policy())
    assert isinstance(checked, domain.Checked)
    assert checked.content_hash == content_hash(parse_event(data))


def test_every_integer_an_ingested_event_holds_is_within_64_bits():
    """orjson reads integers beyond 64 bits as floats: `content_hash_of` relies on none being
    possible in an event ingest accepts (alerts are refused before it is hashed)."""
    def unbounded(schema: Any, path: str) -> list[str]:
        if isinstance(schema, dict):
            found = []
            if schema.get("type") == "integer":
                low, high = schema.get("minimum", schema.get("exclusiveMinimum")), \
                    schema.get("maximum", schema.get("exclusiveMaximum"))
                if low is None or high is None or low < -(2**63) or high >= 2**63:
                    found.append(path)
            return found + [p for k, v in schema.items() for p in unbounded(v, f"{path}/{k}")]
        if isinstance(schema, list):
            return [p for i, v in enumerate(schema) for p in unbounded(v, f"{path}[{i}]")]
        return []
    found = [p for name, model in EVENT_MODELS.items() if name != "alert"
             for p in unbounded(model.model_json_schema(mode="serialization"), name)]
    assert found == []
    alert = AlertEvent(
        event_id=uuid.UUID(int=7), occurred_at=datetime(2025, 3, 31, tzinfo=UTC), source="budget", key="P1",
        payload=Alert(fingerprint="f", rule="execution_slipped", status="firing", severity="warning",
                      program_id="P1", summary="집행률이 낮습니다", generator="budget",
                      starts_at=datetime(2025, 3, 31, tzinfo=UTC), figures={"won": 10**30}))
    refused = domain.check(0, json.loads(dump_event(alert)), "budget", domain.Policy())
    assert isinstance(refused, domain.Problem) and refused.stage == "rights"  # before any hash
