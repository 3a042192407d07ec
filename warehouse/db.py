"""The one way tokenhub talks to DuckDB: connections and the SQL model runner.

SQL models live in ``warehouse/sql/<layer>/<name>.sql``, one ``select`` each (dbt style).
:func:`build` turns every staging model into a view ``staging.<name>`` and every mart into
a table ``marts.<name>``, in dependency order: a model depends on the models it names as
``staging.x`` or ``marts.x``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from graphlib import TopologicalSorter
from pathlib import Path

import duckdb

SQL_DIR = Path(__file__).parent / "sql"
#: Layers in build order, and how each is materialised.
LAYERS: dict[str, str] = {"staging": "view", "marts": "table"}
SCHEMAS = ("raw", "rating", "staging", "marts")

_REFERENCE = re.compile(r"\b(staging|marts)\.([a-z_][a-z0-9_]*)\b")


def connect(
    path: Path | str, *, read_only: bool = False, memory_limit: str | None = None
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file (created with its schemas if new).

    DuckDB may use ``memory_limit`` (default ``TOKENHUB_DUCKDB_MEMORY_LIMIT``; unset, DuckDB's
    own default of 80% of RAM) and spills what does not fit to ``<file>.tmp`` next to the
    file. Not every operator spills: 1.5 GB made ``tokenhub rate`` run out of memory at 1M
    events, so the limit is the operator's choice, not a default.
    """
    from streams.settings import get_settings

    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.exists():
        raise FileNotFoundError(
            f"No warehouse at {path}: run `tokenhub land` (or `make demo`) first."
        )
    limit = memory_limit or get_settings().duckdb_memory_limit
    con = duckdb.connect(
        str(path), read_only=read_only, config={"memory_limit": limit} if limit else {}
    )
    if not read_only:
        for schema in SCHEMAS:
            con.execute(f"create schema if not exists {schema}")
    return con


@dataclass(frozen=True)
class Model:
    """One SQL model file."""

    layer: str
    name: str
    sql: str

    @property
    def relation(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def depends_on(self) -> set[str]:
        return {f"{layer}.{name}" for layer, name in _REFERENCE.findall(self.sql)} - {self.relation}


def load_models(sql_dir: Path = SQL_DIR, layers: Iterable[str] = LAYERS) -> dict[str, Model]:
    """Every model file under ``sql_dir``, keyed by relation name (``marts.fct_x``)."""
    models = {}
    for layer in layers:
        for file in sorted((sql_dir / layer).glob("*.sql")):
            model = Model(layer, file.stem, file.read_text())
            models[model.relation] = model
    return models


def build_order(models: dict[str, Model]) -> list[Model]:
    """Models sorted so each comes after the models it reads."""
    graph = {name: model.depends_on & models.keys() for name, model in models.items()}
    return [models[name] for name in TopologicalSorter(graph).static_order()]


def build(
    con: duckdb.DuckDBPyConnection,
    *,
    select: Iterable[str] | None = None,
    sql_dir: Path = SQL_DIR,
) -> list[str]:
    """(Re)build models in dependency order; ``select`` limits it to some relations.

    Runs in one transaction: readers see either the old marts or the new ones.
    """
    models = load_models(sql_dir)
    wanted = set(select) if select is not None else set(models)
    unknown = wanted - models.keys()
    if unknown:
        raise KeyError(
            f"Unknown model(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(models))}"
        )
    built = []
    con.execute("begin transaction")
    try:
        for model in build_order(models):
            if model.relation not in wanted:
                continue
            kind = LAYERS[model.layer]
            con.execute(
                f"create or replace {kind} {model.relation} as\n{model.sql.rstrip().rstrip(';')}"
            )
            built.append(model.relation)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return built
