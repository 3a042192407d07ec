"""``tokenhub land``: Kafka -> the warehouse's ``raw.*`` tables, exactly once."""

from __future__ import annotations

import argparse
import sys

from streams.settings import get_settings
from streams.topics import EVENTS


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from warehouse.loader import BATCH_SIZE

    parser = subparsers.add_parser(
        "land",
        help="land the events topic into DuckDB (raw.*), exactly once",
        description="Reads the events topic in large batches and writes valid events to "
        "raw.token_usage_events (first delivery of an event_id wins), repeats to "
        "raw.redeliveries and invalid messages to raw.quarantine, with the Kafka offsets "
        "in the same DuckDB transaction: a loader killed at any moment resumes without "
        "loss or duplicates. Without --follow it stops once caught up.",
    )
    parser.add_argument(
        "--follow", action="store_true",
        help="keep landing new events until Ctrl-C / SIGTERM (the batch in flight commits)",
    )  # fmt: skip
    parser.add_argument(
        "--max-batches", type=_positive_int, metavar="N", help="stop after N batches"
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, default=BATCH_SIZE, metavar="N",
        help=f"messages per batch and transaction (default {BATCH_SIZE:,})",
    )  # fmt: skip
    parser.add_argument("--topic", default=EVENTS.name, help=f"topic (default {EVENTS.name})")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tokenhub.cli import UserError
    from warehouse.loader import WarehouseWriteError, land

    settings = get_settings()
    if not args.quiet and args.follow:
        print(
            f"Landing {args.topic} into {settings.warehouse_path} until Ctrl-C ...",
            file=sys.stderr,
        )
    try:
        result = land(
            settings,
            follow=args.follow,
            max_batches=args.max_batches,
            topic=args.topic,
            progress=not args.quiet and sys.stderr.isatty(),
            batch_size=args.batch_size,
        )
    except WarehouseWriteError as error:
        raise UserError(str(error)) from None
    if not args.quiet:
        print(result.describe())
    return 0
