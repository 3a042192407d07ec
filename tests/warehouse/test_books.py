"""Price, free quota, batch and FX books: the shipped books, loading, and broken books."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from streams.settings import Settings
from tests.warehouse.test_rating_helpers import (
    PRICE_COLUMNS,
    PUBLIC_PRICES,
    TIERS,
    copy_shipped_books,
    make_settings,
    write_csv,
)
from warehouse import db
from warehouse.pricing.books import PriceBookError, load_books, read_books
from warehouse.pricing.cost_books import CostBookError

REPO = Path(__file__).resolve().parents[2]


def test_shipped_cn_book_is_the_public_price_list() -> None:
    books = read_books(Settings().books)
    for region in ("cn-beijing", "cn-hangzhou", "cn-shanghai"):
        for model, tiers in PUBLIC_PRICES.items():
            rows = sorted(
                (r for r in books.prices if r.model == model and r.region == region),
                key=lambda r: r.tier_min_input_tokens,
            )
            assert [(r.tier_min_input_tokens, r.tier_max_input_tokens) for r in rows] == list(TIERS)
            for row, prices in zip(rows, tiers, strict=True):
                assert row.currency == "CNY"
                assert row.unit_tokens == 1000
                assert (
                    row.input_price,
                    row.cached_input_price,
                    row.output_price,
                    row.thinking_output_price,
                ) == tuple(Decimal(p) for p in prices)


def test_shipped_books_mark_illustrative_figures_and_show_a_price_raise() -> None:
    books = read_books(Settings().books)
    usd = [r for r in books.prices if r.currency == "USD"]
    assert {r.region for r in usd} == {"ap-singapore", "us-virginia"}
    assert all("illustrative" in r.note for r in usd)
    assert all("illustrative" in r.note for r in books.prices if r.model == "qwen-max")
    raised = [r for r in books.prices if r.effective_from.year == 2026]
    assert raised, "a later version (the price raise) is in the book"
    for row in raised:
        earlier = next(
            r
            for r in books.prices
            if (r.model, r.region, r.tier_min_input_tokens)
            == (row.model, row.region, row.tier_min_input_tokens)
            and r.effective_from < row.effective_from
        )
        assert row.input_price > earlier.input_price
    assert books.free_quota and books.fx_rates and books.batch_pricing


def test_load_books_writes_exact_decimals_and_records_content_hashes(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    load_books(settings)
    con = db.connect(settings.warehouse_path)
    assert con.execute(
        "select typeof(input_price), input_price, input_price_per_token from rating.price_book "
        "where model = 'qwen-plus' and region = 'cn-beijing' and tier_min_input_tokens = 0"
    ).fetchall() == [("DECIMAL(38,12)", Decimal("0.0008"), Decimal("0.0000008"))]
    assert con.execute(
        "select tier from staging.stg_price_book where model = 'qwen-flash' "
        "and region = 'cn-beijing' order by tier_min_input_tokens"
    ).fetchall() == [("0-128k",), ("128k-256k",), ("256k-1m",)]
    first = dict(con.execute("select book, content_hash from rating.book_versions").fetchall())
    assert set(first) == {"price_book_cn", "price_book_intl_usd", "free_quota", "batch_pricing",
                          "fx_rates"}  # fmt: skip
    con.close()
    load_books(settings)  # unchanged: nothing new recorded
    book = settings.books / "fx_rates.csv"
    book.write_text(book.read_text().replace("7.2", "7.25"))
    load_books(settings)
    con = db.connect(settings.warehouse_path)
    history = con.execute(
        "select book, count(*) from rating.book_versions group by book having count(*) > 1"
    ).fetchall()
    assert history == [("fx_rates", 2)]


def _broken(tmp_path: Path, rows: list[list[object]]) -> Path:
    books = copy_shipped_books(tmp_path / "books")
    write_csv(books / "price_book_cn.csv", PRICE_COLUMNS, rows)
    return books


def _tier(
    low: int, high: int, *, currency: str = "CNY", input_price: str = "0.0008"
) -> list[object]:
    return ["v1", "2025-01-01", "qwen-plus", "cn-beijing", currency, 1000, low, high,
            input_price, "0.0002", "0.002", "0.008", "test"]  # fmt: skip


@pytest.mark.parametrize(
    ("rows", "line", "message"),
    [
        ([_tier(0, 128_000), _tier(100_000, 256_000)], 3, "overlaps tier 0-128000"),
        ([_tier(0, 128_000), _tier(200_000, 256_000)], 3, "leaves a gap after tier 0-128000"),
        ([_tier(0, 128_000, currency="")], 2, "currency is required"),
        ([_tier(0, 128_000, input_price="-0.0008")], 2, "input_price '-0.0008' must not be negative"),
        ([_tier(0, 128_000, input_price="cheap")], 2, "is not a decimal number"),
        ([_tier(1000, 128_000)], 2, "must start at tier_min_input_tokens 0"),
        ([_tier(0, 128_000), _tier(128_000, 128_000)], 3, "must be below"),
        ([_tier(0, 128_000, currency="CNY"), _tier(128_000, 256_000, currency="USD")], 3,
         "currency 'USD' differs from line 2"),
    ],
)  # fmt: skip
def test_a_broken_price_book_names_the_file_line_and_problem(
    tmp_path: Path, rows: list[list[object]], line: int, message: str
) -> None:
    books = _broken(tmp_path, rows)
    with pytest.raises(PriceBookError) as raised:
        read_books(books)
    text = str(raised.value)
    assert text.startswith(f"{books / 'price_book_cn.csv'}, line {line}: ")
    assert message in text
    assert isinstance(raised.value, CostBookError)  # reported like every other bad book


def test_a_broken_book_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    load_books(settings)
    write_csv(settings.books / "price_book_cn.csv", PRICE_COLUMNS, [_tier(0, 128_000, currency="")])
    with pytest.raises(PriceBookError):
        load_books(settings)
    con = db.connect(settings.warehouse_path)
    assert con.execute("select count(*) from rating.price_book").fetchall()[0][0] > 1


@pytest.mark.parametrize(
    ("file", "header", "row", "message"),
    [
        ("free_quota.csv", "effective_from,region,model,free_tokens,valid_days,note",
         "2025-01-01,cn-beijing,qwen-flash,1000,0,x", "valid_days '0' must be at least 1"),
        ("batch_pricing.csv", "effective_from,batch_price_ratio,note", "2025-01-01,1.5,x",
         "batch_price_ratio 1.5 must be in (0, 1]"),
        ("fx_rates.csv", "effective_from,from_currency,to_currency,rate,note",
         "2025-01-01,USD,usd,7.1,x", "to_currency 'usd' must be a 3-letter code"),
        ("fx_rates.csv", "effective_from,from_currency,to_currency,rate,note",
         "2025-01-01,USD,CNY,0.1234567890123,x", "more than 12 decimal places"),
    ],
)  # fmt: skip
def test_broken_quota_batch_and_fx_books_name_file_and_line(
    tmp_path: Path, file: str, header: str, row: str, message: str
) -> None:
    books = copy_shipped_books(tmp_path / "books")
    (books / file).write_text(f"{header}\n{row}\n")
    with pytest.raises(PriceBookError, match=f"{file}, line 2: .*{message[:20]}"):
        read_books(books)


def test_tokenhub_rate_reports_a_broken_book_in_one_line(tmp_path: Path) -> None:
    books = _broken(tmp_path, [_tier(0, 128_000), _tier(100_000, 256_000)])
    env = {**os.environ, "TOKENHUB_HOME": str(tmp_path / "home"), "TOKENHUB_BOOKS_DIR": str(books)}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "tokenhub"), "rate"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "price_book_cn.csv, line 3" in lines[0]
    assert "overlaps" in lines[0]
    assert "Traceback" not in done.stderr


def test_a_price_whose_batch_price_needs_more_than_12_places_is_refused(tmp_path: Path) -> None:
    # 0.000000001 per 1,000 tokens is 1e-12 per token; half of it needs 13 decimal places.
    books = _broken(tmp_path, [_tier(0, 128_000, input_price="0.000000001")])
    with pytest.raises(PriceBookError, match=r"price_book_cn.csv, line 2: input_price per token x"):
        read_books(books)
