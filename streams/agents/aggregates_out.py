"""Aggregates out: each closed window goes to the compacted ``token-usage.aggregates.v1``.

One message per (window size, window start, dimension, value, source partition). The key,
``<window>|<window_start>|<dimension>|<value>|p<partition>``, is stable, so compaction keeps
the final value of each. A dimension value that spans partitions (a model, a region) has one
message per partition: **sum over ``source_partition``** to get the window's figure (a tenant
lives on one partition, as events are keyed by tenant). Money is a list of
``{"currency", "amount"}`` with the amount a decimal string. The format is documented in the
README; the warehouse's reconciliation check reads it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson

from streams.agents.aggregate import TOKEN_FIELDS, WINDOWS, iso, multiplier


def aggregate_key(label: str, start: datetime, dimension: str, value: str, partition: int) -> bytes:
    return f"{label}|{iso(start)}|{dimension}|{value}|p{partition}".encode()


def aggregate_message(
    label: str,
    start: datetime,
    dimension: str,
    value: str,
    partition: int,
    record: dict[str, Any],
    *,
    closed_at: datetime,
) -> tuple[bytes, bytes]:
    """The (key, value) of one closed window entry."""
    body: dict[str, Any] = {
        "schema": "token-usage.aggregate.v1",
        "window": label,
        "window_start": iso(start),
        "window_end": iso(start + timedelta(seconds=WINDOWS[label])),
        "dimension": dimension,
        "dimension_value": value,
        "source_partition": partition,
        "requests": record["requests"],
        **{name: record[name] for name in TOKEN_FIELDS},
        "total_tokens": record["total_tokens"],
        "spend": [
            {"currency": currency, "amount": amount}
            for currency, amount in sorted(record["spend"].items())
        ],
        "unrated_requests": record["unrated_requests"],
        "unrated_tokens": record["unrated_tokens"],
        "agent_requests": record["agent_requests"],
        "agent_tokens": record["agent_tokens"],
        "human_requests": record["human_requests"],
        "human_tokens": record["human_tokens"],
        "agent_human_multiplier": multiplier(record),
        "closed_at": iso(closed_at),
    }
    return aggregate_key(label, start, dimension, value, partition), orjson.dumps(body)
