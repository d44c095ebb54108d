"""The inbox: a delivery is the message, readable under `GET /v1/inbox`; writing it delivers it."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from services.notify.channels import Channel
from services.notify.store import NotifyDelivery


class InboxChannel(Channel):
    name: ClassVar[str] = "inbox"
    written_is_sent: ClassVar[bool] = True

    async def send(self, d: NotifyDelivery, now: datetime) -> None:
        """Nothing to send: the scheduler wrote it, marked sent."""
