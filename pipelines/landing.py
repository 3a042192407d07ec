"""Landing: Kafka -> ``raw.*`` exactly once (``warehouse.loader.land``), and its checks.

The landing asset is not partitioned (it consumes a stream, whatever dates arrive); it
reports the event dates it touched, so the partitions a late event belongs to are
re-materialised downstream (``pipelines/sensors.py``).
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Definitions,
    MaterializeResult,
    MetadataValue,
    asset_check,
    multi_asset,
)

from pipelines.resources import BooksResource, KafkaResource, WarehouseResource, to_settings
from pipelines.sql_models import markdown_table
from warehouse.loader import CONSUMER_GROUP

RAW_EVENTS = AssetKey(["raw", "token_usage_events"])
RAW_QUARANTINE = AssetKey(["raw", "quarantine"])
RAW_REDELIVERIES = AssetKey(["raw", "redeliveries"])

#: Which asset writes each raw table (``raw.kafka_offsets`` moves with the events).
RAW_PRODUCERS = {
    "raw.token_usage_events": RAW_EVENTS,
    "raw.kafka_offsets": RAW_EVENTS,
    "raw.quarantine": RAW_QUARANTINE,
    "raw.redeliveries": RAW_REDELIVERIES,
    "raw.*": RAW_EVENTS,
}


def table_exists(con: Any, schema: str, name: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            [schema, name],
        ).fetchall()[0][0]
    )


def land_new_events(settings: Any, topic: str) -> Any:
    """Land what is waiting on ``topic`` and stop (the loader, without ``follow``)."""
    from warehouse.loader import land

    return land(settings, follow=False, topic=topic)


@multi_asset(
    specs=[
        AssetSpec(
            RAW_EVENTS,
            description="One row per distinct event_id ever landed (first delivery wins), "
            "with its Kafka coordinates; `raw.kafka_offsets` moves in the same transaction.",
            kinds={"kafka", "duckdb"},
            metadata={"relation": "raw.token_usage_events"},
        ),
        AssetSpec(
            RAW_QUARANTINE,
            description="Invalid messages with their original bytes and the reason.",
            kinds={"duckdb"},
            metadata={"relation": "raw.quarantine"},
        ),
        AssetSpec(
            RAW_REDELIVERIES,
            description="Every repeated delivery of an event_id already landed.",
            kinds={"duckdb"},
            metadata={"relation": "raw.redeliveries"},
        ),
    ],
    group_name="landing",
    can_subset=False,
)
def raw_landing(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    kafka: KafkaResource,
    books: BooksResource,
) -> Iterator[MaterializeResult]:
    """Land every message waiting on the events topic into ``raw.*``."""
    result = land_new_events(to_settings(warehouse, kafka, books), kafka.events_topic)
    context.log.info(f"landing: {result}")
    # The partitions this landing touched: the event dates of the events it added.
    touched = sorted(str(day) for day in result.event_dates)
    with warehouse.connect() as con:
        events, tenants = con.execute(
            "select count(*), count(distinct tenant_id) from raw.token_usage_events"
        ).fetchall()[0]
        top_tenants = con.sql(
            """
            select tenant_id, count(*) as requests,
                   sum(input_tokens + output_tokens)::bigint as tokens
            from raw.token_usage_events group by tenant_id order by tokens desc limit 10
            """
        ).pl()
        quarantined = con.execute("select count(*) from raw.quarantine").fetchall()[0][0]
        by_reason = con.sql(
            "select reason, count(*) as messages from raw.quarantine group by reason order by 2 desc"
        ).pl()
        redeliveries = con.execute("select count(*) from raw.redeliveries").fetchall()[0][0]
    yield MaterializeResult(
        asset_key=RAW_EVENTS,
        metadata={
            "dagster/row_count": MetadataValue.int(int(events)),
            "new events": MetadataValue.int(int(result.landed)),
            "redelivered (counted once)": MetadataValue.int(int(result.duplicates)),
            "tenants": MetadataValue.int(int(tenants)),
            # Read by the late-event sensor: the partitions this landing touched.
            "event_dates": MetadataValue.json(touched),
            "top tenants": MetadataValue.md(markdown_table(top_tenants)),
        },
    )
    yield MaterializeResult(
        asset_key=RAW_QUARANTINE,
        metadata={
            "dagster/row_count": MetadataValue.int(int(quarantined)),
            "by reason": MetadataValue.md(markdown_table(by_reason)),
        },
    )
    yield MaterializeResult(
        asset_key=RAW_REDELIVERIES,
        metadata={"dagster/row_count": MetadataValue.int(int(redeliveries))},
    )


@asset_check(asset=RAW_EVENTS, blocking=True, description="Every event_id is landed once.")
def no_duplicate_event_id(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.connect() as con:
        duplicates = con.sql(
            """
            select event_id, count(*) as copies
            from raw.token_usage_events group by event_id having count(*) > 1
            order by copies desc, event_id limit 20
            """
        ).pl()
        count = con.execute(
            "select count(*) from (select event_id from raw.token_usage_events "
            "group by event_id having count(*) > 1)"
        ).fetchall()[0][0]
    return AssetCheckResult(
        passed=count == 0,
        metadata={
            "duplicated event_ids": MetadataValue.int(int(count)),
            "examples": MetadataValue.md(markdown_table(duplicates)),
        },
    )


def consumer_lag(con: Any, kafka: KafkaResource) -> dict[int, int]:
    """Messages on the events topic not landed yet, per partition."""
    landed: dict[int, int] = {}
    if table_exists(con, "raw", "kafka_offsets"):
        landed = dict(
            con.execute(
                "select partition, next_offset from raw.kafka_offsets "
                "where consumer_group = ? and topic = ?",
                [CONSUMER_GROUP, kafka.events_topic],
            ).fetchall()
        )
    return {
        partition: max(0, high - landed.get(partition, 0))
        for partition, high in kafka.high_watermarks().items()
    }


@asset_check(
    asset=RAW_EVENTS,
    description="Landing keeps up: nothing waits on Kafka, or the last landing is recent.",
)
def landing_freshness(warehouse: WarehouseResource, kafka: KafkaResource) -> AssetCheckResult:
    bound = warehouse.landing_lag_bound_seconds
    with warehouse.connect() as con:
        lag = consumer_lag(con, kafka)
        last_landed, p95_delay = con.execute(
            """
            select max(landed_at),
                   quantile_cont(epoch(landed_at) - epoch(occurred_at), 0.95)
            from raw.token_usage_events
            """
        ).fetchall()[0]
    waiting = sum(lag.values())
    age = (datetime.now(UTC) - last_landed).total_seconds() if last_landed else None
    passed = waiting == 0 or (age is not None and age <= bound)
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{waiting} message(s) waiting; last landing {age:.0f}s ago (bound {bound}s)"
            if age is not None
            else f"{waiting} message(s) waiting; nothing landed yet"
        ),
        metadata={
            "messages waiting": MetadataValue.int(waiting),
            "lag by partition": MetadataValue.json({str(k): v for k, v in lag.items()}),
            "seconds since last landing": MetadataValue.float(float(age or 0.0)),
            "bound seconds": MetadataValue.int(bound),
            "p95 occurred -> landed seconds": MetadataValue.float(float(p95_delay or 0.0)),
        },
    )


defs = Definitions(assets=[raw_landing], asset_checks=[no_duplicate_event_id, landing_freshness])
