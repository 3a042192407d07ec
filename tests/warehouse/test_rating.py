"""Rating rules, one hand-checked case each, against a real DuckDB warehouse file.

Every expected amount is computed here from the public price list (written out in
``test_rating_helpers.PUBLIC_PRICES``, CNY per 1,000 tokens), never copied from the code's
output. Then: the live worker's BatchRater gives the same figures as the warehouse, and a
property test checks that revenue is additive and never negative.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.events import from_dict
from streams.settings import Settings
from tests.warehouse.test_rating_helpers import (
    BATCH_RATIO,
    PUBLIC_PRICES,
    USD_PRICES,
    append_price_rows,
    create_raw_tables,
    event,
    insert_events,
    make_settings,
    open_warehouse,
    price_rows,
)
from warehouse import db
from warehouse.pricing.rating import BatchRater, rate

PER_UNIT = Decimal(1000)
DAY = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def price(model: str, tier: int, token_type: int, table: Any = None) -> Decimal:
    """Public price of one token: tier 0..2, token type 0 input, 1 cached, 2 output, 3 thinking."""
    prices = table if table is not None else PUBLIC_PRICES[model]
    return Decimal(prices[tier][token_type]) / PER_UNIT


def list_amount(
    model: str,
    tier: int,
    *,
    fresh: int = 0,
    cached: int = 0,
    output: int = 0,
    thinking: int = 0,
    table: Any = None,
) -> Decimal:
    return (
        fresh * price(model, tier, 0, table)
        + cached * price(model, tier, 1, table)
        + output * price(model, tier, 2, table)
        + thinking * price(model, tier, 3, table)
    )


#: A raised qwen-plus price in cn-beijing from 12:00 UTC on the test day (a mid-day change).
RAISED_PLUS = (
    ("0.0010", "0.0003", "0.003", "0.010"),
    ("0.0030", "0.0006", "0.025", "0.030"),
    ("0.0060", "0.0012", "0.060", "0.080"),
)
MID_DAY = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def rated(tmp_path: Path) -> Iterator[tuple[duckdb.DuckDBPyConnection, dict[str, dict[str, Any]]]]:
    """The hand-checked fixture, landed and rated: (connection, expectations by event_id)."""
    settings = make_settings(tmp_path)
    append_price_rows(
        settings.books,
        "price_book_cn",
        price_rows(
            "cn-v2-midday", "2026-03-02T12:00:00Z", "qwen-plus", "cn-beijing", "CNY", RAISED_PLUS
        ),
    )
    con = open_warehouse(settings)
    cases: dict[str, dict[str, Any]] = {}

    def case(name: str, expected: dict[str, Any], **fields: Any) -> None:
        row = event(event_id=name, **fields)
        cases[name] = {"row": row, **expected}

    plus = "qwen-plus"
    case("tier1", {"gross": list_amount(plus, 0, fresh=1000, output=500), "tier": "0-128k"},
         input_tokens=1000, output_tokens=500)  # fmt: skip
    case("tier1_upper_bound", {"gross": list_amount(plus, 0, fresh=128_000), "tier": "0-128k"},
         input_tokens=128_000, output_tokens=0)  # fmt: skip
    case("tier2_lower_bound", {"gross": list_amount(plus, 1, fresh=128_001), "tier": "128k-256k"},
         input_tokens=128_001, output_tokens=0)  # fmt: skip
    case("tier2", {"gross": list_amount(plus, 1, fresh=200_000, output=1000), "tier": "128k-256k"},
         input_tokens=200_000, output_tokens=1000)  # fmt: skip
    case("tier3_flash",
         {"gross": list_amount("qwen-flash", 2, fresh=300_000, output=100), "tier": "256k-1m"},
         model="qwen-flash", input_tokens=300_000, output_tokens=100)  # fmt: skip
    case("cached",
         {"gross": list_amount(plus, 0, fresh=6000, cached=4000, output=10), "tier": "0-128k"},
         input_tokens=10_000, cached_input_tokens=4000, output_tokens=10)  # fmt: skip
    case("thinking",
         {"gross": list_amount(plus, 0, fresh=100, output=1000, thinking=2000), "tier": "0-128k"},
         input_tokens=100, output_tokens=3000, thinking_tokens=2000)  # fmt: skip
    # Batch: half of each real-time price, and cached input pays the (batch) input price.
    half = Decimal(BATCH_RATIO)
    case("batch_with_cache",
         {"gross": half * list_amount(plus, 0, fresh=10_000, output=1000, thinking=500),
          "tier": "0-128k"},
         mode="batch", input_tokens=10_000, cached_input_tokens=4000, output_tokens=1500,
         thinking_tokens=500)  # fmt: skip
    # Price change at 12:00: one second before, the old price; at 12:00, the new one.
    case("before_mid_day_change", {"gross": list_amount(plus, 0, fresh=1000, output=1000),
                                   "version": "cn-v1"},
         occurred_at=MID_DAY - timedelta(seconds=1), input_tokens=1000, output_tokens=1000)  # fmt: skip
    case("at_mid_day_change",
         {"gross": list_amount(plus, 0, fresh=1000, output=1000, table=RAISED_PLUS),
          "version": "cn-v2-midday"},
         occurred_at=MID_DAY, input_tokens=1000, output_tokens=1000)  # fmt: skip
    # USD in ap-singapore, converted at the rate in force on the event date (7.2 from 03-02).
    usd = list_amount(plus, 0, fresh=2000, output=300, table=USD_PRICES)
    case("usd_to_cny",
         {"gross": usd, "currency": "USD", "fx_rate": Decimal("7.2"),
          "reporting": usd * Decimal("7.2")},
         region="ap-singapore", tenant_id="tenant-sg", input_tokens=2000, output_tokens=300)  # fmt: skip
    case("usd_day_before", {"gross": usd, "currency": "USD", "fx_rate": Decimal("7.1")},
         region="ap-singapore", tenant_id="tenant-sg", input_tokens=2000, output_tokens=300,
         occurred_at=DAY - timedelta(days=1))  # fmt: skip
    # Free quota: 1,000 tokens of qwen-flash in cn-hangzhou for 30 days from the first call.
    flash = "qwen-flash"
    start = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    case("quota_first_call",
         {"gross": list_amount(flash, 0, fresh=500, output=100), "free": 600,
          "discount": list_amount(flash, 0, fresh=500, output=100)},
         tenant_id="tenant-new", model=flash, region="cn-hangzhou", occurred_at=start,
         input_tokens=500, output_tokens=100)  # fmt: skip
    # 400 free tokens left; this request has 200 fresh, 100 cached, 200 non-thinking output
    # and 100 thinking: the quota covers fresh, cached, then 100 of the non-thinking output.
    case("quota_exhausted_here",
         {"gross": list_amount(flash, 0, fresh=200, cached=100, output=200, thinking=100),
          "free": 400, "discount": list_amount(flash, 0, fresh=200, cached=100, output=100)},
         tenant_id="tenant-new", model=flash, region="cn-hangzhou",
         occurred_at=start + timedelta(hours=1), input_tokens=300, cached_input_tokens=100,
         output_tokens=300, thinking_tokens=100)  # fmt: skip
    case("quota_after_exhaustion",
         {"gross": list_amount(flash, 0, fresh=50, output=50), "free": 0,
          "discount": Decimal(0)},
         tenant_id="tenant-new", model=flash, region="cn-hangzhou",
         occurred_at=start + timedelta(hours=2), input_tokens=50, output_tokens=50)  # fmt: skip
    # A batch call in the quota window gets no free quota (and leaves the quota untouched).
    case("quota_not_for_batch",
         {"gross": half * list_amount(flash, 0, fresh=100), "free": 0, "discount": Decimal(0)},
         tenant_id="tenant-other", model=flash, region="cn-hangzhou", mode="batch",
         occurred_at=start, input_tokens=100, output_tokens=0)  # fmt: skip
    case("quota_expired",
         {"gross": list_amount(flash, 0, fresh=100), "free": 0, "discount": Decimal(0)},
         tenant_id="tenant-other", model=flash, region="cn-hangzhou",
         occurred_at=start + timedelta(days=30), input_tokens=100, output_tokens=0)  # fmt: skip
    # Unrated: never at zero, held with a reason.
    case("unknown_model", {"unrated": "unknown_model"}, model="qwen-ultra")
    case("unknown_region", {"unrated": "unknown_region"}, region="mars-north")
    case("not_offered", {"unrated": "model_not_offered_in_region"},
         model="qwen-flash", region="ap-singapore")  # fmt: skip
    case("before_any_price", {"unrated": "no_price_in_force"},
         occurred_at=datetime(2024, 6, 1, tzinfo=UTC))  # fmt: skip
    case("over_largest_tier", {"unrated": "input_over_largest_tier"}, input_tokens=1_000_001)

    insert_events(con, [expected["row"] for expected in cases.values()])
    rate(con, settings)
    yield con, cases
    con.close()


def rated_row(con: duckdb.DuckDBPyConnection, event_id: str) -> dict[str, Any]:
    relation = con.sql(f"select * from rating.rated_usage where event_id = '{event_id}'")
    rows = relation.fetchall()
    assert len(rows) == 1, f"{event_id} is not rated"
    return dict(zip(relation.columns, rows[0], strict=True))


@pytest.mark.parametrize(
    "event_id",
    [
        "tier1",
        "tier1_upper_bound",
        "tier2_lower_bound",
        "tier2",
        "tier3_flash",
        "cached",
        "thinking",
        "batch_with_cache",
        "before_mid_day_change",
        "at_mid_day_change",
        "usd_to_cny",
        "usd_day_before",
        "quota_first_call",
        "quota_exhausted_here",
        "quota_after_exhaustion",
        "quota_not_for_batch",
        "quota_expired",
    ],
)
def test_each_rule_rates_to_the_hand_computed_amount(
    rated: tuple[duckdb.DuckDBPyConnection, dict[str, dict[str, Any]]], event_id: str
) -> None:
    con, cases = rated
    expected = cases[event_id]
    row = rated_row(con, event_id)
    assert row["amount_gross"] == expected["gross"]
    assert row["amount_gross"] == (
        row["amount_input"] + row["amount_cached_input"] + row["amount_output"]
        + row["amount_thinking"]
    )  # fmt: skip
    discount = expected.get("discount", Decimal(0))
    assert row["free_quota_discount"] == discount
    assert row["free_quota_tokens"] == expected.get("free", 0)
    assert row["amount"] == expected["gross"] - discount
    assert row["currency"] == expected.get("currency", "CNY")
    assert row["reporting_currency"] == "CNY"
    fx_rate = expected.get("fx_rate", Decimal(1))
    assert row["fx_rate"] == fx_rate
    assert row["amount_reporting"] == expected.get("reporting", row["amount"] * fx_rate)
    if "tier" in expected:
        assert row["tier"] == expected["tier"]
    if "version" in expected:
        assert row["price_book_version"] == expected["version"]
    assert row["price_book_version"]


def test_batch_cached_tokens_pay_the_batch_input_price(
    rated: tuple[duckdb.DuckDBPyConnection, dict[str, dict[str, Any]]],
) -> None:
    row = rated_row(rated[0], "batch_with_cache")
    half = Decimal(BATCH_RATIO)
    assert row["amount_cached_input"] == 4000 * half * price("qwen-plus", 0, 0)
    assert row["amount_input"] == 6000 * half * price("qwen-plus", 0, 0)


@pytest.mark.parametrize(
    ("event_id", "reason"),
    [
        ("unknown_model", "unknown_model"),
        ("unknown_region", "unknown_region"),
        ("not_offered", "model_not_offered_in_region"),
        ("before_any_price", "no_price_in_force"),
        ("over_largest_tier", "input_over_largest_tier"),
    ],
)
def test_unpriceable_usage_is_held_unrated_with_its_reason_never_at_zero(
    rated: tuple[duckdb.DuckDBPyConnection, dict[str, dict[str, Any]]], event_id: str, reason: str
) -> None:
    con, _ = rated
    assert con.execute(
        "select reason from rating.unrated_usage where event_id = ?", [event_id]
    ).fetchall() == [(reason,)]
    assert con.execute(
        "select count(*) from rating.rated_usage where event_id = ?", [event_id]
    ).fetchall() == [(0,)]


def test_every_landed_event_is_either_rated_or_unrated(
    rated: tuple[duckdb.DuckDBPyConnection, dict[str, dict[str, Any]]],
) -> None:
    con, cases = rated
    counts = con.execute(
        """
        select
            (select count(*) from rating.rated_usage),
            (select count(*) from rating.unrated_usage),
            (select count(*) from rating.rated_usage where event_id in
                (select event_id from rating.unrated_usage)),
            (select count(distinct event_id) from rating.rated_usage),
            (select count(distinct event_id) from rating.unrated_usage)
        """
    ).fetchall()[0]
    assert counts[0] + counts[1] == len(cases)
    assert counts[2] == 0
    assert counts[3:] == counts[:2]  # one row per event


def test_a_missing_fx_rate_leaves_the_event_unrated(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, reporting_currency="EUR")
    con = open_warehouse(settings)
    insert_events(con, [event(event_id="cny-in-eur")])
    rate(con, settings)
    assert con.execute("select event_id, reason from rating.unrated_usage").fetchall() == [
        ("cny-in-eur", "no_fx_rate_in_force")
    ]


# --- the live worker's rater: the same SQL, the same figures --------------------------------


def contract_event(row: dict[str, Any]) -> dict[str, Any]:
    """A raw row as the event contract's dict (what a producer would send)."""
    fields = dict(row)
    for column in ("kafka_topic", "kafka_partition", "kafka_offset", "landed_at"):
        fields.pop(column)
    fields["occurred_at"] = row["occurred_at"].isoformat()
    return {key: value for key, value in fields.items() if value is not None}


def test_batch_rater_equals_the_warehouse_rating(
    rated: tuple[duckdb.DuckDBPyConnection, dict[str, dict[str, Any]]], tmp_path: Path
) -> None:
    con, cases = rated
    settings = make_settings(tmp_path / "live")
    append_price_rows(
        settings.books,
        "price_book_cn",
        price_rows(
            "cn-v2-midday", "2026-03-02T12:00:00Z", "qwen-plus", "cn-beijing", "CNY", RAISED_PLUS
        ),
    )
    rater = BatchRater(settings)
    now = datetime(2026, 6, 1, tzinfo=UTC)
    events = [from_dict(contract_event(case["row"]), now=now) for case in cases.values()]
    live = {rating.event_id: rating for rating in rater.rate(events)}
    warehouse = {
        event_id: (gross, currency, tier, version)
        for event_id, gross, currency, tier, version in con.execute(
            "select event_id, amount_gross, currency, tier, price_book_version "
            "from rating.rated_usage"
        ).fetchall()
    }
    unrated = dict(con.execute("select event_id, reason from rating.unrated_usage").fetchall())
    assert set(live) == set(cases)
    for event_id, rating in live.items():
        if event_id in warehouse:
            assert (
                rating.amount_gross,
                rating.currency,
                rating.tier,
                rating.price_book_version,
            ) == warehouse[event_id]
            assert rating.unrated_reason is None
        else:
            assert rating.amount_gross is None
            assert rating.unrated_reason == unrated[event_id]
    rater.close()


def test_batch_rater_keeps_the_order_and_rates_arrow_tables(tmp_path: Path) -> None:
    rater = BatchRater(make_settings(tmp_path))
    rows = [event(input_tokens=1000 * (i + 1), output_tokens=0) for i in range(5)]
    now = datetime(2026, 3, 3, tzinfo=UTC)
    events = [from_dict(contract_event(row), now=now) for row in reversed(rows)]
    ratings = rater.rate(events)
    assert [r.event_id for r in ratings] == [e.event_id for e in events]
    assert [r.amount_gross for r in ratings] == [
        list_amount("qwen-plus", 0, fresh=e.input_tokens) for e in events
    ]
    from warehouse.pricing.rating import events_to_arrow

    assert rater.rate(events_to_arrow(events)) == ratings
    assert rater.rate([]) == []


# --- properties: additive, never negative -----------------------------------------------------

_event_rows = st.lists(
    st.builds(
        lambda model, region, mode, fresh, cached, output, thinking, minutes, tenant: {
            "model": model,
            "region": region,
            "mode": mode,
            "input_tokens": fresh + cached,
            "cached_input_tokens": cached,
            "output_tokens": output + thinking,
            "thinking_tokens": thinking,
            "occurred_at": DAY + timedelta(minutes=minutes),
            "tenant_id": tenant,
        },
        model=st.sampled_from(["qwen-flash", "qwen-plus", "qwen-ultra"]),
        region=st.sampled_from(["cn-beijing", "cn-hangzhou", "ap-singapore"]),
        mode=st.sampled_from(["realtime", "batch"]),
        fresh=st.integers(0, 400_000),
        cached=st.integers(0, 400_000),
        output=st.integers(0, 50_000),
        thinking=st.integers(0, 50_000),
        minutes=st.integers(-60 * 24 * 40, 60 * 24),
        tenant=st.sampled_from(["t1", "t2", "t3"]),
    ),
    min_size=1,
    max_size=30,
)


@pytest.fixture(scope="module")
def property_books(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("property"))


@pytest.fixture(scope="module")
def live_rater(property_books: Settings) -> Iterator[BatchRater]:
    rater = BatchRater(property_books)
    yield rater
    rater.close()


def _memory_warehouse() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    for schema in db.SCHEMAS:
        con.execute(f"create schema {schema}")
    create_raw_tables(con)
    return con


def _totals(con: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    return tuple(
        con.execute(
            """
            select count(*), coalesce(sum(amount_gross), 0), coalesce(sum(amount), 0),
                coalesce(sum(free_quota_tokens), 0), coalesce(sum(amount_reporting), 0),
                (select count(*) from rating.unrated_usage)
            from rating.rated_usage
            """
        ).fetchall()[0]
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=_event_rows, split=st.integers(0, 30))
def test_live_revenue_is_additive_and_never_negative(
    live_rater: BatchRater, rows: list[dict[str, Any]], split: int
) -> None:
    now = DAY + timedelta(days=2)
    events = [from_dict(contract_event(event(**row)), now=now) for row in rows]
    whole = live_rater.rate(events)
    parts = live_rater.rate(events[:split]) + live_rater.rate(events[split:])
    assert parts == whole
    amounts = [r.amount_gross for r in whole if r.amount_gross is not None]
    assert all(amount >= 0 for amount in amounts)
    assert all((r.amount_gross is None) == (r.unrated_reason is not None) for r in whole)
    assert sum(r.amount_gross or 0 for r in parts) == sum(amounts)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=_event_rows, split=st.integers(0, 30))
def test_warehouse_revenue_is_additive_with_free_quota_and_never_negative(
    property_books: Settings, rows: list[dict[str, Any]], split: int
) -> None:
    """Landing and rating in two parts (in any order of event time) gives the same figures,
    free quota included, as rating everything at once: late events re-allocate the quota."""
    landed = [event(**row) for row in rows]
    at_once, in_parts = _memory_warehouse(), _memory_warehouse()
    insert_events(at_once, landed)
    rate(at_once, property_books)
    insert_events(in_parts, landed[split:])
    rate(in_parts, property_books)
    insert_events(in_parts, landed[:split])
    rate(in_parts, property_books)
    assert _totals(in_parts) == _totals(at_once)
    compare = "select event_id, amount, free_quota_tokens from rating.rated_usage order by 1"
    assert in_parts.execute(compare).fetchall() == at_once.execute(compare).fetchall()
    negative = at_once.execute(
        """
        select count(*) from rating.rated_usage
        where least(amount_input, amount_cached_input, amount_output, amount_thinking,
            amount_gross, free_quota_discount, amount, amount_reporting) < 0
            or free_quota_discount > amount_gross
        """
    ).fetchall()
    assert negative == [(0,)]
