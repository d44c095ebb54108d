"""Notify rules, pure: whether an alert event is news, and who hears about it."""

from __future__ import annotations

from dataclasses import dataclass

#: Default routing: 담당 hears everything, 팀장 from warning, 과장 for critical.
ROLES_BY_SEVERITY: dict[str, tuple[str, ...]] = {
    "info": ("담당",),
    "warning": ("담당", "팀장"),
    "critical": ("담당", "팀장", "과장"),
}


@dataclass(frozen=True)
class Recipient:
    role: str
    name: str
    address: str


@dataclass(frozen=True)
class KnownAlert:
    status: str
    severity: str


def is_news(known: KnownAlert | None, status: str, severity: str) -> bool:
    """The same firing alert is one notification: only a new alert, a change of severity while
    firing, or a resolve of a firing alert is worth a message."""
    if known is None:
        return status == "firing"
    if status == "resolved":
        return known.status == "firing"
    return known.status != "firing" or known.severity != severity


def roles_for(severity: str) -> tuple[str, ...]:
    return ROLES_BY_SEVERITY.get(severity, ROLES_BY_SEVERITY["critical"])


def address_for(template: str, name: str, phone: str | None, role: str, email: str | None) -> str | None:
    """The contact's email, else one made from the configured template; None when it needs a
    phone number the report did not print."""
    if email:
        return email
    digits = "".join(ch for ch in phone or "" if ch.isdigit())
    if "{phone_digits}" in template and not digits:
        return None
    return template.format(name=name, phone_digits=digits, role=role)


def choose_recipients(contacts: list[tuple[str, str, str | None, str | None]], severity: str,
                      template: str) -> list[Recipient]:
    """contacts: (role, name, phone, email). One message per address, highest role kept."""
    wanted = roles_for(severity)
    out: dict[str, Recipient] = {}
    for role, name, phone, email in contacts:
        if role not in wanted:
            continue
        address = address_for(template, name, phone, role, email)
        if address and address not in out:
            out[address] = Recipient(role, name, address)
    return list(out.values())
