"""``tokenhub ui``: the Dagster webserver and daemon on localhost:3000.

Runs ``dagster dev`` against ``pipelines.definitions`` with ``DAGSTER_HOME`` under the
tokenhub home (``.tokenhub/dagster``: runs, event log, sensor cursors), so the UI shows the
runs of ``make demo`` and the daemon runs the sensors and automation on the local DuckDB
and Kafka.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ui",
        help="start the Dagster UI (webserver and daemon) on localhost:3000",
        description="The Dagster webserver and daemon against the local warehouse and Kafka: "
        "assets, partitions, checks, plots, sensors. Ctrl-C stops both.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="where the webserver binds")
    parser.add_argument("--port", type=int, default=3000, help="webserver port (default 3000)")
    parser.set_defaults(handler=run)


def _port_taken(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def dagster_environment(tokenhub_home: Path, dagster_home: Path) -> dict[str, str]:
    """The environment of the Dagster processes: absolute homes, local resources."""
    return {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "TOKENHUB_HOME": str(tokenhub_home.resolve()),
        "TOKENHUB_ENV": os.environ.get("TOKENHUB_ENV", "local"),
    }


def run(args: argparse.Namespace) -> int:
    from pipelines.instance import write_instance_config
    from pipelines.run import dagster_home
    from streams.settings import get_settings
    from tokenhub.cli import UserError

    settings = get_settings()
    if _port_taken(args.host, args.port):
        raise UserError(
            f"port {args.port} is already in use (another UI?): stop it or run "
            f"`tokenhub ui --port {args.port + 1}`"
        )
    home = dagster_home(settings)
    workspace = write_instance_config(home)
    if not settings.warehouse_path.exists():
        print("No warehouse yet: run `make demo` first (or let the sensors land events).")
    dagster = Path(sys.executable).parent / "dagster"
    command = [str(dagster), "dev", "-w", str(workspace), "-h", args.host, "-p", str(args.port)]
    print(f"Dagster UI on http://{args.host}:{args.port} (DAGSTER_HOME={home}); Ctrl-C stops it.")
    process = subprocess.Popen(command, env=dagster_environment(settings.home, home))
    # Ctrl-C reaches `dagster dev` through the terminal; a SIGTERM (a supervisor, `kill`)
    # reaches only this process: pass it on, so dagster dev stops its webserver, daemon and
    # code servers instead of outliving us.
    signal.signal(signal.SIGTERM, lambda signum, _frame: process.send_signal(signum))
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:
            continue  # dagster dev got the same Ctrl-C and is shutting down: wait for it
