"""Builders of valid contract events for tests (a department system's view)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

SOURCE = "demo-system"
TOKEN = "demo-token"


def envelope(event_type: str, key: str, payload: dict[str, Any], event_id: uuid.UUID | None = None,
             source: str = SOURCE) -> dict[str, Any]:
    return {
        "event_id": str(event_id or uuid.uuid4()),
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": datetime(2025, 2, 1, 9, 0, tzinfo=UTC).isoformat(),
        "source": source,
        "key": key,
        "payload": payload,
    }


def program(pid: str = "P-RND", title: str = "서울형 R&D 지원", division: str = "경제정책과") -> dict[str, Any]:
    return envelope("program.registered", pid, {
        "program_id": pid, "fiscal_year": 2025, "title": title, "office": "경제실", "division": division,
        "team": "혁신기술팀",
        "contacts": [
            {"role": "과장", "name": "이병철", "phone": "02-2133-5210"},
            {"role": "팀장", "name": "박지은", "phone": "02-2133-5226"},
            {"role": "담당", "name": "김지영", "phone": "02-2133-5223"},
        ],
    })


def budget_line(pid: str = "P-RND", original: int = 41_106_204_000, title: str = "서울형 R&D 지원",
                division: str = "경제정책과") -> dict[str, Any]:
    return envelope("budget.line_set", pid, {
        "program_id": pid, "fiscal_year": 2025, "title": title, "office": "경제실", "division": division,
        "original": original, "carried_over": 0,
    })


def snapshot(pid: str = "P-RND", as_of: date = date(2025, 1, 31), spent: int = 0, committed: int = 0,
             revision: int = 0, event_id: uuid.UUID | None = None) -> dict[str, Any]:
    return envelope("budget.execution_snapshot", pid, {
        "program_id": pid, "fiscal_year": 2025, "as_of": as_of.isoformat(), "committed": committed,
        "spent": spent, "revision": revision,
    }, event_id=event_id)


def milestone(pid: str = "P-RND", mid: str = "M1", start: date | None = date(2025, 4, 1),
              end: date | None = date(2025, 5, 31), status: str = "planned",
              title: str = "서류심사, 현장실사 등 선정평가") -> dict[str, Any]:
    return envelope("milestone.set", pid, {
        "program_id": pid, "milestone_id": mid, "title": title,
        "window_start": start.isoformat() if start else None, "window_end": end.isoformat() if end else None,
        "status": status,
    })
