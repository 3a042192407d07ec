"""Fuzzing the rating code: random price books and random events, checked against arithmetic.

The rating SQL (``warehouse/pricing/sql/price_events.sql``, run by both the warehouse and the
live worker's :class:`~warehouse.pricing.rating.BatchRater`) is compared with a few lines of
exact ``Decimal`` arithmetic written from the published rules: the version in force at event
time, the tier holding the request's input, fresh input, cached input, non-thinking output and
thinking at their own prices, batch at the batch ratio with no cache discount. Amounts are
never negative, exact to the last decimal, and an event no book prices is never rated at zero.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import events
from streams.settings import Settings
from warehouse.pricing.books import PriceBookError, read_books
from warehouse.pricing.rating import BatchRater

pytestmark = pytest.mark.reliability

SHIPPED_BOOKS = Settings().books
MODEL, REGION = "fuzz-model", "fuzz-region"
UNIT_TOKENS = 1000
PRICE_COLUMNS = ("input_price", "cached_input_price", "output_price", "thinking_output_price")
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Tier:
    low: int  # exclusive (except a 0-token request in the first tier)
    high: int  # inclusive
    prices: tuple[Decimal, Decimal, Decimal, Decimal]  # per UNIT_TOKENS, PRICE_COLUMNS order


@dataclass(frozen=True)
class Version:
    label: str
    effective_from: datetime
    tiers: tuple[Tier, ...]


# Prices as a price list writes them: up to 6 decimals per 1,000 tokens.
prices = st.decimals(min_value=0, max_value=Decimal("0.2"), places=6).map(Decimal.normalize)


@st.composite
def price_books(draw: st.DrawFn) -> tuple[Version, ...]:
    """One to three effective-dated versions, each with one to three contiguous tiers."""
    starts = sorted(draw(st.sets(st.integers(0, 400), min_size=1, max_size=3)))
    versions = []
    for number, start in enumerate(starts):
        bounds = [*sorted(draw(st.sets(st.integers(1, 999_999), max_size=2))), 1_000_000]
        tiers = []
        low = 0
        for high in bounds:
            tiers.append(Tier(low, high, tuple(draw(prices) for _ in PRICE_COLUMNS)))  # type: ignore[arg-type]
            low = high
        versions.append(Version(f"fuzz-v{number}", EPOCH + timedelta(days=start), tuple(tiers)))
    return tuple(versions)


@st.composite
def usage(draw: st.DrawFn) -> events.TokenUsageEvent:
    """A valid event for the fuzz model, or for a model or region no book knows."""
    input_tokens = draw(st.integers(0, 1_200_000) | st.sampled_from([0, 1, 128_000, 1_000_000]))
    output_tokens = draw(st.integers(0, 200_000))
    where = draw(st.sampled_from(["priced", "priced", "priced", "unknown_model", "unknown_region"]))
    return events.TokenUsageEvent(
        event_id=f"fz-{draw(st.uuids()).hex}",
        schema_version=1,
        occurred_at=EPOCH + timedelta(seconds=draw(st.integers(-86_400, 500 * 86_400))),
        tenant_id="tn-fuzz",
        workspace_id="ws-fuzz",
        api_key_id="ak-fuzz",
        product="api",
        channel="direct_api",
        actor_type="agent",
        actor_id="ag-fuzz",
        session_id="ses-fuzz",
        request_id="req-fuzz",
        model="unknown-fuzz-model" if where == "unknown_model" else MODEL,
        region="unknown-fuzz-region" if where == "unknown_region" else REGION,
        chip_family="domestic-npu-a",
        mode=draw(st.sampled_from(["realtime", "batch"])),
        input_tokens=input_tokens,
        cached_input_tokens=draw(st.integers(0, input_tokens)),
        output_tokens=output_tokens,
        thinking_tokens=draw(st.integers(0, output_tokens)),
        accelerator_ms=0,
    )


def write_books(folder: Path, versions: tuple[Version, ...]) -> Path:
    """The shipped books plus ``price_book_fuzz.csv`` holding the random versions."""
    shutil.copytree(SHIPPED_BOOKS, folder, dirs_exist_ok=True)
    with (folder / "price_book_fuzz.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(
            [
                *("book_version", "effective_from", "model", "region", "currency", "unit_tokens"),
                *("tier_min_input_tokens", "tier_max_input_tokens", *PRICE_COLUMNS, "note"),
            ]
        )
        for version in versions:
            for tier in version.tiers:
                writer.writerow(
                    [
                        *(version.label, version.effective_from.date().isoformat(), MODEL),
                        *(REGION, "CNY", UNIT_TOKENS, tier.low, tier.high, *tier.prices, "fuzz"),
                    ]
                )
    return folder


def expected_amount(
    event: events.TokenUsageEvent, versions: tuple[Version, ...], batch_ratio: Decimal
) -> Decimal | str:
    """The amount the published rules give, or the reason the event cannot be rated."""
    if event.model != MODEL:
        return "unknown_model"
    if event.region != REGION:
        return "unknown_region"
    in_force = [v for v in versions if v.effective_from <= event.occurred_at]
    if not in_force:
        return "no_price_in_force"
    version = max(in_force, key=lambda v: v.effective_from)
    tiers = [
        t
        for t in version.tiers
        if t.low < event.input_tokens <= t.high or (t.low == 0 and event.input_tokens == 0)
    ]
    if not tiers:
        return "input_over_largest_tier"
    input_price, cached_price, output_price, thinking_price = tiers[0].prices
    is_batch = event.mode == "batch"
    ratio = batch_ratio if is_batch else Decimal(1)
    if is_batch:
        cached_price = input_price  # batch calls get no cache discount
    with localcontext() as context:
        context.prec = 60
        total = (
            (event.input_tokens - event.cached_input_tokens) * input_price
            + event.cached_input_tokens * cached_price
            + (event.output_tokens - event.thinking_tokens) * output_price
            + event.thinking_tokens * thinking_price
        )
        return total * ratio / UNIT_TOKENS


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(versions=price_books(), batch=st.lists(usage(), min_size=1, max_size=60))
def test_random_books_and_events_rate_exactly_never_negative_never_zero_when_unknown(
    tmp_path_factory: pytest.TempPathFactory,
    versions: tuple[Version, ...],
    batch: list[events.TokenUsageEvent],
) -> None:
    folder = write_books(tmp_path_factory.mktemp("books"), versions)
    books = read_books(folder)
    [batch_rule] = books.batch_pricing  # one batch rule in force since 2025 in the shipped books
    rater = BatchRater(Settings(books_dir=folder, home=folder / "home"))
    try:
        ratings = rater.rate(batch)
    finally:
        rater.close()

    assert [r.event_id for r in ratings] == [e.event_id for e in batch]
    for event, rating in zip(batch, ratings, strict=True):
        want = expected_amount(event, versions, batch_rule.batch_price_ratio)
        if isinstance(want, str):
            assert rating.amount_gross is None, (event, rating)  # never rated at zero
            assert rating.unrated_reason == want, (event, rating)
            continue
        assert rating.unrated_reason is None, (event, rating)
        assert isinstance(rating.amount_gross, Decimal)
        assert rating.amount_gross >= 0
        assert rating.amount_gross == want, (event, rating, want)  # exact, not approximately
        assert rating.currency == "CNY"


def test_a_price_at_the_books_precision_limit_rates_exactly_in_batch_or_is_refused(
    tmp_path: Path,
) -> None:
    smallest = Decimal("0.000000001")  # per 1,000 tokens: 1e-12 per token, the books' limit
    versions = (Version("fuzz-v0", EPOCH, (Tier(0, 1_000_000, (smallest,) * 4),)),)
    folder = write_books(tmp_path / "books", versions)
    try:
        books = read_books(folder)
    except PriceBookError:
        return  # refused with a clear error: fine
    event = _sample_event()
    rater = BatchRater(Settings(books_dir=folder, home=tmp_path / "home"))
    try:
        [rating] = rater.rate([event])
    finally:
        rater.close()
    [batch_rule] = books.batch_pricing
    assert rating.amount_gross == expected_amount(event, versions, batch_rule.batch_price_ratio)


def _sample_event() -> events.TokenUsageEvent:
    return events.TokenUsageEvent(
        event_id="fz-edge",
        schema_version=1,
        occurred_at=EPOCH + timedelta(days=1),
        tenant_id="tn-fuzz",
        workspace_id="ws-fuzz",
        api_key_id="ak-fuzz",
        product="api",
        channel="direct_api",
        actor_type="agent",
        actor_id="ag-fuzz",
        session_id="ses-fuzz",
        request_id="req-fuzz",
        model=MODEL,
        region=REGION,
        chip_family="domestic-npu-a",
        mode="batch",
        input_tokens=3,
        cached_input_tokens=0,
        output_tokens=0,
        thinking_tokens=0,
        accelerator_ms=0,
    )
