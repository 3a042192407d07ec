"""Producer throughput: the SDK (``TokenUsageProducer``) vs Kafka's Java ``ProducerPerformance``.

Both send to a fresh 6-partition topic on the same broker with the same tuning (acks=all,
idempotence, lz4, linger 20 ms, 1 MB batches), back to back, ``rounds`` times; the best
round of each is kept. The SDK sends realistic events from the simulator as typed structs
through ``send`` (so every event is validated before it is sent, as a service would); the
Java tool sends ``--record-size 400`` records. A second Java run with ``--payload-file``
(the very same simulated events) is recorded in the details. JVM start-up is not counted
(the tool times itself from its first send to ``close``, as the SDK is timed from its first
``send`` to ``flush``).
"""

from __future__ import annotations

import itertools
import re
import subprocess
import time
from pathlib import Path

from bench.common import BenchOptions, Figure, best, fresh_topic, kafka, scratch
from streams import events
from streams.broker import _LOG4J, LocalKafka
from streams.producer import PRODUCER_DEFAULTS, TokenUsageProducer
from streams.simulate import generate

NAME = "producer"
TARGET_RATE = 150_000
TARGET_SHARE_OF_JAVA = 0.5
#: Distinct events kept in memory; longer runs cycle through them (Kafka does not care).
POOL = 100_000
_RATE = re.compile(r"([\d.]+) records/sec")


def event_pool(seed: int, count: int) -> list[events.TokenUsageEvent]:
    """Realistic valid events from the simulator, as the typed structs a service builds."""
    return [
        events.parse(message.value)
        for message in generate(seed=seed, events=min(count, POOL), days=1)
    ]


def sdk_rate(broker: LocalKafka, pool: list[events.TokenUsageEvent], count: int) -> float:
    """Events/s of ``TokenUsageProducer.send`` (validate, encode, queue) until all are acked."""
    topic = fresh_topic(broker, "producer-sdk")
    producer = TokenUsageProducer(broker.settings, topic=topic)
    stream = itertools.islice(itertools.cycle(pool), count)
    send = producer.send
    start = time.perf_counter()
    for event in stream:
        send(event)
    producer.flush()
    elapsed = time.perf_counter() - start
    if producer.stats.delivered != count:
        raise RuntimeError(f"SDK delivered {producer.stats.delivered} of {count} events")
    return count / elapsed


def java_rate(broker: LocalKafka, count: int, *, payload_file: Path | None = None) -> float:
    """Records/s of Kafka's own ``ProducerPerformance`` with the SDK's tuning."""
    topic = fresh_topic(broker, "producer-java")
    tuning = {key: PRODUCER_DEFAULTS[key] for key in ("acks", "compression.type", "linger.ms")}
    props = [
        f"bootstrap.servers={broker.settings.bootstrap}",
        "enable.idempotence=true",
        *(f"{key}={value}" for key, value in tuning.items()),
        f"batch.size={PRODUCER_DEFAULTS['batch.size']}",
    ]
    payload = ["--payload-file", str(payload_file)] if payload_file else ["--record-size", "400"]
    command = [
        "java",
        "-Xmx512m",
        f"-Dlog4j.configuration=file:{_LOG4J}",
        "-cp",
        f"{broker.libs}/*",
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(count),
        *payload,
        "--throughput",
        "-1",
        "--producer-props",
        *props,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=1800)
    rates = _RATE.findall(result.stdout)
    if result.returncode != 0 or not rates:
        raise RuntimeError(f"ProducerPerformance failed:\n{result.stdout}\n{result.stderr}")
    return float(rates[-1])  # the last line is the total


def run(options: BenchOptions) -> list[Figure]:
    count = options.producer_events
    with scratch(options, NAME) as home, kafka(options, home / "broker") as broker:
        options.log(f"  generating {min(count, POOL):,} simulated events")
        pool = event_pool(options.seed, count)
        mean_bytes = sum(len(events.encode(e)) for e in pool) / len(pool)
        payload_file = home / "events.txt"
        payload_file.write_bytes(b"\n".join(events.encode(e) for e in pool))
        sdk: list[float] = []
        java: list[float] = []
        java_same: list[float] = []
        for round_ in range(options.rounds):
            options.log(f"  round {round_ + 1}: Java ProducerPerformance, {count:,} records")
            java.append(java_rate(broker, count))
            options.log(f"  round {round_ + 1}: TokenUsageProducer.send, {count:,} events")
            sdk.append(sdk_rate(broker, pool, count))
            if not options.quick:
                java_same.append(java_rate(broker, count, payload_file=payload_file))
        figure, baseline = best(sdk), best(java)
        ratio = figure / baseline
        met = figure >= TARGET_RATE and ratio >= TARGET_SHARE_OF_JAVA
        details = {
            "events": count,
            "rounds": options.rounds,
            "sdk_rounds": sdk,
            "java_rounds": java,
            "mean_event_bytes": round(mean_bytes),
        }
        note = f"simulated events of {mean_bytes:.0f} bytes on average, validated before sending"
        if java_same:
            details["java_same_events_rounds"] = java_same
            details["ratio_to_java_same_events"] = figure / best(java_same)
            note += f"; Java with the same events: {best(java_same):,.0f}/s"
        return [
            Figure(
                benchmark=NAME,
                name="producer throughput (SDK send)",
                value=figure,
                unit="events/s",
                baseline_name="Java ProducerPerformance (400 B records)",
                baseline=baseline,
                target=f">= {TARGET_RATE:,} events/s and >= {TARGET_SHARE_OF_JAVA} x Java",
                met=met,
                target_value=TARGET_RATE,
                note=note,
                details=details,
            )
        ]
