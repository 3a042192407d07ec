"""Property: layer margins add up to external revenue - total direct cost, exactly.

Random books (written into a temp books folder) and random rated requests; the identity is
checked by :func:`warehouse.economics.check_layer_identity` on every request, every roll-up
and the segment P&L, and once more here from the long table.
"""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.warehouse.test_economics_helpers import (
    build,
    create_usage,
    open_warehouse,
    q12,
    usage,
    write_books,
)
from warehouse import economics

CHIPS = ("domestic-npu-a", "imported-gpu-h")
REGIONS = ("cn-hangzhou", "us-virginia")
PRODUCTS = ("agent_platform", "api")

amounts = st.decimals(min_value=0, max_value=50, places=6, allow_nan=False, allow_infinity=False)
shares = st.decimals(min_value=0, max_value=1, places=4)


@st.composite
def books(
    draw: st.DrawFn,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Random but complete books: every request below can be costed."""
    day = "2025-01-01"
    costs: list[dict[str, Any]] = []
    transfers: list[dict[str, Any]] = []

    def cost(layer: str, unit: str, **keys: str) -> None:
        costs.extend(
            {
                "layer": layer,
                "cost_item": f"item{i}",
                "unit": unit,
                "currency": "CNY",
                "amount": draw(amounts),
                "effective_from": day,
                **keys,
            }
            for i in range(draw(st.integers(1, 2)))
        )

    cost("chip", "accelerator_hour", chip_family=CHIPS[0])
    transfers.append(
        {
            "from_layer": "chip",
            "to_layer": "cloud",
            "chip_family": CHIPS[0],
            "unit": "accelerator_hour",
            "currency": "CNY",
            "amount": draw(amounts),
            "effective_from": day,
        }
    )
    for region in REGIONS:
        for chip in CHIPS:
            cost("cloud", "accelerator_hour", region=region, chip_family=chip)
            transfers.append(
                {
                    "from_layer": "cloud",
                    "to_layer": "model",
                    "region": region,
                    "chip_family": chip,
                    "unit": "accelerator_hour",
                    "currency": "CNY",
                    "amount": draw(amounts),
                    "effective_from": day,
                }
            )
    cost("model", "million_tokens", model="qwen-plus")
    cost(
        "application",
        draw(st.sampled_from(["request", "million_tokens"])),
        product="agent_platform",
    )
    for token_type in ("input", "cached_input", "output", "thinking"):
        if draw(st.booleans()):
            price = {"unit": "share_of_list_price", "amount": draw(shares)}
        else:
            price = {"unit": "million_tokens", "currency": "CNY", "amount": draw(amounts)}
        transfers.append(
            {
                "from_layer": "model",
                "to_layer": "application",
                "model": "qwen-plus",
                "token_type": token_type,
                "effective_from": day,
                **price,
            }
        )
    # Segments: any split of the layers into one or two segments.
    segments = [
        {"layer": layer, "segment": draw(st.sampled_from(["alpha", "beta"])), "effective_from": day}
        for layer in ("chip", "cloud", "model", "application")
    ]
    return costs, transfers, segments


tokens = st.integers(0, 2_000_000)
request = st.fixed_dictionaries(
    {
        "chip_family": st.sampled_from(CHIPS),
        "region": st.sampled_from(REGIONS),
        "product": st.sampled_from(PRODUCTS),
        "actor_type": st.sampled_from(["agent", "human"]),
        "accelerator_ms": st.integers(0, 86_400_000),
        "fresh_input_tokens": tokens,
        "cached_input_tokens": tokens,
        "non_thinking_output_tokens": tokens,
        "thinking_tokens": tokens,
        "fx_rate": st.decimals(min_value=Decimal("0.01"), max_value=10, places=6),
    }
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(books=books(), requests=st.lists(request, min_size=1, max_size=8))
def test_layer_margins_add_up_to_revenue_minus_direct_cost(
    books: tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]],
    requests: list[dict[str, Any]],
) -> None:
    rows = []
    for number, drawn in enumerate(requests):
        fx_rate = drawn.pop("fx_rate")
        row = usage(f"e{number}", **drawn)
        # A foreign-currency rating: amounts in USD, reported in CNY at fx_rate.
        row["currency"] = "USD"
        row["amount_reporting"] = q12(row["amount"] * fx_rate)
        row["fx_rate"] = fx_rate
        rows.append(row)
    with tempfile.TemporaryDirectory() as tmp:
        books_dir = write_books(Path(tmp) / "books", *books)
        con = open_warehouse(Path(tmp) / "warehouse.duckdb")
        try:
            create_usage(con, rows)
            build(con, books_dir)
            assert economics.check_costing(con) == []
            assert economics.check_layer_identity(con) == []
            [(margin, revenue, cost, requests_costed)] = con.sql(
                "select sum(margin), sum(external_revenue), sum(direct_cost),"
                " count(distinct event_id) from marts.fct_layer_margin"
            ).fetchall()
            assert requests_costed == len(rows)
            assert revenue == sum(row["amount_reporting"] for row in rows)
            assert margin == revenue - cost
        finally:
            con.close()
