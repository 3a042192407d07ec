"""Rating plus every mart, rebuilt at 1M and 10M events (100M with ``--huge``), vs Polars.

Events are generated straight into DuckDB: a template of realistic simulated events (the
simulator, 7 days of traffic) is copied with SQL until the table holds N events (each copy
gets new ``event_id``/``request_id``), so 10M events take seconds, not an hour of Kafka.
Then, timed: ``rate(con, settings)`` (books, prices, free quota, FX) and ``db.build(con)``
(every staging view and mart). The baseline is the same roll-ups in Polars, from the same
inputs exported to Parquet: revenue daily (``fct_revenue_daily`` from ``fct_usage_rated``)
and layer margin daily (``fct_layer_margin`` + ``rpt_layer_margin_daily`` from
``fct_request_economics``), timed against DuckDB rebuilding exactly those marts. The two
results are checked to agree (rows and totals) so the baseline does the same work.

Each size runs in a child process (``python -m bench.marts``) so its peak RSS is its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import BenchOptions, Figure, peak_rss_bytes, scratch

NAME = "marts"
#: Target seconds for all marts, by rated events.
TARGET_SECONDS = {10_000_000: 10.0, 100_000_000: 100.0}
TEMPLATE_EVENTS = 200_000
ROLL_UPS = ("marts.fct_revenue_daily", "marts.fct_layer_margin", "marts.rpt_layer_margin_daily")
_REVENUE_KEYS = (
    "event_date", "tenant_id", "workspace_id", "api_key_id", "product", "model", "region",
    "channel", "currency", "reporting_currency",
)  # fmt: skip
_REVENUE_SUMS = (
    "input_tokens", "fresh_input_tokens", "cached_input_tokens", "output_tokens",
    "non_thinking_output_tokens", "thinking_tokens", "total_tokens", "free_quota_tokens",
    "amount_input", "amount_cached_input", "amount_output", "amount_thinking", "amount_gross",
    "free_quota_discount", "amount", "amount_reporting",
)  # fmt: skip
_MARGIN_KEYS = (
    "event_date", "tenant_id", "product", "model", "region", "chip_family", "actor_type",
    "layer", "layer_order", "segment", "reporting_currency",
)  # fmt: skip
_MARGIN_SUMS = (
    "external_revenue", "transfer_revenue", "revenue", "transfer_cost", "direct_cost", "margin",
    "inter_segment_revenue", "inter_segment_cost",
)  # fmt: skip


# --- the DuckDB side (child process) -------------------------------------------------------
def generate_raw(con: Any, events: int, seed: int, scratch_dir: Path) -> None:
    """``events`` realistic events in ``raw.token_usage_events``, copied from a template."""
    from streams.simulate import generate
    from warehouse.loader import ensure_raw_tables

    template = min(events, TEMPLATE_EVENTS)
    path = scratch_dir / "template.jsonl"
    with path.open("wb") as out:
        for message in generate(seed=seed, events=template, days=7):
            out.write(message.value + b"\n")
    ensure_raw_tables(con)
    con.execute(
        f"""
        create temp table template as
        select * replace (occurred_at::timestamptz as occurred_at),
            'bench' as kafka_topic, 0 as kafka_partition,
            row_number() over () - 1 as kafka_offset, now() as landed_at
        from read_json('{path}', format = 'newline_delimited')
        """
    )
    copies = -(-events // template)
    con.execute(
        f"""
        insert into raw.token_usage_events by name
        select template.* replace (
            event_id || '~' || copy as event_id,
            request_id || '~' || copy as request_id,
            kafka_offset + copy * {template} as kafka_offset
        )
        from template, range({copies}) as copies(copy)
        limit {events}
        """
    )


def duckdb_side(events: int, seed: int, home: Path) -> dict[str, Any]:
    """Generate, rate, build every mart, rebuild the roll-ups; export the Polars inputs."""
    from streams.settings import Settings
    from warehouse import db
    from warehouse.pricing.cost_books import load_cost_books
    from warehouse.pricing.rating import rate

    settings = Settings(home=home)
    con = db.connect(settings.warehouse_path)
    began = time.perf_counter()
    generate_raw(con, events, seed, home)
    generated = time.perf_counter() - began
    began = time.perf_counter()
    result = rate(con, settings)
    rating = time.perf_counter() - began
    load_cost_books(con, settings.books)  # the economics marts read them (as `tokenhub rate`)
    began = time.perf_counter()
    built = db.build(con)
    marts = time.perf_counter() - began
    began = time.perf_counter()
    db.build(con, select=ROLL_UPS)
    roll_ups = time.perf_counter() - began
    for table in ("fct_usage_rated", "fct_request_economics"):
        con.execute(f"copy marts.{table} to '{home / table}.parquet' (format parquet)")
    totals = {
        "revenue_rows": con.execute("select count(*) from marts.fct_revenue_daily").fetchone(),
        "revenue_amount": con.execute("select sum(amount) from marts.fct_revenue_daily").fetchone(),
        "margin_rows": con.execute("select count(*) from marts.rpt_layer_margin_daily").fetchone(),
        "margin_total": con.execute("select sum(margin) from marts.rpt_layer_margin_daily").fetchone(),
    }  # fmt: skip
    con.close()
    return {
        "events": events,
        "rated": result.rated,
        "unrated": result.unrated,
        "generate_s": generated,
        "rating_s": rating,
        "marts_s": marts,
        "models_built": len(built),
        "roll_ups_s": roll_ups,
        "totals": {key: str(value[0]) if value else None for key, value in totals.items()},
        "peak_rss_bytes": peak_rss_bytes(_own_pid()),
    }


# --- the Polars side (child process) -------------------------------------------------------
def polars_side(home: Path) -> dict[str, Any]:
    """The same roll-ups in Polars, from the Parquet files the DuckDB side wrote."""
    import polars as pl

    began = time.perf_counter()
    usage = pl.scan_parquet(home / "fct_usage_rated.parquet")
    revenue = (
        usage.group_by(_REVENUE_KEYS)
        .agg(
            pl.len().alias("requests"),
            pl.col("is_batch").sum().alias("batch_requests"),
            *(pl.col(name).sum() for name in _REVENUE_SUMS),
        )
        .collect()
    )
    requests = pl.scan_parquet(home / "fct_request_economics.parquet")
    zero = pl.lit(Decimal(0)).cast(pl.Decimal(38, 12))
    nothing = pl.lit(None, dtype=pl.String)

    def layer(name: str, order: int, prefix: str, **columns: pl.Expr) -> pl.LazyFrame:
        """One layer's rows (as one branch of the SQL's ``union all``)."""
        where = columns.pop("where", None)
        source = requests.filter(where) if where is not None else requests
        passthrough = [k for k in _MARGIN_KEYS if k not in ("layer", "layer_order", "segment")]
        return source.select(
            *passthrough,
            pl.lit(name).alias("layer"),
            pl.lit(order, dtype=pl.Int32).alias("layer_order"),
            pl.col(f"{prefix}_segment").alias("segment"),
            *(expr.alias(column) for column, expr in columns.items()),
            pl.col(f"{prefix}_direct_cost").alias("direct_cost"),
            pl.col(f"{prefix}_margin").alias("margin"),
        )

    chip, app, col = pl.col("has_chip_layer"), pl.col("has_application_layer"), pl.col
    layers = pl.concat(
        [
            layer(
                "chip",
                1,
                "chip",
                where=chip,
                sells_to=col("cloud_segment"),
                buys_from=nothing,
                external_revenue=zero,
                transfer_revenue=col("transfer_chip_to_cloud"),
                transfer_cost=zero,
            ),
            layer(
                "cloud",
                2,
                "cloud",
                sells_to=col("model_segment"),
                buys_from=pl.when(chip).then(col("chip_segment")),
                external_revenue=zero,
                transfer_revenue=col("transfer_cloud_to_model"),
                transfer_cost=col("transfer_chip_to_cloud"),
            ),
            layer(
                "model",
                3,
                "model",
                sells_to=pl.when(app).then(col("application_segment")),
                buys_from=col("cloud_segment"),
                external_revenue=pl.when(app).then(zero).otherwise(col("external_revenue")),
                transfer_revenue=col("transfer_model_to_application"),
                transfer_cost=col("transfer_cloud_to_model"),
            ),
            layer(
                "application",
                4,
                "application",
                where=app,
                sells_to=nothing,
                buys_from=col("model_segment"),
                external_revenue=col("external_revenue"),
                transfer_revenue=zero,
                transfer_cost=col("transfer_model_to_application"),
            ),
        ]
    )

    def crossing(other: str, amount: str) -> pl.Expr:
        differs = pl.col(other).is_not_null() & (pl.col(other) != pl.col("segment"))
        return pl.when(differs).then(pl.col(amount)).otherwise(zero)

    margin = (
        layers.with_columns(
            (pl.col("external_revenue") + pl.col("transfer_revenue")).alias("revenue"),
            crossing("sells_to", "transfer_revenue").alias("inter_segment_revenue"),
            crossing("buys_from", "transfer_cost").alias("inter_segment_cost"),
        )
        .group_by(_MARGIN_KEYS)
        .agg(pl.len().alias("requests"), *(pl.col(name).sum() for name in _MARGIN_SUMS))
        .collect()
    )
    seconds = time.perf_counter() - began
    return {
        "roll_ups_s": seconds,
        "totals": {
            "revenue_rows": str(revenue.height),
            "revenue_amount": str(revenue["amount"].sum()),
            "margin_rows": str(margin.height),
            "margin_total": str(margin["margin"].sum()),
        },
        "peak_rss_bytes": peak_rss_bytes(_own_pid()),
    }


def _own_pid() -> int:
    import os

    return os.getpid()


# --- the harness side -----------------------------------------------------------------------
def _child(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.marts", *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"bench.marts {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def _same(duck: dict[str, str | None], polars: dict[str, str]) -> bool:
    rows = all(duck[k] == polars[k] for k in ("revenue_rows", "margin_rows"))
    sums = all(
        Decimal(duck[k] or 0) == Decimal(polars[k] or 0) for k in ("revenue_amount", "margin_total")
    )
    return rows and sums


def run(options: BenchOptions) -> list[Figure]:
    sizes = list(options.mart_sizes) + ([100_000_000] if options.huge else [])
    figures: list[Figure] = []
    for size in sizes:
        with scratch(options, f"{NAME}-{size}") as home:
            options.log(f"  {size:,} events: generate, rate, build every mart (DuckDB)")
            duck = _child("duckdb", str(size), str(options.seed), str(home))
            options.log(f"  {size:,} events: the same roll-ups in Polars")
            polars = _child("polars", str(home))
        agree = _same(duck["totals"], polars["totals"])
        target = TARGET_SECONDS.get(size)
        label = f"{size // 1_000_000}M" if size >= 1_000_000 else f"{size // 1000}k"
        rss_mib = duck["peak_rss_bytes"] / 2**20
        figures += [
            Figure(
                benchmark=NAME,
                name=f"all marts rebuild, {label} rated events",
                value=duck["marts_s"],
                unit="s",
                target=f"<= {target:.0f} s" if target else "",
                met=duck["marts_s"] <= target if target else None,
                target_value=target,
                note=f"{duck['models_built']} models; rating before it took "
                f"{duck['rating_s']:.1f}s ({duck['rated']:,} rated, {duck['unrated']:,} "
                f"unrated); peak RSS of the DuckDB process {rss_mib:,.0f} MiB",
                details=duck,
            ),
            Figure(
                benchmark=NAME,
                name=f"revenue + layer margin roll-ups, {label} events (DuckDB)",
                value=duck["roll_ups_s"],
                unit="s",
                baseline_name="the same roll-ups in Polars (from Parquet)",
                baseline=polars["roll_ups_s"],
                note="results agree (rows and totals)"
                if agree
                else f"RESULTS DIFFER: DuckDB {duck['totals']} vs Polars {polars['totals']}",
                details={"polars": polars},
            ),
            Figure(
                benchmark=NAME,
                name=f"rating, {label} events",
                value=duck["rating_s"],
                unit="s",
                note="books, prices, free quota and FX: rate(con, settings) on a fresh warehouse",
            ),
        ]
    return figures


def main(argv: list[str]) -> None:
    """Child-process entry: ``duckdb EVENTS SEED HOME`` or ``polars HOME``; prints JSON."""
    if argv[0] == "duckdb":
        answer = duckdb_side(int(argv[1]), int(argv[2]), Path(argv[3]))
    else:
        answer = polars_side(Path(argv[1]))
    print(json.dumps(answer, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
