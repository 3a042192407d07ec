"""Hand-checked layer economics: every figure is recomputed here from the book values below.

Each test writes its own books and a hand-made ``marts.fct_usage_rated`` into a temp DuckDB
file, then builds only the economics models (see test_economics_helpers).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.warehouse.test_economics_helpers import (
    build,
    create_usage,
    open_warehouse,
    q12,
    usage,
    write_books,
)
from warehouse import db, economics

D = Decimal
HOUR_MS = D(3_600_000)

# The books of these tests (CNY per accelerator-hour unless stated).
CHIP_DESIGN, CHIP_MANUFACTURE = D("2.00"), D("3.10")
CHIP_TO_CLOUD = D("6.00")
NPU_ENERGY, NPU_FACILITY = D("0.50"), D("0.40")
GPU_ENERGY, GPU_AMORTISATION = D("0.90"), D("12.00")
CLOUD_TO_MODEL_NPU, CLOUD_TO_MODEL_GPU = D("8.00"), D("15.00")
MODEL_OVERHEAD_PER_MILLION = D("0.05")
SHARE_OF_LIST = D("0.70")  # input, cached input, output
THINKING_TRANSFER_PER_MILLION = D("5.00")
APP_PER_REQUEST, APP_PER_MILLION = D("0.001"), D("0.04")


def cost_rows(**overrides: str) -> list[dict[str, Any]]:
    """The cost book of these tests; ``overrides`` replace amounts by cost item."""

    def row(
        layer: str, item: str, amount: D, unit: str = "accelerator_hour", **keys: str
    ) -> dict[str, Any]:
        return {
            "layer": layer,
            "cost_item": item,
            "unit": unit,
            "currency": "CNY",
            "amount": overrides.get(item, amount),
            "effective_from": "2025-01-01",
            **keys,
        }

    npu = {"chip_family": "domestic-npu-a"}
    gpu_here = {"chip_family": "imported-gpu-h", "region": "cn-hangzhou"}
    npu_here = {**npu, "region": "cn-hangzhou"}
    return [
        row("chip", "design_amortisation", CHIP_DESIGN, **npu),
        row("chip", "manufacture_amortisation", CHIP_MANUFACTURE, **npu),
        row("cloud", "energy", NPU_ENERGY, **npu_here),
        row("cloud", "facility", NPU_FACILITY, **npu_here),
        row("cloud", "energy", GPU_ENERGY, **gpu_here),
        row("cloud", "gpu_amortisation", GPU_AMORTISATION, **gpu_here),
        row(
            "model",
            "serving_overhead",
            MODEL_OVERHEAD_PER_MILLION,
            "million_tokens",
            model="qwen-plus",
        ),
        row(
            "application", "request_handling", APP_PER_REQUEST, "request", product="agent_platform"
        ),
        row(
            "application",
            "context_storage",
            APP_PER_MILLION,
            "million_tokens",
            product="agent_platform",
        ),
    ]


def transfer_rows(cloud_to_model_npu: D = CLOUD_TO_MODEL_NPU) -> list[dict[str, Any]]:
    """The transfer prices of these tests."""
    base = {"currency": "CNY", "effective_from": "2025-01-01"}
    rows: list[dict[str, Any]] = [
        {
            **base,
            "from_layer": "chip",
            "to_layer": "cloud",
            "chip_family": "domestic-npu-a",
            "unit": "accelerator_hour",
            "amount": CHIP_TO_CLOUD,
        },
        {
            **base,
            "from_layer": "cloud",
            "to_layer": "model",
            "chip_family": "domestic-npu-a",
            "region": "cn-hangzhou",
            "unit": "accelerator_hour",
            "amount": cloud_to_model_npu,
        },
        {
            **base,
            "from_layer": "cloud",
            "to_layer": "model",
            "chip_family": "imported-gpu-h",
            "region": "cn-hangzhou",
            "unit": "accelerator_hour",
            "amount": CLOUD_TO_MODEL_GPU,
        },
    ]
    for token_type in ("input", "cached_input", "output"):
        rows.append(
            {
                "from_layer": "model",
                "to_layer": "application",
                "model": "qwen-plus",
                "token_type": token_type,
                "unit": "share_of_list_price",
                "amount": SHARE_OF_LIST,
                "effective_from": "2025-01-01",
            }
        )
    rows.append(
        {
            **base,
            "from_layer": "model",
            "to_layer": "application",
            "model": "qwen-plus",
            "token_type": "thinking",
            "unit": "million_tokens",
            "amount": THINKING_TRANSFER_PER_MILLION,
        }
    )
    return rows


def build_with(
    tmp_path: Path, requests: list[dict[str, Any]], **books: Any
) -> duckdb.DuckDBPyConnection:
    books_dir = write_books(
        tmp_path / "books",
        books.get("costs", cost_rows()),
        books.get("transfers", transfer_rows()),
    )
    con = open_warehouse(tmp_path / "warehouse.duckdb")
    create_usage(con, requests)
    build(con, books_dir)
    return con


def layers(con: duckdb.DuckDBPyConnection, event_id: str) -> dict[str, dict[str, Decimal]]:
    rel = con.sql(
        "select layer, external_revenue, transfer_revenue, transfer_cost, direct_cost, margin"
        " from marts.fct_layer_margin where event_id = $id",
        params={"id": event_id},
    )
    return {
        layer: {
            "external_revenue": ext,
            "transfer_revenue": tr,
            "transfer_cost": tc,
            "direct_cost": dc,
            "margin": m,
        }
        for layer, ext, tr, tc, dc, m in rel.fetchall()
    }


def per_hour(ms: int, rate: Decimal) -> Decimal:
    return q12(D(ms) * rate / HOUR_MS)


def per_million(tokens: int, rate: Decimal) -> Decimal:
    return q12(D(tokens) * rate / D(1_000_000))


def test_a_request_through_all_four_layers(tmp_path: Path) -> None:
    request = usage("all-four", accelerator_ms=1234)
    con = build_with(tmp_path, [request])
    ms, tokens, revenue = 1234, request["total_tokens"], request["amount_reporting"]

    chip_cost = per_hour(ms, CHIP_DESIGN + CHIP_MANUFACTURE)
    chip_to_cloud = per_hour(ms, CHIP_TO_CLOUD)
    cloud_cost = per_hour(ms, NPU_ENERGY + NPU_FACILITY)
    cloud_to_model = per_hour(ms, CLOUD_TO_MODEL_NPU)
    model_cost = per_million(tokens, MODEL_OVERHEAD_PER_MILLION)
    list_price = request["amount_input"] + request["amount_cached_input"] + request["amount_output"]
    model_to_app = q12(list_price * SHARE_OF_LIST) + per_million(
        request["thinking_tokens"], THINKING_TRANSFER_PER_MILLION
    )
    app_cost = q12(APP_PER_REQUEST + D(tokens) * APP_PER_MILLION / D(1_000_000))

    assert layers(con, "all-four") == {
        "chip": {
            "external_revenue": 0,
            "transfer_revenue": chip_to_cloud,
            "transfer_cost": 0,
            "direct_cost": chip_cost,
            "margin": chip_to_cloud - chip_cost,
        },
        "cloud": {
            "external_revenue": 0,
            "transfer_revenue": cloud_to_model,
            "transfer_cost": chip_to_cloud,
            "direct_cost": cloud_cost,
            "margin": cloud_to_model - chip_to_cloud - cloud_cost,
        },
        "model": {
            "external_revenue": 0,
            "transfer_revenue": model_to_app,
            "transfer_cost": cloud_to_model,
            "direct_cost": model_cost,
            "margin": model_to_app - cloud_to_model - model_cost,
        },
        "application": {
            "external_revenue": revenue,
            "transfer_revenue": 0,
            "transfer_cost": model_to_app,
            "direct_cost": app_cost,
            "margin": revenue - model_to_app - app_cost,
        },
    }
    [(margin,)] = con.sql("select consolidated_margin from marts.fct_request_economics").fetchall()
    assert margin == revenue - chip_cost - cloud_cost - model_cost - app_cost
    assert economics.check_layer_identity(con) == []
    assert economics.check_costing(con) == []


def test_a_direct_api_call_is_sold_by_the_model_layer(tmp_path: Path) -> None:
    request = usage("api-call", product="api", accelerator_ms=3600)
    con = build_with(tmp_path, [request])
    figures = layers(con, "api-call")
    assert set(figures) == {"chip", "cloud", "model"}
    revenue = request["amount_reporting"]
    cloud_to_model = per_hour(3600, CLOUD_TO_MODEL_NPU)  # 0.008
    assert cloud_to_model == D("0.008")
    model_cost = per_million(request["total_tokens"], MODEL_OVERHEAD_PER_MILLION)
    assert figures["model"] == {
        "external_revenue": revenue,
        "transfer_revenue": 0,
        "transfer_cost": cloud_to_model,
        "direct_cost": model_cost,
        "margin": revenue - cloud_to_model - model_cost,
    }
    assert economics.check_layer_identity(con) == []


def test_an_imported_gpu_request_has_no_chip_layer(tmp_path: Path) -> None:
    request = usage("gpu", chip_family="imported-gpu-h", accelerator_ms=7200)
    con = build_with(tmp_path, [request])
    figures = layers(con, "gpu")
    assert set(figures) == {"cloud", "model", "application"}
    # The cloud layer amortises the imported GPU itself (7,200 ms = 0.002 accelerator-hours).
    assert figures["cloud"] == {
        "external_revenue": 0,
        "transfer_revenue": D("0.030"),  # 0.002 h x 15.00
        "transfer_cost": 0,
        "direct_cost": D("0.0258"),  # 0.002 h x (0.90 + 12.00)
        "margin": D("0.0042"),
    }
    assert figures["model"]["transfer_cost"] == D("0.030")


def test_segments_and_eliminations_add_up_to_the_consolidated_pnl(tmp_path: Path) -> None:
    requests = [
        usage("a"),
        usage("b", product="api", accelerator_ms=999),
        usage("c", chip_family="imported-gpu-h", actor_type="human", accelerator_ms=4321),
        usage("d", occurred_at=datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC)),
    ]
    con = build_with(tmp_path, requests)
    pnl = con.sql(
        "select period_start, row_type, segment, external_revenue, inter_segment_revenue,"
        " inter_segment_cost, direct_cost, margin from marts.rpt_segment_pnl"
        " where period_grain = 'month' order by period_start, row_type, segment"
    ).fetchall()
    march = [row for row in pnl if row[0].month == 3]
    assert [row[1:3] for row in march] == [
        ("consolidated", "consolidated"),
        ("elimination", "eliminations"),
        ("segment", "ai_token_business"),
        ("segment", "cloud_infrastructure"),
    ]
    consolidated, elimination, ai, cloud = march
    for column in range(3, 8):
        assert ai[column] + cloud[column] + elimination[column] == consolidated[column]
    # Cloud infrastructure sells capacity to the AI business: that is what is eliminated.
    assert cloud[4] == ai[5] == -elimination[4] == -elimination[5] > 0
    assert ai[3] == consolidated[3] == sum(r["amount_reporting"] for r in requests[:3])
    [(expected_margin,)] = con.sql(
        "select sum(consolidated_margin) from marts.fct_request_economics"
        " where event_date < '2026-04-01'"
    ).fetchall()
    assert consolidated[7] == expected_margin
    assert economics.check_layer_identity(con) == []


def test_a_transfer_price_change_moves_margin_between_layers_only(tmp_path: Path) -> None:
    requests = [usage("x", accelerator_ms=1777), usage("y", product="api", accelerator_ms=5000)]
    before = build_with(tmp_path / "before", requests)
    after = build_with(tmp_path / "after", requests, transfers=transfer_rows(D("9.37")))

    def margins(con: duckdb.DuckDBPyConnection) -> dict[str, Decimal]:
        return dict(
            con.sql(
                "select layer, sum(margin) from marts.fct_layer_margin group by layer"
            ).fetchall()
        )

    def segment_margins(con: duckdb.DuckDBPyConnection) -> dict[str, Decimal]:
        return dict(
            con.sql(
                "select segment, margin from marts.rpt_segment_pnl where period_grain = 'month'"
            ).fetchall()
        )

    shift = (
        per_hour(1777, D("9.37"))
        - per_hour(1777, CLOUD_TO_MODEL_NPU)
        + per_hour(5000, D("9.37"))
        - per_hour(5000, CLOUD_TO_MODEL_NPU)
    )
    old, new = margins(before), margins(after)
    assert shift > 0
    assert new["cloud"] == old["cloud"] + shift
    assert new["model"] == old["model"] - shift
    assert new["chip"] == old["chip"] and new["application"] == old["application"]
    assert sum(new.values()) == sum(old.values())
    old_segments, new_segments = segment_margins(before), segment_margins(after)
    assert new_segments["consolidated"] == old_segments["consolidated"]
    assert new_segments["cloud_infrastructure"] == old_segments["cloud_infrastructure"] + shift


def test_a_missing_cost_fails_loudly_and_never_costs_zero(tmp_path: Path) -> None:
    costs = [row for row in cost_rows() if row["layer"] != "model"]
    con = build_with(tmp_path, [usage("costed-not"), usage("other", model="qwen-max")], costs=costs)
    assert con.sql("select count(*) from marts.fct_layer_margin").fetchall() == [(0,)]
    reasons = {group.reason: group.requests for group in economics.check_costing(con)}
    assert reasons == {"no_model_cost": 2, "no_transfer_price_model_to_application": 1}
    with pytest.raises(economics.UncostedUsageError, match="no_model_cost"):
        economics.assert_costed(con)


def test_a_cost_in_force_follows_the_event_time(tmp_path: Path) -> None:
    raised = {**cost_rows()[0], "amount": D("4.00"), "effective_from": "2026-03-02T12:00:00Z"}
    early = usage(
        "early", occurred_at=datetime(2026, 3, 2, 11, 59, 59, tzinfo=UTC), accelerator_ms=3600
    )
    late = usage("late", occurred_at=datetime(2026, 3, 2, 12, 0, tzinfo=UTC), accelerator_ms=3600)
    con = build_with(tmp_path, [early, late], costs=[*cost_rows(), raised])
    assert layers(con, "early")["chip"]["direct_cost"] == per_hour(
        3600, CHIP_DESIGN + CHIP_MANUFACTURE
    )
    assert layers(con, "late")["chip"]["direct_cost"] == per_hour(
        3600, D("4.00") + CHIP_MANUFACTURE
    )


def test_agents_swarms_and_the_actor_multiplier(tmp_path: Path) -> None:
    requests = [
        usage(
            "h1",
            actor_type="human",
            fresh_input_tokens=500,
            cached_input_tokens=0,
            non_thinking_output_tokens=300,
            thinking_tokens=0,
        ),  # 800 tokens
        usage(
            "a1",
            actor_id="agent-1",
            task_id="t1",
            fresh_input_tokens=30000,
            cached_input_tokens=8000,
            non_thinking_output_tokens=1500,
            thinking_tokens=500,
            occurred_at=datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        ),  # 40,000 tokens
        usage(
            "a2",
            actor_id="agent-2",
            task_id="t1",
            fresh_input_tokens=30000,
            cached_input_tokens=8000,
            non_thinking_output_tokens=1500,
            thinking_tokens=500,
            occurred_at=datetime(2026, 3, 2, 10, 1, 30, tzinfo=UTC),
        ),
        usage(
            "a3",
            actor_id="agent-1",
            task_id="t2",
            fresh_input_tokens=30000,
            cached_input_tokens=8000,
            non_thinking_output_tokens=1500,
            thinking_tokens=500,
        ),
    ]
    con = build_with(tmp_path, requests)
    assert economics.actor_multiplier(con) == D(50)  # 40,000 / 800
    [(multiplier, agent_tpr, human_tpr)] = con.sql(
        "select agent_to_human_multiplier, agent_tokens_per_request, human_tokens_per_request"
        " from marts.rpt_actor_economics"
    ).fetchall()
    assert (multiplier, agent_tpr, human_tpr) == (D(50), D(40000), D(800))
    task = con.sql(
        "select agents_involved, requests, total_tokens, duration_ms, revenue, direct_cost, margin"
        " from marts.fct_swarm_task where task_id = 't1'"
    ).fetchall()[0]
    a1, a2 = (
        con.sql(
            f"select external_revenue, total_direct_cost from marts.fct_request_economics where event_id = '{e}'"
        ).fetchall()[0]
        for e in ("a1", "a2")
    )
    assert task == (
        2,
        2,
        80000,
        90_000,
        a1[0] + a2[0],
        a1[1] + a2[1],
        a1[0] + a2[0] - a1[1] - a2[1],
    )
    [(tasks, p50, p99)] = con.sql(
        "select tasks, revenue_per_task_p50, revenue_per_task_max from marts.rpt_task_cost_distribution"
    ).fetchall()
    assert tasks == 2 and p50 < p99 == a1[0] + a2[0]


def test_cost_per_million_tokens_sits_beside_price_and_margin(tmp_path: Path) -> None:
    npu = usage("npu", accelerator_ms=2000)
    gpu = usage("gpu", chip_family="imported-gpu-h", accelerator_ms=2000)
    con = build_with(tmp_path, [npu, gpu])
    rows = con.sql(
        "select chip_family, total_tokens, total_direct_cost, cost_per_million_tokens,"
        " price_per_million_tokens, margin_per_million_tokens"
        " from marts.rpt_cost_per_million_tokens order by chip_family"
    ).fetchall()
    for _, tokens, cost, cost_pm, price_pm, margin_pm in rows:
        assert cost_pm == q12(cost * D(1_000_000) / D(tokens))
        assert price_pm == q12(npu["amount_reporting"] * D(1_000_000) / D(tokens))
        assert margin_pm == q12((npu["amount_reporting"] - cost) * D(1_000_000) / D(tokens))
    # With these books the domestic chip serves the same request cheaper.
    assert [row[0] for row in rows] == ["domestic-npu-a", "imported-gpu-h"]
    assert rows[0][3] < rows[1][3]


def test_the_identity_check_catches_a_broken_mart(tmp_path: Path) -> None:
    con = build_with(tmp_path, [usage("a"), usage("b", product="api")])
    broken = tmp_path / "sql"
    shutil.copytree(db.SQL_DIR, broken)
    mart = broken / "marts" / "fct_request_economics.sql"
    sql = mart.read_text()
    assert "as cloud_margin," in sql
    mart.write_text(sql.replace("as cloud_margin,", "+ 0.000000000001 as cloud_margin,"))
    db.build(con, select=economics.MODELS, sql_dir=broken)
    checks = {violation.check for violation in economics.check_layer_identity(con)}
    assert "request: sum of layer margins" in checks
    assert "rpt_layer_margin_daily: layers of a group" in checks
