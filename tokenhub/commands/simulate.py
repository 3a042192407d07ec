"""``tokenhub simulate``: realistic, seeded token usage traffic into Kafka and/or a file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streams.settings import get_settings
from streams.simulate import FaultRates
from streams.simulate import run as run_simulation
from streams.topics import EVENTS


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number >= 0")
    return value


def probability(text: str) -> float:
    """argparse type: a share between 0 and 1."""
    value = non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1 (e.g. 0.02)")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="send realistic simulated token usage events to Kafka (and/or a JSONL file)",
        description="A seeded world of tenants, products, humans and agent swarms sending "
        "token usage events, with optional fault injection. Fault rates are shares of "
        "messages (e.g. --duplicates 0.02).",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--rate", type=non_negative_float, default=0.0,
        help="messages per second (default 0: as fast as possible)",
    )  # fmt: skip
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument(
        "--events", type=non_negative_int, help="number of messages to send (default 10000)"
    )
    amount.add_argument(
        "--duration", type=non_negative_float, metavar="SECONDS", help="send for this long"
    )
    parser.add_argument(
        "--tenants", type=positive_int, default=50, help="tenants in the world (default 50)"
    )
    parser.add_argument(
        "--days", type=non_negative_float, default=0.0,
        help="spread event times over the last D days (daily curve) instead of stamping now",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, metavar="FILE.jsonl", help="record the stream here")
    parser.add_argument(
        "--no-kafka", action="store_true", help="do not send to Kafka (needs --out)"
    )
    parser.add_argument("--topic", default=EVENTS.name, help=f"topic (default {EVENTS.name})")
    faults = parser.add_argument_group("fault injection (shares of messages, 0..1)")
    faults.add_argument("--duplicates", type=probability, default=0.0,
                        help="retried duplicates (same event_id), some much later")  # fmt: skip
    faults.add_argument("--malformed", type=probability, default=0.0, help="broken JSON")
    faults.add_argument("--invalid", type=probability, default=0.0,
                        help="schema-invalid events of varied kinds")  # fmt: skip
    faults.add_argument("--late", type=probability, default=0.0,
                        help="events hours or days old")  # fmt: skip
    faults.add_argument("--out-of-order", type=probability, default=0.0,
                        help="events delivered up to a few hundred messages late")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tokenhub.cli import UserError

    if args.no_kafka and args.out is None:
        raise UserError("--no-kafka needs --out FILE.jsonl: otherwise nothing is sent anywhere")
    if args.days > 0 and args.duration is not None:
        raise UserError("--days spreads a known number of events: use --events N, not --duration")
    try:
        faults = FaultRates(
            duplicates=args.duplicates,
            malformed=args.malformed,
            invalid=args.invalid,
            late=args.late,
            out_of_order=args.out_of_order,
        )
    except ValueError as error:
        raise UserError(str(error)) from None
    events = args.events if args.events is not None or args.duration is not None else 10_000
    summary = run_simulation(
        get_settings(),
        seed=args.seed,
        events=events,
        duration=args.duration,
        rate=args.rate,
        tenants=args.tenants,
        days=args.days,
        faults=faults,
        out=args.out,
        kafka=not args.no_kafka,
        topic=args.topic,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    if not args.quiet:
        print(summary.describe())
    return 0
