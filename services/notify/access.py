"""Who may see and change what in notify: staff their own inbox and their own 과's alerts and
silences; operators anything; auditors read. Ack tokens never leave through the API."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import HTTPException

from services.common.auth import Identity, Role
from services.common.db import Database
from services.notify.store import NotifyAlert, NotifySilence

DIVISION_LABEL = "과"
_TOKEN = re.compile(r"(token=)[^\s\"'&<>]+")


def redact(text: str | None) -> str | None:
    """Bodies as stored carry signed acknowledge links; the API shows them without the token."""
    return _TOKEN.sub(r"\1(redacted)", text) if text else text


def own_address(who: Identity, recipient: str | None) -> str | None:
    """Staff see only their own messages: their address, whatever they asked for."""
    if who.role != Role.staff:
        return recipient
    if not who.email or (recipient is not None and recipient.lower() != who.email.lower()):
        raise HTTPException(403, "staff see only their own inbox")
    return who.email


def alert_division(db: Database, fingerprint: str) -> tuple[bool, str | None]:
    """(alert exists, its 과)."""
    with db.read() as s:
        row = s.get(NotifyAlert, fingerprint)
    if row is None:
        return False, None
    return True, row.division or row.labels.get(DIVISION_LABEL)


def check_alert(who: Identity, db: Database, fingerprint: str) -> None:
    found, division = alert_division(db, fingerprint)
    if found and not who.owns(division):
        raise HTTPException(403, "staff may acknowledge only their own 과's alerts")


def silence_divisions(matchers: Iterable[Mapping[str, Any]]) -> set[str]:
    """The 과 a silence is confined to: its `과 = X` matchers (a regex confines nothing)."""
    return {str(m.get("value")) for m in matchers if m.get("name") == DIVISION_LABEL and m.get("op", "=") == "="}


def check_silence(who: Identity, matchers: Iterable[Mapping[str, Any]]) -> None:
    if who.role == Role.operator:
        return
    divisions = silence_divisions(matchers)
    if not divisions or not all(who.owns(d) for d in divisions):
        raise HTTPException(403, "staff may silence only their own 과: add the matcher 과 = <your 과>")


def check_existing_silence(who: Identity, db: Database, silence_id: str) -> None:
    with db.read() as s:
        row = s.get(NotifySilence, silence_id)
    if row is not None:
        check_silence(who, row.matchers)
