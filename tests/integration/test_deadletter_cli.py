"""Operators read the dead-letter topic with `execwatch deadletter list`."""

from __future__ import annotations

import os
import subprocess
import sys

from kafka import KafkaProducer

from services.common.deadletters import read_dead_letters
from services.common.messaging import ensure_topics


def test_dead_letters_are_listed_with_who_and_why(kafka, make_settings):
    settings = make_settings()
    ensure_topics(kafka.bootstrap, settings.topic_prefix)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    for i in range(3):
        producer.send(settings.topic("execwatch.deadletter"), f"bad {i}".encode(), key=f"P{i}".encode(),
                      headers=[("x-error", f"payload.spent: must be ≥ 0 ({i})".encode()),
                               ("x-error-stage", b"contract"), ("x-error-service", b"budget"),
                               ("x-original-topic", b"execwatch.budget"), ("x-original-offset", str(i).encode())])
    producer.flush()
    producer.close()

    letters = list(read_dead_letters(kafka.bootstrap, settings.topic_prefix, limit=2))
    assert [(d.key, d.value) for d in letters] == [("P1", b"bad 1"), ("P2", b"bad 2")]  # newest 2
    assert letters[0].error == "payload.spent: must be ≥ 0 (1)"

    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "EXECWATCH_TOPIC_PREFIX": settings.topic_prefix}
    out = subprocess.run([sys.executable, "-m", "services.cli", "deadletter", "list", "--show-value"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "3 dead letter(s)" in out.stdout
    assert "service=budget stage=contract" in out.stdout and "value: bad 0" in out.stdout
