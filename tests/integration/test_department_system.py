"""A department system that does not use our code publishes to the inbound topic with plain
kafka-python (the contract is JSON + one header), over the real broker; ingest republishes the
good event canonically and dead-letters the rest with the reason in headers.

(kcat would be the natural outsider, but librdkafka 2.0 cannot parse the ApiVersions v3 response of
the embedded tansu 0.6 broker; against Apache Kafka the same messages are produced with
`kcat -P -H x-execwatch-token=…`, see README.)"""

from __future__ import annotations

import asyncio
import json
import time

from kafka import KafkaProducer

from services.ingest.app import build
from tests import factories as f
from tests.helpers import read_to_end, running


def _read_all(bootstrap: str, topic: str, expect: int, timeout_s: float = 20.0) -> list:
    """Everything on `topic` once it holds at least `expect` records (read to its end each time,
    not until a consumer timeout: the end is known)."""
    end = time.monotonic() + timeout_s
    out = read_to_end(bootstrap, topic)
    while len(out) < expect and time.monotonic() < end:
        time.sleep(0.1)
        out = read_to_end(bootstrap, topic)
    return out


async def test_plain_kafka_client_round_trip(kafka, sqlite_url, make_settings):
    settings = make_settings(kafka_bootstrap_servers=kafka.bootstrap, database_url=sqlite_url)
    app = build(settings)
    good = f.program()
    forged = f.program("P-FORGED")
    async with running(app):
        producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
        inbound = settings.topic("execwatch.inbound")
        producer.send(inbound, json.dumps(good, ensure_ascii=False).encode(), key=b"P-RND",
                      headers=[("x-execwatch-token", f.TOKEN.encode())])
        producer.send(inbound, json.dumps(forged).encode(), key=b"P-FORGED",
                      headers=[("x-execwatch-token", b"guess")])
        # The token is checked first: junk from a known system is a contract problem.
        producer.send(inbound, b"\xff\xfe not an event", key=b"junk", headers=[("x-execwatch-token", f.TOKEN.encode())])
        producer.flush()
        producer.close()

        canonical = await asyncio.to_thread(_read_all, kafka.bootstrap, settings.topic("execwatch.programs"), 1)
        dead = await asyncio.to_thread(_read_all, kafka.bootstrap, settings.topic("execwatch.deadletter"), 2)

    assert [json.loads(m.value)["event_id"] for m in canonical] == [good["event_id"]]
    assert canonical[0].key == b"P-RND"
    by_key = {m.key: dict(m.headers) for m in dead}
    assert set(by_key) == {b"P-FORGED", b"junk"}
    assert by_key[b"P-FORGED"]["x-error-stage"] == b"auth"
    assert by_key[b"junk"]["x-error-stage"] == b"contract"
    assert b"Invalid JSON" in by_key[b"junk"]["x-error"]
