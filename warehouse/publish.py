"""Publish the marts as a read-only file analysts query while the pipeline writes.

DuckDB lets one process write a database file, and while it does, no other process may open
that file, not even read-only. The landing loader (``tokenhub land --follow``) and the
Dagster runs hold the writer file for long stretches, so analysts query a copy instead:
:func:`publish` writes every table and view of schema ``marts`` into a new DuckDB file next
to ``settings.published_path`` and swaps it in with ``os.replace`` (atomic on POSIX). A
reader sees the old copy or the new one, never a half-written file; one that has the old copy
open keeps reading it until it reconnects.

Next to the marts the copy holds schema ``landing``, computed from ``raw.*`` at publication
(so it is there before any mart is built): ``landing.publication`` (one row: when the copy was
made and how much had landed by then) and ``landing.quarantine_by_reason``.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from streams.settings import Settings
from warehouse import db

#: The schemas copied into the published file.
PUBLISHED_SCHEMAS = ("marts",)
#: The landing summaries written into the published file: (table, select over ``raw.*``).
LANDING_SUMMARIES = (
    (
        "publication",
        """
        select
            current_timestamp as published_at,
            (select count(*) from raw.token_usage_events) as events_landed,
            (select count(*) from raw.redeliveries) as redeliveries,
            (select count(*) from raw.quarantine) as quarantined,
            (select max(landed_at) from raw.token_usage_events) as last_landed_at,
            (select max(occurred_at) from raw.token_usage_events) as newest_occurred_at
        """,
    ),
    (
        "quarantine_by_reason",
        """
        select kafka_topic, reason, count(*) as messages,
            min(landed_at) as first_landed_at, max(landed_at) as last_landed_at
        from raw.quarantine
        group by all
        order by messages desc, reason
        """,
    ),
)
_ALIAS = "tokenhub_publish"


def published_relations(
    con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...] = PUBLISHED_SCHEMAS
) -> list[tuple[str, str]]:
    """(schema, name) of every table and view to publish, whoever built it."""
    placeholders = ", ".join("?" for _ in schemas)
    rows = con.execute(
        f"""
        select table_schema, table_name from information_schema.tables
        where table_catalog = current_database() and table_schema in ({placeholders})
        order by 1, 2
        """,
        list(schemas),
    ).fetchall()
    return [(str(schema), str(name)) for schema, name in rows]


def publish(settings: Settings, con: duckdb.DuckDBPyConnection | None = None) -> Path:
    """Copy the marts of the writer's file into ``settings.published_path``, atomically.

    ``con`` is an open writer connection (the caller's); without it the warehouse file is
    opened here, which needs that no other process holds it. Returns the published path.
    """
    if con is None:
        if not settings.warehouse_path.exists():
            raise FileNotFoundError(
                f"No warehouse at {settings.warehouse_path}: run `make demo`, or "
                "`tokenhub land` then `tokenhub rate`, first."
            )
        with db.connect(settings.warehouse_path) as own:
            return publish(settings, own)
    target = Path(settings.published_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    for leftover in (temporary, temporary.with_name(temporary.name + ".wal")):
        leftover.unlink(missing_ok=True)  # from a publisher killed mid-copy
    relations = published_relations(con)
    # Imported here: the loader pulls in confluent-kafka, which publishing does not need.
    from warehouse.loader import ensure_raw_tables

    ensure_raw_tables(con)  # a warehouse with marts but nothing landed yet
    con.execute(f"attach '{temporary}' as {_ALIAS}")
    try:
        for schema in (*PUBLISHED_SCHEMAS, "landing"):
            con.execute(f"create schema {_ALIAS}.{schema}")
        for schema, name in relations:
            # Views become tables too: the copy must not depend on the writer's raw tables.
            con.execute(
                f'create table {_ALIAS}.{schema}."{name}" as select * from {schema}."{name}"'
            )
        for name, query in LANDING_SUMMARIES:
            con.execute(f"create table {_ALIAS}.landing.{name} as {query}")
        con.execute(f"checkpoint {_ALIAS}")
    finally:
        con.execute(f"detach {_ALIAS}")
    os.replace(temporary, target)
    return target
