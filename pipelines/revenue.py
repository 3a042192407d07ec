"""Revenue: the rated usage fact and every revenue mart (the marts that are not economics).

Assets come from the SQL files (``pipelines/sql_models.py``); this module adds what people
read on them (totals, top tenants, revenue per day) and the stream-vs-warehouse
reconciliation check on ``marts.fct_usage_rated``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
from dagster import Definitions, MetadataValue

from pipelines import plots
from pipelines.checks_stream import stream_reconciliation
from pipelines.sql_models import markdown_table, models, sql_assets
from pipelines.staging import PRODUCERS
from warehouse import economics

USAGE_FACT = "marts.fct_usage_rated"


def revenue_marts() -> list[str]:
    """Every mart the economics module does not own (its list is ``economics.MART_MODELS``)."""
    return [
        relation
        for relation in models()
        if relation.startswith("marts.") and relation not in economics.MART_MODELS
    ]


def describe_usage(con: duckdb.DuckDBPyConnection, plots_folder: Path) -> dict[str, Any]:
    """Totals, top tenants and revenue per day of the rated usage."""
    requests, tokens, revenue, currency = con.execute(
        f"""
        select count(*), coalesce(sum(total_tokens), 0)::bigint,
               coalesce(sum(amount_reporting), 0), any_value(reporting_currency)
        from {USAGE_FACT}
        """
    ).fetchall()[0]
    top_tenants = con.sql(
        f"""
        select tenant_id, count(*) as requests, sum(total_tokens)::bigint as tokens,
               sum(amount_reporting) as revenue, any_value(reporting_currency) as currency
        from {USAGE_FACT} group by tenant_id order by revenue desc limit 10
        """
    ).pl()
    daily = con.execute(
        f"select event_date, sum(amount_reporting) from {USAGE_FACT} group by 1 order by 1"
    ).fetchall()
    metadata: dict[str, Any] = {
        "requests": MetadataValue.int(int(requests)),
        "tokens": MetadataValue.int(int(tokens)),
        "revenue": MetadataValue.text(f"{revenue} {currency or ''}".strip()),
        "top tenants": MetadataValue.md(markdown_table(top_tenants)),
    }
    if daily:
        figure = plots.revenue_per_day(
            [day for day, _ in daily], [amount for _, amount in daily], currency or ""
        )
        metadata |= plots.attach(figure, "revenue_per_day", plots_folder)
    return metadata


defs = Definitions(
    assets=sql_assets(
        revenue_marts(),
        group_name="revenue",
        producers=PRODUCERS,
        describe={USAGE_FACT: describe_usage},
    ),
    asset_checks=[stream_reconciliation],
)
