"""The limits in the contract: sizes, lengths, money, dates, strict types, control characters."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from contracts import (
    MAX_EVENT_BYTES,
    ContractError,
    ProgramRegisteredEvent,
    content_hash,
    dump_event,
    encode_event,
    parse_event,
)
from contracts.limits import (
    CONTACTS_MAX,
    EMAIL_MAX,
    LIST_MAX,
    MAX_WON,
    NAME_MAX,
    PRODUCER_MAX_REQUEST_BYTES,
    SHORT_TEXT_MAX,
    TEXT_MAX,
    TITLE_MAX,
)
from contracts.schema_tool import breaking_changes, current_schemas, tightened_limits
from tests import factories as f


def _errors(data: Any) -> dict[str, str]:
    with pytest.raises(ContractError) as info:
        parse_event(data)
    return {e.field: e.message for e in info.value.errors}


def _both(event: dict[str, Any]) -> list[Any]:
    """The same event as a dict (HTTP) and as JSON bytes (the inbound topic)."""
    return [event, json.dumps(event).encode()]


def _with(event: dict[str, Any], **payload: Any) -> dict[str, Any]:
    out = copy.deepcopy(event)
    out["payload"].update(payload)
    return out


@pytest.mark.parametrize("form", ["dict", "json"])
@pytest.mark.parametrize(("changes", "field"), [
    ({"committed": 10**30}, "payload.committed"),
    ({"spent": MAX_WON + 1}, "payload.spent"),
    ({"spent": True}, "payload.spent"),
    ({"spent": "5"}, "payload.spent"),
    ({"spent": 5.0}, "payload.spent"),
    ({"fiscal_year": "2025"}, "payload.fiscal_year"),
    ({"revision": False}, "payload.revision"),
    ({"as_of": 1735603200}, "payload.as_of"),
    ({"program_id": "P-\x00", "as_of": "2025-01-31"}, "payload.program_id"),
])
def test_values_json_would_coerce_or_that_cannot_be_stored_are_refused(changes, field, form):
    event = _with(f.snapshot(), **changes)
    if "program_id" in changes:
        event["key"] = changes["program_id"]
    data = event if form == "dict" else json.dumps(event).encode()
    assert field in _errors(data)


def test_the_largest_amount_is_accepted_and_changes_are_symmetric():
    assert parse_event(f.snapshot(spent=MAX_WON, committed=MAX_WON)).payload.spent == MAX_WON  # type: ignore[union-attr]
    line = f.budget_line(original=MAX_WON)
    line["payload"]["supplementary"] = -MAX_WON
    assert parse_event(line).payload.current_budget == 0  # type: ignore[union-attr]
    line["payload"]["supplementary"] = -MAX_WON - 1
    assert "payload.supplementary" in _errors(line)


@pytest.mark.parametrize("data", _both(_with(f.program(), title="x" * 10_000_000)))
def test_a_ten_megabyte_title_is_refused(data):
    errors = _errors(data)
    if isinstance(data, bytes):  # raw JSON is refused on its size before it is parsed
        assert errors == {"(event)": f"event is {len(data):,} bytes; at most {MAX_EVENT_BYTES:,} bytes are accepted"}
    else:
        assert errors == {"payload.title": f"String should have at most {TITLE_MAX} characters"}


@pytest.mark.parametrize(("where", "value"), [
    ("key", "P\x00"), ("source", "demo\nsystem"), ("payload.title", "제목\r\nBcc: x@evil.example"),
    ("payload.contacts.0.name", "이병철\r\n"), ("payload.office", "경제실\u2028"), ("payload.team", "팀\x7f"),
])
def test_control_characters_are_refused_in_ids_names_and_titles(where, value):
    event = f.program()
    target: Any = event
    *path, last = where.split(".")
    for part in path:
        target = target[int(part)] if part.isdigit() else target[part]
    target[last] = value
    errors = _errors(event)
    assert errors[where] == "control characters (NUL, CR, LF, tab, …) are not allowed here"


def test_prose_may_have_line_breaks_but_no_other_control_characters():
    assert parse_event(_with(f.program(), purpose="첫째 줄\n둘째 줄\r\n\t셋째")).payload.purpose  # type: ignore[union-attr]
    assert "payload.purpose" in _errors(_with(f.program(), purpose="NUL\x00"))


@pytest.mark.parametrize("email", ["kim", "kim@", "@seoul.go.kr", "kim@seoul", "kim @seoul.go.kr",
                                   "kim@seoul.go.kr\r\nBcc: a@b.c", "k" * 65 + "@seoul.go.kr"])
def test_email_syntax_is_checked(email):
    event = f.program()
    event["payload"]["contacts"][0]["email"] = email
    assert _errors(event)["payload.contacts.0.email"]


def test_valid_email_is_accepted():
    event = f.program()
    event["payload"]["contacts"][0]["email"] = "kim.jy+budget@seoul.go.kr"
    assert parse_event(event).payload.contacts[0].email == "kim.jy+budget@seoul.go.kr"  # type: ignore[union-attr]


@pytest.mark.parametrize(("changes", "field"), [
    ({"fiscal_year": 1999}, "payload.fiscal_year"),
    ({"fiscal_year": 2101}, "payload.fiscal_year"),
    ({"period_start": "0001-01-01"}, "payload.period_start"),
    ({"period_end": "9999-12-31"}, "payload.period_end"),
])
def test_years_and_dates_stay_in_range(changes, field):
    assert field in _errors(_with(f.program(), **changes))


def test_occurred_at_stays_in_range():
    event = f.snapshot()
    event["occurred_at"] = "0001-01-01T00:00:00+00:00"
    assert "occurred_at" in _errors(event)


@pytest.mark.parametrize("form", ["dict", "json"])
@pytest.mark.parametrize("value", [1735603200, 1735603200.5, True, None, ["2025-03-31"]])
def test_a_date_or_instant_is_an_iso_string_whatever_else_it_could_be_read_as(form, value):
    """Validated in pydantic-core from JSON and through a Python check from a dict: the same answer."""
    event = _with(f.snapshot(), as_of=value)
    event["occurred_at"] = value
    errors = _errors(event if form == "dict" else json.dumps(event).encode())
    assert errors["payload.as_of"] == errors["occurred_at"] == "must be an ISO 8601 string"


@pytest.mark.parametrize("form", ["dict", "json"])
def test_dates_read_as_before_from_strings_and_from_python_dates(form):
    event = _with(f.snapshot(), as_of="2025-03-31T00:00:00")  # a datetime at midnight is a date
    event["occurred_at"] = "2025-03-31T09:00:00+09:00"
    parsed = parse_event(event if form == "dict" else json.dumps(event).encode())
    assert parsed.payload.as_of == date(2025, 3, 31)  # type: ignore[union-attr]
    assert parsed.occurred_at == datetime(2025, 3, 31, tzinfo=UTC)
    if form == "dict":  # Python callers may pass dates themselves
        event["payload"]["as_of"] = date(2025, 3, 31)
        event["occurred_at"] = datetime(2025, 3, 31, tzinfo=UTC)
        assert parse_event(event) == parsed


@pytest.mark.parametrize("form", ["dict", "json"])
@pytest.mark.parametrize(("occurred_at", "ok"), [
    ("1999-01-01T00:00:00Z", True), ("1999-01-01T08:59:59+09:00", False),
    ("2101-12-31T23:59:59.999999Z", True), ("2101-12-31T23:00:00-05:00", False),
])
def test_instants_are_in_range_as_the_schema_states_it_in_utc(occurred_at, ok, form):
    event = f.snapshot()
    event["occurred_at"] = occurred_at
    data = event if form == "dict" else json.dumps(event).encode()
    if ok:
        assert parse_event(data).occurred_at == datetime.fromisoformat(occurred_at)
    else:
        assert set(_errors(data)) == {"occurred_at"}


def test_lists_are_bounded():
    event = f.program()
    event["payload"]["contacts"] = event["payload"]["contacts"][:1] * (CONTACTS_MAX + 1)
    assert "payload.contacts" in _errors(event)
    event = _with(f.program(), budget_program_ids=["B"] * (LIST_MAX + 1))
    assert "payload.budget_program_ids" in _errors(event)


def _largest_program() -> dict[str, Any]:
    """Every field at its limit, in the characters that take most bytes (4-byte UTF-8, and `"`,
    which JSON escapes)."""
    wide = "😀\""

    def text(n: int) -> str:
        return (wide * n)[:n]

    event = f.program(pid=text(200), title=text(TITLE_MAX))
    event["source"] = "demo-system"
    event["payload"].update(
        office=text(NAME_MAX), division=text(NAME_MAX), team=text(NAME_MAX), purpose=text(TEXT_MAX),
        method=text(SHORT_TEXT_MAX), agency=text(SHORT_TEXT_MAX), period_text=text(SHORT_TEXT_MAX),
        source_ref={"document": text(TITLE_MAX), "section": text(SHORT_TEXT_MAX), "line": 10**9},
        period_start="2025-01-01", period_end="2025-12-31", budget_program_ids=[text(200)] * LIST_MAX,
        kind="part", parent_program_id=text(200),
        contacts=[{"role": "담당", "name": text(NAME_MAX), "phone": "02-2133-5223",
                   "email": ("k" * 64 + "@" + "d" * 60 + ".seoul.go.kr")[:EMAIL_MAX],
                   "division": text(NAME_MAX), "team": text(NAME_MAX)}] * CONTACTS_MAX,
    )
    return event


def test_the_largest_valid_event_fits_the_size_limit_with_room():
    event = parse_event(_largest_program())
    size = len(encode_event(event))
    assert size < MAX_EVENT_BYTES < PRODUCER_MAX_REQUEST_BYTES
    assert parse_event(dump_event(event)) == event


def test_encode_refuses_an_event_over_the_limit():
    event = parse_event(f.program())
    huge = ProgramRegisteredEvent.model_construct(**{**dict(event), "payload": event.payload.model_construct(
        **{**dict(event.payload), "purpose": "x" * MAX_EVENT_BYTES})})
    with pytest.raises(ContractError, match="at most 262,144 bytes"):
        encode_event(huge)


def test_content_hash_ignores_order_whitespace_and_spelled_out_defaults():
    event = f.snapshot(spent=5)
    shuffled = json.dumps(dict(reversed(list(event.items()))), indent=2)
    spelled = _with(event, current_budget=None, source_ref=None)
    hashes = {content_hash(parse_event(x)) for x in (event, shuffled, spelled)}
    assert len(hashes) == 1
    assert content_hash(parse_event(_with(event, spent=6))) not in hashes


def test_tightened_limits_are_producer_notices_not_breaking_changes():
    old = {"type": "object", "properties": {"t": {"type": "string"}, "n": {"type": "integer", "maximum": 10}}}
    new = {"type": "object", "properties": {"t": {"type": "string", "maxLength": 5},
                                            "n": {"type": "integer", "maximum": 20}}}
    assert breaking_changes(old, new) == []
    assert tightened_limits(old, new) == ["t: new maxLength 5"]
    assert tightened_limits(new, old) == ["n: maximum 20 → 10"]  # dropping maxLength loosens


def test_committed_schemas_state_the_limits():
    schema = current_schemas()["budget.execution_snapshot.v1.json"]
    spent = schema["$defs"]["ExecutionSnapshot"]["properties"]["spent"]
    assert (spent["type"], spent["minimum"], spent["maximum"]) == ("integer", 0, MAX_WON)
    assert schema["properties"]["key"]["pattern"].startswith("^[^\\u0000-\\u001f")
