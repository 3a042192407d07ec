"""Token economics: the economics marts (``warehouse.economics.MART_MODELS``), their checks
(the layer-margin identity, every rated request costed) and their plots (margin by layer as
a waterfall, agent vs human tokens and the multiplier, cost per million tokens by chip
family). Figures come from ``warehouse.economics``: nothing is recomputed here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
from dagster import AssetCheckResult, Definitions, MetadataValue, asset_check

from pipelines import plots
from pipelines.resources import WarehouseResource
from pipelines.sql_models import markdown_table, models, relation_key, sql_assets
from pipelines.staging import PRODUCERS
from warehouse import economics

LAYER_MARGIN = "marts.fct_layer_margin"
ACTORS = "marts.rpt_actor_economics"
UNIT_COSTS = "marts.rpt_cost_per_million_tokens"
COSTING = "marts.rpt_uncosted_usage"


def economics_marts() -> list[str]:
    return [relation for relation in models() if relation in economics.MART_MODELS]


def _currency(con: duckdb.DuckDBPyConnection) -> str:
    row = con.execute(f"select any_value(reporting_currency) from {LAYER_MARGIN}").fetchall()[0]
    return str(row[0]) if row and row[0] else ""


def describe_layer_margin(con: duckdb.DuckDBPyConnection, plots_folder: Path) -> dict[str, Any]:
    summary = economics.layer_margin_summary(con)
    layers = summary.filter(summary["layer"] != "total")
    metadata: dict[str, Any] = {"margin by layer": MetadataValue.md(markdown_table(summary))}
    if layers.height:
        figure = plots.margin_waterfall(
            layers["layer"].to_list(), layers["margin"].to_list(), _currency(con)
        )
        metadata |= plots.attach(figure, "margin_by_layer", plots_folder)
    return metadata


def describe_actors(con: duckdb.DuckDBPyConnection, plots_folder: Path) -> dict[str, Any]:
    multiplier = economics.actor_multiplier(con)
    daily = con.sql(
        f"""
        select event_date, sum(agent_tokens)::bigint as agent_tokens,
               sum(human_tokens)::bigint as human_tokens,
               sum(agent_requests)::bigint as agent_requests,
               sum(human_requests)::bigint as human_requests
        from {ACTORS} group by 1 order by 1
        """
    ).pl()
    metadata: dict[str, Any] = {
        "agent/human multiplier": MetadataValue.text(
            f"{multiplier:.2f}" if multiplier is not None else "n/a (needs agent and human usage)"
        ),
        "by day": MetadataValue.md(markdown_table(daily, limit=40)),
    }
    if daily.height:
        ratios = [
            (a * hr) / (ar * h) if ar and hr and h else None
            for a, h, ar, hr in daily.select(
                "agent_tokens", "human_tokens", "agent_requests", "human_requests"
            ).iter_rows()
        ]
        figure = plots.agent_vs_human(
            daily["event_date"].to_list(),
            daily["agent_tokens"].to_list(),
            daily["human_tokens"].to_list(),
            ratios,
        )
        metadata |= plots.attach(figure, "agent_vs_human", plots_folder)
    return metadata


def describe_unit_costs(con: duckdb.DuckDBPyConnection, plots_folder: Path) -> dict[str, Any]:
    # Per chip family over every day, model and region: sums first, then one division.
    by_chip = con.sql(
        f"""
        select chip_family, any_value(reporting_currency) as currency,
               sum(total_tokens)::bigint as tokens,
               round(sum(total_direct_cost) * 1000000 / nullif(sum(total_tokens), 0), 6)
                   as cost_per_million_tokens,
               round(sum(external_revenue) * 1000000 / nullif(sum(total_tokens), 0), 6)
                   as price_per_million_tokens
        from {UNIT_COSTS} group by chip_family order by cost_per_million_tokens
        """
    ).pl()
    metadata: dict[str, Any] = {"by chip family": MetadataValue.md(markdown_table(by_chip))}
    if by_chip.height:
        figure = plots.cost_per_million(
            by_chip["chip_family"].to_list(),
            by_chip["cost_per_million_tokens"].to_list(),
            by_chip["price_per_million_tokens"].to_list(),
            by_chip["currency"][0] or "",
        )
        metadata |= plots.attach(figure, "cost_per_million_tokens", plots_folder)
    return metadata


@asset_check(
    asset=relation_key(LAYER_MARGIN),
    additional_deps=[
        relation_key(relation)
        for relation in (
            "marts.fct_request_economics",
            "marts.rpt_layer_margin_daily",
            "marts.rpt_segment_pnl",
        )
        if relation in models()
    ],
    description="Layer margins add up exactly to external revenue minus direct cost "
    "(per request, per day, and in the segment P&L).",
)
def layer_margin_identity(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.connect() as con:
        violations = economics.check_layer_identity(con)
    return AssetCheckResult(
        passed=not violations,
        metadata={
            "violations": MetadataValue.int(len(violations)),
            "examples": MetadataValue.md(
                markdown_table(
                    {"check": v.check, "key": v.key, "expected": v.expected, "actual": v.actual}
                    for v in violations[:20]
                )
            ),
        },
    )


@asset_check(
    asset=relation_key(COSTING),
    description="Every rated request has its costs, transfer prices and segments in force.",
)
def all_usage_costed(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.connect() as con:
        uncosted = economics.check_costing(con)
    return AssetCheckResult(
        passed=not uncosted,
        description="all rated usage costed"
        if not uncosted
        else "; ".join(str(group) for group in uncosted)[:500],
        metadata={
            "uncosted requests": MetadataValue.int(sum(g.requests for g in uncosted)),
            "by reason": MetadataValue.md(
                markdown_table(
                    {"reason": g.reason, "requests": g.requests, "example": g.example_event_id}
                    for g in uncosted
                )
            ),
        },
    )


defs = Definitions(
    assets=sql_assets(
        economics_marts(),
        group_name="economics",
        producers=PRODUCERS,
        describe={
            LAYER_MARGIN: describe_layer_margin,
            ACTORS: describe_actors,
            UNIT_COSTS: describe_unit_costs,
        },
    ),
    asset_checks=[layer_margin_identity, all_usage_costed],
)
