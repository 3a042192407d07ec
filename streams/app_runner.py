"""Start and stop live workers: in this process (``tokenhub worker``) or as a child process.

    handle = start_worker(settings)     # a `tokenhub worker` child process
    ...
    stop_worker(handle)

The child gets the settings as ``TOKENHUB_*`` environment variables, so it sees exactly
what the caller sees (broker, home, state folder, web port).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import requests

from streams.settings import Settings


def _check_ready() -> None:
    """Fail fast, with what to do, when the price books or budgets cannot be loaded."""
    from streams.agents.live import processor
    from tokenhub.cli import UserError

    try:
        processor()
    except ModuleNotFoundError as error:
        raise UserError(
            f"the live worker needs the rating engine {error.name!r} "
            "(TOKENHUB_LIVE_RATER); update your checkout (warehouse/pricing/rating.py)"
        ) from None
    except ValueError as error:
        # A broken price book (warehouse.pricing.books.PriceBookError is a ValueError) or
        # budgets file: the message names the file and line.
        raise UserError(f"{error}; fix the file, then start the worker again") from None


def run_worker(*, loglevel: str = "info") -> int:
    """Run a Faust worker in this process until it is stopped (SIGTERM or Ctrl-C)."""
    import faust

    from streams.app import app

    _check_ready()
    worker = faust.Worker(app, loglevel=loglevel)
    worker.execute_from_commandline()  # exits the process when the worker stops
    return 0


def settings_env(settings: Settings) -> dict[str, str]:
    """``TOKENHUB_*`` variables reproducing ``settings`` in a child process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(exclude_none=True).items():
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"TOKENHUB_{name.upper()}"] = str(value)
    return env


@dataclass
class WorkerHandle:
    """A running worker process and where to reach it."""

    process: subprocess.Popen[bytes]
    web_port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/tokenhub"


def start_worker(
    settings: Settings,
    *,
    web_port: int | None = None,
    log_path: Path | None = None,
    wait: bool = True,
    timeout: float = 60.0,
) -> WorkerHandle:
    """Start ``tokenhub worker`` as a child process; with ``wait``, until its views answer."""
    port = web_port or settings.web_port
    log_path = log_path or settings.home / "logs" / f"worker-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **settings_env(settings), "TOKENHUB_WEB_PORT": str(port)}
    log: IO[bytes] = log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "tokenhub.cli", "worker", "--web-port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    log.close()
    handle = WorkerHandle(process, port, log_path)
    if wait:
        wait_until_serving(handle, timeout=timeout)
    return handle


def wait_until_serving(handle: WorkerHandle, *, timeout: float = 60.0) -> None:
    """Block until the worker's health view answers; raise with the log tail if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handle.process.poll() is not None:
            raise RuntimeError(
                f"worker exited with code {handle.process.returncode}; see {handle.log_path}:\n"
                + "\n".join(handle.log_path.read_text(errors="replace").splitlines()[-15:])
            )
        try:
            if requests.get(f"{handle.base_url}/health/", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(
        f"worker did not serve its views within {timeout:.0f}s; see {handle.log_path}"
    )


def stop_worker(handle: WorkerHandle, *, timeout: float = 30.0, kill: bool = False) -> int:
    """Stop the worker (SIGTERM, graceful; ``kill`` sends SIGKILL); returns its exit code."""
    if handle.process.poll() is None:
        handle.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            handle.process.wait(timeout)
        except subprocess.TimeoutExpired:
            handle.process.kill()
            handle.process.wait(timeout)
    return handle.process.returncode
