import copy
import json
import uuid
from decimal import Decimal

import pytest

from contracts import ContractError, parse_event, parse_event_array
from contracts.money import UnitError, from_won, rate_percent, to_won
from contracts.schema_tool import (
    breaking_changes,
    check_against_committed,
    current_schemas,
    load_committed,
    tightened_limits,
)
from contracts.topics import BUDGET, PROGRAMS, message_key, topic_for
from tests import factories as f


@pytest.mark.parametrize(("amount", "unit", "won"), [
    ("1,375", "백만원", 1_375_000_000), ("41,106,204", "천원", 41_106_204_000), (Decimal("2.5"), "천원", 2500),
    (5, "억원", 500_000_000), ("0", "원", 0), ("1.2", "조원", 1_200_000_000_000),
])
def test_to_won_is_exact(amount, unit, won):
    assert to_won(amount, unit) == won


@pytest.mark.parametrize(("amount", "unit"), [("1.5", "원"), ("1", "달러"), ("abc", "천원")])
def test_to_won_refuses_inexact_or_unknown(amount, unit):
    with pytest.raises(UnitError):
        to_won(amount, unit)


def test_from_won_and_rate():
    assert from_won(1_375_000_000, "백만원") == Decimal(1375)
    assert rate_percent(123, 1000) == Decimal("12.3")
    assert rate_percent(1, 0) is None


def test_parse_event_gives_the_typed_envelope():
    event = parse_event(f.snapshot(spent=10, committed=20))
    assert event.event_type == "budget.execution_snapshot"
    assert event.payload.spent == 10  # type: ignore[union-attr]


def test_errors_name_the_field():
    bad = f.snapshot()
    bad["payload"]["spent"] = -1
    bad["payload"]["committed"] = "lots"
    with pytest.raises(ContractError) as info:
        parse_event(bad)
    fields = {e.field for e in info.value.errors}
    assert fields == {"payload.spent", "payload.committed"}


def test_unknown_event_type_is_reported_on_event_type():
    bad = f.snapshot()
    bad["event_type"] = "budget.guess"
    with pytest.raises(ContractError) as info:
        parse_event(bad)
    assert info.value.errors[0].field == "event_type"


def test_naive_timestamp_and_extra_fields_are_rejected():
    bad = f.snapshot()
    bad["occurred_at"] = "2025-02-01T09:00:00"
    bad["payload"]["spnet"] = 3
    with pytest.raises(ContractError) as info:
        parse_event(bad)
    assert {e.field for e in info.value.errors} == {"occurred_at", "payload.spnet"}


def test_key_must_be_the_program():
    bad = f.snapshot()
    bad["key"] = "someone-else"
    with pytest.raises(ContractError, match=r"must equal payload\.program_id"):
        parse_event(bad)


def test_current_budget_must_equal_its_parts():
    bad = f.budget_line()
    bad["payload"].update(original=100, carried_over=20, current=150)
    with pytest.raises(ContractError, match="예산현액"):
        parse_event(bad)
    ok = f.budget_line()
    ok["payload"].update(original=100, carried_over=20, supplementary=-10, current=110)
    assert parse_event(ok).payload.current_budget == 110  # type: ignore[union-attr]


def test_amendment_arithmetic_is_checked():
    ev = f.envelope("budget.amended", "P", {"program_id": "P", "fiscal_year": 2025, "amendment_id": "1차",
                                            "before": 100, "change": 50, "after": 160})
    with pytest.raises(ContractError, match="추경예산"):
        parse_event(ev)


def test_topics_and_keys():
    assert topic_for("budget.execution_snapshot") is BUDGET
    assert topic_for("milestone.set") is PROGRAMS
    assert message_key("서울형 R&D") == "서울형 R&D".encode()
    with pytest.raises(KeyError):
        topic_for("nope")


def test_committed_schemas_match_the_models():
    assert check_against_committed() == []


def _alert_schema():
    return copy.deepcopy(current_schemas()["alert.v1.json"])


def test_removing_a_field_breaks_consumers():
    old = _alert_schema()
    new = copy.deepcopy(old)
    del new["$defs"]["Alert"]["properties"]["summary"]
    assert breaking_changes(old, new) == ["payload.summary: removed or renamed"]


def test_optional_to_required_breaks_consumers():
    old = _alert_schema()
    new = copy.deepcopy(old)
    new["$defs"]["Alert"]["required"].append("office")
    assert "payload.office: was optional, now required" in breaking_changes(old, new)


def test_event_type_is_required_in_every_published_schema():
    committed = load_committed()
    assert len(committed) == 9
    for name, schema in committed.items():
        assert "event_type" in schema["required"], name
        assert "default" not in schema["properties"]["event_type"], name
    # as at the door: an envelope without it is refused
    event = f.program()
    del event["event_type"]
    with pytest.raises(ContractError) as info:
        parse_event(event)
    assert info.value.errors[0].field == "event_type"


def test_requiring_event_type_is_a_notice_not_a_break():
    new = _alert_schema()
    old = copy.deepcopy(new)
    old["required"].remove("event_type")
    old["properties"]["event_type"]["default"] = "alert"
    assert breaking_changes(old, new) == []
    assert tightened_limits(old, new) == ["event_type: now required (always sent: the door required it)"]
    old["required"].remove("source")  # any other envelope field made required still breaks
    assert breaking_changes(old, new) == ["source: was optional, now required"]


def test_narrowing_a_type_breaks_consumers():
    old = {"type": "object", "properties": {"n": {"anyOf": [{"type": "integer"}, {"type": "string"}]}}}
    new = {"type": "object", "properties": {"n": {"type": "integer"}}}
    assert breaking_changes(old, new) == ["n: no longer accepts string"]


def test_widening_and_optional_additions_are_compatible():
    old = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    new = {"type": "object", "properties": {"n": {"type": "number"}, "m": {"type": "string"}}, "required": ["n"]}
    assert breaking_changes(old, new) == []


def test_event_ids_are_uuids():
    event = parse_event(f.program())
    assert isinstance(event.event_id, uuid.UUID)


def test_committed_schemas_are_regenerated():
    from contracts.schema_tool import current_schemas, load_committed

    stale = [name for name, schema in current_schemas().items() if load_committed().get(name) != schema]
    assert stale == [], f"run `execwatch contracts write`: {stale}"


def test_a_division_snapshot_states_a_division_or_its_office() -> None:
    facts = {"office": "경제실", "fiscal_year": 2025, "as_of": "2025-01-31", "original": 668_901_000_000,
             "current": 682_752_000_000, "spent": 49_232_000_000, "unit": "백만원"}
    # the 계 of a 예산현황: the 실's own figures, keyed by the 실
    whole = parse_event(f.envelope("budget.division_snapshot", "division:경제실/", {**facts, "division": None}))
    assert whole.payload.division is None and whole.payload.original == 668_901_000_000
    sub = parse_event(f.envelope("budget.division_snapshot", "division:경제실/경제정책과",
                                 {**facts, "division": "경제정책과"}))
    assert sub.payload.division == "경제정책과"
    with pytest.raises(ContractError, match="division:경제실/"):
        parse_event(f.envelope("budget.division_snapshot", "division:경제실/경제정책과", {**facts, "division": None}))
    with pytest.raises(ContractError, match="name the office"):
        parse_event(f.envelope("budget.division_snapshot", "division:/", {**facts, "office": None}))
    with pytest.raises(ContractError, match="at least one"):
        parse_event(f.envelope("budget.division_snapshot", "division:경제실/", {
            "office": "경제실", "fiscal_year": 2025, "as_of": "2025-01-31"}))


def test_an_array_of_valid_events_is_read_in_one_pass_as_parse_event_reads_each():
    events = [f.program("P-A"), f.budget_line("P-A"), f.snapshot("P-A", spent=7), f.milestone("P-A")]
    body = json.dumps(events).encode()
    assert parse_event_array(b" \n\t" + body) == [parse_event(e) for e in events]
    assert parse_event_array(b"[]") == []


@pytest.mark.parametrize("body", [
    b'{"events": []}',  # not an array: the caller reads it its own way
    b"[1]",
    b"[{\"event_type\": \"no.such.type\"}]",
    b"[" + b"{}" + b"]",
    b"[not json",
])
def test_an_array_with_anything_invalid_is_none_for_the_caller_to_read_item_by_item(body):
    assert parse_event_array(body) is None


def test_an_array_with_one_invalid_event_among_valid_ones_is_none():
    events = [f.snapshot("P-A"), f.snapshot("P-B", spent=-1)]
    assert parse_event_array(json.dumps(events).encode()) is None
