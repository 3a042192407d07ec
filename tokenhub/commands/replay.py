"""``tokenhub replay FILE``: send a recorded JSONL stream to Kafka exactly as recorded."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streams.settings import get_settings
from streams.simulate import JsonlError, replay
from streams.topics import EVENTS
from tokenhub.commands.simulate import non_negative_float


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="send a JSONL stream file (from 'tokenhub simulate --out') to Kafka again",
        description="Sends every message of the file with the same key, the same bytes and "
        "in the same order, so a run can be reproduced exactly.",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="a JSONL stream file")
    parser.add_argument(
        "--rate", type=non_negative_float, default=0.0,
        help="messages per second (default 0: as fast as possible)",
    )  # fmt: skip
    parser.add_argument("--topic", default=EVENTS.name, help=f"topic (default {EVENTS.name})")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tokenhub.cli import UserError

    if not args.file.is_file():
        raise UserError(f"no such file: {args.file} (record one with 'tokenhub simulate --out')")
    try:
        summary = replay(
            args.file,
            get_settings(),
            rate=args.rate,
            topic=args.topic,
            progress=not args.quiet and sys.stderr.isatty(),
        )
    except JsonlError as error:
        raise UserError(str(error)) from None
    if not args.quiet:
        print(summary.describe())
    return 0
