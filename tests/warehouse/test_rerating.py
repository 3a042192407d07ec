"""Re-rating: a price book version added with a past effective date, a corrected price, a new
model priced, an FX change. The current rating changes, the original and the adjustment are
kept (rating.rating_adjustments, marts.fct_rating_adjustments), so past reports reproduce."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb

from streams.settings import Settings
from tests.warehouse.test_rating_helpers import (
    PUBLIC_PRICES,
    append_price_rows,
    event,
    insert_events,
    make_settings,
    open_warehouse,
    price_rows,
)
from warehouse import db
from warehouse.pricing.rating import rate

RAISED_FLASH = (
    ("0.0003", "0.00015", "0.002", "0.002"),
    ("0.0008", "0.0003", "0.008", "0.008"),
    ("0.0015", "0.0004", "0.015", "0.015"),
)
RAISE_FROM = datetime(2026, 3, 5, tzinfo=UTC)
MARTS = ["staging.stg_token_usage_events", "marts.fct_usage_rated", "marts.fct_rating_adjustments"]


def _flash(tokens_in: int, tokens_out: int, prices: tuple[tuple[str, ...], ...]) -> Decimal:
    tier = prices[0]
    return (tokens_in * Decimal(tier[0]) + tokens_out * Decimal(tier[2])) / 1000


def _landed(tmp_path: Path) -> tuple[Settings, duckdb.DuckDBPyConnection]:
    settings = make_settings(tmp_path)
    con = open_warehouse(settings)
    insert_events(
        con,
        [
            event(event_id=f"day-{day}", model="qwen-flash", input_tokens=10_000,
                  output_tokens=1000, occurred_at=datetime(2026, 3, day, 9, tzinfo=UTC))
            for day in range(1, 9)
        ],
    )  # fmt: skip
    return settings, con


def _amounts(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[Decimal, str]]:
    return {
        event_id: (amount, version)
        for event_id, amount, version in con.execute(
            "select event_id, amount, price_book_version from rating.rated_usage"
        ).fetchall()
    }


def test_a_past_dated_version_re_rates_affected_usage_and_keeps_the_original(
    tmp_path: Path,
) -> None:
    settings, con = _landed(tmp_path)
    first = rate(con, settings)
    assert (first.rated, first.adjusted) == (8, 0)
    original = _amounts(con)
    old_amount = _flash(10_000, 1000, PUBLIC_PRICES["qwen-flash"])
    assert {amount for amount, _ in original.values()} == {old_amount}

    append_price_rows(
        settings.books,
        "price_book_cn",
        price_rows("cn-v2", "2026-03-05", "qwen-flash", "cn-beijing", "CNY", RAISED_FLASH),
    )
    second = rate(con, settings)
    assert second.full_rerate
    assert second.changed_books == ("price_book_cn",)
    assert second.adjusted == 4  # 5, 6, 7 and 8 March

    new_amount = _flash(10_000, 1000, RAISED_FLASH)
    current = _amounts(con)
    for day in range(1, 9):
        expected = (new_amount, "cn-v2") if day >= 5 else (old_amount, "cn-v1")
        assert current[f"day-{day}"] == expected

    adjustments = con.execute(
        """
        select event_id, old_amount, new_amount, adjustment, old_price_book_version,
            new_price_book_version, reason
        from rating.rating_adjustments order by event_id
        """
    ).fetchall()
    assert [row[0] for row in adjustments] == [f"day-{day}" for day in range(5, 9)]
    for _, old, new, adjustment, old_version, new_version, reason in adjustments:
        assert (old, new, adjustment) == (old_amount, new_amount, new_amount - old_amount)
        assert (old_version, new_version) == ("cn-v1", "cn-v2")
        assert reason.startswith("price_book_cn changed: version cn-v2 effective 2026-03-05")
        assert "replaces cn-v1" in reason

    # The report as it stood after the first run: current figure minus later adjustments.
    db.build(con, select=MARTS)
    as_of_first_run = con.execute(
        """
        select
            (select sum(amount) from marts.fct_usage_rated)
            - (select coalesce(sum(adjustment), 0) from marts.fct_rating_adjustments
               where rating_run_id > ?)
        """,
        [first.run_id],
    ).fetchall()[0][0]
    assert as_of_first_run == sum(amount for amount, _ in original.values())
    assert con.execute("select count(*) from marts.fct_rating_adjustments").fetchall() == [(4,)]

    # Nothing changed: nothing re-rated, no new adjustment.
    third = rate(con, settings)
    assert (third.full_rerate, third.adjusted, third.new_events) == (False, 0, 0)


def test_a_corrected_price_in_the_same_version_is_re_rated_with_its_reason(
    tmp_path: Path,
) -> None:
    settings, con = _landed(tmp_path)
    rate(con, settings)
    book = settings.books / "price_book_cn.csv"
    # qwen-flash, first tier, output price 0.0015 -> 0.0016 in cn-beijing only (a correction).
    lines = book.read_text().splitlines()
    fixed = [
        line.replace(",0.0015,0.0015,", ",0.0016,0.0015,")
        if line.startswith("cn-v1,2025-01-01,qwen-flash,cn-beijing,CNY,1000,0,")
        else line
        for line in lines
    ]
    book.write_text("\n".join(fixed) + "\n")
    result = rate(con, settings)
    assert result.adjusted == 8
    reasons = {
        row[0] for row in con.execute("select reason from rating.rating_adjustments").fetchall()
    }
    assert reasons == {
        "price_book_cn changed: prices of version cn-v1 corrected (books changed: price_book_cn)"
    }
    adjustment = con.execute("select distinct adjustment from rating.rating_adjustments").fetchall()
    assert adjustment == [(1000 * Decimal("0.0001") / 1000,)]


def test_unrated_usage_is_rated_once_its_price_is_added(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    con = open_warehouse(settings)
    insert_events(con, [event(event_id="max-1", model="qwen-max", input_tokens=1000,
                              output_tokens=0)])  # fmt: skip
    first = rate(con, settings)
    assert first.unrated_by_reason == {"unknown_model": 1}
    max_prices = (("0.0024", "0.0006", "0.0096", "0.0096"),) * 3
    append_price_rows(
        settings.books,
        "price_book_cn",
        price_rows("cn-max", "2025-01-01", "qwen-max", "cn-beijing", "CNY", max_prices),
    )
    second = rate(con, settings)
    assert (second.rated, second.unrated, second.adjusted) == (1, 0, 1)
    row = con.execute(
        "select old_amount, new_amount, adjustment, old_unrated_reason, reason "
        "from rating.rating_adjustments"
    ).fetchall()[0]
    assert row[:4] == (None, Decimal("0.0024"), Decimal("0.0024"), "unknown_model")
    assert row[4].startswith("now rated by price_book_cn version cn-max (was unrated")


def test_an_fx_change_re_rates_the_reporting_amount_only(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    con = open_warehouse(settings)
    insert_events(con, [event(event_id="sg-1", region="ap-singapore", input_tokens=1000,
                              output_tokens=0)])  # fmt: skip
    rate(con, settings)
    fx = settings.books / "fx_rates.csv"
    fx.write_text(fx.read_text().replace("2026-03-02,USD,CNY,7.2", "2026-03-02,USD,CNY,7.3"))
    rate(con, settings)
    old, new, adjustment, old_rep, new_rep, adj_rep, reason = con.execute(
        "select old_amount, new_amount, adjustment, old_amount_reporting, new_amount_reporting, "
        "adjustment_reporting, reason from rating.rating_adjustments"
    ).fetchall()[0]
    usd = 1000 * Decimal("0.0004") / 1000
    assert (old, new, adjustment) == (usd, usd, 0)
    assert (old_rep, new_rep, adj_rep) == (usd * Decimal("7.2"), usd * Decimal("7.3"),
                                           usd * Decimal("0.1"))  # fmt: skip
    assert reason.startswith("fx rate or reporting currency changed")


def test_a_late_event_takes_free_quota_from_later_ones_with_an_adjustment(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    con = open_warehouse(settings)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    quota_event = {"model": "qwen-flash", "region": "cn-hangzhou", "tenant_id": "t-new"}
    insert_events(con, [event(event_id="later", occurred_at=start + timedelta(days=1),
                              input_tokens=800, output_tokens=0, **quota_event)])  # fmt: skip
    rate(con, settings)
    assert con.execute("select free_quota_tokens, amount from rating.rated_usage").fetchall() == [
        (800, 0)
    ]
    insert_events(con, [event(event_id="earlier", occurred_at=start, input_tokens=500,
                              output_tokens=0, **quota_event)])  # fmt: skip
    result = rate(con, settings)
    assert (result.full_rerate, result.new_events, result.adjusted) == (False, 1, 1)
    quota = dict(
        con.execute("select event_id, free_quota_tokens from rating.rated_usage").fetchall()
    )
    assert quota == {"earlier": 500, "later": 500}  # 1,000 free tokens, first come first served
    reason, adjustment = con.execute(
        "select reason, adjustment from rating.rating_adjustments"
    ).fetchall()[0]
    assert reason.startswith("free quota re-allocated: 800 -> 500 free tokens")
    assert adjustment == 300 * Decimal("0.0002") / 1000
