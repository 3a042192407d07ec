"""Helpers for the rating tests: a raw events table as the warehouse contract defines it,
events built in code, and price books written by the tests (public prices, in the tests).

Not a test module itself (no tests here); named ``test_*`` so pytest rewrites its asserts.
"""

from __future__ import annotations

import csv
import itertools
import shutil
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from streams.settings import Settings
from warehouse import db
from warehouse.loader import ensure_raw_tables

#: The columns of raw.token_usage_events (warehouse contract), for inserts.
RAW_COLUMNS: dict[str, str] = {
    "event_id": "varchar primary key",
    "schema_version": "integer",
    "occurred_at": "timestamptz",
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
    "input_tokens": "bigint",
    "cached_input_tokens": "bigint",
    "output_tokens": "bigint",
    "thinking_tokens": "bigint",
    "accelerator_ms": "bigint",
    "kafka_topic": "varchar",
    "kafka_partition": "integer",
    "kafka_offset": "bigint",
    "landed_at": "timestamptz",
}
PRICE_COLUMNS = (
    "book_version",
    "effective_from",
    "model",
    "region",
    "currency",
    "unit_tokens",
    "tier_min_input_tokens",
    "tier_max_input_tokens",
    "input_price",
    "cached_input_price",
    "output_price",
    "thinking_output_price",
    "note",
)
SHIPPED_BOOKS = Path(__file__).resolve().parents[2] / "warehouse" / "pricing" / "books"
_ids = itertools.count(1)


def create_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The landing engineer's raw tables, empty, exactly as the loader creates them."""
    ensure_raw_tables(con)


def event(**overrides: Any) -> dict[str, Any]:
    """One raw event row (a human chat on qwen-plus in cn-beijing), fields overridable."""
    number = next(_ids)
    row: dict[str, Any] = {
        "event_id": f"ev-{number:06d}",
        "schema_version": 1,
        "occurred_at": datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        "tenant_id": "tenant-a",
        "workspace_id": "ws-1",
        "api_key_id": "key-1",
        "product": "chat_assistant",
        "channel": "own_product",
        "actor_type": "human",
        "actor_id": "user-1",
        "swarm_id": None,
        "task_id": None,
        "session_id": "s-1",
        "request_id": f"r-{number}",
        "model": "qwen-plus",
        "region": "cn-beijing",
        "chip_family": "domestic-npu-a",
        "mode": "realtime",
        "input_tokens": 1000,
        "cached_input_tokens": 0,
        "output_tokens": 100,
        "thinking_tokens": 0,
        "accelerator_ms": 40,
        "kafka_topic": "token-usage.events.v1",
        "kafka_partition": 0,
        "kafka_offset": number,
        "landed_at": datetime(2026, 3, 2, 10, 1, tzinfo=UTC),
    }
    row.update(overrides)
    return row


def insert_events(con: duckdb.DuckDBPyConnection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Land ``rows`` in raw.token_usage_events (as the loader would)."""
    values = [[row[column] for column in RAW_COLUMNS] for row in rows]
    if not values:
        return
    placeholders = ", ".join("?" for _ in RAW_COLUMNS)
    con.executemany(
        f"insert into raw.token_usage_events ({', '.join(RAW_COLUMNS)}) values ({placeholders})",
        values,
    )


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def copy_shipped_books(books_dir: Path) -> Path:
    """A private copy of the shipped books (tests may then edit it)."""
    shutil.copytree(SHIPPED_BOOKS, books_dir)
    return books_dir


def open_warehouse(settings: Settings) -> duckdb.DuckDBPyConnection:
    """The real warehouse file of ``settings``, with the raw tables."""
    con = db.connect(settings.warehouse_path)
    create_raw_tables(con)
    return con


# --- test books: the public price list, written out here (not read from the shipped books) --

#: CNY per 1,000 tokens (domain.md): (input, cached input, output, thinking output) per tier.
PUBLIC_PRICES = {
    "qwen-flash": (
        ("0.0002", "0.0001", "0.0015", "0.0015"),
        ("0.0006", "0.0002", "0.006", "0.006"),
        ("0.0012", "0.0003", "0.012", "0.012"),
    ),
    "qwen-plus": (
        ("0.0008", "0.0002", "0.002", "0.008"),
        ("0.0024", "0.0005", "0.02", "0.024"),
        ("0.0048", "0.001", "0.048", "0.064"),
    ),
}
#: Tier bounds by input tokens (cached included): (exclusive low, inclusive high).
TIERS = ((0, 128_000), (128_000, 256_000), (256_000, 1_000_000))
TIER_LABELS = ("0-128k", "128k-256k", "256k-1m")
#: Illustrative USD prices of the tests' international book (qwen-plus in ap-singapore).
USD_PRICES = (
    ("0.0004", "0.0001", "0.0012", "0.004"),
    ("0.0012", "0.0003", "0.006", "0.012"),
    ("0.0024", "0.0006", "0.012", "0.024"),
)
BATCH_RATIO = "0.5"
FREE_QUOTA_ROWS = (
    # effective_from, region, model, free_tokens, valid_days, note
    ("2025-01-01", "cn-hangzhou", "qwen-flash", 1000, 30, "test quota"),
)
FX_ROWS = (
    ("2026-01-01", "USD", "CNY", "7.1", "test rate"),
    ("2026-03-02", "USD", "CNY", "7.2", "test rate"),
    ("2026-01-01", "CNY", "USD", "0.14", "test rate"),
)
CN_REGIONS = ("cn-beijing", "cn-hangzhou")


def price_rows(
    version: str,
    effective_from: str,
    model: str,
    region: str,
    currency: str,
    prices: Sequence[Sequence[str]],
    note: str = "test",
) -> list[list[object]]:
    """The three tier rows of one version."""
    return [
        [version, effective_from, model, region, currency, 1000, low, high, *tier_prices, note]
        for (low, high), tier_prices in zip(TIERS, prices, strict=True)
    ]


def write_test_books(books_dir: Path) -> Path:
    """Books with the public prices (CNY), a USD book, batch ratio, free quota and FX."""
    books_dir.mkdir(parents=True, exist_ok=True)
    cn = [
        row
        for region in CN_REGIONS
        for model, prices in PUBLIC_PRICES.items()
        for row in price_rows("cn-v1", "2025-01-01", model, region, "CNY", prices)
    ]
    write_csv(books_dir / "price_book_cn.csv", PRICE_COLUMNS, cn)
    usd = price_rows("intl-v1", "2025-01-01", "qwen-plus", "ap-singapore", "USD", USD_PRICES)
    write_csv(books_dir / "price_book_intl_usd.csv", PRICE_COLUMNS, usd)
    write_csv(
        books_dir / "batch_pricing.csv",
        ("effective_from", "batch_price_ratio", "note"),
        [("2025-01-01", BATCH_RATIO, "test")],
    )
    write_csv(
        books_dir / "free_quota.csv",
        ("effective_from", "region", "model", "free_tokens", "valid_days", "note"),
        FREE_QUOTA_ROWS,
    )
    write_csv(
        books_dir / "fx_rates.csv",
        ("effective_from", "from_currency", "to_currency", "rate", "note"),
        FX_ROWS,
    )
    return books_dir


def append_price_rows(books_dir: Path, book: str, rows: Iterable[Sequence[object]]) -> None:
    """Add rows (e.g. a new version) at the end of a price book."""
    with (books_dir / f"{book}.csv").open("a", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings with a private home and the tests' books."""
    books = write_test_books(tmp_path / "books")
    return Settings(home=tmp_path / "home", books_dir=books, **overrides)
