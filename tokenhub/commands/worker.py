"""``tokenhub worker [--web-host H] [--web-port N]``: run one live Faust worker (``streams.app``)."""

from __future__ import annotations

import argparse
import os


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run a live worker: validate, de-duplicate, rate, aggregate, alert, serve views",
        description="One Faust worker of the live pipeline. Start several (each with its own "
        "--web-port) to share the partitions of token-usage.events.v1.",
    )
    parser.add_argument(
        "--web-host",
        help="address the HTTP views bind to (default TOKENHUB_WEB_HOST, 127.0.0.1; "
        "0.0.0.0 in a container)",
    )
    parser.add_argument(
        "--web-port", type=int, help="port of the HTTP views (default TOKENHUB_WEB_PORT, 6066)"
    )
    parser.add_argument("--loglevel", default="info", help="worker log level (default info)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # The app object reads the settings when imported, so set them first.
    if args.web_host is not None:
        os.environ["TOKENHUB_WEB_HOST"] = args.web_host
    if args.web_port is not None:
        os.environ["TOKENHUB_WEB_PORT"] = str(args.web_port)
    from streams.app_runner import run_worker

    return run_worker(loglevel=args.loglevel)
