"""Signed links in mail: who may do what to which alert, until when. No login: the token is the
proof, so it is single-purpose (an acknowledge token does nothing else), names the recipient it
was sent to (the acknowledgement records who) and expires.

Token: `base64url(json claims) "." base64url(HMAC-SHA256(secret, "execwatch-link.v1." + claims))`.
Pure functions; the clock is a parameter.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

Purpose = Literal["ack"]
_DOMAIN = b"execwatch-link.v1."


class LinkError(ValueError):
    """A link that cannot be used; `reason` is `invalid` (forged, altered, other purpose) or `expired`."""

    def __init__(self, reason: Literal["invalid", "expired"], message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Claims:
    purpose: str
    fingerprint: str
    address: str
    name: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, body: str) -> bytes:
    return hmac.new(secret.encode(), _DOMAIN + body.encode(), hashlib.sha256).digest()


def sign(secret: str, purpose: Purpose, fingerprint: str, address: str, name: str, expires_at: datetime) -> str:
    claims = {"p": purpose, "f": fingerprint, "a": address, "n": name, "e": int(expires_at.timestamp())}
    body = _b64(json.dumps(claims, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_b64(_mac(secret, body))}"


def verify(secret: str, token: str, purpose: Purpose, now: datetime) -> Claims:
    """The claims of a genuine, unexpired token for `purpose`; LinkError otherwise."""
    body, _, mac = token.partition(".")
    try:
        genuine = bool(body) and hmac.compare_digest(_unb64(mac), _mac(secret, body))
        claims = json.loads(_unb64(body)) if genuine else None
    except (binascii.Error, ValueError):
        genuine, claims = False, None
    if not genuine or not isinstance(claims, dict):
        raise LinkError("invalid", "this link is not valid (altered or not issued by execwatch)")
    if claims.get("p") != purpose:
        raise LinkError("invalid", f"this link is not for {purpose}")
    try:
        out = Claims(str(claims["p"]), str(claims["f"]), str(claims["a"]), str(claims.get("n", "")),
                     datetime.fromtimestamp(int(claims["e"]), UTC))
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise LinkError("invalid", "this link is not valid") from exc
    if now >= out.expires_at:
        raise LinkError("expired", f"this link expired at {out.expires_at.isoformat()}")
    return out
