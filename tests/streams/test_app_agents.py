"""Unit tests of the live processors: a real partition store (RocksDB in tmp), no broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from streams.agents import aggregate as agg
from streams.agents.alerts import Budgets
from streams.agents.process import BatchProcessor
from streams.agents.validate import SourceMessage
from streams.settings import Settings
from streams.state import PartitionStore
from streams.topics import AGGREGATES, ALERTS, DEAD_LETTER, EVENTS
from tests.streams.live_helpers import StandInRater, encode, make_event, stand_in_amount

BUDGETS = "tenant_id,effective_from,daily_budget,currency\n*,2024-01-01,1,CNY\n"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    budgets = tmp_path / "budgets.csv"
    budgets.write_text(BUDGETS)
    return Settings(home=tmp_path, budgets_path=budgets, late_event_allowance_seconds=60)


@pytest.fixture
def processor(settings: Settings) -> BatchProcessor:
    return BatchProcessor(settings, StandInRater(), Budgets.load(settings.budgets))


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    opened = PartitionStore(tmp_path / "p0")
    yield opened
    opened.close()


class Feed:
    """Numbers messages like a partition does."""

    def __init__(self) -> None:
        self.offset = -1

    def __call__(self, *values: bytes) -> list[SourceMessage]:
        messages = []
        for value in values:
            self.offset += 1
            messages.append(SourceMessage(EVENTS.name, 0, self.offset, b"tenant-a", value, 1.0))
        return messages


def tenant_windows(store: PartitionStore, label: str) -> dict[str, dict]:
    prefix = agg.WINDOW + f"{label}/".encode()
    return {key.decode(): record for key, record in store.items(prefix) if b"/tenant/" in key}


def test_duplicates_are_counted_once_even_across_batches(processor, store) -> None:
    feed = Feed()
    event = make_event()
    first = processor.process(store, 0, feed(encode(event), encode(event)))
    second = processor.process(store, 0, feed(encode(event)))
    assert (first.counted, first.duplicates, second.counted, second.duplicates) == (1, 1, 0, 1)
    [record] = tenant_windows(store, "1h").values()
    assert record["requests"] == 1
    assert Decimal(record["spend"]["CNY"]) == stand_in_amount(event)


def test_redelivered_offsets_are_skipped(processor, store) -> None:
    feed = Feed()
    messages = feed(encode(make_event()), encode(make_event()))
    processor.process(store, 0, messages)
    again = processor.process(store, 0, messages)  # Kafka redelivers after a crash
    assert again.applied == 0 and again.skipped_already_applied == 2
    assert sum(r["requests"] for r in tenant_windows(store, "1h").values()) == 2


def test_invalid_messages_become_dead_letters_with_reason_and_bytes(processor, store) -> None:
    feed = Feed()
    outcome = processor.process(
        store, 0, feed(b"{not json", encode(make_event()), orjson.dumps({"event_id": "x"}))
    )
    letters = [orjson.loads(v) for _, topic, _, v in outcome.outbox if topic == DEAD_LETTER.name]
    assert [letter["reason"] for letter in letters] == ["malformed_json", "missing_field"]
    assert letters[0]["original_value_base64"] == "e25vdCBqc29u"
    assert (letters[0]["source_partition"], letters[0]["source_offset"]) == (0, 0)
    assert outcome.counted == 1


def test_late_event_within_allowance_lands_and_too_late_does_not(processor, store) -> None:
    feed = Feed()
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    processor.process(store, 0, feed(encode(make_event(occurred_at=base + timedelta(seconds=10)))))
    # Watermark at base+1m30s: window [base, base+1m) closes at base+2m (60 s allowance).
    processor.process(store, 0, feed(encode(make_event(occurred_at=base + timedelta(seconds=90)))))
    late = processor.process(
        store, 0, feed(encode(make_event(occurred_at=base + timedelta(seconds=20))))
    )
    assert late.too_late == 0
    closing = processor.process(
        store, 0, feed(encode(make_event(occurred_at=base + timedelta(seconds=130))))
    )
    closed = [orjson.loads(v) for _, t, _, v in closing.outbox if t == AGGREGATES.name]
    tenant_rows = [
        c
        for c in closed
        if c["window"] == "1m" and c["dimension"] == "tenant" and c["window_start"] == agg.iso(base)
    ]
    assert [row["requests"] for row in tenant_rows] == [2]
    too_late = processor.process(
        store, 0, feed(encode(make_event(occurred_at=base + timedelta(seconds=30))))
    )
    assert too_late.too_late == 1
    key = agg.window_key("1m", base, "tenant", "tenant-a").decode()
    assert tenant_windows(store, "1m")[key]["requests"] == 2


def test_budget_thresholds_fire_once_per_day(processor, store) -> None:
    feed = Feed()
    # Budget 1 CNY; each event costs 0.6 CNY with the stand-in price.
    big = {"input_tokens": 500_000, "output_tokens": 100_000}
    first = processor.process(store, 0, feed(encode(make_event(**big))))
    second = processor.process(store, 0, feed(encode(make_event(**big)), encode(make_event(**big))))
    fired = [
        orjson.loads(v) for o in (first, second) for _, t, _, v in o.outbox if t == ALERTS.name
    ]
    assert [a["threshold_pct"] for a in fired] == [50, 80, 100]
    assert fired[2]["spend"] == "1.200000"


def test_unrated_events_are_counted_as_unrated_not_zero_spend(processor, store) -> None:
    processor.process(store, 0, Feed()(encode(make_event(model="unknown-model"))))
    [record] = tenant_windows(store, "1h").values()
    assert record["unrated_requests"] == 1 and record["spend"] == {}


def test_multiplier_is_agent_over_human_tokens_per_request() -> None:
    window = agg.empty_window() | {
        "agent_requests": 2,
        "agent_tokens": 100_000,
        "human_requests": 4,
        "human_tokens": 4_000,
    }
    assert agg.multiplier(window) == 50.0


def test_agent_sends_dead_letters_through_test_context(settings, monkeypatch, tmp_path) -> None:
    from streams.agents import live

    sent: list[tuple[str, bytes, bytes]] = []

    async def fake_send(topic: str, key: bytes, value: bytes):  # type: ignore[no-untyped-def]
        sent.append((topic, key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    monkeypatch.setattr(live, "send_to_kafka", fake_send)
    monkeypatch.setattr(live.handle_batch, "__defaults__", (fake_send,))
    monkeypatch.setattr(
        live, "_processor", BatchProcessor(settings, StandInRater(), Budgets.load(settings.budgets))
    )
    monkeypatch.setattr(live.settings, "worker_state_dir", tmp_path / "state")

    async def scenario() -> None:
        async with live.usage.test_context() as agent:
            await agent.put(b"oops", key=b"tenant-a")
            await agent.put(encode(make_event()), key=b"tenant-a")
            await asyncio.sleep(1.5)  # the micro-batch closes after worker_batch_seconds

    asyncio.run(scenario())
    for partition in list(live.stores.open):
        asyncio.run(live.stores.close(partition))
    assert [(t, orjson.loads(v)["reason"]) for t, _, v in sent] == [
        (DEAD_LETTER.name, "malformed_json")
    ]


def test_budget_in_force_is_the_latest_effective_row_else_the_default(tmp_path) -> None:
    from datetime import date

    path = tmp_path / "budgets.csv"
    path.write_text(
        "tenant_id,effective_from,daily_budget,currency\n"
        "*,2024-01-01,100,CNY\n"
        "tenant-a,2025-01-01,10,CNY\n"
        "tenant-a,2025-06-01,20,CNY\n"
    )
    budgets = Budgets.load(path)
    assert budgets.for_day("tenant-a", date(2025, 3, 1)).daily_budget == Decimal(10)
    assert budgets.for_day("tenant-a", date(2025, 7, 1)).daily_budget == Decimal(20)
    assert budgets.for_day("tenant-a", date(2024, 7, 1)).daily_budget == Decimal(100)
    assert budgets.for_day("tenant-b", date(2025, 7, 1)).daily_budget == Decimal(100)


def test_a_broken_budgets_file_names_the_line(tmp_path) -> None:
    from streams.agents.alerts import BudgetFileError

    path = tmp_path / "budgets.csv"
    path.write_text("tenant_id,effective_from,daily_budget,currency\nt,2025-13-01,5,CNY\n")
    with pytest.raises(BudgetFileError, match=r"budgets\.csv:2"):
        Budgets.load(path)


def test_shipped_budgets_file_loads() -> None:
    assert Budgets.load(Settings().budgets).for_day("anyone", datetime.now(UTC).date())
