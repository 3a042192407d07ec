"""SQL models as assets: one asset per file in ``warehouse/sql/{staging,marts}/``.

Nothing here lists models by name. At import time :func:`sql_assets` reads the model files
(through :func:`warehouse.db.load_models`, the one SQL runner), derives each asset's deps
from the relations its SQL names (``raw.x``, ``rating.x``, ``staging.x``, ``marts.x``) and
decides its partitioning from its columns: a model whose output has an ``event_date``
column is partitioned by event date, everything else (run-rates, monthly reports, swarms
spanning days) is rebuilt whole. A new SQL file is a new asset on the next reload.

Columns are read statically from DuckDB's own parse tree (``json_serialize_sql``),
following ``select *`` through CTEs and upstream models; a model whose columns cannot be
known that way (a ``*`` over a raw table) is rebuilt whole, which is always correct.

A partition (or a range of them, in one run: ``BackfillPolicy.single_run``) is replaced in
one transaction: delete the rows of those event dates, insert the model's rows for them.
This is correct because a row of such a model for date D is computed from upstream rows of
date D only: the convention of the marts (a model that mixes days, such as a trailing
run-rate, names its date column differently).
"""

import json
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AutomationCondition,
    BackfillPolicy,
    BetaWarning,
    MaterializeResult,
    MetadataValue,
    asset,
)

from pipelines.partitions import event_date_partitions
from pipelines.resources import WarehouseResource
from warehouse import db

# BackfillPolicy is beta in dagster 1.13; it is what makes a backfill one run per range.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*backfill_policy.*")

#: Every relation a model can read: the raw and rating tables and the other models.
RELATION = re.compile(r"\b(raw|rating|staging|marts)\.([a-z_][a-z0-9_]*)\b")
PARTITION_COLUMN = "event_date"

#: Mart automation: eager, but not held back by partitions that never had data (eager's
#: ``~any_deps_missing`` would block a whole-table mart downstream of daily partitions for
#: as long as one day since ``partitions_start`` has no usage).
MART_AUTOMATION = (
    AutomationCondition.eager()
    .without(~AutomationCondition.any_deps_missing())
    .with_label("eager (days without usage allowed)")
)

#: Extra metadata (tables, plots) for a relation: ``(con, plots folder) -> dict``.
Describe = Callable[[duckdb.DuckDBPyConnection, Path], Mapping[str, Any]]


def relation_key(relation: str) -> AssetKey:
    """``marts.fct_x`` -> ``AssetKey(["marts", "fct_x"])``: asset keys are relation names."""
    return AssetKey(relation.split("."))


@cache
def models() -> dict[str, db.Model]:
    """The staging and mart models, read once per process (a reload re-reads them)."""
    return db.load_models()


def upstream_relations(model: db.Model) -> set[str]:
    return {f"{schema}.{name}" for schema, name in RELATION.findall(model.sql)} - {model.relation}


# --- columns from the parse tree --------------------------------------------------------------


def _parse(sql: str) -> dict[str, Any]:
    tree = json.loads(
        duckdb.execute("select json_serialize_sql(?)", [sql.rstrip().rstrip(";")]).fetchall()[0][0]
    )
    if tree.get("error"):
        raise ValueError(tree.get("error_message", "cannot parse"))
    node: dict[str, Any] = tree["statements"][0]["node"]
    return node


def _ctes(node: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        entry["key"]: entry["value"]["query_node"]
        for entry in (node.get("cte_map") or {}).get("map", [])
    }


def _node_columns(node: dict[str, Any], ctes: dict[str, dict[str, Any]]) -> set[str] | None:
    ctes = {**ctes, **_ctes(node)}
    if node["type"] == "SET_OPERATION_NODE":
        first = node.get("left") or (node.get("children") or [None])[0]
        return _node_columns(first, ctes) if first else None
    if node["type"] != "SELECT_NODE":
        return None
    columns: set[str] = set()
    for item in node["select_list"]:
        if item.get("alias"):
            columns.add(item["alias"])
        elif item["class"] == "COLUMN_REF":
            columns.add(item["column_names"][-1])
        elif item["class"] == "STAR":
            starred = _table_columns(node["from_table"], ctes, item.get("relation_name") or None)
            if starred is None:
                return None
            excluded = {
                str(name[-1] if isinstance(name, list) else name).lower()
                for name in item.get("exclude_list") or []
            }
            columns |= {column for column in starred if column.lower() not in excluded}
        # An unnamed expression gets a generated name: never the partition column.
    return columns


def _table_columns(
    table: dict[str, Any], ctes: dict[str, dict[str, Any]], alias: str | None
) -> set[str] | None:
    kind = table.get("type")
    if kind == "JOIN":
        sides = [
            _table_columns(side, ctes, alias)
            for side in (table["left"], table["right"])
            if alias is None or _binds(side, alias)
        ]
        if any(side is None for side in sides):
            return None
        return set().union(*sides)  # type: ignore[arg-type]
    if kind == "SUBQUERY":
        return _node_columns(table["subquery"]["node"], ctes)
    if kind == "BASE_TABLE":
        schema, name = table.get("schema_name") or "", table["table_name"]
        if not schema and name in ctes:
            return _node_columns(ctes[name], {k: v for k, v in ctes.items() if k != name})
        relation = f"{schema}.{name}"
        if relation in models():
            columns = model_columns(relation)
            return set(columns) if columns is not None else None
    return None


def _binds(table: dict[str, Any], alias: str) -> bool:
    if table.get("type") == "JOIN":
        return _binds(table["left"], alias) or _binds(table["right"], alias)
    return alias in (table.get("alias"), table.get("table_name"))


@cache
def model_columns(relation: str) -> frozenset[str] | None:
    """The output columns of a model, or None when they cannot be known statically."""
    try:
        columns = _node_columns(_parse(models()[relation].sql), {})
    except (ValueError, KeyError, duckdb.Error):
        return None
    return frozenset(columns) if columns is not None else None


def is_partitioned(relation: str) -> bool:
    """Partitioned by event date: a mart whose output has an ``event_date`` column."""
    columns = model_columns(relation)
    return relation.startswith("marts.") and columns is not None and PARTITION_COLUMN in columns


# --- materialisation --------------------------------------------------------------------------


def replace_partitions(
    con: duckdb.DuckDBPyConnection,
    model: db.Model,
    event_dates: list[str],
    *,
    sql_dir: Path = db.SQL_DIR,
) -> bool:
    """Replace the rows of ``event_dates`` in ``model``'s table; False if rebuilt whole.

    When the table is missing or its columns differ from the model's (a changed SQL file),
    the whole table is rebuilt instead: always correct, only slower.
    """
    query = model.sql.rstrip().rstrip(";")
    wanted = [row[0] for row in con.execute(f"describe ({query})").fetchall()]
    existing = [
        row[0]
        for row in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [model.layer, model.name],
        ).fetchall()
    ]
    if existing != wanted:
        db.build(con, select=[model.relation], sql_dir=sql_dir)
        return False
    con.execute("begin transaction")
    try:
        con.execute(
            f"create temp table _dates as select unnest(?::date[]) as {PARTITION_COLUMN}",
            [event_dates],
        )
        con.execute(
            f"delete from {model.relation} where {PARTITION_COLUMN} in (select * from _dates)"
        )
        con.execute(
            f"insert into {model.relation} by name select * from ({query}) "
            f"where {PARTITION_COLUMN} in (select * from _dates)"
        )
        con.execute("drop table _dates")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return True


def markdown_table(rows: Iterable[Mapping[str, Any]] | Any, limit: int = 20) -> str:
    """A Markdown table of rows (dicts or a polars DataFrame), for metadata."""
    if hasattr(rows, "to_dicts"):
        rows = rows.to_dicts()
    rows = list(rows)[:limit]
    if not rows:
        return "_no rows_"
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(row[name]) for name in header) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        text = str(value)
    elif isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, Decimal):
        # Exact, without trailing zeros or exponents (DECIMAL(38, 12) zero prints as 0E-12).
        text = f"{value.normalize():,f}" if value else "0"
    else:
        text = str(value)
    return text.replace("|", "\\|")


def summarize(con: duckdb.DuckDBPyConnection, relation: str, where: str = "") -> dict[str, Any]:
    """Row count and column types of a relation (of some partitions when ``where`` is set)."""
    rows = con.execute(f"select count(*) from {relation} {where}").fetchall()[0][0]
    total = con.execute(f"select count(*) from {relation}").fetchall()[0][0]
    metadata: dict[str, Any] = {"dagster/row_count": MetadataValue.int(int(total))}
    if where:
        metadata["rows in these partitions"] = MetadataValue.int(int(rows))
    return metadata


def sql_assets(
    relations: Iterable[str],
    *,
    group_name: str,
    producers: Mapping[str, AssetKey],
    describe: Mapping[str, Describe] | None = None,
) -> list[AssetsDefinition]:
    """One asset per model relation; ``producers`` maps raw/rating tables to their asset."""
    return [
        _sql_asset(models()[relation], group_name, producers, describe or {})
        for relation in relations
    ]


def upstream_key(relation: str, producers: Mapping[str, AssetKey]) -> AssetKey | None:
    """The asset that writes ``relation``: a model, or the producer of a raw/rating table."""
    if relation in models():
        return relation_key(relation)
    if relation in producers:
        return producers[relation]
    schema = relation.split(".")[0]
    return producers.get(f"{schema}.*")


def _sql_asset(
    model: db.Model,
    group_name: str,
    producers: Mapping[str, AssetKey],
    describe: Mapping[str, Describe],
) -> AssetsDefinition:
    deps = sorted(
        {
            key
            for relation in upstream_relations(model)
            if (key := upstream_key(relation, producers)) is not None
        },
        key=lambda key: key.to_user_string(),
    )
    partitioned = is_partitioned(model.relation)
    kind = db.LAYERS[model.layer]
    first_comment = next(
        (line.lstrip("- ").strip() for line in model.sql.splitlines() if line.startswith("--")),
        "",
    )
    description = (
        f"{first_comment}\n\n`{model.relation}` ({kind}), built from "
        f"`warehouse/sql/{model.layer}/{model.name}.sql`."
    )

    @asset(
        key=relation_key(model.relation),
        deps=[AssetDep(key) for key in deps],
        group_name=group_name,
        description=description,
        partitions_def=event_date_partitions if partitioned else None,
        # Single run for every SQL asset: a range backfill (UI, CLI) is one run, and a range
        # may include the whole-table marts downstream.
        backfill_policy=BackfillPolicy.single_run(),
        automation_condition=MART_AUTOMATION,
        kinds={"duckdb", "sql"},
        metadata={
            "relation": model.relation,
            "sql": MetadataValue.md(f"```sql\n{model.sql.strip()}\n```"),
            "partitioned by": PARTITION_COLUMN if partitioned else "(whole table)",
        },
    )
    def _materialize(
        context: AssetExecutionContext, warehouse: WarehouseResource
    ) -> MaterializeResult:
        with warehouse.connect() as con:
            dates: list[str] | None = None
            metadata: dict[str, Any] = {}
            if partitioned:
                dates = list(context.partition_keys)
                replaced = replace_partitions(con, model, dates)
                where = f"where {PARTITION_COLUMN} in ({', '.join(repr(d) for d in dates)})"
                metadata["written as"] = (
                    f"{len(dates)} event date(s) replaced"
                    if replaced
                    else "whole table rebuilt (new table or changed columns)"
                )
                context.log.info(f"{model.relation}: {metadata['written as']}")
            else:
                db.build(con, select=[model.relation])
                where = ""
            if kind == "table":
                metadata |= summarize(con, model.relation, where)
            if model.relation in describe:
                metadata |= describe[model.relation](con, Path(warehouse.home) / "plots")
        return MaterializeResult(metadata=metadata)

    return _materialize
