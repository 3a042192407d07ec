"""The cost, transfer price and segment books: exact decimals and loud, located errors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from streams.settings import Settings
from tests.warehouse.test_economics_helpers import (
    COST_COLUMNS,
    TRANSFER_COLUMNS,
    open_warehouse,
    write_books,
    write_csv,
)
from warehouse.pricing.cost_books import (
    CostBookError,
    load_cost_books,
    read_cost_book,
    read_cost_books,
)

CHIP_COST = {
    "layer": "chip",
    "cost_item": "design_amortisation",
    "chip_family": "domestic-npu-a",
    "unit": "accelerator_hour",
    "currency": "CNY",
    "amount": "2.000000000001",
    "effective_from": "2025-01-01",
}
CHIP_TRANSFER = {
    "from_layer": "chip",
    "to_layer": "cloud",
    "chip_family": "domestic-npu-a",
    "unit": "accelerator_hour",
    "currency": "CNY",
    "amount": "6.5",
    "effective_from": "2025-01-01",
}


def test_shipped_books_load_and_tell_the_cost_leadership_story(tmp_path: Path) -> None:
    books = read_cost_books(Settings().books)
    cloud = {}
    for rate in books.cost_book:
        if rate.layer == "cloud" and rate.effective_from.year == 2025:
            key = (rate.region, rate.chip_family)
            cloud[key] = cloud.get(key, Decimal(0)) + rate.amount
    # Domestic chips cost the cloud less per hour than imported GPUs, mainland energy is cheaper.
    chip_transfer = {
        price.chip_family: price.amount
        for price in books.transfer_prices
        if price.from_layer == "chip"
    }
    for region in ("cn-beijing", "cn-hangzhou", "cn-shanghai", "ap-singapore", "us-virginia"):
        domestic = cloud[region, "domestic-npu-a"] + chip_transfer["domestic-npu-a"]
        assert domestic < cloud[region, "imported-gpu-h"]
    energy = {
        rate.region: rate.amount
        for rate in books.cost_book
        if rate.cost_item == "energy" and rate.chip_family == "imported-gpu-h"
    }
    assert max(energy[r] for r in energy if r.startswith("cn-")) < min(
        energy["ap-singapore"], energy["us-virginia"]
    )
    assert all("illustrative" in rate.note for rate in books.cost_book)
    con = open_warehouse(tmp_path / "w.duckdb")
    load_cost_books(con, Settings().books)
    assert con.sql("select count(*) from rating.cost_book").fetchall() == [(len(books.cost_book),)]


def test_amounts_are_exact_decimals_end_to_end(tmp_path: Path) -> None:
    books_dir = write_books(tmp_path / "books", [CHIP_COST], [CHIP_TRANSFER])
    con = open_warehouse(tmp_path / "w.duckdb")
    load_cost_books(con, books_dir)
    [(amount, kind)] = con.sql("select amount, typeof(amount) from rating.cost_book").fetchall()
    assert amount == Decimal("2.000000000001")
    assert kind == "DECIMAL(38,12)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"amount": "1.5e"}, "amount '1.5e' is not a decimal number"),
        ({"amount": "-1"}, "must be a finite number >= 0"),
        ({"amount": "0.0000000000001"}, "more than 12 decimal places"),
        ({"layer": "gpu"}, "layer 'gpu' must be one of"),
        ({"unit": "request"}, "unit 'request' for layer chip"),
        ({"region": "cn-beijing"}, "region must be empty here"),
        ({"chip_family": ""}, "chip_family is required here"),
        ({"currency": "yuan"}, "currency 'yuan' must be a 3-letter code"),
        ({"effective_from": "2025-13-01"}, "is not an ISO date"),
        ({"effective_from": "2025-01-01T00:00:00"}, "needs a UTC offset"),
    ],
)
def test_a_bad_cost_row_names_file_and_line(
    tmp_path: Path, change: dict[str, str], message: str
) -> None:
    path = tmp_path / "cost_book.csv"
    write_csv(path, COST_COLUMNS, [CHIP_COST, {**CHIP_COST, **change, "cost_item": "other"}])
    with pytest.raises(CostBookError, match=message) as caught:
        read_cost_book(path)
    assert str(caught.value).startswith(f"{path}, line 3: ")


def test_duplicate_rows_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "cost_book.csv"
    write_csv(path, COST_COLUMNS, [CHIP_COST, CHIP_COST])
    with pytest.raises(CostBookError, match="line 3: duplicates line 2"):
        read_cost_book(path)


def test_wrong_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cost_book.csv"
    write_csv(path, COST_COLUMNS[:-1], [])
    with pytest.raises(CostBookError, match="line 1: header must be"):
        read_cost_book(path)


def test_a_domestic_chip_without_transfer_price_is_refused(tmp_path: Path) -> None:
    books_dir = write_books(tmp_path, [CHIP_COST], [])
    with pytest.raises(CostBookError, match="no chip -> cloud transfer price for chip family"):
        read_cost_books(books_dir)


def test_share_of_list_price_is_a_ratio_without_currency(tmp_path: Path) -> None:
    share = {
        "from_layer": "model",
        "to_layer": "application",
        "model": "qwen-plus",
        "token_type": "input",
        "unit": "share_of_list_price",
        "amount": "0.7",
        "effective_from": "2025-01-01",
    }
    write_books(tmp_path, [], [])  # segments and cost book
    write_csv(
        tmp_path / "transfer_prices.csv",
        TRANSFER_COLUMNS,
        [share, {**share, "token_type": "output", "currency": "CNY"}],
    )
    with pytest.raises(CostBookError, match="line 3: currency must be empty"):
        read_cost_books(tmp_path)
    write_csv(tmp_path / "transfer_prices.csv", TRANSFER_COLUMNS, [{**share, "amount": "1.2"}])
    with pytest.raises(CostBookError, match="line 2: a share of the list price must be <= 1"):
        read_cost_books(tmp_path)


def test_every_layer_needs_a_segment(tmp_path: Path) -> None:
    write_books(
        tmp_path,
        [],
        [],
        [{"layer": "chip", "segment": "cloud_infrastructure", "effective_from": "2025-01-01"}],
    )
    with pytest.raises(CostBookError, match="no segment for layer"):
        read_cost_books(tmp_path)


def test_missing_book_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(CostBookError, match=r"cost_book.csv: book not found"):
        read_cost_books(tmp_path)
