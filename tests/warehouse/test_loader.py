"""Landing exactly once: real broker, real DuckDB file, the simulator's ground truth as oracle."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from streams.app_runner import settings_env
from streams.producer import TokenUsageProducer
from streams.settings import Settings
from streams.simulate import FaultRates, expected_invalid, ground_truth, read_jsonl, run
from warehouse.loader import land

pytestmark = pytest.mark.integration

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

    again = land(tmp_home, topic=unique_topic)
    assert (again.landed, again.duplicates, again.quarantined) == (0, 0, 0)
    _assert_matches_truth(tmp_home, stream)


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


def test_an_unreachable_broker_is_one_clear_error(tmp_path: Path) -> None:
    from streams.broker import BrokerError

    settings = Settings(home=tmp_path, bootstrap_servers="127.0.0.1:1")
    with pytest.raises(BrokerError, match=r"not reachable at 127\.0\.0\.1:1"):
        land(settings, metadata_timeout=1.0)
    assert not settings.warehouse_path.exists()


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
    chance = random.Random(14)
    landed_after_kill = []
    try:
        for _ in range(3):
            process = _loader_process(tmp_home, unique_topic, log)
            time.sleep(chance.uniform(2.5, 4.0))  # interpreter start + some batches
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            landed_after_kill.append(_messages_landed(tmp_home, unique_topic))
    finally:
        producing.join(timeout=60)
    # The kills interrupted a loader at work, not one still starting up.
    assert landed_after_kill[0] > 0 and len(set(landed_after_kill)) == 3, landed_after_kill
    final = _loader_process(tmp_home, unique_topic, log)
    try:
        time.sleep(1.0)
    finally:
        final.send_signal(signal.SIGTERM)  # a clean stop: finishes the batch in flight
        assert final.wait(timeout=30) == 0, log.read_text()
    land(tmp_home, topic=unique_topic)  # whatever the follower had not reached

    _assert_matches_truth(tmp_home, stream)
