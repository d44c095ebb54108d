from aiokafka import ConsumerRecord, TopicPartition

from services.common.consumer import record_lag
from services.common.metrics import REGISTRY


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
                                     {"service": "svc", "topic": "t.lag", "partition": "0"}) == 5


def test_unknown_highwater_or_fake_consumer_records_nothing():
    assert record_lag("svc", FakeConsumer({}), [rec("t.none", 0, 1)]) == {}
    assert record_lag("svc", object(), [rec("t.none", 0, 1)]) == {}
