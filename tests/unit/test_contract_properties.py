"""Property tests of the contracts: whatever is accepted round-trips under the size limit, and
nothing a sender can put in a field makes parsing fail with anything but a `ContractError`."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import (
    EVENT_MODELS,
    MAX_EVENT_BYTES,
    Alert,
    AlertEvent,
    ContractError,
    canonical_json,
    content_hash,
    dump_event,
    parse_event,
)
from contracts.envelope import canonical_bytes
from contracts.limits import LIST_MAX, MAX_WON, NAME_MAX, SHORT_TEXT_MAX, TEXT_MAX, TITLE_MAX

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters a line may hold: anything but control characters, surrogates and line separators.
_LINE = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029")
_PROSE = st.one_of(_LINE, st.sampled_from("\t\n\r"))


def line(max_size: int, min_size: int = 1) -> st.SearchStrategy[str]:
    return st.text(_LINE, min_size=min_size, max_size=max_size)


def prose(max_size: int) -> st.SearchStrategy[str]:
    return st.text(_PROSE, max_size=max_size)


won = st.integers(0, MAX_WON)
years = st.integers(2000, 2100)
dates = st.dates(date(1999, 1, 1), date(2101, 12, 31)).map(date.isoformat)
instants = st.datetimes(datetime(1999, 1, 1), datetime(2101, 12, 30)).map(
    lambda d: d.replace(tzinfo=UTC).isoformat())
ids = line(200)
maybe = st.none

source_refs = st.one_of(maybe(), st.fixed_dictionaries(
    {"document": line(TITLE_MAX)}, optional={"section": line(SHORT_TEXT_MAX), "line": st.integers(1, 10**9)}))


def envelope(event_type: str, payload: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    def build(p: dict[str, Any], event_id: uuid.UUID, at: str, source: str) -> dict[str, Any]:
        return {"event_id": str(event_id), "event_type": event_type, "occurred_at": at, "source": source,
                "key": p["program_id"], "payload": p}
    return st.builds(build, payload, st.uuids(), instants, line(100))


def snapshot_payload() -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        year = draw(years)
        as_of = draw(st.dates(date(year - 1, 1, 1), date(year + 1, 12, 31)))
        return {"program_id": draw(ids), "fiscal_year": year, "as_of": as_of.isoformat(),
                "committed": draw(st.one_of(maybe(), won)), "spent": draw(won),
                "revision": draw(st.integers(0, 10**9)), "current_budget": draw(st.one_of(maybe(), won)),
                "source_ref": draw(source_refs)}
    return build()


contacts = st.fixed_dictionaries(
    {"role": st.sampled_from(["과장", "팀장", "담당"]), "name": line(NAME_MAX)},
    optional={"phone": st.from_regex(r"\A0\d{1,2}-\d{3,4}-\d{4}\Z"), "division": line(NAME_MAX),
              "team": line(NAME_MAX), "email": st.emails().filter(lambda e: len(e) <= 254 and "@" in e)})

program_payload = st.fixed_dictionaries(
    {"program_id": ids, "fiscal_year": years, "title": line(TITLE_MAX)},
    optional={"office": line(NAME_MAX), "division": line(NAME_MAX), "team": line(NAME_MAX),
              "contacts": st.lists(contacts, max_size=5), "purpose": prose(TEXT_MAX),
              "method": line(SHORT_TEXT_MAX, 0), "period_text": line(SHORT_TEXT_MAX, 0),
              "period_start": dates, "budget_program_ids": st.lists(ids, max_size=LIST_MAX // 10),
              "source_ref": source_refs})

line_payload = st.builds(
    lambda pid, year, original, carried, supp, title: {
        "program_id": pid, "fiscal_year": year, "original": original, "carried_over": carried,
        "supplementary": max(supp, -(original + carried)), "title": title},
    ids, years, st.integers(0, MAX_WON // 2), st.integers(0, MAX_WON // 2), st.integers(-MAX_WON, MAX_WON // 4),
    st.one_of(maybe(), line(TITLE_MAX)))

milestone_payload = st.fixed_dictionaries(
    {"program_id": ids, "milestone_id": ids, "title": line(TITLE_MAX)},
    optional={"window_end": dates, "window_text": line(SHORT_TEXT_MAX, 0), "needs_review": st.booleans(),
              "status": st.sampled_from(["planned", "in_progress", "done", "cancelled"]),
              "note": prose(1000), "source_ref": source_refs})

events = st.one_of(
    envelope("budget.execution_snapshot", snapshot_payload()),
    envelope("program.registered", program_payload),
    envelope("budget.line_set", line_payload),
    envelope("milestone.set", milestone_payload),
)


@SETTINGS
@given(events)
def test_any_accepted_event_round_trips_under_the_size_limit(data):
    event = parse_event(data)
    encoded = dump_event(event)
    assert len(encoded) <= MAX_EVENT_BYTES
    again = parse_event(encoded)
    assert again == event
    assert canonical_json(again) == canonical_json(event)
    assert content_hash(parse_event(json.dumps(data))) == content_hash(event)


# Hostile values: anything JSON can carry, put where a field is expected.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**40), 10**40) | st.floats(allow_nan=False)
    | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@SETTINGS
@given(events, st.data())
def test_hostile_field_values_are_contract_errors_or_round_trip(data, draw):
    target = data["payload"] if draw.draw(st.booleans()) else data
    field = draw.draw(st.sampled_from(sorted(target)))
    target[field] = draw.draw(json_values)
    for form in (data, json.dumps(data).encode()):
        try:
            event = parse_event(form)
        except ContractError as exc:
            assert exc.errors and all(e.field and e.message for e in exc.errors)
            continue
        encoded = dump_event(event)
        assert len(encoded) <= MAX_EVENT_BYTES
        assert parse_event(encoded) == event


@SETTINGS
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_bytes_are_contract_errors(raw):
    """Not an OverflowError, UnicodeDecodeError or RecursionError: a listed, readable reason."""
    try:
        parse_event(raw)
    except ContractError as exc:
        assert exc.errors and all(e.message for e in exc.errors)
    else:
        raise AssertionError(f"random input accepted as an event: {raw!r}")


def test_dates_near_the_range_edges():
    base = {"event_id": str(uuid.uuid4()), "event_type": "budget.execution_snapshot",
            "occurred_at": "2101-12-31T23:00:00+00:00", "source": "s", "key": "P",
            "payload": {"program_id": "P", "fiscal_year": 2100, "as_of": "2101-12-31", "committed": None,
                        "spent": 0}}
    assert parse_event(base).payload.as_of == date(2101, 12, 31)  # type: ignore[union-attr]
    base["payload"]["as_of"] = (date(2101, 12, 31) + timedelta(days=1)).isoformat()
    try:
        parse_event(base)
    except ContractError as exc:
        assert {e.field for e in exc.errors} == {"payload.as_of"}
    else:
        raise AssertionError("a date past the range was accepted")


@SETTINGS
@given(events)
def test_canonical_json_is_sorted_compact_utf8_json_of_the_model(data):
    # The stored content hashes were made with json.dumps and these options; the hash must not
    # change with how canonical_json builds it (a resend would turn into a conflict).
    event = parse_event(data)
    expected = json.dumps(event.model_dump(mode="json"), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8")
    assert canonical_json(event) == expected
    assert content_hash(event) == hashlib.sha256(expected).hexdigest()


# The canonical JSON is built by orjson since 2026-11; every content hash stored before was made by
# `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`. A resend after the
# upgrade must still be a duplicate (same hash), not a conflict: the bytes must not change.

def _stdlib_canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def test_canonical_bytes_escape_every_code_point_as_the_stdlib_did():
    points = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]  # surrogates: not UTF-8
    for start in range(0, len(points), 2048):
        chunk = points[start:start + 2048]
        data = {"text": "".join(chunk), "list": chunk, "keys": {c: i for i, c in enumerate(reversed(chunk))}}
        assert canonical_bytes(data) == _stdlib_canonical(data), f"code points from U+{ord(chunk[0]):04X}"


def test_canonical_bytes_sort_nested_keys_by_code_point_and_keep_integers():
    data = {"한글": {"z": [1, {"b": None, "a": True}], "A": False, "é": -(2**63)}, "a": 2**64 - 1,
            "big": 10**40, "": "", "\u2028": "\u2029\ufeff\U0001F600\U0010FFFF", "숫자": [0, -1, 2**63]}
    assert canonical_bytes(data) == _stdlib_canonical(data)  # 10**40: orjson refuses it, the stdlib writes it


def test_no_event_serializes_a_float():
    """orjson and the stdlib write floats differently: the canonical form relies on there being none
    (amounts are integers, rates and quantities Decimal strings)."""
    def numbers(schema: Any, path: str) -> list[str]:
        if isinstance(schema, dict):
            found = [path] if schema.get("type") == "number" else []
            return found + [p for k, v in schema.items() for p in numbers(v, f"{path}/{k}")]
        if isinstance(schema, list):
            return [p for i, v in enumerate(schema) for p in numbers(v, f"{path}[{i}]")]
        return []
    floats = [p for name, model in EVENT_MODELS.items()
              for p in numbers(model.model_json_schema(mode="serialization"), name)]
    assert floats == []


def test_content_hash_of_a_korean_event_is_the_one_stored_before():
    event = parse_event({
        "event_id": "0b6f3c1e-3f1a-4b7e-9a4e-2d1c5e8f9a01", "event_type": "program.registered",
        "occurred_at": "2025-03-31T09:00:00+09:00", "source": "경제정책과-시스템", "key": "2025-경제-001",
        "payload": {"program_id": "2025-경제-001", "title": "소상공인 \"경영\" 안정 지원 (2차) \\ ①",
                    "office": "경제실", "division": "경제정책과", "fiscal_year": 2025,
                    "purpose": "골목상권 활성화\n\t- 점포당 최대 ₩3,000,000 😀",
                    "contacts": [{"name": "김주무관", "role": "담당", "email": "kim@seoul.go.kr"}]}})
    expected = _stdlib_canonical(event.model_dump(mode="json"))
    assert canonical_json(event) == expected
    assert "소상공인".encode() in expected
    # What main stored for this event (json.dumps), written down: a change of either side shows.
    assert content_hash(event) == "3332d8e6292f25485762b1f53aed9d791fbc6f717d3c5121c8d71d1979f768ed"


def test_content_hash_of_an_alert_with_decimal_and_big_figures_is_the_stdlib_one():
    event = AlertEvent(
        event_id=uuid.UUID(int=7), occurred_at=datetime(2025, 3, 31, tzinfo=UTC), source="budget", key="P1",
        payload=Alert(fingerprint="f", rule="execution_slipped", status="firing", severity="warning",
                      program_id="P1", summary="집행률이 낮습니다", generator="budget",
                      starts_at=datetime(2025, 3, 31, tzinfo=UTC),
                      figures={"rate": Decimal("12.345600"), "won": 10**30, "gap": Decimal("-0.1"), "note": "가"}))
    expected = _stdlib_canonical(event.model_dump(mode="json"))
    assert canonical_json(event) == expected and b'"12.345600"' in expected
    assert content_hash(event) == hashlib.sha256(expected).hexdigest()
