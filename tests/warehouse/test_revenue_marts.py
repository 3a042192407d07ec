"""Revenue marts built from a real warehouse file: the usage fact, daily revenue, run-rate,
quarantine and unrated summaries, and allocation queries an analyst would write."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tests.warehouse.test_economics_helpers import USAGE_COLUMNS
from tests.warehouse.test_rating_helpers import (
    copy_shipped_books,
    event,
    insert_events,
    make_settings,
    open_warehouse,
)
from warehouse import db
from warehouse.pricing.rating import rate

REPO = Path(__file__).resolve().parents[2]
MY_MODELS = [
    "staging.stg_token_usage_events",
    "staging.stg_quarantine",
    "marts.fct_usage_rated",
    "marts.fct_revenue_daily",
    "marts.rpt_run_rate",
    "marts.rpt_quarantine_summary",
    "marts.rpt_unrated_summary",
    "marts.fct_rating_adjustments",
]
AS_OF = datetime(2026, 3, 30, 10, tzinfo=UTC)
#: qwen-plus, first tier: 1,000 fresh input tokens (0.0008 CNY per 1,000) = 0.0008 CNY.
ONE_REQUEST = Decimal("0.0008")


@pytest.fixture
def marts(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """40 days of one request a day for two tenants, plus a few special events, rated."""
    settings = make_settings(tmp_path)
    con = open_warehouse(settings)
    rows = []
    for days_back in range(40):
        for tenant, product, key in (("t-a", "chat_assistant", "key-a"), ("t-b", "api", "key-b")):
            rows.append(
                event(tenant_id=tenant, product=product, api_key_id=key,
                      channel="direct_api" if product == "api" else "own_product",
                      occurred_at=AS_OF - timedelta(days=days_back),
                      input_tokens=1000, output_tokens=0)
            )  # fmt: skip
    rows.append(event(event_id="thinker", tenant_id="t-a", occurred_at=AS_OF, input_tokens=1000,
                      cached_input_tokens=400, output_tokens=300, thinking_tokens=200))  # fmt: skip
    rows.append(event(event_id="nobody-prices-me", model="qwen-ultra", occurred_at=AS_OF))
    insert_events(con, rows)
    con.execute(
        """
        insert into raw.quarantine values
            ('token-usage.events.v1', 0, 1, 'k', 'x'::blob, 'malformed_json', 'bad', ?),
            ('token-usage.events.v1', 1, 7, 'k', '{}'::blob, 'missing_field', 'no id', ?),
            ('token-usage.events.v1', 1, 9, 'k', '{}'::blob, 'missing_field', 'no ts', ?)
        """,
        [AS_OF, AS_OF, AS_OF + timedelta(minutes=1)],
    )
    rate(con, settings)
    db.build(con, select=MY_MODELS)
    yield con
    con.close()


def test_fct_usage_rated_has_the_contract_columns_with_their_types(
    marts: duckdb.DuckDBPyConnection,
) -> None:
    described = {
        name: kind.lower().replace(" ", "")
        for name, kind, *_ in marts.execute("describe marts.fct_usage_rated").fetchall()
    }
    for column, kind in USAGE_COLUMNS.items():
        assert column in described, column
        expected = {"timestamptz": "timestampwithtimezone"}.get(kind, kind.replace(" ", ""))
        assert described[column] == expected, column
    assert list(described)[: len(USAGE_COLUMNS)] == list(USAGE_COLUMNS)


def test_fct_usage_rated_splits_tokens_and_amounts_by_type(
    marts: duckdb.DuckDBPyConnection,
) -> None:
    row = marts.execute(
        """
        select fresh_input_tokens, non_thinking_output_tokens, total_tokens, amount_input,
            amount_cached_input, amount_output, amount_thinking, amount, amount_reporting
        from marts.fct_usage_rated where event_id = 'thinker'
        """
    ).fetchall()[0]
    per_token = [Decimal(p) / 1000 for p in ("0.0008", "0.0002", "0.002", "0.008")]
    amounts = [600 * per_token[0], 400 * per_token[1], 100 * per_token[2], 200 * per_token[3]]
    assert row == (600, 100, 1300, *amounts, sum(amounts), sum(amounts))


def test_revenue_daily_adds_up_to_the_usage_fact(marts: duckdb.DuckDBPyConnection) -> None:
    totals = marts.execute(
        """
        select
            (select sum(amount_reporting) from marts.fct_revenue_daily),
            (select sum(amount_reporting) from marts.fct_usage_rated),
            (select sum(requests) from marts.fct_revenue_daily),
            (select count(*) from marts.fct_usage_rated),
            (select sum(amount_input + amount_cached_input + amount_output + amount_thinking
                        - free_quota_discount - amount) from marts.fct_revenue_daily)
        """
    ).fetchall()[0]
    thinker = (600 * Decimal("0.0008") + 400 * Decimal("0.0002") + 100 * Decimal("0.002")
               + 200 * Decimal("0.008")) / 1000  # fmt: skip
    assert totals[0] == totals[1] == 80 * ONE_REQUEST + thinker
    assert totals[2] == totals[3] == 81
    assert totals[4] == 0


def test_allocation_by_api_key_and_token_type(marts: duckdb.DuckDBPyConnection) -> None:
    # The README's allocation example: a bill split by api key and token type.
    allocated = marts.execute(
        """
        unpivot (
            select api_key_id, sum(amount_input) as input, sum(amount_cached_input) as cached_input,
                sum(amount_output) as output, sum(amount_thinking) as thinking
            from marts.fct_revenue_daily
            where event_date between date '2026-03-01' and date '2026-03-31'
            group by api_key_id
        ) on input, cached_input, output, thinking into name token_type value amount
        order by api_key_id, token_type
        """
    ).fetchall()
    by_key: dict[str, Decimal] = {}
    for key, _, amount in allocated:
        by_key[key] = by_key.get(key, Decimal(0)) + amount
    in_march = marts.execute(
        "select api_key_id, sum(amount) from marts.fct_usage_rated "
        "where event_date between '2026-03-01' and '2026-03-31' group by 1"
    ).fetchall()
    assert by_key == dict(in_march)
    assert ("key-1", "thinking", 200 * Decimal("0.008") / 1000) in allocated


def test_run_rate_annualises_the_trailing_7_and_30_days(marts: duckdb.DuckDBPyConnection) -> None:
    rows = {
        (scope, scope_id): (as_of, revenue_7d, run_rate_7d, revenue_30d, run_rate_30d, arr)
        for scope, scope_id, as_of, revenue_7d, run_rate_7d, revenue_30d, run_rate_30d, arr
        in marts.execute(
            "select scope, scope_id, as_of_date, revenue_7d, run_rate_7d, revenue_30d, "
            "run_rate_30d, arr from marts.rpt_run_rate"
        ).fetchall()
    }  # fmt: skip
    as_of, revenue_7d, run_rate_7d, revenue_30d, run_rate_30d, arr = rows[("tenant", "t-b")]
    assert as_of == AS_OF.date()
    assert revenue_7d == 7 * ONE_REQUEST
    assert revenue_30d == 30 * ONE_REQUEST
    assert run_rate_7d == 7 * ONE_REQUEST * 365 / 7
    assert run_rate_30d == arr == 30 * ONE_REQUEST * 365 / 30
    total = rows[("total", "total")]
    assert total[3] == rows[("tenant", "t-a")][3] + rows[("tenant", "t-b")][3]
    assert rows[("product", "api")][3] == revenue_30d
    # Truncated, never a float: 12 decimal places at most.
    assert all(value.as_tuple().exponent >= -12 for value in total[1:])


def test_quarantine_and_unrated_summaries_count_by_reason(
    marts: duckdb.DuckDBPyConnection,
) -> None:
    assert marts.execute(
        "select reason, messages, example_detail from marts.rpt_quarantine_summary order by 1"
    ).fetchall() == [("malformed_json", 1, "bad"), ("missing_field", 2, "no id")]
    assert marts.execute(
        "select reason, model, events from marts.rpt_unrated_summary"
    ).fetchall() == [("unknown_model", "qwen-ultra", 1)]


@pytest.mark.integration
def test_tokenhub_rate_rates_and_builds_every_mart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    copy_shipped_books(tmp_path / "shipped")
    con = open_warehouse(settings)
    insert_events(con, [event(), event(model="qwen-ultra"), event(model="qwen-ultra")])
    con.close()
    env = {
        **os.environ,
        "TOKENHUB_HOME": str(settings.home),
        "TOKENHUB_BOOKS_DIR": str(tmp_path / "shipped"),
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "tokenhub"), "rate"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "rated:   1 event(s) (3 new this run)" in done.stdout
    assert "  unknown_model: 2" in done.stdout
    assert "re-rated: 0 event(s)" in done.stdout
    con = db.connect(settings.warehouse_path, read_only=True)
    tables = {row[0] for row in con.execute(
        "select table_name from information_schema.tables where table_schema = 'marts'"
    ).fetchall()}  # fmt: skip
    assert {"fct_usage_rated", "fct_revenue_daily", "rpt_run_rate"} <= tables
