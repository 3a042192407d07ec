"""The producer SDK against a real broker: nothing lost, keys on murmur2's partition."""

from __future__ import annotations

import socket
import time
from collections import defaultdict

import msgspec
import pytest
from confluent_kafka import Consumer

from streams import events
from streams.producer import DeliveryFailed, TokenUsageProducer
from streams.settings import Settings
from streams.simulate import generate

pytestmark = pytest.mark.integration


def murmur2(data: bytes) -> int:
    """Kafka's Java ``Utils.murmur2``: the default partitioner of Java, Faust and kafkajs."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length & ~3
    extra = length % 4
    if extra == 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def java_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def test_murmur2_matches_kafkas_reference_values() -> None:
    # Values from Kafka's UtilsTest.testMurmur2.
    assert murmur2(b"21") == 0xFFFFFFFF & -973932308
    assert murmur2(b"foobar") == 0xFFFFFFFF & -790332482
    assert murmur2(b"a-little-bit-long-string") == 0xFFFFFFFF & -985981536
    assert murmur2(b"a-little-bit-longer-string") == 0xFFFFFFFF & -1486304829
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == 0xFFFFFFFF & -58897971


def consume_all(settings: Settings, topic: str, expected: int, timeout: float = 60.0) -> list:
    consumer = Consumer(
        settings.librdkafka(
            **{
                "group.id": f"test-{topic}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=1.0):
                assert message.error() is None, message.error()
                messages.append(message)
        # Anything beyond `expected` would be a duplicate: give it a moment to show up.
        messages.extend(
            m for m in consumer.consume(num_messages=1000, timeout=1.0) if not m.error()
        )
    finally:
        consumer.close()
    return messages


def test_every_event_produced_is_consumed_on_its_tenants_partition(
    kafka_settings: Settings, unique_topic: str
) -> None:
    stream = [m for m in generate(seed=21, events=3_000, tenants=20) if m.kind == "valid"]
    delivered = []
    with TokenUsageProducer(
        kafka_settings, topic=unique_topic, on_delivery=lambda key, err, msg: delivered.append(err)
    ) as producer:
        for message in stream:
            producer.send(events.parse(message.value))  # validated path
    assert len(delivered) == len(stream) and not any(delivered)
    assert producer.stats.delivered == len(stream) and producer.stats.failed == 0

    consumed = consume_all(kafka_settings, unique_topic, len(stream))
    assert len(consumed) == len(stream)
    assert sorted(m.value() for m in consumed) == sorted(m.value for m in stream)
    partitions_of_tenant = defaultdict(set)
    for message in consumed:
        tenant_id = msgspec.json.decode(message.value())["tenant_id"]
        assert message.key() == tenant_id.encode()
        assert message.partition() == java_partition(message.key(), 6)
        partitions_of_tenant[tenant_id].add(message.partition())
    assert all(len(p) == 1 for p in partitions_of_tenant.values())
    assert len({p for ps in partitions_of_tenant.values() for p in ps}) > 1


def test_close_delivers_everything_queued(kafka_settings: Settings, unique_topic: str) -> None:
    stream = list(generate(seed=22, events=20_000, tenants=10))
    producer = TokenUsageProducer(kafka_settings, topic=unique_topic)
    for message in stream:
        producer.send_raw(message.key, message.value)
    producer.close()  # no explicit flush: close must not lose the queue
    assert producer.stats.delivered == len(stream)
    assert len(consume_all(kafka_settings, unique_topic, len(stream))) == len(stream)


def test_invalid_event_raises_and_is_not_sent(kafka_settings: Settings, unique_topic: str) -> None:
    good = msgspec.json.decode(next(generate(seed=23, events=1)).value)
    with TokenUsageProducer(kafka_settings, topic=unique_topic) as producer:
        with pytest.raises(events.InvalidEvent) as caught:
            producer.send({**good, "cached_input_tokens": good["input_tokens"] + 1})
        assert caught.value.reason == "cached_exceeds_input"
        with pytest.raises(events.InvalidEvent) as caught:
            producer.send({**good, "channel": "carrier-pigeon"})
        assert caught.value.reason == "unknown_enum_value"
        assert producer.stats.delivered == 0
        producer.send(good)  # a sentinel: the only message the topic may hold
    assert producer.stats.delivered == 1
    consumed = consume_all(kafka_settings, unique_topic, 1, timeout=30)
    assert [msgspec.json.decode(m.value()) for m in consumed] == [good]


def test_unreachable_broker_gives_delivery_failed_quickly() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    settings = Settings(kafka_port=port)
    producer = TokenUsageProducer(settings, config={"message.timeout.ms": 2_000, "log_level": 0})
    message = next(generate(seed=24, events=1))
    started = time.monotonic()
    producer.send(events.parse(message.value))
    with pytest.raises(DeliveryFailed) as caught:
        producer.flush(timeout=15)
    assert time.monotonic() - started < 10
    text = str(caught.value)
    assert f"Is Kafka reachable at 127.0.0.1:{port}?" in text
    assert "same event_id" in text
    assert caught.value.failures[0][0] == message.key.decode()
