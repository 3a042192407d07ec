"""Test helpers for the economics marts: a hand-made ``marts.fct_usage_rated`` and books.

The economics tests never wait for the rating engineer's marts: they create
``marts.fct_usage_rated`` themselves (columns exactly as in the warehouse contract), write
books into a temp folder, then build only the economics models.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import duckdb

from warehouse import db, economics

#: marts.fct_usage_rated as the warehouse contract defines it.
USAGE_COLUMNS: dict[str, str] = {
    "event_id": "varchar",
    "occurred_at": "timestamptz",
    "event_date": "date",
    "tenant_id": "varchar",
    "workspace_id": "varchar",
    "api_key_id": "varchar",
    "product": "varchar",
    "channel": "varchar",
    "actor_type": "varchar",
    "actor_id": "varchar",
    "swarm_id": "varchar",
    "task_id": "varchar",
    "session_id": "varchar",
    "request_id": "varchar",
    "model": "varchar",
    "region": "varchar",
    "chip_family": "varchar",
    "mode": "varchar",
    "is_batch": "boolean",
    "input_tokens": "bigint",
    "cached_input_tokens": "bigint",
    "fresh_input_tokens": "bigint",
    "output_tokens": "bigint",
    "thinking_tokens": "bigint",
    "non_thinking_output_tokens": "bigint",
    "total_tokens": "bigint",
    "accelerator_ms": "bigint",
    "tier": "varchar",
    "price_book_version": "varchar",
    "currency": "varchar",
    "amount_input": "decimal(38, 12)",
    "amount_cached_input": "decimal(38, 12)",
    "amount_output": "decimal(38, 12)",
    "amount_thinking": "decimal(38, 12)",
    "amount_gross": "decimal(38, 12)",
    "free_quota_tokens": "bigint",
    "free_quota_discount": "decimal(38, 12)",
    "amount": "decimal(38, 12)",
    "reporting_currency": "varchar",
    "fx_rate": "decimal(38, 12)",
    "amount_reporting": "decimal(38, 12)",
}

COST_COLUMNS = (
    "layer",
    "cost_item",
    "chip_family",
    "region",
    "model",
    "product",
    "unit",
    "currency",
    "amount",
    "effective_from",
    "note",
)
TRANSFER_COLUMNS = (
    "from_layer",
    "to_layer",
    "chip_family",
    "region",
    "model",
    "token_type",
    "unit",
    "currency",
    "amount",
    "effective_from",
    "note",
)
SEGMENT_COLUMNS = ("layer", "segment", "effective_from", "note")
TOKEN_TYPES = ("input", "cached_input", "output", "thinking")
TWELVE_PLACES = Decimal("0.000000000001")


def q12(value: Decimal) -> Decimal:
    """Round like the marts: to 12 places, half away from zero."""
    return value.quantize(TWELVE_PLACES, rounding=ROUND_HALF_UP)


def usage(
    event_id: str,
    *,
    product: str = "agent_platform",
    chip_family: str = "domestic-npu-a",
    region: str = "cn-hangzhou",
    model: str = "qwen-plus",
    actor_type: str = "agent",
    occurred_at: datetime = datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
    fresh_input_tokens: int = 3000,
    cached_input_tokens: int = 1000,
    non_thinking_output_tokens: int = 400,
    thinking_tokens: int = 100,
    accelerator_ms: int = 1500,
    prices: Mapping[str, Decimal] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """One rated request; amounts are tokens x ``prices`` per token (CNY, fx 1, no quota)."""
    price = {
        "input": Decimal("0.0000008"),
        "cached_input": Decimal("0.0000002"),
        "output": Decimal("0.000002"),
        "thinking": Decimal("0.000008"),
        **(prices or {}),
    }
    amounts = {
        "input": fresh_input_tokens * price["input"],
        "cached_input": cached_input_tokens * price["cached_input"],
        "output": non_thinking_output_tokens * price["output"],
        "thinking": thinking_tokens * price["thinking"],
    }
    gross = sum(amounts.values(), Decimal(0))
    row: dict[str, Any] = {
        "event_id": event_id,
        "occurred_at": occurred_at,
        "event_date": occurred_at.astimezone(UTC).date(),
        "tenant_id": "tenant-1",
        "workspace_id": "ws-1",
        "api_key_id": "key-1",
        "product": product,
        "channel": "direct_api" if product == "api" else "own_product",
        "actor_type": actor_type,
        "actor_id": f"{actor_type}-1",
        "swarm_id": "swarm-1" if actor_type == "agent" else None,
        "task_id": "task-1" if actor_type == "agent" else None,
        "session_id": "session-1",
        "request_id": f"req-{event_id}",
        "model": model,
        "region": region,
        "chip_family": chip_family,
        "mode": "realtime",
        "is_batch": False,
        "input_tokens": fresh_input_tokens + cached_input_tokens,
        "cached_input_tokens": cached_input_tokens,
        "fresh_input_tokens": fresh_input_tokens,
        "output_tokens": non_thinking_output_tokens + thinking_tokens,
        "thinking_tokens": thinking_tokens,
        "non_thinking_output_tokens": non_thinking_output_tokens,
        "total_tokens": fresh_input_tokens
        + cached_input_tokens
        + non_thinking_output_tokens
        + thinking_tokens,
        "accelerator_ms": accelerator_ms,
        "tier": "0-128k",
        "price_book_version": "test",
        "currency": "CNY",
        "amount_input": amounts["input"],
        "amount_cached_input": amounts["cached_input"],
        "amount_output": amounts["output"],
        "amount_thinking": amounts["thinking"],
        "amount_gross": gross,
        "free_quota_tokens": 0,
        "free_quota_discount": Decimal(0),
        "amount": gross,
        "reporting_currency": "CNY",
        "fx_rate": Decimal(1),
        "amount_reporting": gross,
    }
    unknown = overrides.keys() - row.keys()
    assert not unknown, f"unknown usage columns {unknown}"
    row.update(overrides)
    return row


def create_usage(con: duckdb.DuckDBPyConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Create ``marts.fct_usage_rated`` with exactly ``rows`` (amounts travel as text)."""
    columns = ", ".join(f"{name} {kind}" for name, kind in USAGE_COLUMNS.items())
    con.execute(f"create or replace table marts.fct_usage_rated ({columns})")
    if rows:
        placeholders = ", ".join("?" for _ in USAGE_COLUMNS)
        con.executemany(
            f"insert into marts.fct_usage_rated values ({placeholders})",
            [
                [str(row[c]) if isinstance(row[c], Decimal) else row[c] for c in USAGE_COLUMNS]
                for row in rows
            ],
        )


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Write one book (missing columns empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, restval="", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {key: "" if value is None else str(value) for key, value in row.items()}
            )


def write_books(
    books_dir: Path,
    cost_rows: Iterable[Mapping[str, Any]],
    transfer_rows: Iterable[Mapping[str, Any]],
    segment_rows: Iterable[Mapping[str, Any]] | None = None,
) -> Path:
    """Write the three economics books into ``books_dir`` (default segments if none given)."""
    if segment_rows is None:
        segment_rows = [
            {"layer": "chip", "segment": "cloud_infrastructure", "effective_from": "2025-01-01"},
            {"layer": "cloud", "segment": "cloud_infrastructure", "effective_from": "2025-01-01"},
            {"layer": "model", "segment": "ai_token_business", "effective_from": "2025-01-01"},
            {
                "layer": "application",
                "segment": "ai_token_business",
                "effective_from": "2025-01-01",
            },
        ]
    write_csv(books_dir / "cost_book.csv", COST_COLUMNS, cost_rows)
    write_csv(books_dir / "transfer_prices.csv", TRANSFER_COLUMNS, transfer_rows)
    write_csv(books_dir / "segments.csv", SEGMENT_COLUMNS, segment_rows)
    return books_dir


def open_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    """A real warehouse DuckDB file (schemas created) at ``path``."""
    return db.connect(path)


def build(con: duckdb.DuckDBPyConnection, books_dir: Path) -> None:
    """Load the books and build only the economics models."""
    economics.build_economics(con, books_dir)
