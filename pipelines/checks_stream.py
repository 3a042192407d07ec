"""Stream vs warehouse: the live windows on ``token-usage.aggregates.v1`` equal the warehouse.

The Faust workers publish every closed window to the compacted aggregates topic (format in
``streams/agents/aggregates_out.py``). This check reads the whole topic (the last value per
key wins, as compaction would keep), takes the hourly windows of the ``all`` dimension,
sums them over ``source_partition`` and compares each window's requests, tokens
(input + output, the stream's ``total_tokens``) and spend per currency (``amount_gross``,
before free quota, which is what the live rating adds up) with the warehouse's figures
for the events that occurred in the same hour.

Assumptions, stated so a failure can be read:

- only windows that ended before the newest landed event are compared (the warehouse has
  not landed later ones yet: the check runs right after landing);
- an event that arrived after its window closed (later than ``late_event_allowance_seconds``)
  is in the warehouse but no longer in the live window. So the warehouse may be *ahead* of a
  window (reported, severity stays a pass with the windows listed); the stream must never
  be ahead of the warehouse: that is an event lost between Kafka and DuckDB, and fails;
- where requests match, spend must match to the last decimal (one rating implementation);
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


def read_closed_windows(kafka: KafkaResource, topic: str | None = None) -> dict[str, WindowTotals]:
    """The hourly ``all`` windows on the aggregates topic, summed over source partitions."""
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
    windows: dict[str, WindowTotals] = defaultdict(WindowTotals)
    for value in latest.values():
        body = orjson.loads(value)
        if body.get("window") != WINDOW or body.get("dimension") != DIMENSION:
            continue
        totals = windows[body["window_start"]]
        totals.requests += int(body["requests"])
        totals.tokens += int(body["total_tokens"])
        for spend in body["spend"]:
            totals.spend[spend["currency"]] += Decimal(spend["amount"])
    return dict(windows)


def warehouse_windows(
    con: Any, starts: list[str]
) -> tuple[dict[str, WindowTotals], datetime | None]:
    """The same figures from the warehouse for the given window starts (ISO, UTC)."""
    hour = (
        "strftime(timezone('UTC', time_bucket(interval 1 hour, occurred_at)), '%Y-%m-%dT%H:%M:%SZ')"
    )
    windows: dict[str, WindowTotals] = defaultdict(WindowTotals)
    for start, requests, tokens in con.execute(
        f"""
        select {hour} as window_start, count(*), sum(input_tokens + output_tokens)::bigint
        from raw.token_usage_events
        where {hour} in (select unnest(?::varchar[]))
        group by 1
        """,
        [starts],
    ).fetchall():
        windows[start].requests, windows[start].tokens = int(requests), int(tokens)
    for start, currency, amount in con.execute(
        f"""
        select {hour} as window_start, currency, sum(amount_gross)
        from marts.fct_usage_rated
        where {hour} in (select unnest(?::varchar[]))
        group by 1, 2
        """,
        [starts],
    ).fetchall():
        windows[start].spend[currency] += amount
    newest = con.execute("select max(occurred_at) from raw.token_usage_events").fetchall()[0][0]
    return dict(windows), newest


def compare(
    stream: dict[str, WindowTotals], warehouse: dict[str, WindowTotals]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(windows where the stream is ahead or spend disagrees, windows where the warehouse is ahead)."""
    failures, warehouse_ahead = [], []
    for start in sorted(stream):
        live, stored = stream[start], warehouse.get(start, WindowTotals())
        row = {
            "window_start": start,
            "stream requests": live.requests,
            "warehouse requests": stored.requests,
            "stream tokens": live.tokens,
            "warehouse tokens": stored.tokens,
            "stream spend": _money(live.spend),
            "warehouse spend": _money(stored.spend),
        }
        same_counts = live.requests == stored.requests and live.tokens == stored.tokens
        same_spend = _nonzero(live.spend) == _nonzero(stored.spend)
        if same_counts and same_spend:
            continue
        if (
            live.requests > stored.requests
            or live.tokens > stored.tokens
            or (same_counts and not same_spend)
            or any(amount > stored.spend.get(c, Decimal(0)) for c, amount in live.spend.items())
        ):
            failures.append(row)
        else:
            warehouse_ahead.append(row)
    return failures, warehouse_ahead


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
        stored, newest = warehouse_windows(con, sorted(stream))
    if newest is not None:
        cutoff = newest.strftime("%Y-%m-%dT%H:%M:%SZ")
        stream = {start: totals for start, totals in stream.items() if _end_of(start) <= cutoff}
    failures, ahead = compare(stream, stored)
    equal = len(stream) - len(failures) - len(ahead)
    return AssetCheckResult(
        passed=not failures,
        description=(
            f"{equal} of {len(stream)} window(s) equal; {len(ahead)} where the warehouse also "
            f"has events too late for the live window; {len(failures)} where the stream is "
            "ahead or spend disagrees"
        ),
        metadata={
            "compared windows": MetadataValue.int(len(stream)),
            "equal windows": MetadataValue.int(equal),
            "mismatches": MetadataValue.md(markdown_table(failures)),
            "warehouse ahead (late events)": MetadataValue.md(markdown_table(ahead)),
        },
    )


def _end_of(start: str) -> str:
    from datetime import timedelta

    moment = datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ") + timedelta(hours=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
