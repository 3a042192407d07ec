"""``tokenhub demo``: the whole pipeline on this machine, end to end, in one command.

Broker up, a Faust worker, simulated traffic (history over several days, then live traffic,
with faults injected), live figures from the worker's views, then the warehouse through
Dagster (landing, rating, marts, checks), the headline figures, and where to look next.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from streams.broker import LocalKafka
from streams.settings import Settings, get_settings
from tokenhub.cli import UserError

_HISTORY_FAULTS = {"duplicates": 0.02, "malformed": 0.002, "invalid": 0.003, "late": 0.01}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline end to end on a local broker and print the results",
        description=__doc__,
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="simulator seed (default: a new one each run, printed). Event ids come from the "
        "seed: a second run with the same seed re-sends the first run's ids, which the "
        "warehouse (and the worker, within its 7-day horizon) rightly treat as retries",
    )
    parser.add_argument("--events", type=_positive, default=120_000, help="history events")
    parser.add_argument("--live-events", type=_positive, default=20_000)
    parser.add_argument("--days", type=_positive, default=14, help="days of history")
    parser.add_argument("--tenants", type=_positive, default=120)
    parser.set_defaults(handler=run)


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def _step(number: int, title: str) -> None:
    print(f"\n== {number}/6 {title}", flush=True)


def run(args: argparse.Namespace) -> int:
    from streams import app_runner, views_client
    from streams.simulate import FaultRates
    from streams.simulate import run as simulate

    settings = get_settings()
    started = time.monotonic()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)

    _step(1, "Kafka")
    print(LocalKafka(settings).up().describe())

    _step(2, "Faust worker")
    worker = app_runner.start_worker(settings)
    print(f"worker serving {worker.base_url} (log: {worker.log_path})")
    try:
        _step(3, f"Simulated traffic (seed {seed}; --seed {seed} sends the same world again)")
        stream_file = settings.home / "demo" / "stream.jsonl"
        stream_file.parent.mkdir(parents=True, exist_ok=True)
        history = simulate(
            settings,
            seed=seed,
            events=args.events,
            tenants=args.tenants,
            days=args.days,
            faults=FaultRates(**_HISTORY_FAULTS),
            out=stream_file,
            progress=True,
        )
        print(f"history ({args.days} days): {history.describe()}")
        live = simulate(
            settings,
            seed=seed + 1,
            events=args.live_events,
            tenants=args.tenants,
            faults=FaultRates(duplicates=0.02),
            progress=True,
        )
        print(f"live (now): {live.describe()}")
        print(f"the history stream is recorded in {stream_file} (`tokenhub replay` resends it)")

        _step(4, "Live figures from the Faust worker")
        print(views_client.format_summary(_caught_up_summary(settings, worker.web_port)))
    finally:
        app_runner.stop_worker(worker)

    _step(5, "Warehouse: landing, rating, marts and checks (Dagster)")
    _warehouse(settings)

    _step(6, "Headline figures")
    _headlines(settings)
    _where_to_look(settings, time.monotonic() - started)
    return 0


def _caught_up_summary(settings: Settings, web_port: int, timeout: float = 600.0) -> dict[str, Any]:
    """The live summary once the worker has consumed everything (lag 0), or at the timeout."""
    from tqdm import tqdm

    from streams import views_client

    deadline = time.monotonic() + timeout
    lag = views_client.health(settings, web_port=web_port)["total_lag"]
    with tqdm(total=lag, unit="msg", unit_scale=True, desc="worker") as bar:
        while lag and time.monotonic() < deadline:
            time.sleep(1)
            previous, lag = lag, views_client.health(settings, web_port=web_port)["total_lag"]
            bar.update(max(0, previous - lag))
    if lag:
        print(
            f"the worker is still {lag:,} message(s) behind after {timeout:.0f}s; "
            "the figures below are as far as it got (`tokenhub worker` resumes from there)"
        )
    summary: dict[str, Any] = views_client.live_summary(settings, web_port=web_port)
    return summary


def _warehouse(settings: Settings) -> None:
    from pipelines.run import materialize_all

    result = materialize_all(settings, log_level="WARNING")
    print(result.describe())
    if not result.success:
        raise UserError(
            "the warehouse run failed; open the Dagster UI (`make ui`) to see which step and why"
        )


def _headlines(settings: Settings) -> None:
    from warehouse import db
    from warehouse.reports import headlines

    # materialize_all has refreshed the published copy: read it as an analyst would.
    with db.connect(settings.published_path, read_only=True) as con:
        print(headlines(con).render())


def _command() -> str:
    """How to call ``tokenhub`` from here: bare when it is on PATH, else the venv's."""
    if shutil.which("tokenhub"):
        return "tokenhub"
    return os.path.relpath(Path(sys.executable).parent / "tokenhub")


def _where_to_look(settings: Settings, elapsed: float) -> None:
    home = Path(settings.home).resolve()
    cli = _command()
    print(
        f"""
Done in {elapsed:.0f}s. Where the results are:
  marts (read-only copy):  {settings.published_path.resolve()}
  writer's warehouse:      {settings.warehouse_path.resolve()}
  simulated stream:        {home / "demo" / "stream.jsonl"}
Next:
  {cli} sql "select * from marts.rpt_run_rate order by arr desc limit 10"
  duckdb -readonly {settings.published_path}      (or duckdb.connect(path, read_only=True))
  make ui          -> http://localhost:3000 (assets, partitions, checks, plots)
  {cli} worker  -> live views on http://127.0.0.1:{settings.web_port}/tokenhub/health/
  make clean       stops the broker and removes {home}"""
    )
