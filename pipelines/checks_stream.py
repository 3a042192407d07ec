"""Stream vs warehouse: the live windows on ``token-usage.aggregates.v1`` equal the warehouse.

The Faust workers publish every closed window to the compacted aggregates topic (format in
``streams/agents/aggregates_out.py``), one message per window and ``source_partition``. This
check reads the whole topic (the last value per key wins, as compaction would keep), takes
the hourly windows of the ``all`` dimension and compares each (window, partition)'s
requests, tokens (input + output, the stream's ``total_tokens``) and spend per currency
(``amount_gross``, before free quota, which is what the live rating adds up) with the
warehouse's figures for the events of that partition that occurred in the same hour.

Comparing per partition, not per window summed over partitions, matters: each partition
closes a window when its own event time has passed it, so a worker stopped (or lagging)
part-way has closed an hour on some partitions and not yet on others. A sum would then be
short of the warehouse, which holds every partition.

The live windows follow event time: the worker keeps, per partition of the events topic, a
*watermark* (the newest ``occurred_at`` counted so far) and an event whose hourly window
ended more than ``late_event_allowance_seconds`` before the watermark is *too late*: counted
in the worker's stats, never in the window. The warehouse holds every event with its Kafka
partition and offset, so the check replays that rule in SQL (the running maximum of
``occurred_at`` over earlier offsets of the same partition) and compares the stream with the
warehouse's on-time events **exactly**; too-late events are reported beside the result.

Assumptions, stated so a failure can be read:

- the worker and the loader read the same events topic (``KafkaResource.events_topic``) and
  both keep the first delivery of an ``event_id`` (a retry arriving more than the worker's
  ``dedup_horizon_days`` later would be counted twice by the stream: not expected);
- only windows that ended before the newest landed event are compared (the warehouse has
  not landed later ones yet: the check runs right after landing);
- spend is compared per currency, to the last decimal (one rating implementation);
- an empty topic (no worker ran) skips the check with a message, it does not fail.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from dagster import AssetCheckResult, AssetKey, MetadataValue, asset_check

from pipelines.resources import KafkaResource, WarehouseResource
from pipelines.sql_models import markdown_table

USAGE_FACT = AssetKey(["marts", "fct_usage_rated"])
WINDOW = "1h"
DIMENSION = "all"


@dataclass
class WindowTotals:
    """One window's figures (from the stream or from the warehouse)."""

    requests: int = 0
    tokens: int = 0
    spend: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))


#: A window start (RFC 3339, UTC, to the second) and a partition of the events topic.
WindowKey = tuple[str, int]


def read_closed_windows(
    kafka: KafkaResource, topic: str | None = None
) -> dict[WindowKey, WindowTotals]:
    """The hourly ``all`` windows on the aggregates topic, per source partition."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    topic = topic or kafka.aggregates_topic
    watermarks = {p: high for p, high in kafka.high_watermarks(topic).items() if high > 0}
    latest: dict[bytes, bytes] = {}
    if watermarks:
        consumer = Consumer(
            kafka.librdkafka(
                **{
                    "group.id": "tokenhub-dagster-reconciliation",
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                }
            )
        )
        try:
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in watermarks])
            done: set[int] = set()
            while len(done) < len(watermarks):
                message = consumer.poll(5.0)
                if message is None:
                    break
                partition = int(message.partition() or 0)
                if message.error():
                    done.add(partition)
                    continue
                key, value = message.key() or b"", message.value()
                if value is not None:
                    latest[key] = value
                else:  # a tombstone deletes the key
                    latest.pop(key, None)
                if int(message.offset() or 0) + 1 >= watermarks[partition]:
                    done.add(partition)
        finally:
            consumer.close()
    windows: dict[WindowKey, WindowTotals] = defaultdict(WindowTotals)
    for value in latest.values():
        body = orjson.loads(value)
        if body.get("window") != WINDOW or body.get("dimension") != DIMENSION:
            continue
        totals = windows[body["window_start"], int(body["source_partition"])]
        totals.requests += int(body["requests"])
        totals.tokens += int(body["total_tokens"])
        for spend in body["spend"]:
            totals.spend[spend["currency"]] += Decimal(spend["amount"])
    return dict(windows)


#: Each landed event with its hourly window and whether the worker found it too late.
_ON_TIME_SQL = """
with events as (
    select
        event_id,
        kafka_partition,
        occurred_at,
        input_tokens + output_tokens as tokens,
        to_timestamp(floor(epoch(occurred_at) / 3600) * 3600) as window_start,
        max(occurred_at) over (
            partition by kafka_partition order by kafka_offset
            rows between unbounded preceding and 1 preceding
        ) as watermark_before
    from raw.token_usage_events
    where kafka_topic = $topic
),

final as (
    select
        *,
        strftime(timezone('UTC', window_start), '%Y-%m-%dT%H:%M:%SZ') as window_key,
        coalesce(
            window_start + to_seconds(3600 + $allowance) <= watermark_before, false
        ) as is_too_late
    from events
)

select * from final
"""


def warehouse_windows(
    con: Any, starts: list[str], *, topic: str, allowance_seconds: int
) -> tuple[dict[WindowKey, WindowTotals], dict[WindowKey, int], datetime | None]:
    """The warehouse's on-time figures per (window start, partition), too-late events per
    (window start, partition), and the newest event."""
    con.execute(
        f"create or replace temp table _reconciled as {_ON_TIME_SQL}",
        {"topic": topic, "allowance": allowance_seconds},
    )
    con.execute(
        "delete from _reconciled where window_key not in (select unnest(?::varchar[]))", [starts]
    )
    windows: dict[WindowKey, WindowTotals] = defaultdict(WindowTotals)
    for start, partition, requests, tokens in con.execute(
        "select window_key, kafka_partition, count(*), sum(tokens)::bigint from _reconciled "
        "where not is_too_late group by 1, 2"
    ).fetchall():
        totals = windows[start, int(partition)]
        totals.requests, totals.tokens = int(requests), int(tokens)
    for start, partition, currency, amount in con.execute(
        """
        select reconciled.window_key, reconciled.kafka_partition, usage.currency,
            sum(usage.amount_gross)
        from _reconciled as reconciled
        inner join marts.fct_usage_rated as usage using (event_id)
        where not reconciled.is_too_late
        group by 1, 2, 3
        """
    ).fetchall():
        windows[start, int(partition)].spend[currency] += amount
    too_late = {
        (start, int(partition)): count
        for start, partition, count in con.execute(
            "select window_key, kafka_partition, count(*) from _reconciled "
            "where is_too_late group by 1, 2"
        ).fetchall()
    }
    newest = con.execute(
        "select max(occurred_at) from raw.token_usage_events where kafka_topic = ?", [topic]
    ).fetchall()[0][0]
    con.execute("drop table _reconciled")
    return dict(windows), too_late, newest


def compare(
    stream: dict[WindowKey, WindowTotals], warehouse: dict[WindowKey, WindowTotals]
) -> list[dict[str, Any]]:
    """The windows whose requests, tokens or spend differ between stream and warehouse."""
    mismatches = []
    for start, partition in sorted(stream):
        live = stream[start, partition]
        stored = warehouse.get((start, partition), WindowTotals())
        if (
            live.requests == stored.requests
            and live.tokens == stored.tokens
            and _nonzero(live.spend) == _nonzero(stored.spend)
        ):
            continue
        mismatches.append(
            {
                "window_start": start,
                "partition": partition,
                "stream requests": live.requests,
                "warehouse requests": stored.requests,
                "stream tokens": live.tokens,
                "warehouse tokens": stored.tokens,
                "stream spend": _money(live.spend),
                "warehouse spend": _money(stored.spend),
            }
        )
    return mismatches


def _nonzero(spend: dict[str, Decimal]) -> dict[str, Decimal]:
    return {currency: amount for currency, amount in spend.items() if amount}


def _money(spend: dict[str, Decimal]) -> str:
    return ", ".join(f"{amount} {currency}" for currency, amount in sorted(spend.items()))


@asset_check(
    asset=USAGE_FACT,
    description="Closed live windows (aggregates topic) equal the warehouse for the same hours.",
)
def stream_reconciliation(kafka: KafkaResource, warehouse: WarehouseResource) -> AssetCheckResult:
    stream = read_closed_windows(kafka)
    if not stream:
        return AssetCheckResult(
            passed=True,
            description=f"skipped: no closed {WINDOW} windows on {kafka.aggregates_topic} "
            "(start the live worker, `tokenhub worker`, to compare)",
            metadata={"compared windows": MetadataValue.int(0), "skipped": True},
        )
    with warehouse.connect() as con:
        stored, too_late, newest = warehouse_windows(
            con,
            sorted({start for start, _ in stream}),
            topic=kafka.events_topic,
            allowance_seconds=kafka.late_event_allowance_seconds,
        )
    if newest is not None:
        cutoff = newest.strftime("%Y-%m-%dT%H:%M:%SZ")
        stream = {key: totals for key, totals in stream.items() if _end_of(key[0]) <= cutoff}
    mismatches = compare(stream, stored)
    late_in_compared = sum(count for key, count in too_late.items() if key in stream)
    return AssetCheckResult(
        passed=not mismatches,
        description=(
            f"{len(stream) - len(mismatches)} of {len(stream)} closed hourly window(s) equal "
            f"per partition (requests, tokens, spend); {late_in_compared} event(s) arrived too late for "
            "their live window and are left out of the comparison"
        ),
        metadata={
            "compared windows": MetadataValue.int(len(stream)),
            "equal windows": MetadataValue.int(len(stream) - len(mismatches)),
            "too-late events (not in live windows)": MetadataValue.int(late_in_compared),
            "mismatches": MetadataValue.md(markdown_table(mismatches)),
        },
    )


def _end_of(start: str) -> str:
    from datetime import timedelta

    moment = datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ") + timedelta(hours=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
