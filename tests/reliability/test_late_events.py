"""Late events: for live windows already closed, and for daily partitions already built.

Live, a window closes ``late_event_allowance_seconds`` after its end (in event time); an event
for it afterwards is *too late*: counted as such, never silently dropped, and never changing
a window already emitted. The warehouse has no such limit: the loader lands the event into
its own day, rating reports that day, and the Dagster sensor re-materialises exactly the
partitions touched, after which the marts hold every event of every day, as the oracle says.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from streams.broker import LocalKafka
from streams.producer import TokenUsageProducer
from streams.settings import Settings
from streams.simulate import FaultRates, JsonlWriter, generate, ground_truth
from streams.topics import TopicSpec
from tests.streams.live_helpers import encode, make_event
from tests.streams.worker_fixtures import produce, view, wait_caught_up
from warehouse import db
from warehouse.loader import land

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


def test_events_for_closed_windows_are_counted_too_late_live_and_land_in_the_warehouse(
    live_settings: Settings, workers: Any, tmp_path: Path
) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    on_time = [make_event(tenant_id=tenant, occurred_at=now - timedelta(minutes=1))]
    # Five minutes of event time later the windows of three hours ago are long closed.
    on_time += [make_event(tenant_id=tenant, occurred_at=now + timedelta(minutes=4))]
    late = [make_event(tenant_id=tenant, occurred_at=now - timedelta(hours=3)) for _ in range(4)]
    produce(live_settings, [(tenant.encode(), encode(e)) for e in on_time])
    worker = workers(live_settings)
    wait_caught_up(worker)
    windows_before = view(worker, "windows", window="1h", dimension="tenant", value=tenant)
    produce(live_settings, [(tenant.encode(), encode(e)) for e in late])
    health = wait_caught_up(worker)

    assert health["stats"]["too_late"] == len(late)  # counted as too late, not dropped
    windows_after = view(worker, "windows", window="1h", dimension="tenant", value=tenant)
    assert windows_after == windows_before  # an emitted window never changes

    landed = land(live_settings, topic=live_settings.live_source_topic)
    assert landed.landed == len(on_time) + len(late)  # the warehouse has them all
    late_day = (now - timedelta(hours=3)).date()
    assert late_day in landed.event_dates


def _late_stream(path: Path, *, now: datetime) -> list[tuple[bytes | None, bytes]]:
    """Three days of traffic, then late events for the oldest day and retries of old events."""
    first = list(generate(seed=61, events=500, tenants=6, days=3, now=now))
    oldest_day = now - timedelta(days=2, hours=12)
    late = list(
        generate(seed=62, events=60, tenants=6, now=oldest_day, faults=FaultRates(duplicates=0.1))
    )
    retries = [m for m in first if m.kind == "valid"][:25]  # delivered again, days later
    messages = first + late + retries
    with JsonlWriter(path) as writer:
        for message in messages:
            writer.write(message)
    return [(m.key, m.value) for m in messages]


def _per_day(con: Any) -> dict[date, tuple[int, int]]:
    rows = con.execute(
        "select event_date, count(*), sum(total_tokens) from marts.fct_usage_rated group by 1"
    ).fetchall()
    return {day: (requests, int(tokens)) for day, requests, tokens in rows}


@pytest.mark.slow
def test_late_events_for_built_partitions_are_rematerialised_to_the_oracle(
    kafka_broker: LocalKafka, tmp_path: Path
) -> None:
    from dagster import AssetSelection, DagsterInstance, build_sensor_context, materialize

    from pipelines.definitions import defs
    from pipelines.resources import KafkaResource, resources_for
    from pipelines.run import materialize_all
    from pipelines.sensors import event_dates_sensor

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    settings = kafka_broker.settings.model_copy(update={"home": tmp_path / "home"})
    topic = f"test.late.{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topics([TopicSpec(topic, partitions=6)])
    resources = dict(resources_for("local", settings))
    resources["kafka"] = KafkaResource(**{**resources["kafka"].model_dump(), "events_topic": topic})
    path = tmp_path / "stream.jsonl"
    messages = _late_stream(path, now=now)
    first_part = 500
    instance = DagsterInstance.ephemeral()

    def send(batch: list[tuple[bytes | None, bytes]]) -> None:
        with TokenUsageProducer(settings, topic=topic) as producer:
            for key, value in batch:
                producer.send_raw(key, value)

    send(messages[:first_part])
    assert materialize_all(settings, instance=instance, resources=resources).success
    with db.connect(settings.warehouse_path, read_only=True) as con:
        built_before = _per_day(con)

    send(messages[first_part:])  # late events for an already built day, and old retries
    assets = [*(defs.assets or []), *(defs.asset_checks or [])]
    upstream = materialize(
        assets,  # type: ignore[arg-type]
        selection=AssetSelection.groups("landing", "rating", "staging"),
        resources=resources,
        instance=instance,
    )
    assert upstream.success
    with build_sensor_context(instance=instance) as context:
        request = event_dates_sensor(context)
    tags = request.tags  # type: ignore[union-attr]
    marts = materialize(
        assets,  # type: ignore[arg-type]
        selection=AssetSelection.groups("revenue", "economics"),
        resources=resources,
        instance=instance,
        tags=tags,
    )
    assert marts.success

    truth = ground_truth(path).with_columns(
        pl.col("occurred_at").dt.date().alias("event_date"),
        (pl.col("input_tokens") + pl.col("output_tokens")).alias("total_tokens"),
    )
    expected = {
        row["event_date"]: (row["requests"], row["tokens"])
        for row in truth.group_by("event_date")
        .agg(pl.len().alias("requests"), pl.col("total_tokens").sum().alias("tokens"))
        .to_dicts()
    }
    with db.connect(settings.warehouse_path, read_only=True) as con:
        after = _per_day(con)
        revenue = dict(
            con.execute(
                "select event_date, sum(requests) from marts.fct_revenue_daily group by 1"
            ).fetchall()
        )
        redeliveries = con.execute("select count(*) from raw.redeliveries").fetchone()
    late_day = (now - timedelta(days=2, hours=12)).date()
    assert after[late_day][0] > built_before.get(late_day, (0, 0))[0]  # the day was rebuilt
    assert after == expected  # every day holds exactly its distinct events, late ones included
    assert revenue == {day: requests for day, (requests, _) in expected.items()}
    assert redeliveries is not None and redeliveries[0] >= 25  # retries days later: once
