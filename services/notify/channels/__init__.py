"""Delivery channels, one interface: `send` one delivery, `close` at the end of a round.

A dispatcher round opens one instance of each channel and closes it after the round, so a
channel can keep what is costly to open (one SMTP connection per round, not one per mail).
`line` names what fails together (the mail server; each webhook receiver on its own): after a
transient failure the dispatcher skips the rest of that line for the round, never the others.

Errors: `ChannelError` is a receiver's answer (`transient` when asking later may work);
`UndeliverableError` says the message cannot be sent as it is. Any other exception is judged by
the dispatcher's `classify`.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from services.notify.store import NotifyDelivery


class ChannelError(Exception):
    """A receiver answered, and said no. `transient` when asking again later may work."""

    def __init__(self, message: str, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class UndeliverableError(ValueError):
    """This message cannot be sent as it is (e.g. an address with header syntax in it)."""


class Channel:
    """One way of telling a person. Subclasses set `name` and implement `send`."""

    name: ClassVar[str]
    #: Delivered by being written (the inbox): the scheduler marks it sent, the dispatcher never sees it.
    written_is_sent: ClassVar[bool] = False

    def line(self, d: NotifyDelivery) -> str:
        return self.name

    async def send(self, d: NotifyDelivery, now: datetime) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """End of a round: let go of connections."""


def sent_when_written(channel: str) -> bool:
    from services.notify.channels.inbox import InboxChannel

    return channel == InboxChannel.name
