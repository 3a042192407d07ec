"""Kafka -> DuckDB landing rows/s (``warehouse.loader.land``) vs a naive row-by-row insert.

The same broker topic (``landing_events`` simulated events) is landed twice: by the loader
into a fresh warehouse file (timed end to end: consume, parse, de-duplicate, write with the
offsets), and, for the baseline, a ``naive_sample`` of it by a consumer loop that parses each
message and runs one ``insert`` per row (autocommit) into the same raw table. The naive
rate is measured on the sample and *extrapolated* to the full size (it is linear: a fixed
cost per row), since running it on a million rows would take many minutes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import BenchOptions, Figure, best, fresh_topic, kafka, scratch
from streams import events
from streams.broker import LocalKafka
from streams.producer import TokenUsageProducer
from streams.simulate import generate

NAME = "landing"
TARGET_ROWS_PER_S = 150_000


def fill_topic(broker: LocalKafka, topic: str, count: int, seed: int) -> None:
    """``count`` simulated events (no faults) into ``topic``, as fast as the SDK sends."""
    producer = TokenUsageProducer(broker.settings, topic=topic)
    for message in generate(seed=seed, events=count, days=3):
        producer.send_raw(message.key, message.value)
    producer.flush()


def loader_rate(broker: LocalKafka, topic: str, home: Path) -> tuple[float, int]:
    """Rows/s of ``land`` from the start of the topic into an empty warehouse file."""
    from warehouse.loader import land

    settings = broker.settings.model_copy(update={"home": home})
    start = time.perf_counter()
    result = land(settings, topic=topic, group_id=f"bench-{home.name}")
    elapsed = time.perf_counter() - start
    return result.landed / elapsed, result.landed


def naive_rate(broker: LocalKafka, topic: str, home: Path, sample: int) -> float:
    """Rows/s of consume -> parse -> one ``insert`` per row, over the first ``sample`` rows."""
    from confluent_kafka import Consumer

    from warehouse import db
    from warehouse.loader import _EVENT_FIELDS, ensure_raw_tables

    con = db.connect(home / "naive.duckdb")
    ensure_raw_tables(con)
    consumer = Consumer(
        broker.settings.librdkafka(
            **{"group.id": f"naive-{home.name}", "auto.offset.reset": "earliest"}
        )
    )
    consumer.subscribe([topic])
    columns = (*_EVENT_FIELDS, "kafka_topic", "kafka_partition", "kafka_offset", "landed_at")
    insert = (
        f"insert into raw.token_usage_events ({', '.join(columns)}) "
        f"values ({', '.join('?' for _ in columns)}) on conflict do nothing"
    )
    inserted = 0
    start = None
    try:
        while inserted < sample:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            start = start or time.perf_counter()  # the first message ends the group join
            event = events.parse(message.value() or b"")
            row = [getattr(event, name) for name in _EVENT_FIELDS]
            row += [topic, message.partition(), message.offset(), datetime.now(UTC)]
            con.execute(insert, row)
            inserted += 1
        assert start is not None
        return inserted / (time.perf_counter() - start)
    finally:
        consumer.close()
        con.close()


def run(options: BenchOptions) -> list[Figure]:
    count = options.landing_events
    with scratch(options, NAME) as home, kafka(options, home / "broker") as broker:
        topic = fresh_topic(broker, "landing")
        options.log(f"  producing {count:,} simulated events")
        fill_topic(broker, topic, count, options.seed)
        loader: list[float] = []
        naive: list[float] = []
        for round_ in range(options.rounds):
            options.log(
                f"  round {round_ + 1}: naive row-by-row insert of {options.naive_sample:,}"
            )
            naive.append(naive_rate(broker, topic, home / f"naive-{round_}", options.naive_sample))
            options.log(f"  round {round_ + 1}: loader, {count:,} events")
            rate, landed = loader_rate(broker, topic, home / f"loader-{round_}")
            if landed != count:
                raise RuntimeError(f"the loader landed {landed:,} of {count:,} events")
            loader.append(rate)
        figure, baseline = best(loader), best(naive)
        return [
            Figure(
                benchmark=NAME,
                name=f"landing Kafka -> DuckDB ({count:,} events)",
                value=figure,
                unit="rows/s",
                baseline_name=f"naive row-by-row insert ({options.naive_sample:,}-row sample, "
                "extrapolated)",
                baseline=baseline,
                target=f">= {TARGET_ROWS_PER_S:,} rows/s",
                met=figure >= TARGET_ROWS_PER_S,
                target_value=TARGET_ROWS_PER_S,
                note=f"loader timed end to end (consume, parse, de-duplicate, write with "
                f"offsets); the naive baseline was measured on {options.naive_sample:,} rows "
                f"and extrapolated to {count:,} ({count / baseline / 60:,.1f} min)",
                details={"events": count, "loader_rounds": loader, "naive_rounds": naive},
            )
        ]
