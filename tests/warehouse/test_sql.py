"""Analysts' SQL: the published marts file and ``tokenhub sql``."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from streams.app_runner import settings_env
from streams.settings import Settings, get_settings
from tests.warehouse.test_loader import wait_until_writing
from tokenhub.cli import main
from warehouse import db
from warehouse.loader import ensure_raw_tables
from warehouse.publish import publish

REPO = Path(__file__).resolve().parents[2]
_SUM_SCRIPT = (
    "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
    "print(con.execute('select sum(amount) from marts.fct_revenue_daily').fetchone()[0])"
)


def _build_marts(settings: Settings, amount: str = "12.345678901234") -> None:
    with db.connect(settings.warehouse_path) as con:
        con.execute(
            "create or replace table marts.fct_revenue_daily as "
            f"select 'tenant-' || range as tenant_id, {amount}::decimal(38, 12) as amount "
            "from range(3)"
        )
        con.execute(
            "create or replace view marts.rpt_top as "
            "select * from marts.fct_revenue_daily order by tenant_id limit 1"
        )
        con.execute("create or replace table raw.secret as select 1 as x")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("TOKENHUB_HOME", str(tmp_path))
    get_settings.cache_clear()
    yield Settings()
    get_settings.cache_clear()


def _sql(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["sql", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_publish_copies_the_marts_only_and_swaps_atomically(home: Settings) -> None:
    _build_marts(home)
    published = publish(home)
    assert published == home.published_path
    reader = duckdb.connect(str(published), read_only=True)
    tables = reader.execute(
        "select table_schema || '.' || table_name from information_schema.tables order by 1"
    ).fetchall()
    assert tables == [
        ("landing.publication",),
        ("landing.quarantine_by_reason",),
        ("marts.fct_revenue_daily",),
        ("marts.rpt_top",),
    ]

    _build_marts(home, amount="1")
    publish(home)
    # A reader that had the old copy open keeps reading it; a new one sees the new copy.
    assert reader.execute("select sum(amount) from marts.fct_revenue_daily").fetchone() == (
        Decimal("37.037036703702"),
    )
    # (Another process: this one's DuckDB would hand back the instance it has open.)
    fresh = subprocess.run(
        [sys.executable, "-c", _SUM_SCRIPT, str(published)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert fresh.stdout.strip() == "3.000000000000"
    reader.close()
    assert sorted(p.name for p in published.parent.iterdir()) == [
        "published.duckdb",
        "tokenhub.duckdb",
    ]


def test_publish_summarises_landing_even_before_any_mart(home: Settings) -> None:
    with db.connect(home.warehouse_path) as con:
        ensure_raw_tables(con)
        con.execute(
            "insert into raw.quarantine (kafka_topic, reason, payload, landed_at) "
            "select 'events', reason, 'x'::blob, now() "
            "from (values ('malformed_json'), ('malformed_json'), ('missing_field')) as t(reason)"
        )
        con.execute("insert into raw.redeliveries (event_id) values ('e-1')")

    with duckdb.connect(str(publish(home)), read_only=True) as reader:
        by_reason = reader.execute(
            "select reason, messages from landing.quarantine_by_reason"
        ).fetchall()
        publication = reader.execute(
            "select events_landed, redeliveries, quarantined, published_at is not null "
            "from landing.publication"
        ).fetchall()
    assert by_reason == [("malformed_json", 2), ("missing_field", 1)]
    assert publication == [(0, 1, 3, True)]


def test_sql_prints_each_format(
    home: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _build_marts(home)
    publish(home)
    query = "select * from marts.fct_revenue_daily order by tenant_id"

    code, out, _ = _sql(capsys, query)
    assert code == 0 and "tenant-2" in out and "12.345678901234" in out

    code, out, _ = _sql(capsys, query, "--format", "csv")
    assert list(csv.reader(io.StringIO(out)))[:2] == [
        ["tenant_id", "amount"],
        ["tenant-0", "12.345678901234"],
    ]

    code, out, _ = _sql(capsys, query, "--format", "json")
    rows = json.loads(out, parse_float=Decimal)
    assert rows[0] == {"tenant_id": "tenant-0", "amount": Decimal("12.345678901234")}
    assert len(rows) == 3

    target = tmp_path / "out.parquet"
    code, _, err = _sql(capsys, query, "--format", "parquet")
    assert code == 2 and "--output" in err
    code, _, _ = _sql(capsys, query, "--format", "parquet", "--output", str(target))
    assert code == 0 and pq.read_table(target).num_rows == 3


def test_sql_refuses_writes_and_reports_errors_in_one_line(
    home: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    _build_marts(home)
    publish(home)
    for statement in (
        "drop table marts.fct_revenue_daily",
        "insert into marts.rpt_top values ('t', 1)",
    ):
        code, _, err = _sql(capsys, statement)
        assert code == 2 and "read-only" in err and err.count("\n") == 1
    code, _, err = _sql(capsys, "select * from marts.nope")
    assert code == 2 and "nope" in err and err.count("\n") == 1
    code, out, _ = _sql(
        capsys, "select count(*) as n from marts.fct_revenue_daily", "--format", "csv"
    )
    assert out.splitlines() == ["n", "3"]


def test_sql_without_a_warehouse_says_what_to_run(
    home: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _sql(capsys, "select 1")
    assert code == 2 and "make demo" in err and "tokenhub land" in err
    assert err.count("\n") == 1


def test_sql_falls_back_to_the_writer_file(
    home: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    _build_marts(home)  # built, never published
    code, out, _ = _sql(capsys, "select count(*) as n from raw.secret", "--format", "csv")
    assert code == 0 and out.splitlines() == ["n", "1"]


@pytest.mark.integration
def test_analysts_query_the_published_marts_while_landing_holds_the_writer(
    tmp_home: Settings,
    unique_topic: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _build_marts(tmp_home)
    publish(tmp_home)
    env = {**os.environ, **settings_env(tmp_home)}
    log = tmp_path / "loader.log"
    landing = subprocess.Popen(
        [sys.executable, "-m", "tokenhub.cli", "land", "--follow", "--topic", unique_topic],
        env=env,
        cwd=REPO,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_writing(landing, tmp_home.warehouse_path, log)

        monkeypatch.setenv("TOKENHUB_HOME", str(tmp_home.home))
        get_settings.cache_clear()
        code, out, _ = _sql(
            capsys, "select count(*) as n from marts.fct_revenue_daily", "--format", "csv"
        )
        assert code == 0 and out.splitlines() == ["n", "3"]
        code, _, err = _sql(capsys, "select 1", "--database", str(tmp_home.warehouse_path))
        assert code == 2 and "published" in err and err.count("\n") == 1
    finally:
        landing.terminate()
        assert landing.wait(timeout=30) == 0, log.read_text()[-2000:]
        get_settings.cache_clear()
