from aiokafka import ConsumerRecord, TopicPartition

from services.common.consumer import record_lag
from services.common.metrics import REGISTRY, LagSampler


class FakeConsumer:
    def __init__(self, highwater: dict[TopicPartition, int]) -> None:
        self._hw = highwater

    def highwater(self, tp: TopicPartition) -> int | None:
        return self._hw.get(tp)


def rec(topic: str, partition: int, offset: int) -> ConsumerRecord:  # type: ignore[type-arg]
    return ConsumerRecord(topic, partition, offset, 0, 0, b"k", b"v", None, 1, 1, [])


def test_lag_is_highwater_minus_the_next_offset_per_partition():
    consumer = FakeConsumer({TopicPartition("t.lag", 0): 10, TopicPartition("t.lag", 1): 3})
    lags = record_lag("svc", consumer, [rec("t.lag", 0, 2), rec("t.lag", 0, 4), rec("t.lag", 1, 2)])
    assert lags == {("t.lag", 0): 5, ("t.lag", 1): 0}
    assert REGISTRY.get_sample_value("execwatch_consumer_lag",
                                     {"execwatch_service": "svc", "topic": "t.lag", "partition": "0"}) == 5


def test_unknown_highwater_or_fake_consumer_records_nothing():
    assert record_lag("svc", FakeConsumer({}), [rec("t.none", 0, 1)]) == {}
    assert record_lag("svc", object(), [rec("t.none", 0, 1)]) == {}


class AssignedConsumer:
    """The part of aiokafka's consumer the lag sampler reads."""

    def __init__(self, ends: dict[TopicPartition, int], positions: dict[TopicPartition, int]) -> None:
        self.ends, self.positions = ends, positions

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends[tp] for tp in partitions}

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]


def lag(topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value("execwatch_consumer_lag",
                                     {"execwatch_service": "sampled", "topic": topic, "partition": str(partition)})


async def test_sampler_reports_every_assigned_partition_and_forgets_revoked_ones():
    p0, p1 = TopicPartition("t.sampled", 0), TopicPartition("t.sampled", 1)
    sampler = LagSampler("sampled")
    # Idle after a restart: no message has arrived, the series are there and say 0 behind.
    consumer = AssignedConsumer({p0: 7, p1: 3}, {p0: 7, p1: 1})
    assert await sampler.sample([consumer]) == {("t.sampled", 0): 0, ("t.sampled", 1): 2}
    assert (lag("t.sampled", 0), lag("t.sampled", 1)) == (0.0, 2.0)
    # A rebalance gave partition 1 to another replica: this one stops reporting it.
    consumer.positions = {p0: 5}
    assert await sampler.sample([consumer]) == {("t.sampled", 0): 2}
    assert (lag("t.sampled", 0), lag("t.sampled", 1)) == (2.0, None)
    # A consumer not started yet (or a test broker's fake) has no assignment: nothing, no error.
    assert await LagSampler("sampled").sample([object()]) == {}
