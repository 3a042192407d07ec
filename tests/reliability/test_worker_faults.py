"""Faults of the live path: a worker SIGKILLed mid-stream, bad input, retries days later.

Every test pushes real messages through a real ``tokenhub worker`` process on the real broker,
then compares the worker's views and the dead-letter topic with the simulator's oracle.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.app_runner import stop_worker
from streams.events import MAX_EVENT_BYTES, MAX_TOKENS
from streams.settings import Settings
from streams.simulate import ground_truth
from streams.topics import TopicSpec
from tests.reliability.conftest import (
    dead_letters_of,
    expected_dead_letters,
    expected_tenant_totals,
    for_faults,
    live_tenant_totals,
    record_stream,
)
from tests.streams.live_helpers import encode, make_event
from tests.streams.worker_fixtures import REAL_RATER, produce, view, wait_caught_up

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


@pytest.mark.slow  # the fast suite kills the worker in test_pipeline_faults.py
def test_worker_sigkilled_twice_mid_stream_counts_every_event_once(
    live_settings: Settings, workers: Any, tmp_path: Path
) -> None:
    settings = for_faults(live_settings).model_copy(
        # No offset commit before the kills: the restarted worker is handed every message
        # again and must recognise what it already applied.
        update={"worker_commit_interval_seconds": 600.0}
    )
    path = tmp_path / "stream.jsonl"
    messages = record_stream(path, seed=91, events=2400)
    producing = threading.Thread(target=produce, args=(settings, messages))
    producing.start()

    for share in (0.2, 0.5):  # kill at a fifth, restart, kill again at a half
        worker = workers(settings)
        deadline = time.monotonic() + 60
        applied = 0
        while time.monotonic() < deadline and applied < share * len(messages):
            applied = view(worker, "health")["stats"].get("events", 0)
            time.sleep(0.05)
        stop_worker(worker, kill=True)
        assert applied < len(messages), "the kill must land mid-stream"
    producing.join()

    worker = workers(settings)
    health = wait_caught_up(worker, timeout=120)
    truth = ground_truth(path)
    assert health["stats"]["counted"] == truth.height
    assert live_tenant_totals(worker) == expected_tenant_totals(path)

    letters = dead_letters_of(settings, settings.live_source_topic)
    assert letters.as_counter() == expected_dead_letters(path)
    assert health["stats"]["dead_letters"] == sum(expected_dead_letters(path).values())


def _valid(tenant: str, **changes: Any) -> dict[str, Any]:
    return make_event(tenant_id=tenant, **changes)


def _raw(data: dict[str, Any], **changes: Any) -> bytes:
    return json.dumps({**data, **changes}, ensure_ascii=False).encode()


def _without(data: dict[str, Any], field: str) -> bytes:
    return json.dumps({k: v for k, v in data.items() if k != field}).encode()


def bad_inputs(tenant: str) -> list[tuple[str, bytes, str]]:
    """(what, bytes, expected reason) for every bad input the issue lists, and a few more."""
    base = _valid(tenant)
    now = datetime.now(UTC)
    return [
        ("malformed JSON", b'{"event_id": "x", "schema_version": 1,', "malformed_json"),
        ("not JSON at all", b"\x00\xff\xfe garbage", "malformed_json"),
        ("empty message", b"", "malformed_json"),
        ("JSON that is not an object", b"[1, 2, 3]", "not_an_object"),
        ("count as a string", _raw(base, input_tokens="1000"), "wrong_type"),
        ("count as a float", _raw(base, output_tokens=12.5), "wrong_type"),
        ("negative count", _raw(base, input_tokens=-5), "count_out_of_range"),
        ("huge count", _raw(base, output_tokens=MAX_TOKENS + 1), "count_out_of_range"),
        ("count beyond 64 bits", _raw(base, output_tokens=2**70), "count_out_of_range"),
        ("cached > input", _raw(base, cached_input_tokens=5000), "cached_exceeds_input"),
        ("thinking > output", _raw(base, thinking_tokens=201), "thinking_exceeds_output"),
        (
            "timestamp far in the future",
            _raw(base, occurred_at=(now + timedelta(days=400)).isoformat()),
            "timestamp_in_future",
        ),
        (
            "timestamp before 2000",
            _raw(base, occurred_at="1999-12-31T23:59:59Z"),
            "timestamp_too_old",
        ),
        (
            "timestamp without zone",
            _raw(base, occurred_at="2026-03-20T10:00:00"),
            "timestamp_without_timezone",
        ),
        ("unicode junk in an id", _raw(base, event_id="ev-\u202e\u0000💸"), "invalid_id"),
        ("unicode look-alike id", _raw(base, tenant_id="tenаnt-cyrillic-a"), "invalid_id"),
        ("oversized message", _raw(base, actor_id="a" * (MAX_EVENT_BYTES + 10)), "oversized"),
        ("missing field", _without(base, "model"), "missing_field"),
        ("extra field", _raw(base, discount_code="FREE"), "unknown_field"),
        ("unknown enum value", _raw(base, mode="turbo"), "unknown_enum_value"),
        ("wrong schema version", _raw(base, schema_version=2), "unknown_enum_value"),
    ]


def test_every_bad_input_is_dead_lettered_with_its_reason_and_the_stream_goes_on(
    live_settings: Settings, workers: Any
) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:10]}"
    settings = for_faults(live_settings)
    bad = bad_inputs(tenant)
    valid = [_valid(tenant) for _ in range(len(bad) + 1)]
    # Unknown model and region are valid events: counted live, never rated at zero.
    unpriced = [
        _valid(tenant, model="unknown-model-x"),
        _valid(tenant, region="mars-north-1"),
    ]
    messages: list[tuple[bytes | None, bytes]] = []
    for event, (_, raw, _) in zip(valid, bad, strict=False):
        messages += [(tenant.encode(), encode(event)), (tenant.encode(), raw)]
    messages += [(tenant.encode(), encode(valid[-1]))]
    messages += [(None, encode(e)) for e in unpriced]  # no key either: still fine
    produce(settings, messages)

    worker = workers(settings)
    health = wait_caught_up(worker)

    assert health["stats"]["counted"] == len(valid) + len(unpriced)
    letters = dead_letters_of(settings, settings.live_source_topic)
    got = {raw: reason for (raw, reason) in letters.as_counter()}
    for what, raw, reason in bad:
        assert got.get(raw) == reason, f"{what}: dead-lettered as {got.get(raw)!r}, not {reason}"
    assert len(letters.by_key) == len(bad)
    [window] = view(worker, "windows", window="1h", dimension="tenant", value=tenant)["windows"]
    assert window["requests"] == len(valid) + len(unpriced)
    # Unknown model (and, with the real rater, unknown region) are counted, never priced.
    real_rater = settings.live_rater == REAL_RATER
    assert window["unrated_requests"] == (2 if real_rater else 1)


def test_retry_days_later_is_counted_once(live_settings: Settings, workers: Any) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:10]}"
    settings = for_faults(live_settings).model_copy(
        update={"late_event_allowance_seconds": 7 * 86400}
    )
    now = datetime.now(UTC)
    original = _valid(tenant, occurred_at=now - timedelta(days=5))
    # Between the original and its retry, five days of event time pass on the partition.
    days = [_valid(tenant, occurred_at=now - timedelta(days=d, minutes=1)) for d in (4, 3, 2, 1, 0)]
    produce(settings, [(tenant.encode(), encode(original))])
    produce(settings, [(tenant.encode(), encode(e)) for e in days])

    worker = workers(settings)
    wait_caught_up(worker)
    stop_worker(worker)  # the retry arrives after a restart, too
    produce(settings, [(tenant.encode(), encode(original))] * 3)
    worker = workers(settings)
    health = wait_caught_up(worker)

    assert health["stats"]["counted"] == 1 + len(days)
    assert health["stats"]["duplicates"] == 3
    assert live_tenant_totals(worker)[tenant].requests == 1 + len(days)


def test_health_view_works_whatever_the_partition_count(
    live_settings: Settings, workers: Any, kafka_broker: Any
) -> None:
    topic = f"test.{uuid.uuid4().hex[:12]}"
    kafka_broker.create_topics([TopicSpec(topic, partitions=2)])
    settings = for_faults(live_settings).model_copy(update={"live_source_topic": topic})
    tenant = f"tenant-{uuid.uuid4().hex[:10]}"
    produce(settings, [(tenant.encode(), encode(_valid(tenant))) for _ in range(5)])
    worker = workers(settings, timeout=15)
    health = wait_caught_up(worker, timeout=10)
    assert health["stats"]["counted"] == 5
