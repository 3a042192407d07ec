"""Landing exactly once: real broker, real DuckDB file, the simulator's ground truth as oracle."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import duckdb
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams import events
from streams.app_runner import settings_env
from streams.producer import TokenUsageProducer
from streams.settings import Settings
from streams.simulate import FaultRates, expected_invalid, generate, ground_truth, read_jsonl, run
from warehouse.loader import land, prepare_batch

_NOW = datetime(2026, 11, 1, tzinfo=UTC)
#: A few valid payloads with distinct event_ids, and bytes the contract refuses.
_VALID = [m.value for m in generate(seed=5, events=4, now=_NOW)]
_INVALID = [b"", b"{", b"[]", b'{"event_id": 1}', b"\xff\xfe", b"x" * 20_000]


class _Message(NamedTuple):
    """The part of ``confluent_kafka.Message`` the loader reads."""

    payload: bytes
    partition_number: int
    offset_number: int
    message_key: bytes | None = b"tenant"

    def value(self) -> bytes:
        return self.payload

    def key(self) -> bytes | None:
        return self.message_key

    def partition(self) -> int:
        return self.partition_number

    def offset(self) -> int:
        return self.offset_number


@given(
    st.lists(
        st.one_of(st.sampled_from(_VALID), st.sampled_from(_INVALID), st.binary(max_size=40)),
        max_size=40,
    )
)
def test_a_batch_is_split_into_first_deliveries_repeats_and_invalid(
    payloads: list[bytes],
) -> None:
    messages = [_Message(payload, index % 3, index) for index, payload in enumerate(payloads)]
    batch = prepare_batch(messages, {}, now=_NOW)

    first_seen: dict[str, int] = {}
    repeats, invalid = [], []
    for message in messages:
        try:
            event_id = events.parse(message.payload, now=_NOW).event_id
        except events.InvalidEvent as error:
            invalid.append((message.offset_number, message.payload, error.reason))
            continue
        if event_id in first_seen:
            repeats.append((event_id, message.offset_number))
        else:
            first_seen[event_id] = message.offset_number
    landed = batch.events.select(["event_id", "kafka_offset"]).to_pylist()
    assert [(row["event_id"], row["kafka_offset"]) for row in landed] == list(first_seen.items())
    repeated = batch.repeats.select(["event_id", "kafka_offset"]).to_pylist()
    assert [(row["event_id"], row["kafka_offset"]) for row in repeated] == repeats
    quarantined = batch.invalid.select(["kafka_offset", "payload", "reason"]).to_pylist()
    assert [(row["kafka_offset"], row["payload"], row["reason"]) for row in quarantined] == invalid
    assert batch.events.num_rows + batch.repeats.num_rows + batch.invalid.num_rows == len(payloads)
    # Every column holds exactly what the contract parsed (name, order, type, nulls).
    by_id = {events.parse(p, now=_NOW).event_id: p for p in _VALID}
    for row in batch.events.to_pylist():
        parsed = msgspec.structs.asdict(events.parse(by_id[row["event_id"]], now=_NOW))
        assert {name: row[name] for name in parsed} == parsed


FAULTS = FaultRates(duplicates=0.03, malformed=0.01, invalid=0.01, late=0.01, out_of_order=0.01)
REPO = Path(__file__).resolve().parents[2]


def _simulate(settings: Settings, topic: str, path: Path, *, events: int, seed: int) -> None:
    run(settings, seed=seed, events=events, days=3, faults=FAULTS, out=path, topic=topic)


def _raw(settings: Settings) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(settings.warehouse_path), read_only=True)


def _assert_matches_truth(settings: Settings, stream: Path) -> None:
    """raw.* equal the simulator's oracle: same events, same tokens, same quarantine."""
    truth = ground_truth(stream)
    invalid = expected_invalid(stream)
    messages = sum(1 for _ in read_jsonl(stream))
    with _raw(settings) as con:
        landed_ids = [
            row[0] for row in con.sql("select event_id from raw.token_usage_events").fetchall()
        ]
        assert len(landed_ids) == len(set(landed_ids)), "an event landed twice"
        assert set(landed_ids) == set(truth["event_id"].to_list())
        sums = con.execute(
            "select sum(input_tokens), sum(cached_input_tokens), sum(output_tokens), "
            "sum(thinking_tokens), sum(accelerator_ms) from raw.token_usage_events"
        ).fetchone()
        expected = tuple(
            truth[column].sum()
            for column in (
                "input_tokens",
                "cached_input_tokens",
                "output_tokens",
                "thinking_tokens",
                "accelerator_ms",
            )
        )
        assert sums == expected
        reasons = collections.Counter(
            row[0] for row in con.execute("select reason from raw.quarantine").fetchall()
        )
        assert reasons == collections.Counter(invalid["reason"].to_list())
        payloads = {row[0] for row in con.execute("select payload from raw.quarantine").fetchall()}
        assert payloads == {value.encode() for value in invalid["value"].to_list()}
        redeliveries = con.execute("select count(*) from raw.redeliveries").fetchone()
        assert redeliveries is not None
        assert redeliveries[0] == messages - len(truth) - len(invalid)


@pytest.mark.integration
def test_lands_the_stream_exactly_as_the_ground_truth(
    tmp_home: Settings, unique_topic: str, tmp_path: Path
) -> None:
    stream = tmp_path / "stream.jsonl"
    _simulate(tmp_home, unique_topic, stream, events=20_000, seed=11)

    first = land(tmp_home, topic=unique_topic, batch_size=4_000)

    truth = ground_truth(stream)
    assert first.landed == len(truth)
    assert first.quarantined == len(expected_invalid(stream))
    assert first.duplicates > 0
    assert first.batches >= 5
    assert first.event_dates == set(truth["occurred_at"].dt.date().unique().to_list())
    _assert_matches_truth(tmp_home, stream)
    with _raw(tmp_home) as con:
        offsets = con.execute(
            "select sum(next_offset) from raw.kafka_offsets where topic = ?", [unique_topic]
        ).fetchone()
    assert offsets == (sum(1 for _ in read_jsonl(stream)),)
    _assert_offsets_match_rows(tmp_home, unique_topic)

    again = land(tmp_home, topic=unique_topic)
    assert (again.landed, again.duplicates, again.quarantined) == (0, 0, 0)
    _assert_matches_truth(tmp_home, stream)


@pytest.mark.integration
def test_a_redelivery_days_later_lands_once(
    tmp_home: Settings, unique_topic: str, tmp_path: Path
) -> None:
    stream = tmp_path / "stream.jsonl"
    _simulate(tmp_home, unique_topic, stream, events=2_000, seed=12)
    land(tmp_home, topic=unique_topic)
    oldest = ground_truth(stream).sort("occurred_at").row(0, named=True)
    original = next(
        message
        for message in read_jsonl(stream)
        if message.value and oldest["event_id"].encode() in message.value
    )

    producer = TokenUsageProducer(tmp_home, topic=unique_topic)
    producer.send_raw(original.key, original.value)  # the retry, much later
    producer.close()
    late = land(tmp_home, topic=unique_topic)

    assert (late.landed, late.duplicates, late.quarantined) == (0, 1, 0)
    assert late.event_dates == set()
    with _raw(tmp_home) as con:
        assert con.execute(
            "select count(*) from raw.token_usage_events where event_id = ?",
            [oldest["event_id"]],
        ).fetchone() == (1,)
        assert con.execute(
            "select count(*) from raw.redeliveries where event_id = ?", [oldest["event_id"]]
        ).fetchone() == (1,)


@pytest.mark.integration
def test_max_batches_stops_early_and_resumes_where_it_stopped(
    tmp_home: Settings, unique_topic: str, tmp_path: Path
) -> None:
    stream = tmp_path / "stream.jsonl"
    _simulate(tmp_home, unique_topic, stream, events=3_000, seed=13)

    partial = land(tmp_home, topic=unique_topic, max_batches=1, batch_size=500)
    assert partial.batches == 1 and 0 < partial.messages <= 500
    rest = land(tmp_home, topic=unique_topic, batch_size=500)

    assert partial.landed + rest.landed == len(ground_truth(stream))
    _assert_matches_truth(tmp_home, stream)


@pytest.mark.integration
def test_an_unreachable_broker_is_one_clear_error(tmp_path: Path) -> None:
    from streams.broker import BrokerError

    settings = Settings(home=tmp_path, bootstrap_servers="127.0.0.1:1")
    with pytest.raises(BrokerError, match=r"not reachable at 127\.0\.0\.1:1"):
        land(settings, metadata_timeout=1.0)
    assert not settings.warehouse_path.exists()


def holds_writer_lock(path: Path) -> bool:
    """Whether some process holds DuckDB's write lock on ``path`` (Linux ``/proc/locks``).

    Probing by opening the file read-only would take a shared lock, and a loader starting
    at that instant would fail to get its write lock: this probe touches nothing.
    """
    try:
        inode = path.stat().st_ino
    except FileNotFoundError:
        return False
    with open("/proc/locks") as locks:
        # "1: POSIX  ADVISORY  WRITE <pid> <major>:<minor>:<inode> 0 EOF"; "->" marks a
        # process waiting for the lock, not holding it.
        return any(
            " WRITE " in line
            and "->" not in line
            and any(word.endswith(f":{inode}") for word in line.split())
            for line in locks
        )


def wait_until_writing(process: subprocess.Popen[bytes], path: Path, log: Path) -> None:
    """Block until ``process`` has opened the warehouse for writing (its handlers are in)."""
    deadline = time.monotonic() + 60
    while not holds_writer_lock(path):
        assert process.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, "the loader never opened the warehouse"
        time.sleep(0.05)


def _assert_offsets_match_rows(settings: Settings, topic: str) -> None:
    """Every message below the stored offsets is in raw.* exactly once, none beyond them."""
    with _raw(settings) as con:
        rows = con.execute(
            """
            with accounted as (
                select kafka_partition, kafka_offset from raw.token_usage_events
                union all select kafka_partition, kafka_offset from raw.redeliveries
                union all select kafka_partition, kafka_offset from raw.quarantine
            )
            select o.partition, o.next_offset, count(a.kafka_offset),
                count(distinct a.kafka_offset), max(a.kafka_offset)
            from raw.kafka_offsets as o
            left join accounted as a on a.kafka_partition = o.partition
            where o.topic = ?
            group by all
            """,
            [topic],
        ).fetchall()
    for partition, next_offset, count, distinct, highest in rows:
        assert count == distinct == next_offset, (partition, next_offset, count, distinct)
        assert highest is None or highest == next_offset - 1, (partition, highest)


def _messages_landed(settings: Settings, topic: str) -> int:
    """Messages read so far according to the offsets committed in DuckDB."""
    with _raw(settings) as con:
        row = con.execute(
            "select coalesce(sum(next_offset), 0) from raw.kafka_offsets where topic = ?", [topic]
        ).fetchone()
    return int(row[0]) if row else 0


def _loader_process(settings: Settings, topic: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "tokenhub.cli", "land", "--follow", "--topic", topic,
         "--batch-size", "700"],
        env=env,
        cwd=REPO,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.mark.integration
def test_a_loader_killed_at_random_moments_loses_and_repeats_nothing(
    tmp_home: Settings, unique_topic: str, tmp_path: Path
) -> None:
    """SIGKILL (no clean-up at all) three times while events keep arriving, then compare."""
    import threading

    stream = tmp_path / "stream.jsonl"
    log = tmp_path / "loader.log"
    producing = threading.Thread(
        target=run,
        args=(tmp_home,),
        kwargs={
            "seed": 14,
            "events": 24_000,
            "days": 3,
            "faults": FAULTS,
            "out": stream,
            "topic": unique_topic,
            "rate": 3_000,
        },
    )
    producing.start()
    chance = random.Random()
    landed_after_kill = [0]
    attempts = 0
    try:
        # Three kills of a loader that made progress since the last one (a loaded machine
        # may need more attempts); each kill comes at a random moment of its work.
        while len(landed_after_kill) < 4:
            attempts += 1
            assert attempts <= 10, landed_after_kill
            process = _loader_process(tmp_home, unique_topic, log)
            try:
                wait_until_writing(process, tmp_home.warehouse_path, log)
                time.sleep(chance.uniform(0.3, 2.0))
            finally:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)
            _assert_offsets_match_rows(tmp_home, unique_topic)
            landed = _messages_landed(tmp_home, unique_topic)
            if landed > landed_after_kill[-1]:
                landed_after_kill.append(landed)
    finally:
        producing.join(timeout=120)
    final = _loader_process(tmp_home, unique_topic, log)
    try:
        wait_until_writing(final, tmp_home.warehouse_path, log)
        time.sleep(1.0)
    finally:
        final.send_signal(signal.SIGTERM)  # a clean stop: finishes the batch in flight
        assert final.wait(timeout=30) == 0, log.read_text()[-2000:]
    land(tmp_home, topic=unique_topic)  # whatever the follower had not reached

    _assert_matches_truth(tmp_home, stream)


@pytest.mark.integration
def test_a_crash_inside_the_batch_transaction_commits_nothing_of_it(
    tmp_home: Settings, unique_topic: str, tmp_path: Path
) -> None:
    """The worst moment: rows and offsets inserted, not committed, then SIGKILL."""
    stream = tmp_path / "stream.jsonl"
    log = tmp_path / "loader.log"
    _simulate(tmp_home, unique_topic, stream, events=3_000, seed=15)
    crashing = tmp_home.model_copy(update={"loader_crash_after_rows": 1_200})
    env = {**os.environ, **settings_env(crashing)}
    with log.open("wb") as out:
        crashed = subprocess.run(
            [sys.executable, "-m", "tokenhub.cli", "land", "--quiet", "--topic", unique_topic,
             "--batch-size", "500"],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=120,
        )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, log.read_text()[-2000:]

    # Only whole batches before the crash are there, each with its offsets; the one in the
    # transaction left no trace (the 1,200th new row was in it).
    _assert_offsets_match_rows(tmp_home, unique_topic)
    with _raw(tmp_home) as con:
        committed = con.execute("select count(*) from raw.token_usage_events").fetchone()
    assert committed is not None and 0 < committed[0] < 1_200

    resumed = land(tmp_home, topic=unique_topic, batch_size=500)
    assert committed[0] + resumed.landed == len(ground_truth(stream))
    _assert_matches_truth(tmp_home, stream)
    _assert_offsets_match_rows(tmp_home, unique_topic)


@pytest.mark.integration
def test_a_second_loader_on_a_held_warehouse_is_one_clear_error(
    tmp_home: Settings, unique_topic: str, tmp_path: Path
) -> None:
    log = tmp_path / "loader.log"
    first = _loader_process(tmp_home, unique_topic, log)
    try:
        wait_until_writing(first, tmp_home.warehouse_path, log)
        second = subprocess.run(
            [sys.executable, "-m", "tokenhub.cli", "land", "--quiet", "--topic", unique_topic],
            env={**os.environ, **settings_env(tmp_home)},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0, log.read_text()[-2000:]
    assert second.returncode == 2, second.stderr[-2000:]
    assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
    assert "lock" in second.stderr and "tokenhub land" in second.stderr
