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

import hashlib
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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


# --- warehouse: set-based rating and re-rating ---------------------------------------------


class RatingError(RuntimeError):
    """Rating cannot run as things are (e.g. nothing landed yet); the message says what to do."""


@dataclass(frozen=True)
class RatingResult:
    """What one :func:`rate` run did."""

    run_id: int
    full_rerate: bool
    changed_books: tuple[str, ...]
    events_in_scope: int
    new_events: int
    rated: int
    unrated: int
    unrated_by_reason: dict[str, int]
    adjusted: int
    seconds: float

    def __str__(self) -> str:
        reasons = ", ".join(f"{reason} {count}" for reason, count in self.unrated_by_reason.items())
        mode = "full re-rate" if self.full_rerate else "incremental"
        changed = f" (changed: {', '.join(self.changed_books)})" if self.changed_books else ""
        return (
            f"run {self.run_id}, {mode}{changed}: {self.new_events} new event(s), "
            f"{self.rated} rated, {self.unrated} unrated{f' ({reasons})' if reasons else ''}, "
            f"{self.adjusted} re-rated with an adjustment, {self.seconds:.2f}s"
        )


# No primary key on the rating tables: rate() keeps one row per event by replacing the rows of
# the events it rates, and an index would make re-rating millions of events several times
# slower. tests/warehouse/test_rating.py checks the one-row-per-event rule.
_TABLES = (
    """
    create table if not exists rating.rated_usage (
        event_id varchar not null,
        event_date date not null,
        tier varchar not null,
        price_book varchar not null,
        price_book_version varchar not null,
        price_effective_from timestamptz not null,
        currency varchar not null,
        unit_price_input decimal(38, 12) not null,
        unit_price_cached_input decimal(38, 12) not null,
        unit_price_output decimal(38, 12) not null,
        unit_price_thinking decimal(38, 12) not null,
        amount_input decimal(38, 12) not null,
        amount_cached_input decimal(38, 12) not null,
        amount_output decimal(38, 12) not null,
        amount_thinking decimal(38, 12) not null,
        amount_gross decimal(38, 12) not null,
        free_quota_tokens bigint not null,
        free_quota_discount decimal(38, 12) not null,
        amount decimal(38, 12) not null,
        reporting_currency varchar not null,
        fx_rate decimal(38, 12) not null,
        amount_reporting decimal(38, 12) not null,
        rating_run_id bigint not null,
        rated_at timestamptz not null
    )
    """,
    """
    create table if not exists rating.unrated_usage (
        event_id varchar not null,
        event_date date not null,
        reason varchar not null,
        rating_run_id bigint not null,
        recorded_at timestamptz not null
    )
    """,
    """
    create table if not exists rating.rating_adjustments (
        rating_run_id bigint not null,
        event_id varchar not null,
        event_date date not null,
        rerated_at timestamptz not null,
        reason varchar not null,
        old_price_book_version varchar,
        new_price_book_version varchar,
        old_currency varchar,
        new_currency varchar,
        old_amount decimal(38, 12),
        new_amount decimal(38, 12),
        adjustment decimal(38, 12),
        old_amount_reporting decimal(38, 12),
        new_amount_reporting decimal(38, 12),
        adjustment_reporting decimal(38, 12),
        reporting_currency varchar not null,
        old_unrated_reason varchar,
        new_unrated_reason varchar
    )
    """,
    """
    create table if not exists rating.rating_runs (
        run_id bigint primary key,
        started_at timestamptz not null,
        finished_at timestamptz not null,
        rules_fingerprint varchar not null,
        book_hashes json not null,
        reporting_currency varchar not null,
        full_rerate boolean not null,
        changed_books varchar,
        events_in_scope bigint not null,
        new_events bigint not null,
        adjusted bigint not null
    )
    """,
)

_RATED_COLUMNS = (
    "event_id, event_date, tier, price_book, price_book_version, price_effective_from, currency, "
    "unit_price_input, unit_price_cached_input, unit_price_output, unit_price_thinking, "
    "amount_input, amount_cached_input, amount_output, amount_thinking, amount_gross, "
    "free_quota_tokens, free_quota_discount, amount, reporting_currency, fx_rate, "
    "amount_reporting"
)


def create_rating_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the (empty) rating tables if they are missing."""
    con.execute("create schema if not exists rating")
    for ddl in _TABLES:
        con.execute(ddl)


def _exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    found = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchall()
    return bool(found[0][0])


def rules_fingerprint(books: Books) -> str:
    """Changes when a book or the rating SQL changes: then every event is re-rated."""
    digest = hashlib.sha256(books.fingerprint.encode())
    for file in sorted(SQL_DIR.glob("*.sql")):
        digest.update(file.read_bytes())
    return digest.hexdigest()


def rate(con: duckdb.DuckDBPyConnection, settings: Settings) -> RatingResult:
    """Load the books, rate new usage and re-rate usage whose rating changed.

    New events (landed, neither rated nor unrated yet) are rated. When a book, the rating SQL
    or the reporting currency changed since the last run, every event is re-rated; otherwise
    only the free quota of tenants with new events inside a quota window is re-allocated
    (a late event can take quota from later ones). Every event whose rating changed gets a row
    in ``rating.rating_adjustments`` (old and new amount, book version, reason). All in one
    transaction: readers see the old rating or the new one.
    """
    started = datetime.now(UTC)
    clock = time.perf_counter()
    books = load_books(settings, con=con)
    if not _exists(con, "raw", "token_usage_events"):
        raise RatingError(
            "no raw.token_usage_events in the warehouse: land events first (`tokenhub land`)"
        )
    create_rating_tables(con)
    fingerprint = rules_fingerprint(books)
    currency = settings.reporting_currency
    runs = con.execute(
        "select rules_fingerprint, book_hashes, reporting_currency, run_id "
        "from rating.rating_runs order by run_id desc limit 1"
    ).fetchall()
    last = runs[0] if runs else None
    previous_hashes: dict[str, str] = json.loads(last[1]) if last else {}
    changed_books = tuple(
        sorted(
            name
            for name in set(books.content_hashes) | set(previous_hashes)
            if books.content_hashes.get(name) != previous_hashes.get(name)
        )
    )
    full = last is None or last[0] != fingerprint or last[2] != currency
    run_id = (last[3] + 1) if last else 1
    if last is None:
        context = "first rating"
    elif changed_books:
        context = f"books changed: {', '.join(changed_books)}"
    elif last[2] != currency:
        context = f"reporting currency {last[2]} -> {currency}"
    elif full:
        context = "rating rules changed"
    else:
        context = "a late event re-allocated the free quota"

    con.execute("begin transaction")
    try:
        new_events = _select_scope(con, full=full)
        in_scope = _count(con, "select count(*) from rating_scope")
        con.execute(
            f"""
            create or replace temp view rating_input as
            select {", ".join(RATING_INPUT_COLUMNS)}
            from raw.token_usage_events
            {"" if full else "where event_id in (select event_id from rating_scope)"}
            """
        )
        con.execute(f"create or replace temp table priced_events as {rating_sql('price_events')}")
        con.execute(
            f"create or replace temp table rating_candidates as {rating_sql('apply_quota_and_fx')}",
            {"reporting_currency": currency},
        )
        adjusted = _record_adjustments(con, run_id, started, context)
        _replace_ratings(con, run_id, started, full=full)
        con.execute(
            "insert into rating.rating_runs values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                started,
                datetime.now(UTC),
                fingerprint,
                json.dumps(books.content_hashes, sort_keys=True),
                currency,
                full,
                ", ".join(changed_books) or None,
                in_scope,
                new_events,
                adjusted,
            ],
        )
        for temp in ("rating_candidates", "priced_events", "tenant_first_calls", "rating_scope"):
            con.execute(f"drop table if exists {temp}")
        con.execute("drop view if exists rating_input")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    by_reason = dict(
        con.execute(
            "select reason, count(*) from rating.unrated_usage group by reason order by 2 desc, 1"
        ).fetchall()
    )
    return RatingResult(
        run_id=run_id,
        full_rerate=full,
        changed_books=changed_books if last else (),
        events_in_scope=in_scope,
        new_events=new_events,
        rated=_count(con, "select count(*) from rating.rated_usage"),
        unrated=sum(by_reason.values()),
        unrated_by_reason=by_reason,
        adjusted=adjusted,
        seconds=time.perf_counter() - clock,
    )


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    # fetchall, not fetchone: a result must be read to its end before the next statement
    return int(con.execute(sql).fetchall()[0][0])


def _select_scope(con: duckdb.DuckDBPyConnection, *, full: bool) -> int:
    """Fill temp table ``rating_scope`` with the events to (re-)rate; returns the new ones."""
    con.execute(
        """
        create or replace temp table tenant_first_calls as
        select tenant_id, min(occurred_at) as first_call_at
        from raw.token_usage_events
        group by tenant_id
        """
    )
    con.execute(
        """
        create or replace temp table new_events as
        select event_id, tenant_id, occurred_at, mode
        from raw.token_usage_events
        where event_id not in (select event_id from rating.rated_usage)
            and event_id not in (select event_id from rating.unrated_usage)
        """
    )
    new_events = _count(con, "select count(*) from new_events")
    if full:
        con.execute(
            "create or replace temp table rating_scope as "
            "select event_id from raw.token_usage_events"
        )
    else:
        # A new real-time event inside its tenant's quota window can change the quota of the
        # tenant's other events in the window: re-rate those tenants' window events too.
        con.execute(
            """
            create or replace temp table rating_scope as
            with longest_window as (
                select coalesce(max(valid_days), 0) as valid_days from staging.stg_free_quota
            ),

            quota_tenants as (
                select distinct new_events.tenant_id, first_calls.first_call_at
                from new_events
                inner join tenant_first_calls as first_calls using (tenant_id)
                cross join longest_window
                where new_events.mode = 'realtime'
                    and new_events.occurred_at
                    < first_calls.first_call_at + to_days(longest_window.valid_days)
            ),

            window_events as (
                select events.event_id
                from raw.token_usage_events as events
                inner join quota_tenants using (tenant_id)
                cross join longest_window
                where events.occurred_at
                    < quota_tenants.first_call_at + to_days(longest_window.valid_days)
                union
                select rated.event_id
                from rating.rated_usage as rated
                inner join raw.token_usage_events as events using (event_id)
                inner join quota_tenants using (tenant_id)
                where rated.free_quota_tokens > 0
            )

            select event_id from new_events
            union
            select event_id from window_events
            """
        )
    con.execute("drop table new_events")
    return new_events


def _record_adjustments(
    con: duckdb.DuckDBPyConnection, run_id: int, rerated_at: datetime, context: str
) -> int:
    """Append an adjustment for every already-rated (or unrated) event whose rating changed."""
    before = _count(con, "select count(*) from rating.rating_adjustments")
    con.execute(
        """
        insert into rating.rating_adjustments
        with candidates as (
            select * from rating_candidates
        ),

        rated as (
            select * from rating.rated_usage
        ),

        unrated as (
            select * from rating.unrated_usage
        ),

        compared as (
            select
                candidates.event_id,
                candidates.event_date,
                coalesce(rated.event_id, unrated.event_id) is not null as was_known,
                unrated.reason as old_unrated_reason,
                candidates.unrated_reason as new_unrated_reason,
                rated.price_book_version as old_price_book_version,
                case when candidates.unrated_reason is null
                    then candidates.price_book_version end as new_price_book_version,
                candidates.price_book,
                candidates.price_effective_from,
                rated.currency as old_currency,
                case when candidates.unrated_reason is null
                    then candidates.currency end as new_currency,
                rated.amount_gross as old_amount_gross,
                candidates.amount_gross as new_amount_gross,
                rated.free_quota_tokens as old_free_quota_tokens,
                candidates.free_quota_tokens as new_free_quota_tokens,
                rated.amount as old_amount,
                case when candidates.unrated_reason is null
                    then candidates.amount end as new_amount,
                rated.amount_reporting as old_amount_reporting,
                case when candidates.unrated_reason is null
                    then candidates.amount_reporting end as new_amount_reporting
            from candidates
            left join rated on candidates.event_id = rated.event_id
            left join unrated on candidates.event_id = unrated.event_id
        ),

        changed as (
            select * from compared
            where was_known
                and (
                    old_unrated_reason is distinct from new_unrated_reason
                    or old_price_book_version is distinct from new_price_book_version
                    or old_currency is distinct from new_currency
                    or old_amount is distinct from new_amount
                    or old_amount_reporting is distinct from new_amount_reporting
                )
        ),

        final as (
            select
                cast($run_id as bigint) as rating_run_id,
                event_id,
                event_date,
                cast($rerated_at as timestamptz) as rerated_at,
                case
                    when old_unrated_reason is not null and new_unrated_reason is null
                        then 'now rated by ' || price_book || ' version '
                            || new_price_book_version || ' (was unrated: '
                            || old_unrated_reason || ')'
                    when old_unrated_reason is null and new_unrated_reason is not null
                        then 'now unrated: ' || new_unrated_reason
                    when new_unrated_reason is not null
                        then 'unrated reason ' || old_unrated_reason || ' -> '
                            || new_unrated_reason
                    when old_price_book_version is distinct from new_price_book_version
                        then price_book || ' changed: version ' || new_price_book_version
                            || ' effective '
                            || strftime(timezone('UTC', price_effective_from), '%Y-%m-%d %H:%M')
                            || 'Z replaces ' || old_price_book_version
                    when old_amount_gross is distinct from new_amount_gross
                        then price_book || ' changed: prices of version '
                            || new_price_book_version || ' corrected'
                    when old_free_quota_tokens is distinct from new_free_quota_tokens
                        then 'free quota re-allocated: ' || old_free_quota_tokens || ' -> '
                            || new_free_quota_tokens || ' free tokens'
                    else 'fx rate or reporting currency changed'
                end || ' (' || $context || ')' as reason,
                old_price_book_version,
                new_price_book_version,
                old_currency,
                new_currency,
                old_amount,
                new_amount,
                case
                    when old_currency is null or new_currency is null
                        or old_currency = new_currency
                        then cast(coalesce(new_amount, 0) - coalesce(old_amount, 0)
                            as decimal(38, 12))
                end as adjustment,
                old_amount_reporting,
                new_amount_reporting,
                cast(coalesce(new_amount_reporting, 0) - coalesce(old_amount_reporting, 0)
                    as decimal(38, 12)) as adjustment_reporting,
                cast($reporting_currency as varchar) as reporting_currency,
                old_unrated_reason,
                new_unrated_reason
            from changed
        )

        select * from final
        """,
        {
            "run_id": run_id,
            "rerated_at": rerated_at,
            "context": context,
            "reporting_currency": _reporting_currency(con),
        },
    )
    return _count(con, "select count(*) from rating.rating_adjustments") - before


def _reporting_currency(con: duckdb.DuckDBPyConnection) -> str:
    rows = con.execute("select any_value(reporting_currency) from rating_candidates").fetchall()
    return str(rows[0][0] or "")


def _replace_ratings(
    con: duckdb.DuckDBPyConnection, run_id: int, rated_at: datetime, *, full: bool
) -> None:
    """Swap the current ratings of the events in scope for the candidates."""
    if full:
        con.execute("delete from rating.rated_usage")
        con.execute("delete from rating.unrated_usage")
    else:
        for table in ("rated_usage", "unrated_usage"):
            con.execute(
                f"delete from rating.{table} where event_id in (select event_id from rating_scope)"
            )
    con.execute(
        f"""
        insert into rating.rated_usage
        select {_RATED_COLUMNS}, $run_id, $rated_at
        from rating_candidates
        where unrated_reason is null
        """,
        {"run_id": run_id, "rated_at": rated_at},
    )
    con.execute(
        """
        insert into rating.unrated_usage
        select event_id, event_date, unrated_reason, $run_id, $rated_at
        from rating_candidates
        where unrated_reason is not null
        """,
        {"run_id": run_id, "rated_at": rated_at},
    )
