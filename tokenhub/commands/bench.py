"""``tokenhub bench``: the benchmark suite, each figure beside a same-run baseline.

Writes ``bench/results/<date>.json``, ``.md`` (the table) and ``.png`` (the plot); see
``bench/README.md`` for the method and the targets.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tokenhub.commands.simulate import positive_int


def _sizes(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated positive whole numbers (``1000000,10000000``)."""
    try:
        values = tuple(int(part.replace("_", "")) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list like 1000000,10000000") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every size must be at least 1")
    return values


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bench import BENCHMARKS  # the package alone: `tokenhub --help` stays fast

    parser = subparsers.add_parser(
        "bench",
        help="run the benchmarks (figure vs same-run baseline, targets) and write the results",
        description="Runs each benchmark against a real broker it starts on free ports, beside "
        "its baseline, and writes bench/results/<date>.json, .md and .png. Sizes default to "
        "the full suite; --quick runs small sizes in a few minutes.",
    )
    parser.add_argument(
        "--only", action="append", choices=BENCHMARKS, metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--huge", action="store_true",
        help="also build the marts from 100M events generated in DuckDB (needs ~30 GB and time)",
    )  # fmt: skip
    parser.add_argument("--producer-events", type=positive_int, metavar="N")
    parser.add_argument("--worker-events", type=positive_int, metavar="N")
    parser.add_argument("--latency-rates", type=_sizes, metavar="R1,R2,...")
    parser.add_argument("--latency-seconds", type=positive_int, metavar="S")
    parser.add_argument("--landing-events", type=positive_int, metavar="N")
    parser.add_argument("--mart-sizes", type=_sizes, metavar="N1,N2,...")
    parser.add_argument("--memory-events", type=positive_int, metavar="N")
    parser.add_argument("--rounds", type=positive_int, help="rounds of figure and baseline")
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="results folder (default bench/results)"
    )
    parser.add_argument(
        "--workdir", type=Path, metavar="DIR", help="keep scratch files here (default: a temp dir)"
    )
    parser.set_defaults(handler=run)


_SIZE_OPTIONS = (
    "producer_events", "worker_events", "latency_rates", "latency_seconds", "landing_events",
    "mart_sizes", "memory_events", "rounds", "seed",
)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from bench.common import BenchOptions
    from bench.run import RESULTS_DIR, markdown_table, run_suite

    sizes = {name: getattr(args, name) for name in _SIZE_OPTIONS if getattr(args, name) is not None}
    if args.latency_seconds:
        sizes["latency_seconds"] = float(args.latency_seconds)
    options = (
        BenchOptions.quick_sizes(**sizes, huge=args.huge, workdir=args.workdir)
        if args.quick
        else BenchOptions(**sizes, huge=args.huge, workdir=args.workdir)
    )
    report = run_suite(options, only=args.only, write_to=args.out or RESULTS_DIR)
    print(markdown_table(report))
    return 1 if any(problem.startswith("failed") for problem in report.problems.values()) else 0
