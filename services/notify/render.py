"""Korean messages from Jinja2 templates that staff can edit (services/notify/templates, or a
directory named by EXECWATCH_NOTIFY_TEMPLATES_DIR whose files win over the packaged ones).

One message is a digest: the alerts of one 과 for one receiver. With a single alert the subject
is that alert's, e.g. `[집행 부진] 서울형 R&D 지원 — 집행률 12.3% (계획 대비 −25.0%p)`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

from contracts.alerts import RULE_TITLES, SEVERITY_TITLES, Alert
from services.notify.domain import Recipient

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Item:
    """An alert as the receiver sees it in a digest."""

    alert: Alert
    acked: bool = False


def won(value: Any) -> str:
    if value is None:
        return "-"
    return f"{int(value):,}원"


def signed_points(value: Any) -> str:
    """Actual minus plan, as staff read it: −25.0%p behind, +3.0%p ahead."""
    if value is None:
        return "-"
    diff = -Decimal(str(value))
    sign = "−" if diff < 0 else "+"
    return f"{sign}{abs(diff):.1f}%p"


class Renderer:
    def __init__(self, directory: Path | None = None, ack_url: Callable[[str], str | None] | None = None) -> None:
        loaders = [FileSystemLoader(directory)] if directory else []
        self.env = Environment(loader=ChoiceLoader([*loaders, FileSystemLoader(TEMPLATES)]),
                               undefined=StrictUndefined, autoescape=select_autoescape(["html.j2"]),
                               keep_trailing_newline=False)
        self.env.globals["won"] = won
        self.ack_url = ack_url or (lambda _fp: None)

    def _item(self, item: Item) -> _Obj:
        a = item.alert
        return _Obj({**a.model_dump(), "rule_title": RULE_TITLES.get(a.rule, a.rule),
                     "severity_title": SEVERITY_TITLES.get(a.severity, a.severity),
                     "gap_text": signed_points(a.figures.get("gap")), "acked": item.acked,
                     "ack_url": self.ack_url(a.fingerprint)})

    def render(self, items: Sequence[Item], recipient: Recipient, *, kind: str = "alert",
               division: str | None = None, escalated: bool = False) -> Message:
        alerts = [self._item(i) for i in items]
        ctx = {"alerts": alerts, "recipient": recipient, "kind": kind, "division": division,
               "escalated": escalated, "firing": sum(1 for i in items if i.alert.status == "firing"),
               "resolved": sum(1 for i in items if i.alert.status == "resolved")}
        subject = self.env.get_template("subject.txt.j2").render(ctx).strip().replace("\n", " ")
        # Conditional blocks leave runs of blank lines; mail reads better with at most one.
        text = re.sub(r"\n{3,}", "\n\n", self.env.get_template("body.txt.j2").render(ctx)).strip() + "\n"
        return Message(subject, text, self.env.get_template("body.html.j2").render(ctx))


def webhook_payload(fmt: str, message: Message, items: Sequence[Item], receiver: str, kind: str,
                    notification_id: str) -> dict[str, Any]:
    """Slack-compatible (`text`) or the generic JSON document with every alert's fields."""
    if fmt == "slack":
        return {"text": f"*{message.subject}*\n{message.text}"}
    return {
        "version": 1, "notification_id": notification_id, "receiver": receiver, "kind": kind,
        "subject": message.subject, "text": message.text,
        "status": "firing" if any(i.alert.status == "firing" for i in items) else "resolved",
        "alerts": [{**i.alert.model_dump(mode="json"), "acknowledged": i.acked} for i in items],
    }


class _Obj(dict[str, Any]):
    """Attribute access for templates, with missing figures as None rather than an error."""

    def __getattr__(self, name: str) -> Any:
        value = self.get(name)
        return _Obj(value) if isinstance(value, dict) else value
