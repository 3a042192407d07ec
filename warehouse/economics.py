"""Headline token economics read from the marts, and the checks that guard them.

The demo, the CLI and Dagster call these; they only read marts built by
:func:`warehouse.db.build` (see ``warehouse/sql/marts/fct_layer_margin.sql`` and friends)
and never recompute money in Python, so there is one definition of every figure.

- :func:`build_economics` loads the cost books and (re)builds the economics models;
- :func:`layer_margin_summary`, :func:`segment_pnl`, :func:`actor_multiplier` give headline
  figures;
- :func:`check_layer_identity` and :func:`check_costing` return violations (empty when all
  is well) for asset checks; :func:`assert_costed` raises :class:`UncostedUsageError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl

from warehouse import db
from warehouse.pricing.cost_books import CostBooks, create_tables, load_cost_books

#: The economics staging views and marts, in no particular order (``db.build`` sorts them).
STAGING_MODELS = (
    "staging.stg_cost_book",
    "staging.stg_transfer_prices",
    "staging.stg_segments",
)
MART_MODELS = (
    "marts.fct_request_costing",
    "marts.fct_request_economics",
    "marts.fct_layer_margin",
    "marts.rpt_layer_margin_daily",
    "marts.rpt_segment_pnl",
    "marts.rpt_uncosted_usage",
    "marts.rpt_cost_per_million_tokens",
    "marts.rpt_actor_economics",
    "marts.fct_swarm_task",
    "marts.fct_swarm",
    "marts.rpt_task_cost_distribution",
    "marts.rpt_token_economics_overview",
)
MODELS = STAGING_MODELS + MART_MODELS


class UncostedUsageError(RuntimeError):
    """Rated requests have no cost rate, transfer price or segment in force."""


@dataclass(frozen=True)
class IdentityViolation:
    """A place where layer margins do not add up to revenue minus direct cost."""

    check: str
    key: str
    expected: Decimal
    actual: Decimal

    def __str__(self) -> str:
        return f"{self.check} [{self.key}]: expected {self.expected}, got {self.actual}"


@dataclass(frozen=True)
class UncostedGroup:
    """Rated requests left uncosted for one reason (from ``marts.rpt_uncosted_usage``)."""

    reason: str
    requests: int
    external_revenue: Decimal
    example_event_id: str

    def __str__(self) -> str:
        return (
            f"{self.requests} request(s) uncosted: {self.reason} "
            f"(revenue {self.external_revenue}, e.g. event {self.example_event_id})"
        )


def build_economics(con: duckdb.DuckDBPyConnection, books_dir: Path) -> CostBooks:
    """Load the cost, transfer price and segment books, then rebuild the economics models.

    ``marts.fct_usage_rated`` must exist (the rating engineer's mart). Raises
    :class:`~warehouse.pricing.cost_books.CostBookError` for a bad book.
    """
    books = load_cost_books(con, books_dir)
    db.build(con, select=MODELS)
    return books


def ensure_book_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create empty book tables if missing, so a full ``db.build`` can bind the staging views."""
    create_tables(con)


def layer_margin_summary(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per layer (chip, cloud, model, application) and in total: requests, revenue, costs, margin.

    Amounts are exact decimals in the reporting currency. The ``total`` row's margin equals
    external revenue minus direct cost (the group's consolidated margin).
    """
    return con.sql(
        """
        select
            coalesce(layer, 'total') as layer,
            count(distinct event_id) as requests,
            sum(external_revenue) as external_revenue,
            sum(transfer_revenue) as transfer_revenue,
            sum(transfer_cost) as transfer_cost,
            sum(direct_cost) as direct_cost,
            sum(margin) as margin
        from marts.fct_layer_margin
        group by rollup (layer)
        order by grouping(layer), min(layer_order)
        """
    ).pl()


def segment_pnl(con: duckdb.DuckDBPyConnection, period_grain: str = "month") -> pl.DataFrame:
    """The segment P&L (segments, eliminations, consolidated) per ``day`` or ``month``."""
    if period_grain not in ("day", "month"):
        raise ValueError(f"period_grain must be 'day' or 'month', not {period_grain!r}")
    return con.sql(
        """
        select * exclude (period_grain)
        from marts.rpt_segment_pnl
        where period_grain = $grain
        order by period_start, row_type = 'consolidated', row_type = 'elimination', segment
        """,
        params={"grain": period_grain},
    ).pl()


def actor_multiplier(con: duckdb.DuckDBPyConnection) -> Decimal | None:
    """Agent tokens per request divided by human tokens per request, over all costed usage.

    ``None`` when there is no agent or no human usage to compare.
    """
    rows = con.sql(
        """
        select
            sum(total_tokens) filter (where actor_type = 'agent'),
            count(*) filter (where actor_type = 'agent'),
            sum(total_tokens) filter (where actor_type = 'human'),
            count(*) filter (where actor_type = 'human')
        from marts.fct_request_economics
        """
    ).fetchall()
    agent_tokens, agent_requests, human_tokens, human_requests = rows[0]
    if not agent_requests or not human_requests or not human_tokens:
        return None
    return (Decimal(agent_tokens) * human_requests) / (Decimal(agent_requests) * human_tokens)


def _violations(con: duckdb.DuckDBPyConnection, check: str, sql: str) -> list[IdentityViolation]:
    return [
        IdentityViolation(check, str(key), expected, actual)
        for key, expected, actual in con.sql(sql).fetchall()
    ]


def check_layer_identity(con: duckdb.DuckDBPyConnection) -> list[IdentityViolation]:
    """Every place where sum of layer margins != external revenue - total direct cost.

    Checked exactly (DECIMAL) on every request (wide and long form), on every row of the
    daily roll-up summed over layers, and on the segment P&L (segments + eliminations =
    consolidated, consolidated margin = the requests' margin). Empty list: all holds.
    """
    violations = _violations(
        con,
        "request: sum of layer margins",
        """
        select event_id, external_revenue - total_direct_cost,
               chip_margin + cloud_margin + model_margin + application_margin
        from marts.fct_request_economics
        where chip_margin + cloud_margin + model_margin + application_margin
              != external_revenue - total_direct_cost
           or consolidated_margin != external_revenue - total_direct_cost
        """,
    )
    violations += _violations(
        con,
        "fct_layer_margin: layers of a request",
        """
        with by_request as (
            select event_id, sum(margin) as margin,
                   sum(external_revenue) - sum(direct_cost) as expected
            from marts.fct_layer_margin group by event_id
        )
        select coalesce(r.event_id, w.event_id), w.consolidated_margin, r.margin
        from by_request as r
        full join marts.fct_request_economics as w using (event_id)
        where r.margin is distinct from r.expected
           or r.margin is distinct from w.consolidated_margin
        """,
    )
    violations += _violations(
        con,
        "rpt_layer_margin_daily: layers of a group",
        """
        select concat_ws('/', event_date, tenant_id, product, model, region, chip_family,
                         actor_type),
               sum(external_revenue) - sum(direct_cost), sum(margin)
        from marts.rpt_layer_margin_daily
        group by event_date, tenant_id, product, model, region, chip_family, actor_type
        having sum(margin) != sum(external_revenue) - sum(direct_cost)
        """,
    )
    violations += _violations(
        con,
        "rpt_layer_margin_daily: total vs requests",
        """
        select 'all',
               (select coalesce(sum(consolidated_margin), 0) from marts.fct_request_economics),
               (select coalesce(sum(margin), 0) from marts.rpt_layer_margin_daily)
        where (select coalesce(sum(consolidated_margin), 0) from marts.fct_request_economics)
           != (select coalesce(sum(margin), 0) from marts.rpt_layer_margin_daily)
        """,
    )
    for column in (
        "external_revenue",
        "inter_segment_revenue",
        "inter_segment_cost",
        "direct_cost",
        "margin",
    ):
        violations += _violations(
            con,
            f"rpt_segment_pnl: segments + eliminations = consolidated ({column})",
            f"""
            select concat_ws('/', period_grain, period_start, reporting_currency),
                   sum({column}) filter (where row_type = 'consolidated'),
                   sum({column}) filter (where row_type != 'consolidated')
            from marts.rpt_segment_pnl
            group by period_grain, period_start, reporting_currency
            having sum({column}) filter (where row_type = 'consolidated')
                   is distinct from sum({column}) filter (where row_type != 'consolidated')
            """,
        )
    violations += _violations(
        con,
        "rpt_segment_pnl: consolidated margin = requests' margin",
        """
        with requests as (
            select event_date, reporting_currency, sum(consolidated_margin) as margin
            from marts.fct_request_economics group by all
        )
        select concat_ws('/', p.period_start, p.reporting_currency), r.margin, p.margin
        from marts.rpt_segment_pnl as p
        full join requests as r
            on r.event_date = p.period_start and r.reporting_currency = p.reporting_currency
        where (p.period_grain = 'day' and p.row_type = 'consolidated' or p.period_grain is null)
          and p.margin is distinct from r.margin
        """,
    )
    return violations


def check_costing(con: duckdb.DuckDBPyConnection) -> list[UncostedGroup]:
    """Rated requests with no cost rate, transfer price or segment in force, by reason."""
    return [
        UncostedGroup(reason, requests, revenue or Decimal(0), example)
        for reason, requests, revenue, example in con.sql(
            """
            select reason, sum(requests)::bigint, sum(external_revenue), min(example_event_id)
            from marts.rpt_uncosted_usage
            group by reason
            order by reason
            """
        ).fetchall()
    ]


def assert_costed(con: duckdb.DuckDBPyConnection) -> None:
    """Raise :class:`UncostedUsageError` when any rated request is uncosted (says why)."""
    uncosted = check_costing(con)
    if uncosted:
        raise UncostedUsageError(
            "rated usage without costs; add the missing rows to the cost books "
            "(warehouse/pricing/books/): " + "; ".join(str(group) for group in uncosted)
        )
