"""Partitions, declared once: one partition per event date (the UTC day a request happened).

Usage is partitioned by when it happened, not when it arrived, so a late event lands in an
old partition and that partition is re-materialised (see ``pipelines/sensors.py``).
``end_offset=1`` keeps today's partition open: events of today land all day.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from dagster import DailyPartitionsDefinition, PartitionKeyRange

from streams.settings import Settings

EVENT_DATE_FORMAT = "%Y-%m-%d"

event_date_partitions = DailyPartitionsDefinition(
    start_date=Settings().partitions_start.isoformat(),
    timezone="UTC",
    fmt=EVENT_DATE_FORMAT,
    end_offset=1,
)

#: The SQL expression of a row's partition key, for tables with ``occurred_at``.
EVENT_DATE_SQL = "cast(timezone('UTC', occurred_at) as date)"


def partition_keys_for(dates: Iterable[date | str]) -> tuple[list[str], list[str]]:
    """Split event dates into existing partition keys and dates outside the partitions.

    Dates before ``partitions_start`` (or beyond tomorrow) have no partition: they are
    reported, never silently dropped.
    """
    existing = set(event_date_partitions.get_partition_keys())
    keys = sorted({str(value) for value in dates})
    return [key for key in keys if key in existing], [key for key in keys if key not in existing]


def covering_range(dates: Iterable[date | str]) -> PartitionKeyRange | None:
    """The smallest partition range holding every (existing) date, or None if none."""
    keys, _ = partition_keys_for(dates)
    if not keys:
        return None
    return PartitionKeyRange(keys[0], keys[-1])
