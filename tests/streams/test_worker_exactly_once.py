"""Exactly once across a crash: SIGKILL a worker mid-stream, restart it, compare to the truth.

The stream comes from the simulator (duplicates, malformed and invalid messages included),
recorded as JSONL; :func:`streams.simulate.ground_truth` gives its distinct valid events.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from streams.app_runner import stop_worker
from streams.events import from_dict
from streams.settings import Settings
from streams.simulate import FaultRates, JsonlWriter, expected_invalid, generate, ground_truth
from tests.streams import worker_fixtures
from tests.streams.worker_fixtures import load_rater, produce, view, wait_caught_up

live_settings = worker_fixtures.live_settings
workers = worker_fixtures.workers

pytestmark = pytest.mark.integration

EVENTS = 4000


def _record(path: Path) -> list[tuple[bytes | None, bytes]]:
    messages = list(
        generate(
            seed=11,
            events=EVENTS,
            tenants=25,
            days=0.03,  # about 45 minutes of event time: several 1-minute windows close
            now=datetime.now(UTC) - timedelta(minutes=1),
            faults=FaultRates(duplicates=0.05, malformed=0.01, invalid=0.01),
        )
    )
    with JsonlWriter(path) as writer:
        for message in messages:
            writer.write(message)
    return [(m.key, m.value) for m in messages]


def _expected_windows(path: Path, settings: Settings) -> dict[tuple[str, str], dict[str, Any]]:
    truth = ground_truth(path)
    rows = truth.drop("sent_index").to_dicts()
    batch = [from_dict({k: v for k, v in row.items() if v is not None}) for row in rows]
    ratings = load_rater(settings.live_rater, settings).rate(batch)
    expected: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"requests": 0, "total_tokens": 0, "spend": Decimal(0), "unrated_requests": 0}
    )
    for event, rating in zip(batch, ratings, strict=True):
        start = event.occurred_at.replace(minute=0, second=0, microsecond=0)
        entry = expected[(start.strftime("%Y-%m-%dT%H:%M:%SZ"), event.tenant_id)]
        entry["requests"] += 1
        entry["total_tokens"] += event.input_tokens + event.output_tokens
        if rating.amount_gross is None:
            entry["unrated_requests"] += 1
        else:
            entry["spend"] += rating.amount_gross
    return dict(expected)


def test_sigkill_mid_stream_then_restart_counts_every_event_exactly_once(
    live_settings, workers, tmp_path
) -> None:
    settings = live_settings.model_copy(
        update={
            "worker_batch_size": 200,
            "worker_batch_seconds": 0.2,
            # The simulated stream is not in event-time order; this test is about crashes,
            # so no event may be too late for its window.
            "late_event_allowance_seconds": 6 * 3600,
            # Faust commits no offset before the kill, so the restarted worker is handed
            # every message again and must recognise the applied ones by their offsets.
            "worker_commit_interval_seconds": 600.0,
        }
    )
    path = tmp_path / "stream.jsonl"
    messages = _record(path)
    half = len(messages) // 2
    produce(settings, messages[:half])

    worker = workers(settings)
    # Keep producing while the worker runs, and kill it once it is well into the stream.
    rest = threading.Thread(target=produce, args=(settings, messages[half:]))
    rest.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        applied = view(worker, "health")["stats"].get("events", 0)
        if applied >= len(messages) // 3:
            break
        time.sleep(0.05)
    stop_worker(worker, kill=True)
    assert 0 < applied < len(messages), "the kill must land mid-stream"
    rest.join()

    restarted = workers(settings)
    health = wait_caught_up(restarted, timeout=120)

    expected = _expected_windows(path, settings)
    found = {
        (w["window_start"], w["dimension_value"]): w
        for w in view(restarted, "windows", window="1h", dimension="tenant")["windows"]
    }
    assert set(found) == set(expected)
    for key, want in expected.items():
        got = found[key]
        assert got["requests"] == want["requests"], key
        assert got["total_tokens"] == want["total_tokens"], key
        assert got["unrated_requests"] == want["unrated_requests"], key
        assert sum((Decimal(v) for v in got["spend"].values()), Decimal(0)) == want["spend"], key

    log = restarted.log_path.read_text()
    skipped = sum(int(n) for n in re.findall(r"(\d+) already applied", log))
    assert skipped >= applied  # the redelivered messages were recognised, not re-counted

    stats = health["stats"]
    assert stats["events"] == len(messages)  # every message applied once, none twice
    assert stats["counted"] == sum(w["requests"] for w in expected.values())
    assert stats.get("too_late", 0) == 0
    invalid = expected_invalid(path)
    assert view(restarted, "dead-letters")["total"] == invalid.height
