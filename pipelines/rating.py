"""Rating: the books, and raw usage turned into money (``warehouse.pricing.rating.rate``).

``rating/books`` loads every book of the books folder into ``rating.*`` tables; its data
version is the folder's content hash, so a changed price, cost or transfer book shows the
rated usage and every mart as stale (and ``books_changed_sensor`` re-rates).
``rating/rated_usage`` rates new usage and re-rates usage whose book changed; it reports the
event dates it touched, which the partition sensor re-materialises downstream.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    AutomationCondition,
    DataVersion,
    Definitions,
    MaterializeResult,
    MetadataValue,
    asset_check,
    multi_asset,
)

from pipelines.landing import RAW_EVENTS, table_exists
from pipelines.partitions import EVENT_DATE_SQL
from pipelines.resources import BooksResource, KafkaResource, WarehouseResource, to_settings
from pipelines.sql_models import markdown_table

BOOKS = AssetKey(["rating", "books"])
RATED_USAGE = AssetKey(["rating", "rated_usage"])
UNRATED_USAGE = AssetKey(["rating", "unrated_usage"])
RATING_ADJUSTMENTS = AssetKey(["rating", "rating_adjustments"])

#: Rating follows landing and the books: new raw events or reloaded books mean a rating run.
RATE_AFTER_LANDING = AutomationCondition.eager()

#: Which asset writes each rating table; any other ``rating.*`` table is a book.
RATING_PRODUCERS = {
    "rating.rated_usage": RATED_USAGE,
    "rating.unrated_usage": UNRATED_USAGE,
    "rating.rating_adjustments": RATING_ADJUSTMENTS,
    "rating.*": BOOKS,
}


def load_all_books(con: Any, settings: Any) -> list[str]:
    """Load the price books (rating) and the cost books (economics); returns what loaded.

    Each loader validates its books first and raises with the file and line of a bad row.
    """
    from warehouse.pricing.books import load_books
    from warehouse.pricing.cost_books import load_cost_books

    load_books(settings, con=con)
    load_cost_books(con, Path(settings.books))
    return ["price books", "cost books"]


@multi_asset(
    specs=[
        AssetSpec(
            BOOKS,
            description="Price, FX, free quota, cost, transfer price and segment books "
            "(CSV data files, effective-dated) loaded into `rating.*` tables.",
            kinds={"csv", "duckdb"},
        )
    ],
    group_name="rating",
)
def books_asset(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    kafka: KafkaResource,
    books: BooksResource,
) -> Iterator[MaterializeResult]:
    """Load every book; a bad book fails here with the file and line to fix."""
    settings = to_settings(warehouse, kafka, books)
    content_hash = books.content_hash()
    with warehouse.connect() as con:
        loaded = load_all_books(con, settings)
    context.log.info(f"loaded {', '.join(loaded)} from {books.path}")
    yield MaterializeResult(
        asset_key=BOOKS,
        data_version=DataVersion(content_hash[:16]),
        metadata={
            "books folder": MetadataValue.path(books.path),
            "content hash": content_hash,
            "files": MetadataValue.md(
                markdown_table(
                    {"file": name, "sha256": digest} for name, digest in books.file_hashes().items()
                )
            ),
        },
    )


def _rating_table(key: AssetKey, description: str) -> AssetSpec:
    """One of the tables a rating run writes: all depend on the events and the books."""
    return AssetSpec(
        key,
        deps=[RAW_EVENTS, BOOKS],
        description=description,
        automation_condition=RATE_AFTER_LANDING,
        kinds={"duckdb"},
    )


@multi_asset(
    specs=[
        _rating_table(RATED_USAGE, "One row per rated event with the price book version in force."),
        _rating_table(
            UNRATED_USAGE, "Events that could not be rated, with the reason (never rated at zero)."
        ),
        _rating_table(
            RATING_ADJUSTMENTS,
            "The audit trail of re-rating: old and new amounts and book versions.",
        ),
    ],
    group_name="rating",
    can_subset=False,
)
def rated_usage(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    kafka: KafkaResource,
    books: BooksResource,
) -> Iterator[MaterializeResult]:
    """Rate new usage and re-rate usage whose books changed."""
    from warehouse.pricing.rating import rate

    settings = to_settings(warehouse, kafka, books)
    started = datetime.now(UTC)
    with warehouse.connect() as con:
        pending = pending_event_dates(con)
        result = rate(con, settings)
        context.log.info(f"rating: {result}")
        rerated = [
            str(row[0])
            for row in con.execute(
                "select distinct event_date from rating.rating_adjustments where rerated_at >= ?",
                [started],
            ).fetchall()
        ]
        rated, unrated = (
            con.execute(f"select count(*) from rating.{name}").fetchall()[0][0]
            for name in ("rated_usage", "unrated_usage")
        )
        by_reason = con.sql(
            "select reason, count(*) as events from rating.unrated_usage group by 1 order by 2 desc"
        ).pl()
        adjustments = con.execute("select count(*) from rating.rating_adjustments").fetchall()[0][0]
    touched = sorted(set(pending) | set(rerated))
    yield MaterializeResult(
        asset_key=RATED_USAGE,
        metadata={
            "dagster/row_count": MetadataValue.int(int(rated)),
            # Read by the partition sensor: new and re-rated usage lands in these dates.
            "event_dates": MetadataValue.json(touched),
            "re-rated event dates": MetadataValue.json(sorted(rerated)),
        },
    )
    yield MaterializeResult(
        asset_key=UNRATED_USAGE,
        metadata={
            "dagster/row_count": MetadataValue.int(int(unrated)),
            "by reason": MetadataValue.md(markdown_table(by_reason)),
        },
    )
    yield MaterializeResult(
        asset_key=RATING_ADJUSTMENTS,
        metadata={"dagster/row_count": MetadataValue.int(int(adjustments))},
    )


def pending_event_dates(con: Any) -> list[str]:
    """Event dates of landed events neither rated nor unrated yet (what rating will add)."""
    seen = [
        f"select event_id from rating.{name}"
        for name in ("rated_usage", "unrated_usage")
        if table_exists(con, "rating", name)
    ]
    already = " union all ".join(seen) or "select null::varchar as event_id where false"
    return [
        str(row[0])
        for row in con.execute(
            f"""
            select distinct {EVENT_DATE_SQL} from raw.token_usage_events
            where event_id not in ({already}) order by 1
            """
        ).fetchall()
    ]


@asset_check(
    asset=RATED_USAGE,
    blocking=True,
    description="Every landed event is rated: an unknown model, region or missing price fails.",
)
def no_unrated_usage(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.connect() as con:
        by_reason = con.sql(
            """
            select unrated.reason, events.model, events.region, count(*) as events
            from rating.unrated_usage as unrated
            inner join raw.token_usage_events as events using (event_id)
            group by all order by events desc limit 30
            """
        ).pl()
        unrated = con.execute("select count(*) from rating.unrated_usage").fetchall()[0][0]
        unknown_models = sorted(
            row[0]
            for row in con.execute(
                """
                select distinct events.model
                from rating.unrated_usage as unrated
                inner join raw.token_usage_events as events using (event_id)
                where unrated.reason = 'unknown_model'
                """
            ).fetchall()
        )
    return AssetCheckResult(
        passed=unrated == 0,
        description=(
            "all usage rated"
            if unrated == 0
            else f"{unrated} event(s) unrated; add the prices to the price book and re-rate"
        ),
        metadata={
            "unrated events": MetadataValue.int(int(unrated)),
            "unknown models": MetadataValue.json(unknown_models),
            "by reason, model and region": MetadataValue.md(markdown_table(by_reason)),
        },
    )


defs = Definitions(assets=[books_asset, rated_usage], asset_checks=[no_unrated_usage])
