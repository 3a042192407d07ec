"""Live worker throughput: Faust workers vs a plain confluent-kafka loop, same processing.

A fresh topic is filled with ``worker_events`` simulated events stamped now (no faults).
Then, one after the other, each drains it from the start under its own consumer group and
state folder:

- the baseline: a plain ``confluent_kafka.Consumer`` loop that hands micro-batches to the
  very same :class:`streams.agents.process.BatchProcessor` the Faust agent calls (validate,
  de-duplicate, rate, aggregate, alert, commit to the partition's RocksDB): the Python
  ceiling, without Faust/aiokafka;
- one ``tokenhub worker`` process, then two (they share the partitions).

Throughput is measured on the steady part of the drain (from 10% to 90% of the events
applied, read from the workers' health view), so start-up and the group join are not
counted. A worker that drains a backlog at R events/s keeps lag flat under any steady
load below R; the latency benchmark checks lag under fixed rates.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import requests

from bench.common import (
    BenchOptions,
    Figure,
    RssSampler,
    best,
    free_port,
    fresh_topic,
    kafka,
    scratch,
)
from streams.broker import LocalKafka
from streams.producer import TokenUsageProducer
from streams.settings import Settings
from streams.simulate import generate

NAME = "worker"
TARGET_RATE = 20_000
STRETCH_RATE = 30_000


def fill_topic(broker: LocalKafka, topic: str, count: int, seed: int) -> None:
    """``count`` valid simulated events stamped now (live traffic) into ``topic``."""
    producer = TokenUsageProducer(broker.settings, topic=topic)
    for message in generate(seed=seed, events=count):
        producer.send_raw(message.key, message.value)
    producer.flush()


def worker_settings(broker: LocalKafka, topic: str, home: Path, name: str) -> Settings:
    """Settings of a worker group reading ``topic`` with its own state, from the start."""
    return broker.settings.model_copy(
        update={
            "home": home,
            "live_source_topic": topic,
            "worker_app_id": f"bench-{name}-{time.monotonic_ns():x}",
            "worker_state_dir": home / "state",
            "web_port": free_port(),
        }
    )


def _steady_rate(samples: list[tuple[float, int]], total: int) -> float:
    """Events/s between 10% and 90% of ``total`` applied (start-up excluded)."""
    low = next((t, n) for t, n in samples if n >= 0.1 * total)
    high = next((t, n) for t, n in samples if n >= 0.9 * total)
    if high[0] <= low[0]:
        return (high[1] - low[1]) / 1e-9
    return (high[1] - low[1]) / (high[0] - low[0])


def plain_loop_rate(broker: LocalKafka, topic: str, count: int, home: Path) -> float:
    """The baseline: confluent-kafka consume -> BatchProcessor.process, per partition."""
    from confluent_kafka import Consumer

    from streams.agents.alerts import Budgets
    from streams.agents.process import BatchProcessor
    from streams.agents.rating import load_rater
    from streams.agents.validate import SourceMessage
    from streams.state import PartitionStore, partition_path

    settings = worker_settings(broker, topic, home, "plain")
    processor = BatchProcessor(settings, load_rater(settings), Budgets.load(settings.budgets))
    stores: dict[int, PartitionStore] = {}
    consumer = Consumer(
        settings.librdkafka(
            **{
                "group.id": settings.worker_app_id,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": True,
            }
        )
    )
    consumer.subscribe([topic])
    applied = 0
    samples: list[tuple[float, int]] = []
    try:
        while applied < count:
            messages = consumer.consume(settings.worker_batch_size, timeout=1.0)
            by_partition: dict[int, list[SourceMessage]] = defaultdict(list)
            for m in messages:
                partition, offset = m.partition(), m.offset()
                if m.error() is None and partition is not None and offset is not None:
                    source = SourceMessage(topic, partition, offset, m.key(), m.value() or b"")
                    by_partition[partition].append(source)
            for partition, batch in by_partition.items():
                if partition not in stores:
                    stores[partition] = PartitionStore(
                        partition_path(settings.worker_state, partition)
                    )
                applied += processor.process(stores[partition], partition, batch).applied
            samples.append((time.perf_counter(), applied))
    finally:
        consumer.close()
        for store in stores.values():
            store.close()
    return _steady_rate(samples, count)


def health(handle: Any) -> dict[str, Any]:
    """The worker's health view (applied counters and lag)."""
    answer: dict[str, Any] = requests.get(f"{handle.base_url}/health/", timeout=30).json()
    return answer


def faust_rate(
    broker: LocalKafka,
    topic: str,
    count: int,
    home: Path,
    *,
    workers: int,
    sampler: RssSampler | None = None,
) -> float:
    """Steady events/s of ``workers`` Faust worker processes draining the topic."""
    from streams.app_runner import start_worker, stop_worker

    settings = worker_settings(broker, topic, home, f"faust{workers}")
    handles = []
    try:
        for index in range(workers):
            handles.append(
                start_worker(settings, web_port=settings.web_port + index if index else None)
            )
            if sampler is not None:
                sampler.watch(f"worker {index + 1} of {workers}", handles[-1].process.pid)
        samples: list[tuple[float, int]] = []
        deadline = time.monotonic() + max(120.0, count / 2_000)
        while time.monotonic() < deadline:
            stats = health(handles[0])["stats"]  # every worker reads all partitions' state
            events = int(stats.get("events", 0))
            samples.append((time.perf_counter(), events))
            if events >= count:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"{workers} worker(s) applied {events:,} of {count:,} in time")
        return _steady_rate(samples, count)
    finally:
        for handle in handles:
            stop_worker(handle)


def run(options: BenchOptions) -> list[Figure]:
    count = options.worker_events
    with scratch(options, NAME) as home, kafka(options, home / "broker") as broker:
        topic = fresh_topic(broker, "worker")
        options.log(f"  producing {count:,} simulated events")
        fill_topic(broker, topic, count, options.seed)
        plain: list[float] = []
        one: list[float] = []
        two: list[float] = []
        with RssSampler() as sampler:
            for round_ in range(options.rounds):
                options.log(f"  round {round_ + 1}: plain confluent-kafka loop")
                plain.append(plain_loop_rate(broker, topic, count, home / f"plain-{round_}"))
                options.log(f"  round {round_ + 1}: one Faust worker")
                one.append(faust_rate(broker, topic, count, home / f"one-{round_}", workers=1,
                                      sampler=sampler))  # fmt: skip
            options.log("  two Faust workers")
            two.append(faust_rate(broker, topic, count, home / "two", workers=2, sampler=sampler))
        figure, baseline, pair = best(one), best(plain), best(two)
        rss = {name: round(peak / 2**20) for name, peak in sampler.peaks.items()}
        details = {"events": count, "plain_rounds": plain, "one_worker_rounds": one,
                   "two_workers": two, "peak_rss_mib": rss}  # fmt: skip
        return [
            Figure(
                benchmark=NAME,
                name="live worker sustained throughput (1 worker)",
                value=figure,
                unit="events/s",
                baseline_name="plain confluent-kafka loop, same BatchProcessor",
                baseline=baseline,
                target=f">= {TARGET_RATE:,} events/s (stretch {STRETCH_RATE:,})",
                met=figure >= TARGET_RATE,
                target_value=TARGET_RATE,
                note=f"steady drain rate of a {count:,}-event backlog (10%..90%)",
                details=details,
            ),
            Figure(
                benchmark=NAME,
                name="live workers sustained throughput (2 workers)",
                value=pair,
                unit="events/s",
                baseline_name="one worker",
                baseline=figure,
                target="gain over one worker (cores allowing)",
                met=pair > figure,
                note="two worker processes sharing the 6 partitions on this "
                f"{_cores()}-core machine (the broker and the harness share them too)",
            ),
        ]


def _cores() -> int:
    import os

    return os.cpu_count() or 1
