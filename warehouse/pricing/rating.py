"""Rating: turning token usage into money, exactly, with the price in force at event time.

One implementation, two callers:

- :func:`rate` rates the warehouse (``raw.token_usage_events`` -> ``rating.rated_usage`` and
  ``rating.unrated_usage``) with set-based SQL, applies the free quota and FX, and re-rates
  usage when a book changed, appending to ``rating.rating_adjustments``;
- :class:`BatchRater` rates a micro-batch for the live worker with the *same SQL file*
  (``sql/price_events.sql``) over the same books loaded once into an in-memory DuckDB.

Live spend is the gross list-price amount (before free quota): the quota depends on the
tenant's whole history in event-time order, which only the warehouse sees.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa

from streams.events import TokenUsageEvent
from streams.settings import Settings
from warehouse.pricing.books import BOOK_VIEWS, Books, load_books

SQL_DIR = Path(__file__).parent / "sql"
#: The columns of an event the rating SQL reads (contract names).
RATING_INPUT_COLUMNS = (
    "event_id",
    "occurred_at",
    "tenant_id",
    "model",
    "region",
    "mode",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "thinking_tokens",
)
_INPUT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("occurred_at", pa.timestamp("us", tz="UTC")),
        ("tenant_id", pa.string()),
        ("model", pa.string()),
        ("region", pa.string()),
        ("mode", pa.string()),
        ("input_tokens", pa.int64()),
        ("cached_input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("thinking_tokens", pa.int64()),
    ]
)

_DUCKDB_TYPES = {
    "event_id": "varchar",
    "occurred_at": "timestamptz",
    "tenant_id": "varchar",
    "model": "varchar",
    "region": "varchar",
    "mode": "varchar",
    "input_tokens": "bigint",
    "cached_input_tokens": "bigint",
    "output_tokens": "bigint",
    "thinking_tokens": "bigint",
}


def rating_sql(name: str) -> str:
    """The text of one rating SQL file (``warehouse/pricing/sql/<name>.sql``)."""
    return (SQL_DIR / f"{name}.sql").read_text().rstrip().rstrip(";")


# --- live: one micro-batch at a time -------------------------------------------------------


@dataclass(frozen=True)
class LiveRating:
    """The list-price rating of one event, or why it could not be rated.

    ``amount_gross`` is before free quota (live spend is gross list-price spend); it is
    ``None`` exactly when ``unrated_reason`` is set.
    """

    event_id: str
    amount_gross: Decimal | None
    currency: str | None
    tier: str | None
    price_book_version: str | None
    unrated_reason: str | None


class BatchRater:
    """Rates micro-batches of events with the warehouse's rating SQL, in memory.

    The books of ``settings.books`` are validated and loaded once (a broken book raises
    :class:`~warehouse.pricing.books.PriceBookError`); :meth:`rate` then prices a batch with
    ``sql/price_events.sql``, the file the warehouse runs. Safe to call from several threads
    (calls are serialised).
    """

    def __init__(self, settings: Settings) -> None:
        self._con = duckdb.connect(":memory:")
        # A micro-batch is small: one thread avoids scheduling overhead.
        self._con.execute("set threads = 1")
        self.books: Books = load_books(settings, con=self._con)
        # The books do not change during the rater's life: evaluate their staging views once.
        for view in BOOK_VIEWS:
            frozen = f"{view}__frozen"
            self._con.execute(f"create table {frozen} as select * from {view}")
            self._con.execute(f"drop view {view}")
            self._con.execute(f"alter table {frozen} rename to {view.split('.')[1]}")
        self._con.execute(
            "create temp table rating_input ("
            + ", ".join(f"{field.name} {_DUCKDB_TYPES[field.name]}" for field in _INPUT_SCHEMA)
            + ")"
        )
        # Planned once; each call refills rating_input and executes the plan.
        self._con.execute(
            f"""
            prepare rate_batch as
            with priced as ({rating_sql("price_events")})
            select event_id, amount_gross, currency, tier, price_book_version, unrated_reason
            from priced
            """
        )
        self._lock = threading.Lock()

    def rate(self, events: Sequence[TokenUsageEvent] | pa.Table) -> list[LiveRating]:
        """One :class:`LiveRating` per event, in the order given."""
        table = events if isinstance(events, pa.Table) else events_to_arrow(events)
        if table.num_rows == 0:
            return []
        table = table.select(list(RATING_INPUT_COLUMNS))
        with self._lock:
            self._con.register("batch_events", table)
            try:
                self._con.execute("delete from rating_input")
                self._con.execute(
                    f"insert into rating_input select {', '.join(RATING_INPUT_COLUMNS)} "
                    "from batch_events"
                )
                rows = self._con.execute("execute rate_batch").fetchall()
            finally:
                self._con.unregister("batch_events")
        # A retried event may sit twice in one batch: same event_id, same rating.
        by_event = {row[0]: LiveRating(*row) for row in rows}
        return [by_event[event_id] for event_id in table.column("event_id").to_pylist()]

    def close(self) -> None:
        """Release the in-memory database."""
        self._con.close()


def events_to_arrow(events: Sequence[TokenUsageEvent]) -> pa.Table:
    """The rating columns of ``events`` as an Arrow table."""
    return pa.table(
        {name: [getattr(event, name) for event in events] for name in RATING_INPUT_COLUMNS},
        schema=_INPUT_SCHEMA,
    )
