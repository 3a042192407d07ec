"""The simulator: deterministic, valid where it means to be, with the shape of the domain."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import events
from streams.simulate import (
    INVALID_KINDS,
    FaultRates,
    build_world,
    expected_invalid,
    generate,
    ground_truth,
    read_jsonl,
    run,
)
from streams.simulate.world import (
    INTERNATIONAL_REGIONS,
    MAINLAND_REGIONS,
    MAX_SWARM_SIZE,
    MIN_SWARM_SIZE,
)
from tokenhub.cli import main

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
FAULTS = FaultRates(duplicates=0.05, malformed=0.03, invalid=0.04, late=0.02, out_of_order=0.03)


@pytest.fixture(scope="module")
def clean_events() -> list[events.TokenUsageEvent]:
    """30k fault-free events over three days, parsed with the contract parser."""
    return [
        events.parse(m.value, now=NOW)
        for m in generate(seed=11, events=30_000, tenants=40, days=3, now=NOW)
    ]


@pytest.fixture(scope="module")
def faulty_stream() -> list:
    return list(generate(seed=12, events=40_000, tenants=30, days=2, faults=FAULTS, now=NOW))


def test_same_seed_gives_the_same_bytes() -> None:
    first = list(generate(seed=5, events=3_000, days=1, faults=FAULTS, now=NOW))
    again = list(generate(seed=5, events=3_000, days=1, faults=FAULTS, now=NOW))
    other = list(generate(seed=6, events=3_000, days=1, faults=FAULTS, now=NOW))
    assert [(m.kind, m.key, m.value) for m in first] == [(m.kind, m.key, m.value) for m in again]
    assert [m.value for m in first] != [m.value for m in other]


def test_every_message_labelled_valid_parses_and_every_fault_does_not(faulty_stream) -> None:
    for message in faulty_stream:
        if message.kind in INVALID_KINDS:
            with pytest.raises(events.InvalidEvent):
                events.parse(message.value)
        else:
            event = events.parse(message.value)
            assert message.key == event.tenant_id.encode()  # keyed by tenant


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    tenants=st.integers(1, 8),
    days=st.sampled_from([0.0, 0.5, 4.0]),
    rates=st.tuples(*[st.floats(0, 0.15) for _ in range(5)]),
)
def test_simulator_emits_valid_events_only_where_it_intends_to(seed, tenants, days, rates) -> None:
    faults = FaultRates(*rates)
    stream = list(generate(seed=seed, events=300, tenants=tenants, days=days, faults=faults))
    assert len(stream) == 300
    for message in stream:
        try:
            events.parse(message.value)
            parsed = True
        except events.InvalidEvent:
            parsed = False
        assert parsed == (message.kind not in INVALID_KINDS), message


def test_agent_requests_use_40_to_60_times_the_tokens_of_human_queries(clean_events) -> None:
    tokens: Counter[str] = Counter()
    requests: Counter[str] = Counter()
    for event in clean_events:
        tokens[event.actor_type] += event.input_tokens + event.output_tokens
        requests[event.actor_type] += 1
    ratio = (tokens["agent"] / requests["agent"]) / (tokens["human"] / requests["human"])
    assert 40 <= ratio <= 60
    assert tokens["agent"] > 10 * tokens["human"]  # agents are the main consumers


def test_every_model_reaches_every_price_tier(clean_events) -> None:
    tiers = Counter(
        (e.model, 0 if e.input_tokens <= 128_000 else 1 if e.input_tokens <= 256_000 else 2)
        for e in clean_events
    )
    for model in ("qwen-flash", "qwen-plus", "qwen-max"):
        for tier in (0, 1, 2):
            assert tiers[(model, tier)] > 0, (model, tier)
    assert max(e.input_tokens for e in clean_events) <= 1_000_000


def test_the_world_has_every_dimension_of_the_domain(clean_events) -> None:
    seen = defaultdict(set)
    for e in clean_events:
        for field in ("product", "channel", "region", "chip_family", "mode", "actor_type"):
            seen[field].add(getattr(e, field))
    assert seen["product"] == {
        "agent_platform",
        "chat_assistant",
        "coding_assistant",
        "commerce_assistant",
        "api",
    }
    assert seen["channel"] == {"own_product", "direct_api", "third_party_framework"}
    assert seen["region"] == set(MAINLAND_REGIONS) | set(INTERNATIONAL_REGIONS)
    assert seen["chip_family"] == {"domestic-npu-a", "domestic-npu-b", "imported-gpu-h"}
    assert seen["mode"] == {"realtime", "batch"}
    n = len(clean_events)
    assert 0.02 < sum(e.mode == "batch" for e in clean_events) / n < 0.2
    assert 0.2 < sum(e.cached_input_tokens > 0 for e in clean_events) / n < 0.7
    assert 0.1 < sum(e.thinking_tokens > 0 for e in clean_events) / n < 0.6
    assert all(e.product == "api" for e in clean_events if e.channel != "own_product")


def test_tenant_sizes_are_heavy_tailed(clean_events) -> None:
    per_tenant = sorted(Counter(e.tenant_id for e in clean_events).values(), reverse=True)
    top_tenth = per_tenant[: max(1, len(per_tenant) // 10)]
    assert sum(top_tenth) > 0.35 * len(clean_events)
    assert per_tenant[0] > 20 * per_tenant[-1]


def test_domestic_chips_are_slower_per_token_than_the_imported_gpu(clean_events) -> None:
    ms: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    for e in clean_events:
        if e.model == "qwen-plus" and e.mode == "realtime":
            ms[e.chip_family] += e.accelerator_ms
            tokens[e.chip_family] += e.input_tokens + e.output_tokens
    per_token = {chip: ms[chip] / tokens[chip] for chip in ms}
    assert per_token["imported-gpu-h"] < per_token["domestic-npu-a"] < per_token["domestic-npu-b"]


def test_swarm_tasks_run_3_to_12_agents_under_one_swarm_id(clean_events) -> None:
    world = build_world(11, 40)
    sizes = {s.swarm_id: len(s.agents) for t in world.tenants for s in t.swarms}
    assert all(MIN_SWARM_SIZE <= size <= MAX_SWARM_SIZE for size in sizes.values())
    tasks: dict[str, list[events.TokenUsageEvent]] = defaultdict(list)
    for e in clean_events:
        assert (e.swarm_id is None) == (e.task_id is None)
        if e.task_id is not None:
            assert e.actor_type == "agent" and e.product == "agent_platform"
            tasks[e.task_id].append(e)
    assert len(tasks) > 50
    complete = 0
    for task_events in tasks.values():
        assert len({e.swarm_id for e in task_events}) == 1
        assert len({e.tenant_id for e in task_events}) == 1
        agents = {e.actor_id for e in task_events}
        assert len(agents) <= sizes[task_events[0].swarm_id]
        if len(task_events) >= MAX_SWARM_SIZE:  # every member has spoken by then
            assert len(agents) == sizes[task_events[0].swarm_id]
            complete += 1
    assert complete > 20
    assert {len(a) for a in ({e.actor_id for e in t} for t in tasks.values())} >= {3, 12}


def test_days_spread_events_over_the_window_along_the_daily_curve(clean_events) -> None:
    times = [e.occurred_at for e in clean_events]
    assert min(times) >= NOW - timedelta(days=3, hours=1)  # batch calls finish up to 1h late
    assert max(times) <= NOW
    # Human traffic follows office hours in China (UTC+8); agents run around the clock.
    human_hours = Counter(
        (e.occurred_at.hour + 8) % 24 for e in clean_events if e.actor_type == "human"
    )
    agent_hours = Counter(
        (e.occurred_at.hour + 8) % 24 for e in clean_events if e.actor_type == "agent"
    )
    assert human_hours[10] > 5 * human_hours[3]
    assert agent_hours[10] < 2 * agent_hours[3]


def test_without_days_events_are_stamped_now() -> None:
    stream = list(generate(seed=1, events=500, now=NOW))
    times = [events.parse(m.value, now=NOW).occurred_at for m in stream]
    assert all(NOW - timedelta(hours=1) <= t <= NOW for t in times)
    live = [events.parse(m.value).occurred_at for m in generate(seed=1, events=50)]
    assert all(abs(datetime.now(UTC) - t) < timedelta(hours=1, minutes=1) for t in live)


def _within(observed: int, n: int, rate: float) -> bool:
    sigma = (n * rate * (1 - rate)) ** 0.5
    return abs(observed - n * rate) <= 4 * sigma + 5


def test_faults_are_injected_at_the_requested_rates(faulty_stream) -> None:
    n = len(faulty_stream)
    kinds = Counter(m.kind for m in faulty_stream)
    assert _within(kinds["duplicate"], n, FAULTS.duplicates)
    assert _within(kinds["malformed"], n, FAULTS.malformed)
    assert _within(kinds["invalid"], n, FAULTS.invalid)
    assert _within(kinds["late"], n, FAULTS.late)


def test_duplicates_repeat_earlier_events_some_much_later(faulty_stream) -> None:
    first_seen: dict[str, int] = {}
    gaps = []
    for index, message in enumerate(faulty_stream):
        if message.kind in INVALID_KINDS:
            continue
        event_id = msgspec.json.decode(message.value)["event_id"]
        if message.kind == "duplicate":
            assert event_id in first_seen  # a retry of something already sent
            original = faulty_stream[first_seen[event_id]]
            assert original.value == message.value  # byte for byte
            gaps.append(index - first_seen[event_id])
        else:
            assert event_id not in first_seen  # fresh events never reuse an id
            first_seen[event_id] = index
    assert sum(gap <= 20 for gap in gaps) > 0.5 * len(gaps)
    assert sum(gap > 1_000 for gap in gaps) > 0.1 * len(gaps)


def test_invalid_events_cover_many_kinds_of_contract_breach(faulty_stream) -> None:
    reasons = Counter()
    for message in faulty_stream:
        if message.kind == "invalid":
            with pytest.raises(events.InvalidEvent) as caught:
                events.parse(message.value)
            reasons[caught.value.reason] += 1
    assert set(reasons) >= {
        "count_out_of_range",
        "wrong_type",
        "cached_exceeds_input",
        "thinking_exceeds_output",
        "unknown_enum_value",
        "missing_field",
        "invalid_id",
        "timestamp_in_future",
        "timestamp_too_old",
        "unknown_field",
        "oversized",
        "inconsistent_fields",
    }


def test_late_and_out_of_order_events_break_event_time_order(faulty_stream) -> None:
    latest = None
    late_ages = []
    reordered = 0
    for message in faulty_stream:
        if message.kind in INVALID_KINDS or message.kind == "duplicate":
            continue
        at = events.parse(message.value).occurred_at
        if message.kind == "late":
            late_ages.append(latest - at)
        elif latest is not None and at < latest - timedelta(minutes=5):
            reordered += 1
        latest = at if latest is None else max(latest, at)
    assert min(late_ages) > timedelta(minutes=50)
    assert max(late_ages) > timedelta(days=1)
    assert reordered > 50


def test_ground_truth_is_the_distinct_valid_events(tmp_path: Path) -> None:
    out = tmp_path / "stream.jsonl"
    summary = run(
        seed=3, events=8_000, tenants=10, days=1, faults=FAULTS, now=NOW, out=out, kafka=False
    )
    stream = list(generate(seed=3, events=8_000, tenants=10, days=1, faults=FAULTS, now=NOW))
    recorded = list(read_jsonl(out))
    assert [(m.kind, m.key, m.value) for m in recorded] == [
        (m.kind, m.key, m.value) for m in stream
    ]
    assert summary.messages == len(stream) and summary.by_kind["duplicate"] > 0

    truth = ground_truth(out)
    fresh = [m for m in stream if m.kind in ("valid", "late")]
    assert truth.height == len(fresh) == summary.by_kind["valid"] + summary.by_kind["late"]
    assert truth["event_id"].n_unique() == truth.height
    assert truth["event_id"].to_list() == [msgspec.json.decode(m.value)["event_id"] for m in fresh]
    tokens = truth.select((pl.col("input_tokens") + pl.col("output_tokens")).sum()).item()
    assert tokens == sum(m.tokens for m in fresh) == sum(summary.tokens_by_actor.values())
    assert truth.schema["occurred_at"] == pl.Datetime("us", "UTC")
    first = truth.row(0, named=True)
    assert (
        events.encode(
            events.TokenUsageEvent(**{k: v for k, v in first.items() if k != "sent_index"})
        )
        == stream[first["sent_index"]].value
    )

    dead = expected_invalid(out)
    assert dead.height == summary.by_kind["malformed"] + summary.by_kind["invalid"]
    assert set(dead["kind"]) == {"malformed", "invalid"}
    assert dead["value"].to_list() == [m.value.decode() for m in stream if m.kind in INVALID_KINDS]
    assert (
        dead.filter(pl.col("kind") == "malformed")["reason"]
        .is_in(["malformed_json", "not_an_object", "missing_field", "unknown_field"])
        .all()
    )


def test_simulate_command_writes_the_stream_file(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli.jsonl"
    code = main(
        ["simulate", "--no-kafka", "--out", str(out), "--events", "500", "--days", "1",
         "--duplicates", "0.1", "--seed", "4"]
    )  # fmt: skip
    assert code == 0
    assert len(out.read_bytes().splitlines()) == 500
    assert "Sent 500 messages" in capsys.readouterr().out
    assert ground_truth(out).height > 400


@pytest.mark.integration
def test_replay_sends_the_recorded_stream_exactly(
    kafka_settings, kafka_broker, unique_topic: str, tmp_path: Path
) -> None:
    from confluent_kafka import Consumer

    from streams.simulate import replay
    from streams.topics import TopicSpec

    out = tmp_path / "stream.jsonl"
    sent = run(
        kafka_settings, seed=9, events=3_000, tenants=8, faults=FAULTS, out=out, topic=unique_topic
    )
    again_topic = unique_topic + ".replay"
    kafka_broker.create_topics([TopicSpec(again_topic, partitions=6)])
    replayed = replay(out, kafka_settings, topic=again_topic)
    assert sent.messages == replayed.messages == 3_000
    assert replayed.by_kind == sent.by_kind

    def partitions(topic: str) -> dict[int, list[tuple[bytes | None, bytes]]]:
        consumer = Consumer(
            kafka_settings.librdkafka(
                **{"group.id": f"read-{topic}", "auto.offset.reset": "earliest"}
            )
        )
        consumer.subscribe([topic])
        seen: dict[int, list[tuple[bytes | None, bytes]]] = defaultdict(list)
        count, idle = 0, 0
        while count < 3_000 and idle < 30:
            batch = consumer.consume(num_messages=1000, timeout=1.0)
            idle = 0 if batch else idle + 1
            for message in batch:
                assert message.error() is None
                seen[message.partition()].append((message.key(), message.value()))
                count += 1
        consumer.close()
        return seen

    original, copy = partitions(unique_topic), partitions(again_topic)
    assert sum(len(v) for v in original.values()) == 3_000

    def keyed(seen: dict[int, list[tuple[bytes | None, bytes]]]) -> dict[int, list]:
        kept = {p: [m for m in ms if m[0] is not None] for p, ms in seen.items()}
        # A partition that got only unkeyed messages (random placement) holds no keyed ones.
        return {p: ms for p, ms in kept.items() if ms}

    # Keyed messages: same keys, same bytes, same order on every partition. Messages
    # without a key go to a random partition (librdkafka's murmur2_random): same multiset.
    assert keyed(copy) == keyed(original)
    unkeyed = sorted(m for ms in original.values() for m in ms if m[0] is None)
    assert unkeyed == sorted(m for ms in copy.values() for m in ms if m[0] is None)
    recorded = [(m.key, m.value) for m in read_jsonl(out)]
    for partition, messages in keyed(original).items():
        on_partition = set(messages)
        in_file = [m for m in recorded if m[0] is not None and m in on_partition]
        assert messages == in_file, partition  # the file's order, partition by partition


@pytest.mark.integration
def test_simulate_command_sends_to_kafka(
    kafka_settings, unique_topic: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from confluent_kafka import Consumer

    from streams.settings import get_settings

    monkeypatch.setenv("TOKENHUB_BOOTSTRAP_SERVERS", kafka_settings.bootstrap)
    get_settings.cache_clear()
    try:
        code = main(["simulate", "--events", "700", "--topic", unique_topic, "--late", "0.1"])
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert code == 0
    assert f"Sent 700 messages to Kafka topic {unique_topic}" in capsys.readouterr().out
    consumer = Consumer(
        kafka_settings.librdkafka(**{"group.id": "cli-check", "auto.offset.reset": "earliest"})
    )
    consumer.subscribe([unique_topic])
    received, idle = [], 0
    while len(received) < 700 and idle < 20:
        batch = consumer.consume(num_messages=1000, timeout=1.0)
        idle = 0 if batch else idle + 1
        received.extend(m for m in batch if m.error() is None)
    consumer.close()
    assert len(received) == 700
    assert all(events.parse(m.value()).tenant_id.encode() == m.key() for m in received)
