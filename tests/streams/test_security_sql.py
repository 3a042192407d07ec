"""``tokenhub sql`` is read-only: analysts' queries never change the warehouse.

A real warehouse file and a real published copy of the marts; the CLI runs as a child
process, as an analyst runs it. Writes fail with a one-line error and leave both files
byte-for-byte as they were.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.settings import Settings
from warehouse import db

pytestmark = pytest.mark.reliability

WRITES = (
    "insert into marts.fct_demo values (2, 'evil')",
    "update marts.fct_demo set amount = 0",
    "delete from marts.fct_demo",
    "drop table marts.fct_demo",
    "create table marts.sneaky as select 1 as one",
    "alter table marts.fct_demo add column extra integer",
)


@pytest.fixture
def warehouse_home(tmp_path: Path) -> Settings:
    """A home with a writer's warehouse file and a published copy, one mart each."""
    settings = Settings(home=tmp_path / "home")
    for path in (settings.warehouse_path, settings.published_path):
        with db.connect(path) as con:
            con.execute("create table marts.fct_demo (event_id integer, amount varchar)")
            con.execute("insert into marts.fct_demo values (1, '0.000800000000')")
            con.execute("checkpoint")
    return settings


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sql(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenhub.cli", "sql", *args],
        env={**os.environ, "TOKENHUB_HOME": str(settings.home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("statement", WRITES, ids=lambda s: s.split()[0])
@pytest.mark.parametrize("target", ["published", "warehouse"])
def test_tokenhub_sql_refuses_every_write(
    warehouse_home: Settings, statement: str, target: str
) -> None:
    before = {p: _digest(p) for p in (warehouse_home.warehouse_path, warehouse_home.published_path)}
    args = [statement]
    if target == "warehouse":
        args += ["--database", str(warehouse_home.warehouse_path)]
    result = _sql(warehouse_home, *args)
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "read-only" in result.stderr
    assert {p: _digest(p) for p in before} == before


def test_tokenhub_sql_reads(warehouse_home: Settings) -> None:
    # The refusals above are not a broken command: reads work.
    read = _sql(warehouse_home, "select count(*) as n from marts.fct_demo", "--format", "csv")
    assert read.returncode == 0 and read.stdout.splitlines() == ["n", "1"], read.stderr


def test_tokenhub_sql_cannot_write_the_warehouse_through_attach(warehouse_home: Settings) -> None:
    warehouse = warehouse_home.warehouse_path
    before = _digest(warehouse)
    result = _sql(
        warehouse_home,
        f"attach '{warehouse}' as writer (READ_WRITE); delete from writer.marts.fct_demo",
    )
    with db.connect(warehouse, read_only=True) as con:
        rows = con.execute("select count(*) from marts.fct_demo").fetchone()
    assert rows == (1,), "tokenhub sql deleted rows of the writer's warehouse"
    assert result.returncode != 0
    assert _digest(warehouse) == before
