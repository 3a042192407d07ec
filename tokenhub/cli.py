"""``tokenhub``: the single entry point (run ``tokenhub --help``)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from tokenhub import __version__
from tokenhub.commands import COMMANDS


class UserError(Exception):
    """A mistake the user can fix; printed as one line, never as a traceback."""


def _user_error_types() -> tuple[type[BaseException], ...]:
    # Imported lazily so ``tokenhub --help`` stays fast.
    from confluent_kafka import KafkaException

    from streams.broker import BrokerError
    from streams.events import InvalidEvent
    from streams.producer import DeliveryFailed
    from warehouse.pricing.cost_books import CostBookError

    return (
        UserError,
        BrokerError,
        InvalidEvent,
        DeliveryFailed,
        KafkaException,
        FileNotFoundError,
        CostBookError,
    )


class _OneLineErrorParser(argparse.ArgumentParser):
    """Argument mistakes as one line that says where to look (not the whole usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrorParser(
        prog="tokenhub",
        description="Meter, rate and explain a token economy (Kafka, Faust, Dagster, DuckDB).",
    )
    parser.add_argument("--version", action="version", version=f"tokenhub {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"tokenhub.commands.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"tokenhub.commands.{name}":
                continue  # not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if isinstance(error, _user_error_types()):
            print(f"tokenhub {args.command}: error: {error}", file=sys.stderr)
            return 2
        raise
    return code


if __name__ == "__main__":
    # Run the imported module's main: under ``python -m`` this file is ``__main__``, whose
    # UserError is not the ``tokenhub.cli.UserError`` the commands raise.
    sys.exit(importlib.import_module("tokenhub.cli").main())
