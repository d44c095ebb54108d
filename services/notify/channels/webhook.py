"""Webhooks: the delivery's JSON payload POSTed to a receiver named in the routing file, signed
with HMAC-SHA256 when the receiver has a secret. One HTTP client per round (connections reused
per receiver)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import ClassVar

import httpx

from services.common.settings import Settings
from services.notify.channels import Channel, ChannelError
from services.notify.routing import Routing
from services.notify.store import NotifyDelivery


class WebhookChannel(Channel):
    name: ClassVar[str] = "webhook"

    def __init__(self, settings: Settings, routing: Routing, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings, self.routing, self.transport = settings, routing, transport
        self._client: httpx.AsyncClient | None = None

    def line(self, d: NotifyDelivery) -> str:
        return d.address  # each receiver fails on its own

    async def send(self, d: NotifyDelivery, now: datetime) -> None:
        name = d.address.split(":", 1)[1]
        receiver = self.routing.receivers.get(name)
        if receiver is None:
            raise ChannelError(f"no webhook receiver named {name!r} in the routing file", transient=False)
        body = json.dumps(d.payload, ensure_ascii=False, separators=(",", ":")).encode()
        ts = str(int(now.timestamp()))
        headers = {"Content-Type": "application/json", "X-Execwatch-Delivery": d.alert_event_id,
                   "X-Execwatch-Timestamp": ts}
        if receiver.secret:
            headers["X-Execwatch-Signature"] = "sha256=" + signature(receiver.secret, ts, body)
        if self._client is None:
            self._client = httpx.AsyncClient(transport=self.transport, timeout=self.settings.notify_webhook_timeout_s)
        resp = await self._client.post(receiver.address, content=body, headers=headers)
        if resp.status_code >= 300:
            transient = resp.status_code >= 500 or resp.status_code in (408, 425, 429)
            raise ChannelError(f"HTTP {resp.status_code}: {resp.text[:200]}", transient=transient)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over `timestamp.body`; receivers recompute it to trust the payload."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
