"""Publishing envelopes through ingest's HTTP API, like any department system.

`POST {ingest_url}/v1/events` with `Authorization: Bearer <token>`, at most `batch_size` per
request. Connection errors are retried with backoff. A 422 rejects the whole batch: the
rejected events are recorded (index, field, message) and the rest of that batch is sent again,
so one bad fact does not hold back the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from contracts import Envelope

MAX_BATCH = 1000


@dataclass(frozen=True)
class Rejected:
    event_id: str
    event_type: str
    key: str
    field: str
    message: str


@dataclass
class PublishResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    failed: str | None = None  # ingest could not be reached / answered with an error; the rest was not sent
    unsent: int = 0


class PublishError(RuntimeError):
    """Ingest answered something other than 202/422, or could not be reached after retries."""


def _post(client: httpx.Client, url: str, token: str, body: list[dict[str, Any]], retries: int,
          backoff: float, sleep: Callable[[float], None]) -> httpx.Response:
    for attempt in range(retries + 1):
        try:
            return client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.RemoteProtocolError) as exc:
            if attempt == retries:
                raise PublishError(f"ingest unreachable at {url}: {exc}") from exc
            sleep(backoff * 2 ** attempt)
    raise AssertionError("unreachable")


def publish(envelopes: Sequence[Envelope[Any]], ingest_url: str, token: str, *,
            client: httpx.Client | None = None, batch_size: int = MAX_BATCH, retries: int = 4,
            backoff: float = 0.5, sleep: Callable[[float], None] = time.sleep,
            on_batch: Callable[[int], None] | None = None) -> PublishResult:
    """Send every envelope; return what ingest accepted, found duplicate, or rejected."""
    url = ingest_url.rstrip("/") + "/v1/events"
    result = PublishResult()
    own = client is None
    http = client or httpx.Client(timeout=30.0)
    try:
        size = max(1, min(batch_size, MAX_BATCH))
        for start in range(0, len(envelopes), size):
            batch = list(envelopes[start:start + size])
            try:
                _send(http, url, token, batch, result, retries, backoff, sleep)
            except PublishError as exc:
                result.failed = str(exc)
                result.unsent = len(envelopes) - start
                break
            if on_batch:
                on_batch(len(batch))
    finally:
        if own:
            http.close()
    return result


def _send(http: httpx.Client, url: str, token: str, batch: list[Envelope[Any]], result: PublishResult,
          retries: int, backoff: float, sleep: Callable[[float], None]) -> None:
    while batch:
        body = [e.model_dump(mode="json") for e in batch]
        resp = _post(http, url, token, body, retries, backoff, sleep)
        if resp.status_code == 202:
            data = resp.json()
            result.accepted += int(data.get("accepted", 0))
            result.duplicates += int(data.get("duplicates", 0))
            return
        if resp.status_code != 422:
            raise PublishError(f"ingest answered {resp.status_code}: {resp.text[:300]}")
        rejected = resp.json().get("rejected", [])
        bad: set[int] = set()
        for r in rejected:
            index = int(r.get("index", -1))
            if 0 <= index < len(batch):
                bad.add(index)
                e = batch[index]
                result.rejected.append(Rejected(str(e.event_id), e.event_type, e.key, str(r.get("field", "")),
                                                str(r.get("message", ""))))
        if not bad:  # a 422 that names no event: nothing more can be done with this batch
            raise PublishError(f"ingest rejected the batch: {resp.text[:300]}")
        batch = [e for i, e in enumerate(batch) if i not in bad]
