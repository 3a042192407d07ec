"""The whole pipeline under fire: worker and loader SIGKILLed together, mid-stream, twice.

One simulated stream feeds both paths at once: the live worker (views, dead-letter topic) and
the loader (``raw.*`` in DuckDB), then rating. Both are killed without warning while the
producer is still sending, restarted, killed again, restarted. Afterwards each path must equal
the oracle on its own, and the two must agree with each other: live requests, tokens and
gross spend per tenant equal the warehouse's, to the last unit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from streams.app_runner import settings_env, stop_worker
from streams.settings import Settings
from streams.simulate import ground_truth, read_jsonl
from tests.reliability.conftest import (
    TenantTotals,
    dead_letters_of,
    expected_dead_letters,
    expected_tenant_totals,
    for_faults,
    live_tenant_totals,
    record_stream,
)
from tests.streams.worker_fixtures import produce, view, wait_caught_up
from warehouse import db
from warehouse.loader import land
from warehouse.pricing.rating import rate

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]


def start_loader(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """``tokenhub land --follow`` as a child process, small batches (many transactions)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tokenhub.cli",
            "land",
            "--follow",
            "--quiet",
            "--topic",
            settings.live_source_topic,
            "--batch-size",
            "150",
        ],
        env={**os.environ, **settings_env(settings)},
        cwd=REPO,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def warehouse_tenant_totals(con: duckdb.DuckDBPyConnection) -> dict[str, TenantTotals]:
    rows = con.execute(
        "select tenant_id, count(*), sum(input_tokens + output_tokens) "
        "from raw.token_usage_events group by tenant_id"
    ).fetchall()
    return {tenant: TenantTotals(requests, int(tokens)) for tenant, requests, tokens in rows}


def live_spend(worker: Any) -> dict[tuple[str, str], Decimal]:
    """Gross live spend per (tenant, currency), summed over the 1-hour windows."""
    spend: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for window in view(worker, "windows", window="1h", dimension="tenant")["windows"]:
        for currency, amount in window["spend"].items():
            spend[(window["dimension_value"], currency)] += Decimal(amount)
    return dict(spend)


def test_worker_and_loader_sigkilled_together_both_equal_the_oracle_and_each_other(
    live_settings: Settings, workers: Any, tmp_path: Path
) -> None:
    settings = for_faults(live_settings).model_copy(
        update={"worker_commit_interval_seconds": 600.0}
    )
    path = tmp_path / "stream.jsonl"
    messages = record_stream(path, seed=53, events=3000)
    loader_log = tmp_path / "loader.log"

    def produce_paced() -> None:
        for start in range(0, len(messages), 150):
            produce(settings, messages[start : start + 150])
            time.sleep(0.1)

    producing = threading.Thread(target=produce_paced)
    producing.start()
    kills = []
    for share in (0.25, 0.6):
        worker = workers(settings)
        loader = start_loader(settings, loader_log)
        deadline = time.monotonic() + 60
        applied = 0
        while time.monotonic() < deadline and applied < share * len(messages):
            applied = view(worker, "health")["stats"].get("events", 0)
            time.sleep(0.05)
        loader.send_signal(signal.SIGKILL)
        stop_worker(worker, kill=True)
        loader.wait(timeout=10)
        kills.append(applied)
    producing.join()
    assert all(0 < applied < len(messages) for applied in kills), kills

    worker = workers(settings)
    loader = start_loader(settings, loader_log)
    try:
        wait_caught_up(worker, timeout=120)
    finally:
        loader.send_signal(signal.SIGTERM)  # a clean stop: the batch in flight commits
        assert loader.wait(timeout=60) == 0, loader_log.read_text()[-2000:]
    land(settings, topic=settings.live_source_topic)  # whatever the follower had not reached

    # Live path against the oracle.
    expected = expected_tenant_totals(path)
    assert live_tenant_totals(worker) == expected
    assert dead_letters_of(settings, settings.live_source_topic).as_counter() == (
        expected_dead_letters(path)
    )
    # Warehouse path against the oracle.
    truth = ground_truth(path)
    con = db.connect(settings.warehouse_path)
    try:
        assert warehouse_tenant_totals(con) == expected
        quarantined = Counter(
            (bytes(payload), reason)
            for payload, reason in con.execute(
                "select payload, reason from raw.quarantine"
            ).fetchall()
        )
        assert quarantined == expected_dead_letters(path)
        redeliveries = con.execute("select count(*) from raw.redeliveries").fetchone()
        valid_messages = sum(1 for _ in read_jsonl(path)) - sum(quarantined.values())
        assert redeliveries == (valid_messages - truth.height,)
        # The two paths agree on money too: live gross spend = warehouse gross amount.
        rate(con, settings)
        warehouse_spend = {
            (tenant, currency): amount
            for tenant, currency, amount in con.execute(
                "select e.tenant_id, r.currency, sum(r.amount_gross) "
                "from rating.rated_usage r join raw.token_usage_events e using (event_id) "
                "group by 1, 2"
            ).fetchall()
        }
    finally:
        con.close()
    assert live_spend(worker) == warehouse_spend


def test_every_bad_input_is_quarantined_with_its_reason_and_unpriced_events_stay_unrated(
    tmp_home: Settings, unique_topic: str
) -> None:
    from tests.reliability.test_worker_faults import bad_inputs
    from tests.streams.live_helpers import encode, make_event

    settings = tmp_home.model_copy(update={"live_source_topic": unique_topic})
    tenant = "tenant-bad-input"
    bad = bad_inputs(tenant)
    valid = [make_event(tenant_id=tenant) for _ in range(len(bad) + 1)]
    unpriced = {
        "unknown_model": make_event(tenant_id=tenant, model="gpt-imaginary"),
        "unknown_region": make_event(tenant_id=tenant, region="mars-north-1"),
    }
    messages: list[tuple[bytes | None, bytes]] = []
    for event, (_, raw, _) in zip(valid, bad, strict=False):
        messages += [(tenant.encode(), encode(event)), (tenant.encode(), raw)]
    messages += [(tenant.encode(), encode(valid[-1]))]
    messages += [(None, encode(event)) for event in unpriced.values()]
    produce(settings, messages)

    result = land(settings, topic=unique_topic)
    assert (result.landed, result.quarantined) == (len(valid) + len(unpriced), len(bad))
    con = db.connect(settings.warehouse_path)
    try:
        quarantined = {
            bytes(payload): reason
            for payload, reason in con.execute(
                "select payload, reason from raw.quarantine"
            ).fetchall()
        }
        rate(con, settings)
        unrated = dict(con.execute("select event_id, reason from rating.unrated_usage").fetchall())
        rated_zero = con.execute(
            "select count(*) from rating.rated_usage where event_id in (?, ?)",
            [e["event_id"] for e in unpriced.values()],
        ).fetchone()
        rated_valid = con.execute(
            "select count(*), min(amount_gross) from rating.rated_usage"
        ).fetchone()
    finally:
        con.close()
    for what, raw, reason in bad:
        assert quarantined.get(raw) == reason, f"{what}: quarantined as {quarantined.get(raw)!r}"
    for reason, event in unpriced.items():
        assert unrated[event["event_id"]] == reason
    assert rated_zero == (0,)  # never rated at zero
    assert rated_valid is not None and rated_valid[0] == len(valid) and rated_valid[1] > 0
