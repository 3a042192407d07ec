"""Cost, transfer price and segment books: read, validate, write to ``rating.*`` tables.

Three CSV files in the books folder (``settings.books``) describe the economics of the four
layers that produce a token (chip, cloud, model, application):

- ``cost_book.csv``: each layer's direct costs, per accelerator-hour (chip by chip family,
  cloud by region and chip family), per million tokens (model by model) or per request and
  per million tokens (application by product);
- ``transfer_prices.csv``: what a layer pays the layer below (chip -> cloud per
  accelerator-hour by chip family, cloud -> model per accelerator-hour by region and chip
  family, model -> application per million tokens or as a share of the list price, by model
  and token type);
- ``segments.csv``: which reporting segment each layer belongs to.

Every row is effective-dated: a row is in force from ``effective_from`` until the next row
with the same identity (the same columns except unit, currency, amount and note). Amounts
are read as :class:`~decimal.Decimal` from the CSV text and written as ``DECIMAL(38, 12)``,
never through a float. A bad row raises :class:`CostBookError` naming the file and line.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import astuple, dataclass, fields
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import duckdb

COST_BOOK = "cost_book.csv"
TRANSFER_PRICES = "transfer_prices.csv"
SEGMENTS = "segments.csv"

#: The layers that produce a token, bottom to top.
LAYERS = ("chip", "cloud", "model", "application")
#: Token types a model -> application transfer price is set for (all four are required).
TOKEN_TYPES = ("input", "cached_input", "output", "thinking")
#: The unit that is a ratio of the rated list price rather than money per quantity.
SHARE_OF_LIST_PRICE = "share_of_list_price"

#: Per layer: the key columns a direct cost row must fill (others stay empty) and its units.
COST_KEYS: dict[str, tuple[str, ...]] = {
    "chip": ("chip_family",),
    "cloud": ("region", "chip_family"),
    "model": ("model",),
    "application": ("product",),
}
COST_UNITS: dict[str, frozenset[str]] = {
    "chip": frozenset({"accelerator_hour"}),
    "cloud": frozenset({"accelerator_hour"}),
    "model": frozenset({"million_tokens"}),
    "application": frozenset({"request", "million_tokens"}),
}
#: Per transfer (seller, buyer): the key columns it must fill and its units.
TRANSFER_KEYS: dict[tuple[str, str], tuple[str, ...]] = {
    ("chip", "cloud"): ("chip_family",),
    ("cloud", "model"): ("region", "chip_family"),
    ("model", "application"): ("model", "token_type"),
}
TRANSFER_UNITS: dict[tuple[str, str], frozenset[str]] = {
    ("chip", "cloud"): frozenset({"accelerator_hour"}),
    ("cloud", "model"): frozenset({"accelerator_hour"}),
    ("model", "application"): frozenset({"million_tokens", SHARE_OF_LIST_PRICE}),
}

_COST_KEY_COLUMNS = ("chip_family", "region", "model", "product")
_TRANSFER_KEY_COLUMNS = ("chip_family", "region", "model", "token_type")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_SEGMENT = re.compile(r"^[a-z][a-z0-9_]*$")
#: DECIMAL(38, 12): at most 12 places after the point and 26 before it.
#: Decimal places of every amount in the books (DECIMAL(38, 12) in the warehouse).
SCALE = 12
_MAX_AMOUNT = Decimal(10) ** (38 - SCALE)


class CostBookError(ValueError):
    """A cost, transfer price or segment book that cannot be used as it is."""

    def __init__(self, file: Path | str, line: int | None, message: str) -> None:
        where = f"{file}, line {line}" if line is not None else str(file)
        super().__init__(f"{where}: {message}")
        self.file = Path(file)
        self.line = line


@dataclass(frozen=True)
class CostRate:
    """One direct cost of one layer, in force from ``effective_from``."""

    layer: str
    cost_item: str
    chip_family: str | None
    region: str | None
    model: str | None
    product: str | None
    unit: str
    currency: str
    amount: Decimal
    effective_from: datetime
    note: str
    source_line: int

    @property
    def identity(self) -> tuple[object, ...]:
        """What a later row with a new ``effective_from`` supersedes."""
        return (
            self.layer,
            self.cost_item,
            self.chip_family,
            self.region,
            self.model,
            self.product,
        )


@dataclass(frozen=True)
class TransferPrice:
    """What ``to_layer`` pays ``from_layer``, in force from ``effective_from``.

    ``currency`` is ``None`` when ``unit`` is :data:`SHARE_OF_LIST_PRICE` (a ratio).
    """

    from_layer: str
    to_layer: str
    chip_family: str | None
    region: str | None
    model: str | None
    token_type: str | None
    unit: str
    currency: str | None
    amount: Decimal
    effective_from: datetime
    note: str
    source_line: int

    @property
    def identity(self) -> tuple[object, ...]:
        """What a later row with a new ``effective_from`` supersedes."""
        return (
            self.from_layer,
            self.to_layer,
            self.chip_family,
            self.region,
            self.model,
            self.token_type,
        )


@dataclass(frozen=True)
class SegmentMapping:
    """The reporting segment of one layer, in force from ``effective_from``."""

    layer: str
    segment: str
    effective_from: datetime
    note: str
    source_line: int

    @property
    def identity(self) -> tuple[object, ...]:
        """What a later row with a new ``effective_from`` supersedes."""
        return (self.layer,)


@dataclass(frozen=True)
class CostBooks:
    """The three economics books, validated."""

    cost_book: tuple[CostRate, ...]
    transfer_prices: tuple[TransferPrice, ...]
    segments: tuple[SegmentMapping, ...]


# --- reading -------------------------------------------------------------------------------


def _rows(path: Path, columns: tuple[str, ...]) -> Iterable[tuple[int, dict[str, str]]]:
    """``(line number, row)`` for each data row; the header must name exactly ``columns``."""
    if not path.is_file():
        raise CostBookError(path, None, "book not found; copy it from warehouse/pricing/books/")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = tuple(reader.fieldnames or ())
        if set(header) != set(columns) or len(header) != len(columns):
            raise CostBookError(
                path, 1, f"header must be {','.join(columns)} (got {','.join(header) or 'nothing'})"
            )
        for row in reader:
            if None in row or any(value is None for value in row.values()):
                raise CostBookError(path, reader.line_num, "wrong number of fields")
            yield reader.line_num, {key: value.strip() for key, value in row.items()}


def _amount(
    path: Path,
    line: int,
    text: str,
    column: str = "amount",
    error: type[CostBookError] = CostBookError,
) -> Decimal:
    """A book amount: a finite decimal >= 0 with at most :data:`SCALE` places that fits
    DECIMAL(38, 12); anything else raises ``error`` naming the file, line and column."""
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise error(path, line, f"{column} {text!r} is not a decimal number") from None
    if not amount.is_finite() or amount < 0:
        raise error(
            path, line, f"{column} {text!r} must not be negative: it must be a finite number >= 0"
        )
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -SCALE:
        raise error(path, line, f"{column} {text!r} has more than {SCALE} decimal places")
    if amount >= _MAX_AMOUNT:
        raise error(path, line, f"{column} {text!r} is too large")
    return amount


def _effective_from(path: Path, line: int, text: str) -> datetime:
    try:
        if "T" not in text and " " not in text:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CostBookError(
            path, line, f"effective_from {text!r} is not an ISO date (2026-01-31) or timestamp"
        ) from None
    if moment.tzinfo is None:
        raise CostBookError(path, line, f"effective_from {text!r} needs a UTC offset (e.g. Z)")
    return moment.astimezone(UTC)


def _keys(
    path: Path,
    line: int,
    row: Mapping[str, str],
    required: tuple[str, ...],
    all_keys: tuple[str, ...],
) -> dict[str, str | None]:
    keys: dict[str, str | None] = {}
    for column in all_keys:
        value = row[column] or None
        if column in required and value is None:
            raise CostBookError(path, line, f"{column} is required here")
        if column not in required and value is not None:
            raise CostBookError(
                path, line, f"{column} must be empty here (the keys are {', '.join(required)})"
            )
        keys[column] = value
    return keys


def _currency(path: Path, line: int, text: str, unit: str) -> str | None:
    if unit == SHARE_OF_LIST_PRICE:
        if text:
            raise CostBookError(path, line, f"currency must be empty for unit {unit} (a ratio)")
        return None
    if not _CURRENCY.match(text):
        raise CostBookError(path, line, f"currency {text!r} must be a 3-letter code like CNY")
    return text


def _check_unique(path: Path, rows: Iterable[CostRate | TransferPrice | SegmentMapping]) -> None:
    seen: dict[tuple[object, ...], int] = {}
    for row in rows:
        key = (*row.identity, row.effective_from)
        if key in seen:
            raise CostBookError(
                path,
                row.source_line,
                f"duplicates line {seen[key]} (same keys and effective_from)",
            )
        seen[key] = row.source_line


def read_cost_book(path: Path) -> tuple[CostRate, ...]:
    """Parse and validate ``cost_book.csv``."""
    columns = tuple(field.name for field in fields(CostRate) if field.name != "source_line")
    rates = []
    for line, row in _rows(path, columns):
        layer = row["layer"]
        if layer not in COST_KEYS:
            raise CostBookError(path, line, f"layer {layer!r} must be one of {', '.join(LAYERS)}")
        if not row["cost_item"]:
            raise CostBookError(path, line, "cost_item is required (e.g. energy)")
        unit = row["unit"]
        if unit not in COST_UNITS[layer]:
            allowed = ", ".join(sorted(COST_UNITS[layer]))
            raise CostBookError(path, line, f"unit {unit!r} for layer {layer} must be {allowed}")
        keys = _keys(path, line, row, COST_KEYS[layer], _COST_KEY_COLUMNS)
        currency = _currency(path, line, row["currency"], unit)
        assert currency is not None  # no cost unit is a ratio
        rates.append(
            CostRate(
                layer=layer,
                cost_item=row["cost_item"],
                chip_family=keys["chip_family"],
                region=keys["region"],
                model=keys["model"],
                product=keys["product"],
                unit=unit,
                currency=currency,
                amount=_amount(path, line, row["amount"]),
                effective_from=_effective_from(path, line, row["effective_from"]),
                note=row["note"],
                source_line=line,
            )
        )
    _check_unique(path, rates)
    return tuple(rates)


def read_transfer_prices(path: Path) -> tuple[TransferPrice, ...]:
    """Parse and validate ``transfer_prices.csv``."""
    columns = tuple(field.name for field in fields(TransferPrice) if field.name != "source_line")
    prices = []
    for line, row in _rows(path, columns):
        transfer = (row["from_layer"], row["to_layer"])
        if transfer not in TRANSFER_KEYS:
            allowed = ", ".join(f"{seller}->{buyer}" for seller, buyer in TRANSFER_KEYS)
            raise CostBookError(
                path, line, f"transfer {transfer[0]}->{transfer[1]} must be one of {allowed}"
            )
        unit = row["unit"]
        if unit not in TRANSFER_UNITS[transfer]:
            allowed = ", ".join(sorted(TRANSFER_UNITS[transfer]))
            raise CostBookError(path, line, f"unit {unit!r} for this transfer must be {allowed}")
        keys = _keys(path, line, row, TRANSFER_KEYS[transfer], _TRANSFER_KEY_COLUMNS)
        if keys["token_type"] is not None and keys["token_type"] not in TOKEN_TYPES:
            raise CostBookError(
                path, line, f"token_type {keys['token_type']!r} must be {', '.join(TOKEN_TYPES)}"
            )
        amount = _amount(path, line, row["amount"])
        if unit == SHARE_OF_LIST_PRICE and amount > 1:
            raise CostBookError(path, line, f"a share of the list price must be <= 1, not {amount}")
        prices.append(
            TransferPrice(
                from_layer=transfer[0],
                to_layer=transfer[1],
                chip_family=keys["chip_family"],
                region=keys["region"],
                model=keys["model"],
                token_type=keys["token_type"],
                unit=unit,
                currency=_currency(path, line, row["currency"], unit),
                amount=amount,
                effective_from=_effective_from(path, line, row["effective_from"]),
                note=row["note"],
                source_line=line,
            )
        )
    _check_unique(path, prices)
    return tuple(prices)


def read_segments(path: Path) -> tuple[SegmentMapping, ...]:
    """Parse and validate ``segments.csv`` (every layer must be mapped)."""
    columns = tuple(field.name for field in fields(SegmentMapping) if field.name != "source_line")
    mappings = []
    for line, row in _rows(path, columns):
        if row["layer"] not in LAYERS:
            raise CostBookError(
                path, line, f"layer {row['layer']!r} must be one of {', '.join(LAYERS)}"
            )
        if not _SEGMENT.match(row["segment"]):
            raise CostBookError(
                path, line, f"segment {row['segment']!r} must be lower_snake_case, e.g. ai_tokens"
            )
        if row["segment"] in ("eliminations", "consolidated"):
            raise CostBookError(path, line, f"segment name {row['segment']!r} is reserved")
        mappings.append(
            SegmentMapping(
                layer=row["layer"],
                segment=row["segment"],
                effective_from=_effective_from(path, line, row["effective_from"]),
                note=row["note"],
                source_line=line,
            )
        )
    _check_unique(path, mappings)
    unmapped = set(LAYERS) - {mapping.layer for mapping in mappings}
    if unmapped:
        raise CostBookError(path, None, f"no segment for layer(s) {', '.join(sorted(unmapped))}")
    return tuple(mappings)


def read_cost_books(books_dir: Path) -> CostBooks:
    """Read and validate the three books in ``books_dir``, including cross-book rules.

    A chip family has an internal chip layer when it has a chip-layer cost or a chip -> cloud
    transfer price; it must then have both, or its chip layer could not be costed.
    """
    books = CostBooks(
        cost_book=read_cost_book(books_dir / COST_BOOK),
        transfer_prices=read_transfer_prices(books_dir / TRANSFER_PRICES),
        segments=read_segments(books_dir / SEGMENTS),
    )
    costed = {rate.chip_family or "" for rate in books.cost_book if rate.layer == "chip"}
    sold = {
        price.chip_family or ""
        for price in books.transfer_prices
        if (price.from_layer, price.to_layer) == ("chip", "cloud")
    }
    if costed - sold:
        raise CostBookError(
            books_dir / TRANSFER_PRICES,
            None,
            f"no chip -> cloud transfer price for chip family {', '.join(sorted(costed - sold))}"
            " (it has a chip-layer cost)",
        )
    if sold - costed:
        raise CostBookError(
            books_dir / COST_BOOK,
            None,
            f"no chip-layer cost for chip family {', '.join(sorted(sold - costed))}"
            " (it has a chip -> cloud transfer price)",
        )
    return books


# --- writing -------------------------------------------------------------------------------

_TABLES: dict[str, str] = {
    "rating.cost_book": """
        layer varchar not null, cost_item varchar not null, chip_family varchar,
        region varchar, model varchar, product varchar, unit varchar not null,
        currency varchar not null, amount decimal(38, 12) not null,
        effective_from timestamptz not null, note varchar, source_line integer not null""",
    "rating.transfer_prices": """
        from_layer varchar not null, to_layer varchar not null, chip_family varchar,
        region varchar, model varchar, token_type varchar, unit varchar not null,
        currency varchar, amount decimal(38, 12) not null,
        effective_from timestamptz not null, note varchar, source_line integer not null""",
    "rating.segments": """
        layer varchar not null, segment varchar not null,
        effective_from timestamptz not null, note varchar, source_line integer not null""",
}


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the empty ``rating.*`` book tables if missing (so staging views can bind)."""
    con.execute("create schema if not exists rating")
    for table, columns in _TABLES.items():
        con.execute(f"create table if not exists {table} ({columns})")


def write_cost_books(con: duckdb.DuckDBPyConnection, books: CostBooks) -> None:
    """Replace ``rating.cost_book``, ``rating.transfer_prices`` and ``rating.segments``.

    One transaction: readers see the old books or the new ones. Amounts travel as text and
    are cast by DuckDB, so no float ever holds them.
    """
    rows_by_table: dict[
        str, tuple[CostRate, ...] | tuple[TransferPrice, ...] | tuple[SegmentMapping, ...]
    ] = {
        "rating.cost_book": books.cost_book,
        "rating.transfer_prices": books.transfer_prices,
        "rating.segments": books.segments,
    }
    con.execute("create schema if not exists rating")
    con.execute("begin transaction")
    try:
        for table, rows in rows_by_table.items():
            con.execute(f"create or replace table {table} ({_TABLES[table]})")
            if not rows:
                continue
            width = len(astuple(rows[0]))
            placeholders = ", ".join("?" for _ in range(width))
            con.executemany(
                f"insert into {table} values ({placeholders})",
                [
                    [str(value) if isinstance(value, Decimal) else value for value in astuple(row)]
                    for row in rows
                ],
            )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def load_cost_books(con: duckdb.DuckDBPyConnection, books_dir: Path) -> CostBooks:
    """Read, validate and write the economics books from ``books_dir`` (``settings.books``)."""
    books = read_cost_books(books_dir)
    write_cost_books(con, books)
    return books
