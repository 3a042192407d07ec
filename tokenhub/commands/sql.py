"""``tokenhub sql "select ..."``: query the warehouse read-only (the published marts)."""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import duckdb

from streams.settings import Settings, get_settings

FORMATS = ("table", "csv", "json", "parquet")
_BATCH_ROWS = 10_000


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sql",
        help="run a read-only SQL query on the warehouse (the published marts)",
        description="Opens the published copy of the marts read-only (falls back to the "
        "writer's file, read-only, when nothing is published yet) and prints the result. "
        'Example: tokenhub sql "select * from marts.rpt_run_rate limit 10"',
    )
    parser.add_argument("query", help="one SQL statement (reads only)")
    parser.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default table)"
    )
    parser.add_argument(
        "--output", type=Path, metavar="FILE",
        help="write to FILE instead of the terminal (required for parquet)",
    )  # fmt: skip
    parser.add_argument(
        "--database", type=Path, metavar="PATH",
        help="a DuckDB file to query (default: the published marts, else the warehouse)",
    )  # fmt: skip
    parser.add_argument(
        "--max-rows", type=int, default=40, metavar="N",
        help="rows shown in table format (default 40; csv/json/parquet write all)",
    )  # fmt: skip
    parser.set_defaults(handler=run)


def database_path(settings: Settings, explicit: Path | None = None) -> Path:
    """The file to query: ``explicit``, else the published marts, else the writer's file."""
    from tokenhub.cli import UserError

    if explicit is not None:
        if not explicit.is_file():
            raise UserError(f"no DuckDB file at {explicit}")
        return explicit
    for candidate in (settings.published_path, settings.warehouse_path):
        if candidate.is_file():
            return candidate
    raise UserError(
        f"no warehouse yet (looked for {settings.published_path} and "
        f"{settings.warehouse_path}): run `make demo`, or `tokenhub land` then `tokenhub rate`"
    )


def _one_line(error: duckdb.Error) -> str:
    return " ".join(str(error).split())


def connect_read_only(path: Path, *, output: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection that can touch no other file, or a one-line error saying why
    there is none.

    ``read_only`` alone would still let a query ``attach`` the writer's warehouse read-write,
    or read and write any file; external access is switched off and the configuration locked
    so a query cannot switch it back on. ``output`` (a parquet file to write) is the one path
    allowed.
    """
    from tokenhub.cli import UserError

    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as error:
        raise UserError(
            f"cannot open {path} ({_one_line(error)}); a process writing it (tokenhub land "
            "--follow, a Dagster run) holds it: query the published marts instead, refreshed "
            "by `make demo` or the Dagster publish step"
        ) from None
    if output is not None:
        con.execute("set allowed_paths = ?", [[str(output.resolve())]])
    con.execute("set enable_external_access = false")
    con.execute("set lock_configuration = true")
    return con


def _rows(relation: duckdb.DuckDBPyRelation) -> Iterator[tuple[Any, ...]]:
    """The result streamed in Arrow batches (a result may be larger than memory)."""
    for batch in relation.to_arrow_reader(_BATCH_ROWS):
        columns = [column.to_pylist() for column in batch.columns]
        yield from zip(*columns, strict=True)


def _write_csv(relation: duckdb.DuckDBPyRelation, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(relation.columns)
    writer.writerows(_rows(relation))


def _write_json(relation: duckdb.DuckDBPyRelation, out: TextIO) -> None:
    # DuckDB renders each row: decimals stay exact numbers, timestamps RFC 3339 strings.
    rows = relation.query("result", "select to_json(result) from result")
    out.write("[")
    first = True
    assert rows is not None  # a select over a select always has a result
    for (row,) in _rows(rows):
        out.write(("\n  " if first else ",\n  ") + str(row))
        first = False
    out.write("\n]\n" if not first else "]\n")


def run(args: argparse.Namespace) -> int:
    from tokenhub.cli import UserError

    if args.format == "parquet" and args.output is None:
        raise UserError("--format parquet writes a file: give --output FILE.parquet")
    path = database_path(get_settings(), args.database)
    with connect_read_only(path, output=args.output) as con:
        try:
            relation = con.sql(args.query)
            if relation is None:  # a statement without a result (e.g. SET)
                return 0
            if args.format == "parquet":
                relation.write_parquet(str(args.output.resolve()))
                return 0
            out: TextIO = args.output.open("w", newline="") if args.output else sys.stdout
            try:
                if args.format == "csv":
                    _write_csv(relation, out)
                elif args.format == "json":
                    _write_json(relation, out)
                elif args.output:
                    out.write(str(relation))
                else:
                    relation.show(
                        max_rows=args.max_rows, max_width=shutil.get_terminal_size().columns
                    )
            finally:
                if args.output:
                    out.close()
        except duckdb.Error as error:
            raise UserError(_one_line(error)) from None
    return 0
