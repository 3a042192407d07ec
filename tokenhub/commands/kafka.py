"""``tokenhub kafka up|down|status``: the local development broker."""

from __future__ import annotations

import argparse

from streams.broker import LocalKafka
from streams.settings import get_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "kafka",
        help="start, stop or inspect the local Kafka broker",
        description="A single-node KRaft broker fetched from Maven Central (no Docker).",
    )
    parser.add_argument(
        "action",
        choices=("up", "down", "status", "topics"),
        help="up/down/status: the local broker; topics: create the declared topics on "
        "whatever cluster TOKENHUB_BOOTSTRAP_SERVERS names",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    broker = LocalKafka(get_settings())
    if args.action == "up":
        already = broker.status().running
        status = broker.up()
        print(("Already up. " if already else "") + status.describe())
    elif args.action == "down":
        print("Kafka stopped." if broker.down() else "Kafka was not running.")
    elif args.action == "topics":
        broker.create_topics()
        print(
            f"Topics ready on {broker.settings.bootstrap}: "
            + ", ".join(t.name for t in broker.topics)
        )
    else:
        status = broker.status()
        print(status.describe())
        return 0 if status.running else 1
    return 0
