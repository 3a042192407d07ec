"""The headline figures of a built warehouse, for people: what ``tokenhub demo`` prints.

:func:`headlines` reads them from the marts as exact decimals; :meth:`Headlines.render` is
the only place they are rounded (to the fen, for display).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

import duckdb

from warehouse import economics

_FEN = Decimal("0.01")


@dataclass(frozen=True)
class LayerLine:
    layer: str
    external_revenue: Decimal
    transfer_revenue: Decimal
    direct_cost: Decimal
    transfer_cost: Decimal
    margin: Decimal


@dataclass(frozen=True)
class Headlines:
    """Exact headline figures of the warehouse, in the reporting currency."""

    currency: str
    first_date: date
    last_date: date
    requests: int
    total_tokens: int
    revenue: Decimal
    run_rate_7d: Decimal
    arr: Decimal
    top_tenants: list[tuple[str, Decimal]]
    layers: list[LayerLine]
    consolidated_margin: Decimal
    agent_multiplier: Decimal | None
    unrated_events: int
    quarantined_messages: int

    def render(self) -> str:
        money = self.currency
        lines = [
            f"Usage {self.first_date} .. {self.last_date}: {self.requests:,} rated requests, "
            f"{self.total_tokens:,} tokens",
            f"Revenue:            {_money(self.revenue)} {money}",
            f"Run-rate (ARR):     {_money(self.arr)} {money} a year on the last 30 days "
            f"({_money(self.run_rate_7d)} on the last 7)",
        ]
        if self.agent_multiplier is not None:
            lines.append(
                f"Agents vs humans:   an agent request uses {self.agent_multiplier:.1f}x the "
                "tokens of a human one"
            )
        lines.append(f"Top tenants by ARR ({money}):")
        lines += [f"  {tenant:<24} {_money(arr):>20}" for tenant, arr in self.top_tenants]
        lines.append(
            f"Margin by layer ({money}; transfer prices between layers, which cancel in total):"
        )
        header = ("layer", "external rev", "transfer rev", "direct cost", "transfer cost", "margin")
        lines.append("  " + "".join(f"{h:>16}" for h in header))
        for layer in self.layers:
            amounts = (
                layer.external_revenue,
                layer.transfer_revenue,
                layer.direct_cost,
                layer.transfer_cost,
                layer.margin,
            )
            lines.append(f"  {layer.layer:>16}" + "".join(f"{_money(a):>16}" for a in amounts))
        lines.append(
            f"Consolidated margin {_money(self.consolidated_margin)} {money} "
            "(the exact layer margins add up to it exactly; every figure here is rounded "
            "to the fen for display)"
        )
        lines.append(
            f"Held back: {self.unrated_events:,} unrated event(s) (marts.rpt_unrated_summary), "
            f"{self.quarantined_messages:,} quarantined message(s) (marts.rpt_quarantine_summary)"
        )
        return "\n".join(lines)


def _money(amount: Decimal) -> str:
    return f"{amount.quantize(_FEN, rounding=ROUND_HALF_EVEN):,}"


def headlines(con: duckdb.DuckDBPyConnection, *, top: int = 5) -> Headlines:
    """The headline figures of the marts behind ``con`` (the warehouse or its published copy)."""
    usage = con.execute(
        """
        select min(event_date), max(event_date), count(*), coalesce(sum(total_tokens), 0),
               coalesce(sum(amount_reporting), 0), any_value(reporting_currency)
        from marts.fct_usage_rated
        """
    ).fetchall()[0]
    first_date, last_date, requests, tokens, revenue, currency = usage
    if not requests:
        raise LookupError("marts.fct_usage_rated is empty: nothing has been rated yet")
    total = con.execute(
        "select run_rate_7d, arr from marts.rpt_run_rate where scope = 'total'"
    ).fetchall()[0]
    top_tenants = con.execute(
        """
        select scope_id, arr from marts.rpt_run_rate
        where scope = 'tenant' order by arr desc, scope_id limit ?
        """,
        [top],
    ).fetchall()
    summary = economics.layer_margin_summary(con)
    layers = [
        LayerLine(
            row["layer"],
            row["external_revenue"],
            row["transfer_revenue"],
            row["direct_cost"],
            row["transfer_cost"],
            row["margin"],
        )
        for row in summary.iter_rows(named=True)
    ]
    by_layer = [line for line in layers if line.layer != "total"]
    (consolidated,) = [line.margin for line in layers if line.layer == "total"]
    counts = con.execute(
        """
        select (select coalesce(sum(events), 0) from marts.rpt_unrated_summary),
               (select coalesce(sum(messages), 0) from marts.rpt_quarantine_summary)
        """
    ).fetchall()[0]
    return Headlines(
        currency=currency,
        first_date=first_date,
        last_date=last_date,
        requests=requests,
        total_tokens=int(tokens),
        revenue=revenue,
        run_rate_7d=total[0],
        arr=total[1],
        top_tenants=[(tenant, arr) for tenant, arr in top_tenants],
        layers=by_layer,
        consolidated_margin=consolidated,
        agent_multiplier=economics.actor_multiplier(con),
        unrated_events=int(counts[0]),
        quarantined_messages=int(counts[1]),
    )
