"""Price books, free quota, batch pricing and FX rates: read, validate, load into ``rating.*``.

The books are CSV data files in the books folder (``settings.books``); every row is
effective-dated, nothing here is a business number:

- ``price_book*.csv`` (one file per book, e.g. ``price_book_cn.csv``): list prices per
  ``unit_tokens`` tokens by model, region, input-token tier and token type. The rows of one
  model and region with the same ``effective_from`` are one *version* (``book_version``); it is
  in force until the next version's ``effective_from`` for that model and region. A tier
  covers requests with ``tier_min_input_tokens < input_tokens <= tier_max_input_tokens`` (the
  first tier, from 0, also covers requests without input); a version's tiers must start at 0
  and follow each other without gap or overlap.
- ``free_quota.csv``: N free tokens per region and model, valid D days from a tenant's first
  call (the row in force at that first call applies).
- ``batch_pricing.csv``: batch calls cost ``batch_price_ratio`` of the real-time price.
- ``fx_rates.csv``: rates from one currency to another, in force from a date.

Numbers are read as :class:`~decimal.Decimal` from the CSV text and written as
``DECIMAL(38, 12)`` through Arrow decimals, never through a float. Each book's content hash is
kept in ``rating.book_versions`` so a changed book is detectable (and re-rated). A bad row
raises :class:`PriceBookError` naming the file and line.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from itertools import pairwise
from pathlib import Path

import duckdb
import pyarrow as pa

from streams.settings import Settings
from warehouse import db
from warehouse.pricing.cost_books import SCALE, CostBookError, _amount, _effective_from, _rows

PRICE_BOOK_GLOB = "price_book*.csv"
FREE_QUOTA = "free_quota.csv"
BATCH_PRICING = "batch_pricing.csv"
FX_RATES = "fx_rates.csv"
#: The staging views of these books, which the rating SQL reads.
BOOK_VIEWS = (
    "staging.stg_price_book",
    "staging.stg_free_quota",
    "staging.stg_batch_pricing",
    "staging.stg_fx_rates",
)

#: The smallest step of DECIMAL(38, 12) (SCALE places after the point, 26 before it).
_QUANTUM = Decimal(1).scaleb(-SCALE)
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MONEY = pa.decimal128(38, SCALE)
_MOMENT = pa.timestamp("us", tz="UTC")


class PriceBookError(CostBookError):
    """A price, free quota, batch pricing or FX book that cannot be used as it is.

    A kind of :class:`~warehouse.pricing.cost_books.CostBookError` (a bad book, ``file, line
    N: message``), so every caller that reports bad books reports these the same way.
    """


@dataclass(frozen=True)
class PriceRow:
    """One tier of one version of a model's prices in one region."""

    book: str
    book_version: str
    effective_from: datetime
    model: str
    region: str
    currency: str
    unit_tokens: int
    tier_min_input_tokens: int
    tier_max_input_tokens: int
    input_price: Decimal
    cached_input_price: Decimal
    output_price: Decimal
    thinking_output_price: Decimal
    note: str
    source_line: int


@dataclass(frozen=True)
class FreeQuota:
    """Free tokens a new tenant gets for one model in one region."""

    effective_from: datetime
    region: str
    model: str
    free_tokens: int
    valid_days: int
    note: str
    source_line: int


@dataclass(frozen=True)
class BatchPricing:
    """The share of the real-time price a batch call pays."""

    effective_from: datetime
    batch_price_ratio: Decimal
    note: str
    source_line: int


@dataclass(frozen=True)
class FxRate:
    """One unit of ``from_currency`` is worth ``rate`` units of ``to_currency``."""

    effective_from: date
    from_currency: str
    to_currency: str
    rate: Decimal
    note: str
    source_line: int


@dataclass(frozen=True)
class Books:
    """Every rating book, validated, with the content hash of each file (by book name)."""

    prices: tuple[PriceRow, ...]
    free_quota: tuple[FreeQuota, ...]
    batch_pricing: tuple[BatchPricing, ...]
    fx_rates: tuple[FxRate, ...]
    content_hashes: dict[str, str]

    @property
    def fingerprint(self) -> str:
        """One hash over every book: changes whenever any book's content changes."""
        text = "\n".join(f"{name}={digest}" for name, digest in sorted(self.content_hashes.items()))
        return hashlib.sha256(text.encode()).hexdigest()


# --- reading -------------------------------------------------------------------------------


def _columns(row_type: type) -> tuple[str, ...]:
    skipped = {"source_line", "book"}
    return tuple(field.name for field in fields(row_type) if field.name not in skipped)


def _text(path: Path, line: int, row: dict[str, str], column: str) -> str:
    value = row[column]
    if not value:
        raise PriceBookError(path, line, f"{column} is required")
    return value


def _currency(path: Path, line: int, row: dict[str, str], column: str) -> str:
    value = _text(path, line, row, column)
    if not _CURRENCY.match(value):
        raise PriceBookError(path, line, f"{column} {value!r} must be a 3-letter code like CNY")
    return value


def _decimal(path: Path, line: int, row: dict[str, str], column: str) -> Decimal:
    return _amount(path, line, _text(path, line, row, column), column, PriceBookError)


def _integer(path: Path, line: int, row: dict[str, str], column: str, minimum: int = 0) -> int:
    text = _text(path, line, row, column)
    if not re.fullmatch(r"-?\d+", text):
        raise PriceBookError(path, line, f"{column} {text!r} must be a whole number")
    value = int(text)
    if value < minimum:
        raise PriceBookError(path, line, f"{column} {text!r} must be at least {minimum}")
    return value


def _moment(path: Path, line: int, text: str) -> datetime:
    try:
        return _effective_from(path, line, text)
    except CostBookError as error:
        raise PriceBookError(path, line, str(error).split(": ", 1)[1]) from None


def per_token(price: Decimal, unit_tokens: int) -> Decimal:
    """The exact price of one token (``price / unit_tokens``)."""
    with localcontext() as context:
        context.prec = 60
        return price / unit_tokens


def read_price_book(path: Path) -> tuple[PriceRow, ...]:
    """Parse one ``price_book*.csv`` file and check each row on its own."""
    rows = []
    for line, row in _rows(path, _columns(PriceRow)):
        unit_tokens = _integer(path, line, row, "unit_tokens", minimum=1)
        if str(unit_tokens).rstrip("0") != "1":
            raise PriceBookError(
                path, line, f"unit_tokens {unit_tokens} must be a power of ten (1, 1000, 1000000)"
            )
        price_row = PriceRow(
            book=path.stem,
            book_version=_text(path, line, row, "book_version"),
            effective_from=_moment(path, line, row["effective_from"]),
            model=_text(path, line, row, "model"),
            region=_text(path, line, row, "region"),
            currency=_currency(path, line, row, "currency"),
            unit_tokens=unit_tokens,
            tier_min_input_tokens=_integer(path, line, row, "tier_min_input_tokens"),
            tier_max_input_tokens=_integer(path, line, row, "tier_max_input_tokens", minimum=1),
            input_price=_decimal(path, line, row, "input_price"),
            cached_input_price=_decimal(path, line, row, "cached_input_price"),
            output_price=_decimal(path, line, row, "output_price"),
            thinking_output_price=_decimal(path, line, row, "thinking_output_price"),
            note=row["note"],
            source_line=line,
        )
        if price_row.tier_min_input_tokens >= price_row.tier_max_input_tokens:
            raise PriceBookError(
                path,
                line,
                f"tier_min_input_tokens {price_row.tier_min_input_tokens} must be below "
                f"tier_max_input_tokens {price_row.tier_max_input_tokens}",
            )
        for column in (
            "input_price",
            "cached_input_price",
            "output_price",
            "thinking_output_price",
        ):
            exact = per_token(getattr(price_row, column), unit_tokens)
            if exact != exact.quantize(_QUANTUM):
                raise PriceBookError(
                    path,
                    line,
                    f"{column} per token ({exact}) needs more than {SCALE} decimal places; "
                    "use a smaller unit_tokens",
                )
        rows.append(price_row)
    if not rows:
        raise PriceBookError(path, None, "the price book has no rows")
    return tuple(rows)


def check_versions(rows: Sequence[PriceRow], books_dir: Path) -> None:
    """Check each version's tiers: one file, one label, one currency, from 0 without gaps."""
    versions: dict[tuple[str, str, datetime], list[PriceRow]] = defaultdict(list)
    for row in rows:
        versions[(row.model, row.region, row.effective_from)].append(row)
    labels: dict[tuple[str, str, str], datetime] = {}
    for (model, region, effective_from), tiers in versions.items():
        tiers.sort(key=lambda tier: (tier.tier_min_input_tokens, tier.source_line))
        first = tiers[0]
        path = books_dir / f"{first.book}.csv"
        for tier in tiers[1:]:
            where = books_dir / f"{tier.book}.csv"
            if tier.book != first.book:
                raise PriceBookError(
                    where,
                    tier.source_line,
                    f"{model} in {region} from {effective_from:%Y-%m-%d %H:%M} is also priced "
                    f"in {first.book}.csv line {first.source_line}; a version lives in one book",
                )
            for column in ("book_version", "currency", "unit_tokens"):
                if getattr(tier, column) != getattr(first, column):
                    raise PriceBookError(
                        where,
                        tier.source_line,
                        f"{column} {getattr(tier, column)!r} differs from line "
                        f"{first.source_line} ({getattr(first, column)!r}) of the same version",
                    )
        if first.tier_min_input_tokens != 0:
            raise PriceBookError(
                path,
                first.source_line,
                f"the first tier of {model} in {region} ({first.book_version}) must start at "
                f"tier_min_input_tokens 0, not {first.tier_min_input_tokens}",
            )
        for previous, tier in pairwise(tiers):
            if tier.tier_min_input_tokens < previous.tier_max_input_tokens:
                problem = "overlaps"
            elif tier.tier_min_input_tokens > previous.tier_max_input_tokens:
                problem = "leaves a gap after"
            else:
                continue
            raise PriceBookError(
                path,
                tier.source_line,
                f"tier {tier.tier_min_input_tokens}-{tier.tier_max_input_tokens} of {model} in "
                f"{region} ({first.book_version}) {problem} tier "
                f"{previous.tier_min_input_tokens}-{previous.tier_max_input_tokens} "
                f"(line {previous.source_line}); each tier must start where the last one ends",
            )
        label = (first.book_version, model, region)
        if label in labels and labels[label] != effective_from:
            raise PriceBookError(
                path,
                first.source_line,
                f"version {first.book_version} of {model} in {region} has two effective_from "
                "dates; give the later one a new book_version",
            )
        labels[label] = effective_from


def check_batch_precision(
    prices: Sequence[PriceRow], rules: Sequence[BatchPricing], books_dir: Path
) -> None:
    """Refuse a price whose batch price per token would need more than 12 decimal places.

    Batch calls pay ``batch_price_ratio`` of each per-token price; the rating stores that
    product as ``DECIMAL(38, 12)``, so it must be exact there or amounts would be rounded.
    """
    columns = ("input_price", "cached_input_price", "output_price", "thinking_output_price")
    for rule in rules:
        for row in prices:
            for column in columns:
                with localcontext() as context:
                    context.prec = 60
                    batch = (
                        per_token(getattr(row, column), row.unit_tokens) * rule.batch_price_ratio
                    )
                if batch != batch.quantize(_QUANTUM):
                    raise PriceBookError(
                        books_dir / f"{row.book}.csv",
                        row.source_line,
                        f"{column} per token x batch_price_ratio {rule.batch_price_ratio} "
                        f"({batch.normalize()}) needs more than {SCALE} decimal places; "
                        "use fewer decimal places or a smaller unit_tokens",
                    )


def _check_unique(path: Path, keyed: Iterable[tuple[tuple[object, ...], int]]) -> None:
    seen: dict[tuple[object, ...], int] = {}
    for key, line in keyed:
        if key in seen:
            raise PriceBookError(path, line, f"duplicates line {seen[key]} (same keys and date)")
        seen[key] = line


def read_free_quota(path: Path) -> tuple[FreeQuota, ...]:
    """Parse and validate ``free_quota.csv``."""
    quotas = [
        FreeQuota(
            effective_from=_moment(path, line, row["effective_from"]),
            region=_text(path, line, row, "region"),
            model=_text(path, line, row, "model"),
            free_tokens=_integer(path, line, row, "free_tokens", minimum=1),
            valid_days=_integer(path, line, row, "valid_days", minimum=1),
            note=row["note"],
            source_line=line,
        )
        for line, row in _rows(path, _columns(FreeQuota))
    ]
    _check_unique(path, (((q.region, q.model, q.effective_from), q.source_line) for q in quotas))
    return tuple(quotas)


def read_batch_pricing(path: Path) -> tuple[BatchPricing, ...]:
    """Parse and validate ``batch_pricing.csv`` (a ratio above 0, at most 1)."""
    rules = []
    for line, row in _rows(path, _columns(BatchPricing)):
        ratio = _decimal(path, line, row, "batch_price_ratio")
        if not 0 < ratio <= 1:
            raise PriceBookError(path, line, f"batch_price_ratio {ratio} must be in (0, 1]")
        rules.append(
            BatchPricing(_moment(path, line, row["effective_from"]), ratio, row["note"], line)
        )
    if not rules:
        raise PriceBookError(path, None, "no batch_price_ratio; batch calls could not be rated")
    _check_unique(path, (((rule.effective_from,), rule.source_line) for rule in rules))
    return tuple(rules)


def read_fx_rates(path: Path) -> tuple[FxRate, ...]:
    """Parse and validate ``fx_rates.csv`` (``effective_from`` is a date)."""
    rates = []
    for line, row in _rows(path, _columns(FxRate)):
        try:
            effective = date.fromisoformat(row["effective_from"])
        except ValueError:
            raise PriceBookError(
                path, line, f"effective_from {row['effective_from']!r} must be a date (2026-01-31)"
            ) from None
        from_currency = _currency(path, line, row, "from_currency")
        to_currency = _currency(path, line, row, "to_currency")
        if from_currency == to_currency:
            raise PriceBookError(path, line, "from_currency and to_currency must differ")
        rate = _decimal(path, line, row, "rate")
        if rate == 0:
            raise PriceBookError(path, line, "rate must be above 0")
        rates.append(FxRate(effective, from_currency, to_currency, rate, row["note"], line))
    _check_unique(
        path, (((r.from_currency, r.to_currency, r.effective_from), r.source_line) for r in rates)
    )
    return tuple(rates)


def read_books(books_dir: Path) -> Books:
    """Read and validate every rating book in ``books_dir``."""
    price_files = sorted(books_dir.glob(PRICE_BOOK_GLOB))
    if not price_files:
        raise PriceBookError(books_dir / "price_book_cn.csv", None, "no price book found")
    prices = tuple(row for path in price_files for row in read_price_book(path))
    check_versions(prices, books_dir)
    paths = {path.stem: path for path in price_files}
    for name in (FREE_QUOTA, BATCH_PRICING, FX_RATES):
        paths[Path(name).stem] = books_dir / name
    batch_pricing = read_batch_pricing(books_dir / BATCH_PRICING)
    check_batch_precision(prices, batch_pricing, books_dir)
    books = Books(
        prices=prices,
        free_quota=read_free_quota(books_dir / FREE_QUOTA),
        batch_pricing=batch_pricing,
        fx_rates=read_fx_rates(books_dir / FX_RATES),
        content_hashes={
            name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in paths.items()
        },
    )
    return books


# --- loading -------------------------------------------------------------------------------


def _price_table(rows: Sequence[PriceRow]) -> pa.Table:
    prices = ("input_price", "cached_input_price", "output_price", "thinking_output_price")
    columns: dict[str, pa.Array] = {
        "book": pa.array([r.book for r in rows], pa.string()),
        "book_version": pa.array([r.book_version for r in rows], pa.string()),
        "effective_from": pa.array([r.effective_from for r in rows], _MOMENT),
        "model": pa.array([r.model for r in rows], pa.string()),
        "region": pa.array([r.region for r in rows], pa.string()),
        "currency": pa.array([r.currency for r in rows], pa.string()),
        "unit_tokens": pa.array([r.unit_tokens for r in rows], pa.int64()),
        "tier_min_input_tokens": pa.array([r.tier_min_input_tokens for r in rows], pa.int64()),
        "tier_max_input_tokens": pa.array([r.tier_max_input_tokens for r in rows], pa.int64()),
    }
    for column in prices:
        columns[column] = pa.array([getattr(r, column) for r in rows], _MONEY)
    for column in prices:
        columns[f"{column}_per_token"] = pa.array(
            [per_token(getattr(r, column), r.unit_tokens) for r in rows], _MONEY
        )
    columns["note"] = pa.array([r.note for r in rows], pa.string())
    columns["source_line"] = pa.array([r.source_line for r in rows], pa.int64())
    return pa.table(columns)


def _table(rows: Sequence[object], row_type: type, types: dict[str, pa.DataType]) -> pa.Table:
    return pa.table(
        {
            field.name: pa.array([getattr(row, field.name) for row in rows], types[field.name])
            for field in fields(row_type)
        }
    )


def write_books(con: duckdb.DuckDBPyConnection, books: Books) -> None:
    """Replace the ``rating`` book tables with ``books`` and record changed content hashes."""
    text, integer = pa.string(), pa.int64()
    tables = {
        "price_book": _price_table(books.prices),
        "free_quota": _table(
            books.free_quota,
            FreeQuota,
            {
                "effective_from": _MOMENT,
                "region": text,
                "model": text,
                "free_tokens": integer,
                "valid_days": integer,
                "note": text,
                "source_line": integer,
            },
        ),
        "batch_pricing": _table(
            books.batch_pricing,
            BatchPricing,
            {
                "effective_from": _MOMENT,
                "batch_price_ratio": _MONEY,
                "note": text,
                "source_line": integer,
            },
        ),
        "fx_rates": _table(
            books.fx_rates,
            FxRate,
            {
                "effective_from": pa.date32(),
                "from_currency": text,
                "to_currency": text,
                "rate": _MONEY,
                "note": text,
                "source_line": integer,
            },
        ),
    }
    con.execute("begin transaction")
    try:
        for name, table in tables.items():
            con.register("book_rows", table)
            con.execute(f"create or replace table rating.{name} as select * from book_rows")
            con.unregister("book_rows")
        _record_versions(con, books)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def _record_versions(con: duckdb.DuckDBPyConnection, books: Books) -> None:
    con.execute(
        """
        create table if not exists rating.book_versions (
            book varchar not null,
            content_hash varchar not null,
            price_versions varchar,
            row_count bigint not null,
            loaded_at timestamptz not null
        )
        """
    )
    latest = dict(
        con.execute(
            "select book, arg_max(content_hash, loaded_at) from rating.book_versions group by book"
        ).fetchall()
    )
    counts = {
        Path(FREE_QUOTA).stem: len(books.free_quota),
        Path(BATCH_PRICING).stem: len(books.batch_pricing),
        Path(FX_RATES).stem: len(books.fx_rates),
    }
    loaded_at = datetime.now(UTC)
    for name, digest in sorted(books.content_hashes.items()):
        if latest.get(name) == digest:
            continue
        price_rows = [row for row in books.prices if row.book == name]
        versions = sorted({(r.effective_from, r.book_version) for r in price_rows})
        described = ", ".join(
            f"{label} from {moment:%Y-%m-%d %H:%M}Z" for moment, label in versions
        )
        con.execute(
            "insert into rating.book_versions values (?, ?, ?, ?, ?)",
            [name, digest, described or None, len(price_rows) or counts.get(name, 0), loaded_at],
        )


def load_books(settings: Settings, con: duckdb.DuckDBPyConnection | None = None) -> Books:
    """Validate the books in ``settings.books`` and load them into ``rating.*`` tables.

    Opens the warehouse (``settings.warehouse_path``) when no connection is given. Also
    (re)creates the staging views of the books, which the rating SQL reads. Raises
    :class:`PriceBookError` (file and line) before writing anything if a book is broken.
    """
    books = read_books(Path(settings.books))
    own = con is None
    connection = db.connect(settings.warehouse_path) if con is None else con
    try:
        for schema in ("rating", "staging"):
            connection.execute(f"create schema if not exists {schema}")
        write_books(connection, books)
        db.build(connection, select=BOOK_VIEWS)
    finally:
        if own:
            connection.close()
    return books
