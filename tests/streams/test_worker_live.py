"""The live worker as a real process against the real broker."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from streams.agents.aggregate import iso
from streams.app_runner import stop_worker
from streams.events import from_dict
from streams.topics import AGGREGATES, ALERTS, DEAD_LETTER
from streams.views_client import format_summary, live_summary
from tests.streams import worker_fixtures
from tests.streams.live_helpers import encode, make_event
from tests.streams.worker_fixtures import load_rater, produce, read_topic, view, wait_caught_up

# Fixtures shared with the other worker tests.
live_settings = worker_fixtures.live_settings
workers = worker_fixtures.workers

pytestmark = pytest.mark.integration


def _tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:10]}"


def test_duplicates_once_invalid_to_dead_letter_and_views_answer(live_settings, workers) -> None:
    tenant = _tenant()
    batch = [make_event(tenant_id=tenant) for _ in range(20)]
    messages = [(tenant.encode(), encode(e)) for e in batch]
    messages += [(tenant.encode(), encode(e)) for e in batch[:5]]  # retries
    messages += [(tenant.encode(), b"{not json"), (tenant.encode(), b"[1, 2]")]
    unpriced = make_event(tenant_id=tenant, model="unknown-model")
    messages.append((tenant.encode(), encode(unpriced)))
    produce(live_settings, messages)
    worker = workers()
    health = wait_caught_up(worker)

    assert health["stats"]["counted"] == 21 and health["stats"]["duplicates"] == 5
    [window] = view(worker, "windows", window="1h", dimension="tenant", value=tenant)["windows"]
    assert window["requests"] == 21
    # The unknown model is counted as unrated, never as zero spend.
    assert window["unrated_requests"] == 1
    assert window["unrated_tokens"] == unpriced["input_tokens"] + unpriced["output_tokens"]
    expected = sum(
        (
            r.amount_gross
            for r in load_rater(live_settings.live_rater, live_settings).rate(
                [from_dict(e) for e in batch]
            )
            if r.amount_gross is not None
        ),
        Decimal(0),
    )
    assert sum(Decimal(v) for v in window["spend"].values()) == expected

    assert view(worker, "dead-letters") == {
        "total": 2,
        "by_reason": {"malformed_json": 1, "not_an_object": 1},
    }
    letters = [
        value
        for key, value in read_topic(live_settings, DEAD_LETTER.name)
        if key.decode().startswith(live_settings.live_source_topic + ":")
    ]
    assert sorted(letter["reason"] for letter in letters) == ["malformed_json", "not_an_object"]
    assert all(letter["source_topic"] == live_settings.live_source_topic for letter in letters)

    spend = view(worker, "spend", tenant=tenant)
    assert spend["windows"][0]["dimension_value"] == tenant
    assert view(worker, "top-tenants", n=1)["top"][0]["tenant_id"] == tenant
    summary = live_summary(live_settings)
    assert summary["events_counted"] == 21 and summary["dead_letters"]["total"] == 2
    assert tenant in format_summary(summary)
    humans = view(worker, "agents-vs-humans", window="1m")
    assert sum(w["human_requests"] for w in humans["windows"]) >= 1


def test_late_event_lands_in_its_window_and_the_closed_window_is_emitted(
    live_settings, workers
) -> None:
    tenant = _tenant()
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)

    def at(seconds: int) -> tuple[bytes, bytes]:
        event = make_event(tenant_id=tenant, occurred_at=base + timedelta(seconds=seconds))
        return tenant.encode(), encode(event)

    worker = workers()
    produce(live_settings, [at(10), at(90)])  # watermark base+90s: [base, +1m) still open
    wait_caught_up(worker)
    produce(live_settings, [at(20)])  # late, within the 60 s allowance
    wait_caught_up(worker)
    produce(live_settings, [at(150)])  # watermark passes base+2m: the window closes
    wait_caught_up(worker)

    key = f"1m|{iso(base)}|tenant|{tenant}|"
    emitted = [
        v for k, v in read_topic(live_settings, AGGREGATES.name) if k.decode().startswith(key)
    ]
    assert [row["requests"] for row in emitted] == [2]
    assert emitted[0]["window_end"] == iso(base + timedelta(minutes=1))


def test_budget_alert_fires_once_per_threshold_even_across_a_restart(
    live_settings, workers, tmp_path
) -> None:
    tenant = _tenant()
    rater = load_rater(live_settings.live_rater, live_settings)
    events = [
        make_event(tenant_id=tenant, input_tokens=200_000, output_tokens=50_000) for _ in range(12)
    ]
    amounts = [r.amount_gross for r in rater.rate([from_dict(e) for e in events])]
    budget = sum(amounts[:4], Decimal(0))  # 4 events reach 100%; 12 go far beyond
    (tmp_path / "budgets.csv").write_text(
        f"tenant_id,effective_from,daily_budget,currency\n{tenant},2024-01-01,{budget},"
        f"{rater.rate([from_dict(events[0])])[0].currency}\n"
    )
    worker = workers()
    produce(live_settings, [(tenant.encode(), encode(e)) for e in events[:6]])
    wait_caught_up(worker)
    stop_worker(worker)
    worker = workers()
    produce(live_settings, [(tenant.encode(), encode(e)) for e in events[6:]])
    wait_caught_up(worker)

    alerts = [v for k, v in read_topic(live_settings, ALERTS.name) if v["tenant_id"] == tenant]
    assert sorted(a["threshold_pct"] for a in alerts) == [50, 80, 100]


def test_two_workers_share_the_partitions(live_settings, workers) -> None:
    first = workers()
    second = workers(
        web_port=None,
        settings=live_settings.model_copy(update={"web_port": live_settings.web_port + 1}),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        a = set(view(first, "health")["assigned_partitions"])
        b = set(view(second, "health")["assigned_partitions"])
        if a and b and not a & b and a | b == set(range(6)):
            break
        time.sleep(0.5)
    assert a and b and not a & b and a | b == set(range(6)), (a, b)
    tenants = [_tenant() for _ in range(12)]
    produce(live_settings, [(t.encode(), encode(make_event(tenant_id=t))) for t in tenants])
    health = wait_caught_up(first)
    assert health["stats"]["counted"] == 12
    # Either worker answers for the whole topic.
    assert len(view(second, "windows", window="1h", dimension="tenant")["windows"]) == 12


def test_an_outbox_left_by_a_crash_is_sent_on_restart(live_settings, workers) -> None:
    from streams.state import PartitionStore, partition_path

    # A crash after the state commit but before the send leaves the message in the outbox.
    key = f"{live_settings.live_source_topic}:0:99".encode()
    store = PartitionStore(partition_path(live_settings.worker_state, 0))
    store.commit({}, set(), applied_offset=-1, outbox=[(DEAD_LETTER.name, key, b'{"x": 1}')])
    store.close()

    worker = workers()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        sent = [v for k, v in read_topic(live_settings, DEAD_LETTER.name, idle=1) if k == key]
        if sent:
            break
    assert sent == [{"x": 1}]
    view(worker, "health")
    reopened = PartitionStore(partition_path(live_settings.worker_state, 0), read_only=True)
    assert reopened.pending_outbox() == []
    reopened.close()
