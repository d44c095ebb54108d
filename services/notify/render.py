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


#: The basis of a slip alert in one sentence, by the `basis` figure the budget service sends.
#: A `basis_text` figure (the budget service's own wording) wins over these.
BASIS_TEXTS: dict[str, str] = {
    "plan": "이 사업의 월별 집행계획에 비추어 판단했습니다.",
    "default_curve": "이 사업의 집행계획이 없어 기본 집행 곡선(상반기 신속집행 목표)에 비추어 판단했습니다.",
    "schedule": "사업계획에 적힌 일정에 비추어 판단했습니다.",
}

#: What the receiver is asked to do next, by rule (firing alerts only).
NEXT_ACTIONS: dict[str, str] = {
    "execution_slipped": "월별 집행계획을 제출하시거나, 부진 사유와 조치 계획을 회신해 주십시오.",
    "over_execution": "초과 집행 내역을 확인하시고, 필요하면 예산 변경(전용·이용) 절차를 검토해 주십시오.",
    "year_end_risk": "연말까지의 집행 계획과 불용 예상액을 회신해 주십시오.",
    "milestone_overdue": "일정을 확인하시고, 실제 진행 상황이나 변경된 일정을 알려 주십시오.",
    "schedule_moved": "변경된 일정이 맞는지 확인해 주십시오.",
    "deadline_approaching": "마감 일정을 확인해 주십시오.",
    "target_behind": "목표 달성 계획이나 미달 사유를 회신해 주십시오.",
}


def basis_sentence(alert: Alert) -> str | None:
    """One sentence saying what the alert was judged against: the sender's wording, else ours for
    its `basis`, else what the figures show; None when nothing is known."""
    f = alert.figures
    text = f.get("basis_text")
    if isinstance(text, str) and text.strip():
        return " ".join(text.split())
    basis = f.get("basis")
    if isinstance(basis, str) and basis in BASIS_TEXTS:
        return BASIS_TEXTS[basis]
    if alert.rule == "execution_slipped" and f.get("plan") is not None:
        when = f" {f['as_of']}" if f.get("as_of") else ""
        return f"기준일{when}의 계획 집행률 {f['plan']}%에 비추어 판단했습니다."
    if f.get("milestone") and (f.get("window_end") or f.get("new_end")):
        end = f.get("new_end") or f.get("window_end")
        return f"사업계획의 일정({f['milestone']}, 종료 {end})에 비추어 판단했습니다."
    return None


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
    def __init__(self, directory: Path | None = None,
                 ack_url: Callable[[str, Recipient], str | None] | None = None,
                 program_url: Callable[[str], str | None] | None = None) -> None:
        loaders = [FileSystemLoader(directory)] if directory else []
        self.env = Environment(loader=ChoiceLoader([*loaders, FileSystemLoader(TEMPLATES)]),
                               undefined=StrictUndefined, autoescape=select_autoescape(["html.j2"]),
                               keep_trailing_newline=False)
        self.env.globals["won"] = won
        self.ack_url = ack_url or (lambda _fp, _r: None)
        self.program_url = program_url or (lambda _pid: None)

    def _item(self, item: Item, recipient: Recipient) -> _Obj:
        a = item.alert
        firing = a.status == "firing"
        return _Obj({**a.model_dump(), "rule_title": RULE_TITLES.get(a.rule, a.rule),
                     "severity_title": SEVERITY_TITLES.get(a.severity, a.severity),
                     "gap_text": signed_points(a.figures.get("gap")), "acked": item.acked,
                     "ack_url": self.ack_url(a.fingerprint, recipient) if firing and not item.acked else None,
                     "program_url": self.program_url(a.program_id), "basis_text": basis_sentence(a),
                     "next_action": NEXT_ACTIONS.get(a.rule) if firing else None})

    def page(self, template: str, **context: Any) -> str:
        """A page staff open from a mail (autoescaped: the template ends in .html.j2)."""
        return self.env.get_template(template).render(context)

    def render(self, items: Sequence[Item], recipient: Recipient, *, kind: str = "alert",
               division: str | None = None, escalated: bool = False) -> Message:
        alerts = [self._item(i, recipient) for i in items]
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
