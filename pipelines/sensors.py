"""Automation: what starts runs without anyone clicking.

- ``kafka_lag_sensor`` lands and rates new events when Kafka holds messages the warehouse
  has not landed (high watermarks vs ``raw.kafka_offsets``);
- ``books_changed_sensor`` reloads the books and re-rates when any file in the books folder
  changes (content hash);
- ``event_dates_sensor`` re-materialises the partitions new or re-rated usage fell into
  (late events, re-rating after a book change): one run over the covering range of dates,
  every mart, since rating touched old days that declarative automation leaves alone;
- ``marts_automation`` evaluates the marts' automation conditions (eager: a mart follows
  its upstream; for daily partitions, today's partition).

Sensors only read: when a run holds the warehouse's write lock they skip the tick.
"""

from __future__ import annotations

import hashlib
import json

from dagster import (
    AssetRecordsFilter,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from pipelines.landing import RAW_EVENTS, RAW_QUARANTINE, RAW_REDELIVERIES, consumer_lag
from pipelines.partitions import partition_keys_for
from pipelines.rating import BOOKS, RATED_USAGE, RATING_ADJUSTMENTS, UNRATED_USAGE
from pipelines.resources import BooksResource, KafkaResource, WarehouseBusy, WarehouseResource

LANDING = [RAW_EVENTS, RAW_QUARANTINE, RAW_REDELIVERIES]
RATING = [BOOKS, RATED_USAGE, UNRATED_USAGE, RATING_ADJUSTMENTS]
MARTS = AssetSelection.groups("revenue", "economics")
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


@sensor(
    # Landing and rating in one run: landed usage is only useful rated.
    target=AssetSelection.assets(*LANDING, RATED_USAGE, UNRATED_USAGE, RATING_ADJUSTMENTS),
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Land new events when Kafka holds messages not landed yet.",
)
def kafka_lag_sensor(
    context: SensorEvaluationContext, warehouse: WarehouseResource, kafka: KafkaResource
) -> RunRequest | SkipReason:
    if warehouse.path.exists():
        try:
            with warehouse.connect(read_only=True) as con:
                lag = consumer_lag(con, kafka)
        except WarehouseBusy:
            return SkipReason("a run is writing the warehouse; next tick")
    else:
        lag = kafka.high_watermarks()
    waiting = sum(lag.values())
    if not waiting:
        return SkipReason("no consumer lag: every message is landed")
    # One run per distinct set of watermarks: a retried tick does not land twice.
    run_key = hashlib.sha256(json.dumps(sorted(lag.items())).encode()).hexdigest()[:16]
    return RunRequest(run_key=f"lag-{run_key}", tags={"tokenhub/messages_waiting": str(waiting)})


@sensor(
    target=AssetSelection.assets(*RATING),
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Reload the books and re-rate when a price, cost or transfer book changes.",
)
def books_changed_sensor(
    context: SensorEvaluationContext, books: BooksResource
) -> RunRequest | SkipReason:
    content_hash, previous = books.content_hash(), context.cursor
    if previous == content_hash:
        return SkipReason("books unchanged")
    context.update_cursor(content_hash)
    if previous is None:
        return SkipReason(f"watching {books.path}: a change of any book re-rates")
    return RunRequest(
        run_key=f"books-{content_hash[:16]}", tags={"tokenhub/books": content_hash[:16]}
    )


@sensor(
    target=MARTS,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Re-materialise the event-date partitions that new or re-rated usage touched.",
)
def event_dates_sensor(context: SensorEvaluationContext) -> RunRequest | SkipReason:
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=RATED_USAGE, after_storage_id=after),
        limit=100,
        ascending=True,
    ).records
    if not records:
        return SkipReason("no new rating since the last tick")
    dates: set[str] = set()
    for record in records:
        materialization = record.asset_materialization
        value = materialization.metadata.get("event_dates") if materialization else None
        dates |= set(getattr(value, "value", None) or [])
    context.update_cursor(str(records[-1].storage_id))
    keys, outside = partition_keys_for(dates)
    if outside:
        context.log.warning(
            f"usage on dates without a partition (before partitions_start?): {outside}"
        )
    if not keys:
        return SkipReason("rating touched no event date with a partition")
    return RunRequest(
        run_key=f"dates-{records[-1].storage_id}",
        tags={
            RANGE_START_TAG: keys[0],
            RANGE_END_TAG: keys[-1],
            "tokenhub/event_dates": ",".join(keys)[:1000],
        },
    )


marts_automation = AutomationConditionSensorDefinition(
    "marts_automation",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Declarative automation of the marts (eager: follow the upstream).",
)

defs = Definitions(
    sensors=[kafka_lag_sensor, books_changed_sensor, event_dates_sensor, marts_automation]
)
