"""``tokenhub demo`` end to end, as ``make demo`` runs it, in a fresh home with its own broker.

Small sizes, but every step is real: the demo starts the broker itself (on free ports), a
Faust worker, the simulator, Dagster, and prints the headline figures. The live count must
equal the warehouse's, and nothing may be left running but the broker the demo leaves up
for the user (stopped here with ``tokenhub kafka down``, as ``make clean`` does).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from streams.app_runner import settings_env
from streams.settings import Settings

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tokenhub(env: dict[str, str], *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenhub.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_demo_runs_the_whole_pipeline_and_the_live_count_equals_the_warehouse(
    tmp_path: Path,
) -> None:
    settings = Settings(
        home=tmp_path / "home",
        kafka_port=_free_port(),
        kafka_controller_port=_free_port(),
        web_port=_free_port(),
    )
    env = {**os.environ, **settings_env(settings)}
    try:
        demo = _tokenhub(
            env,
            "demo",
            "--events", "4000", "--live-events", "500", "--days", "3", "--tenants", "12",
            timeout=420,
        )  # fmt: skip
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    finally:
        down = _tokenhub(env, "kafka", "down", timeout=120)
    assert down.returncode == 0, down.stderr
    out = demo.stdout
    for step in range(1, 7):
        assert f"== {step}/6 " in out
    assert "check FAIL" not in out
    assert "check pass marts/fct_usage_rated:stream_reconciliation" in out
    live = re.search(r"live: ([\d,]+) events counted, [\d,]+ duplicates dropped, lag 0", out)
    assert live, out[-3000:]
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        rated = con.execute("select count(*) from marts.fct_usage_rated").fetchall()[0][0]
    # Every distinct valid event, counted once live and rated once in the warehouse.
    assert int(live.group(1).replace(",", "")) == rated > 3000
    assert f"{rated:,} rated requests" in out
    assert "Consolidated margin" in out and str(settings.published_path.resolve()) in out
    # The demo's worker is gone (it was a child in its own session).
    workers = subprocess.run(
        ["pgrep", "-f", f"tokenhub.cli worker --web-port {settings.web_port}"],
        capture_output=True,
        check=False,
    )
    assert workers.returncode == 1, workers.stdout
