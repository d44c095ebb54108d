"""Korean messages from Jinja2 templates that staff can edit (services/notify/templates)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from contracts.alerts import RULE_TITLES, SEVERITY_TITLES, Alert
from services.notify.domain import Recipient

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str


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
    def __init__(self, directory: Path = TEMPLATES) -> None:
        self.env = Environment(loader=FileSystemLoader(directory), undefined=StrictUndefined,
                               autoescape=select_autoescape(["html.j2"]), keep_trailing_newline=False)
        self.env.globals["won"] = won

    def render(self, alert: Alert, recipient: Recipient) -> Message:
        ctx = {
            "alert": _Obj(alert.model_dump()), "recipient": recipient,
            "rule_title": RULE_TITLES.get(alert.rule, alert.rule),
            "severity_title": SEVERITY_TITLES.get(alert.severity, alert.severity),
            "gap_text": signed_points(alert.figures.get("gap")),
        }
        subject = self.env.get_template("subject.txt.j2").render(ctx).strip().replace("\n", " ")
        return Message(subject, self.env.get_template("body.txt.j2").render(ctx),
                       self.env.get_template("body.html.j2").render(ctx))


class _Obj(dict[str, Any]):
    """Attribute access for templates, with missing figures as None rather than an error."""

    def __getattr__(self, name: str) -> Any:
        value = self.get(name)
        return _Obj(value) if isinstance(value, dict) else value
