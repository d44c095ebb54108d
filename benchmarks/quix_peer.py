"""The peer: the same judging as the budget service, written as a Quix Streams app (what a user
would pick instead of execwatch), so the budget figures have a bar measured on the same broker,
the same data and in the same run (see budget_throughput.py, which starts this as a process).

    python benchmarks/quix_peer.py --bootstrap 127.0.0.1:9092 --topic bench.execwatch.budget \
        --expect 102000 [--group g] [--state-dir DIR]

Per program (the message key), state in RocksDB (Quix's default store, with its changelog topic):
the 예산현액 from the program's budget line, and the slip level. Each execution snapshot is judged:
집행률 (지출액 / 예산현액, in 0.1 %p) against the default curve (0 on 31 Dec of the previous year,
60 % on 30 June, 100 % on 31 Dec, linear by day), warning beyond 10 %p behind, critical beyond
20 %p; an alert goes to the output topic only when the level changes. Prints one JSON line:
{"events": n, "seconds": s, "rate": n/s, "alerts": k}.

Against tansu: the input and output topics are created up front (tansu does not auto-create on
Quix's admin path), and topics whose configuration the broker does not report get a
`retention.ms` default, which Quix needs to derive its changelog topic's configuration.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date
from typing import Any

from quixstreams import Application, State
from quixstreams.models.topics import Topic, TopicAdmin, TopicManager

#: What tansu leaves out of DescribeConfigs; Kafka's default is 7 days.
DEFAULT_RETENTION_MS = str(7 * 24 * 3600 * 1000)


class TansuTopicManager(TopicManager):
    """Fills in `retention.ms` where the broker reports none (tansu): Quix derives its changelog
    topics' retention from the source topics' and fails on a missing value."""

    def _fetch_topic(self, topic: Topic) -> Topic:
        fetched = super()._fetch_topic(topic)
        if fetched.broker_config is not None:
            fetched.broker_config.extra_config.setdefault("retention.ms", DEFAULT_RETENTION_MS)
        return fetched


def plan_tenths(as_of: date) -> int:
    """The default curve in 0.1 % units, half-up like the budget service's."""
    start = date(as_of.year - 1, 12, 31)
    mid, end = date(as_of.year, 6, 30), date(as_of.year, 12, 31)
    if as_of <= mid:
        num, den = 600 * (as_of - start).days, (mid - start).days
    else:
        num, den = 600 * (end - mid).days + 400 * (as_of - mid).days, (end - mid).days
    return (2 * num + den) // (2 * den)


def judge(value: dict[str, Any], state: State) -> dict[str, Any] | None:
    payload = value["payload"]
    kind = value["event_type"]
    if kind == "budget.line_set":
        state.set("budget", payload["original"] + payload.get("carried_over", 0) + payload.get("supplementary", 0))
        return None
    if kind != "budget.execution_snapshot":
        return None
    budget = state.get("budget")
    if not budget:
        return None
    as_of = date.fromisoformat(payload["as_of"])
    rate = (2000 * payload["spent"] + budget) // (2 * budget)  # 0.1 % units, half-up
    gap = plan_tenths(as_of) - rate
    level = "critical" if gap > 200 else "warning" if gap > 100 else "ok"
    held = state.get("level", "ok")
    if level == held:
        return None
    state.set("level", level)
    return {"program_id": payload["program_id"], "as_of": payload["as_of"], "from": held, "to": level,
            "rate": rate / 10, "gap": gap / 10}


def run(bootstrap: str, topic: str, output: str, expect: int, group: str, state_dir: str) -> dict[str, Any]:
    manager = TansuTopicManager(topic_admin=TopicAdmin(broker_address=bootstrap), consumer_group=group)
    app = Application(broker_address=bootstrap, consumer_group=group, auto_offset_reset="earliest",
                      state_dir=state_dir, loglevel="WARNING", topic_manager=manager,
                      consumer_extra_config={"fetch.min.bytes": 1})
    seen = {"n": 0, "alerts": 0}
    first: list[float] = []
    last: list[float] = []

    def processed(*_: Any) -> None:
        seen["n"] += 1
        if not first:
            first.append(time.monotonic())
        if seen["n"] >= expect:
            last.append(time.monotonic())
            app.stop()

    app._on_message_processed = processed  # counts every consumed message, filtered or not
    sdf = app.dataframe(app.topic(topic, value_deserializer="json", key_deserializer="str"))
    sdf = sdf.apply(judge, stateful=True).filter(lambda v: v is not None)

    def count_alert(v: dict[str, Any]) -> None:
        seen["alerts"] += 1

    sdf.update(count_alert).to_topic(app.topic(output, value_serializer="json", key_serializer="str"))
    app.run()
    seconds = (last[0] if last else time.monotonic()) - first[0] if first else 0.0
    return {"events": seen["n"], "seconds": seconds, "rate": seen["n"] / seconds if seconds else 0.0,
            "alerts": seen["alerts"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--output", help="alerts topic (default: <topic>.peer-alerts, must exist)")
    ap.add_argument("--expect", type=int, required=True, help="stop after this many messages")
    ap.add_argument("--group", default=f"quix-peer-{int(time.time())}")
    ap.add_argument("--state-dir", default=None)
    args = ap.parse_args()
    state_dir = args.state_dir or tempfile.mkdtemp(prefix="quix-peer-")
    print(json.dumps(run(args.bootstrap, args.topic, args.output or f"{args.topic}.peer-alerts", args.expect,
                         args.group, state_dir)), flush=True)


if __name__ == "__main__":
    main()
