"""SQL models as assets: columns, partitioning, deps and partition replacement."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines import sql_models
from pipelines.sql_models import _node_columns, _parse, markdown_table, replace_partitions
from warehouse import db


def columns(sql: str) -> set[str] | None:
    return _node_columns(_parse(sql), {})


def test_columns_follow_star_through_ctes_and_joins() -> None:
    sql = """
        with a as (select 1 as event_date, 2 as x), b as (select 3 as y)
        select a.*, b.y as renamed from a join b on true
    """
    assert columns(sql) == {"event_date", "x", "renamed"}
    assert columns(
        "with f as (select 1 as x, 2 as event_date) select * exclude (event_date) from f"
    ) == {"x"}
    assert columns("select * from raw.token_usage_events") is None  # unknown: rebuilt whole


def test_a_mart_with_an_event_date_is_partitioned_and_a_monthly_one_is_not() -> None:
    partitioned = {r for r in sql_models.models() if sql_models.is_partitioned(r)}
    # Marts with one row per event date; the segment P&L mixes days into months.
    assert {"marts.fct_layer_margin", "marts.rpt_layer_margin_daily"} <= partitioned
    assert "marts.rpt_segment_pnl" not in partitioned
    assert not any(r.startswith("staging.") for r in partitioned)


def test_every_sql_file_is_an_asset_with_deps_from_its_sql() -> None:
    from pipelines.definitions import defs

    graph = defs.get_repository_def().asset_graph
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    files = {f"{path.parent.name}/{path.stem}" for path in (db.SQL_DIR).glob("*/*.sql")}
    assert files <= keys
    for relation, model in sql_models.models().items():
        node = graph.get(sql_models.relation_key(relation))
        parents = {key.to_user_string() for key in node.parent_keys}
        for upstream in sql_models.upstream_relations(model):
            if upstream in sql_models.models():
                assert upstream.replace(".", "/") in parents, (relation, upstream)
        if sql_models.is_partitioned(relation):
            assert node.partitions_def is not None


TOY_SQL = "select event_date, tenant, sum(amount) as amount from raw.usage group by all"


def _toy_model(sql_dir: Path) -> db.Model:
    (sql_dir / "marts").mkdir(parents=True, exist_ok=True)
    (sql_dir / "staging").mkdir(exist_ok=True)
    (sql_dir / "marts" / "toy_daily.sql").write_text(TOY_SQL)
    return db.load_models(sql_dir)["marts.toy_daily"]


@settings(max_examples=25, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from("abc"), st.integers(-50, 50)), max_size=40
    ),
    changed=st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from("abc"), st.integers(-50, 50)), max_size=10
    ),
)
def test_replacing_touched_partitions_equals_a_full_rebuild(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[int, str, int]],
    changed: list[tuple[int, str, int]],
) -> None:
    path = tmp_path_factory.mktemp("toy") / "w.duckdb"
    con = db.connect(path)
    start = date(2026, 3, 1)
    con.execute("create table raw.usage (event_date date, tenant varchar, amount decimal(38, 12))")
    insert = "insert into raw.usage values (?, ?, ?)"
    for day, tenant, amount in rows:
        con.execute(insert, [start + timedelta(days=day), tenant, amount])
    model = _toy_model(path.parent / "sql")
    con.execute(f"create table marts.toy_daily as {model.sql}")
    for day, tenant, amount in changed:  # late events
        con.execute(insert, [start + timedelta(days=day), tenant, amount])
    touched = sorted({str(start + timedelta(days=day)) for day, _, _ in changed})
    replace_partitions(con, model, touched)
    got = con.execute("select * from marts.toy_daily order by all").fetchall()
    expected = con.execute(f"select * from ({model.sql}) order by all").fetchall()
    con.close()
    assert got == expected


def test_a_changed_model_schema_rebuilds_the_whole_table(tmp_path: Path) -> None:
    con = db.connect(tmp_path / "w.duckdb")
    con.execute(
        "create table raw.usage as select date '2026-03-01' as event_date, 'a' as tenant, 1.5::decimal(38, 12) as amount"
    )
    con.execute("create table marts.toy_daily as select event_date from raw.usage")
    replace_partitions(con, _toy_model(tmp_path / "sql"), ["2026-03-01"], sql_dir=tmp_path / "sql")
    assert con.execute("select tenant, amount from marts.toy_daily").fetchall() == [("a", 1.5)]


def test_markdown_table_escapes_pipes_and_limits_rows() -> None:
    table = markdown_table([{"a": "x|y", "b": 1234}, {"a": None, "b": 2}], limit=1)
    assert table.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 1,234 |"]
    assert markdown_table([]) == "_no rows_"
    money = markdown_table([{"amount": Decimal("0E-12"), "other": Decimal("1234.500000000000")}])
    assert money.splitlines()[-1] == "| 0 | 1,234.5 |"
    with duckdb.connect() as con:
        assert "| 1 |" in markdown_table(con.sql("select 1 as n").pl())
