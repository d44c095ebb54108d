"""A consumed batch: each record gets its own event, or its own error, whatever the others hold."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from aiokafka import ConsumerRecord

from contracts import MAX_EVENT_BYTES, parse_event
from services.common.messaging import decode_batch
from tests.factories import budget_line, milestone, snapshot


def record(value: bytes | None, offset: int) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(topic="t", partition=0, offset=offset, timestamp=0, timestamp_type=0, key=b"k",
                          value=value, checksum=None, serialized_key_size=1,
                          serialized_value_size=len(value or b""), headers=[])


def encoded(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode()


def test_a_batch_of_valid_events_decodes_to_the_same_events_as_one_by_one() -> None:
    values = [encoded(snapshot(f"P{i}", date(2025, 1, 1 + i % 28), spent=i)) for i in range(40)]
    values += [encoded(budget_line("P1")), encoded(milestone("P2"))]
    items = decode_batch([record(v, i) for i, v in enumerate(values)])
    assert [i.error for i in items] == [None] * len(values)
    assert [i.event for i in items] == [parse_event(v) for v in values]
    assert [i.record.offset for i in items if i.record] == list(range(len(values)))
    assert [i.raw for i in items] == values


def test_one_bad_record_gets_its_error_and_the_others_their_events() -> None:
    good = [encoded(snapshot(f"P{i}")) for i in range(3)]
    bad = encoded({**snapshot("P9"), "event_type": "budget.unheard_of"})
    items = decode_batch([record(good[0], 0), record(bad, 1), record(good[1], 2), record(b"{not json", 3),
                          record(None, 4), record(good[2], 5)])
    assert [i.event is not None for i in items] == [True, False, True, False, False, True]
    assert "event_type" in (items[1].error or "")
    assert "Invalid JSON" in (items[3].error or "")
    assert [i.event for i in items if i.event] == [parse_event(v) for v in good]


def test_a_record_holding_two_events_is_an_error_not_two_events() -> None:
    one, two, three = (encoded(snapshot(f"P{i}")) for i in range(3))
    items = decode_batch([record(one + b"," + two, 0), record(three, 1)])
    assert items[0].event is None and items[0].error
    assert items[1].event == parse_event(three)


def test_an_oversized_record_is_refused_on_its_own() -> None:
    event = snapshot("P1")
    event["payload"]["source_ref"] = {"document": "x" * (MAX_EVENT_BYTES + 10)}
    big, small = encoded(event), encoded(snapshot("P2"))
    items = decode_batch([record(big, 0), record(small, 1)])
    assert "bytes" in (items[0].error or "") and items[0].event is None
    assert items[1].event == parse_event(small)

