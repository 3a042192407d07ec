"""The broker goes away and comes back while the producer and the worker run.

A private broker (its own ports and folder, so the session broker other tests use is never
touched) is stopped, gracefully or with SIGKILL, in the middle of a simulated stream. The
producer keeps its messages buffered and retries (idempotent, acks=all); the worker
reconnects. Afterwards every valid event is counted once and every invalid one is
dead-lettered once, exactly as the oracle says.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from streams.app_runner import WorkerHandle, start_worker, stop_worker
from streams.broker import LocalKafka
from streams.producer import TokenUsageProducer
from streams.settings import Settings
from streams.simulate import ground_truth
from streams.topics import EVENTS
from tests.reliability.conftest import (
    dead_letters_of,
    expected_dead_letters,
    expected_tenant_totals,
    for_faults,
    live_tenant_totals,
    record_stream,
)
from tests.streams.worker_fixtures import rater_path

pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker of this test alone, which the test may stop and start."""
    settings = Settings(
        home=tmp_path / "home",
        kafka_port=_free_port(),
        kafka_controller_port=_free_port(),
        kafka_heap="384m",
    )
    broker = LocalKafka(settings)
    broker.up()
    try:
        yield broker
    finally:
        broker.down()


def _worker_settings(broker: LocalKafka, tmp_path: Path) -> Settings:
    budgets = tmp_path / "budgets.csv"
    budgets.write_text("tenant_id,effective_from,daily_budget,currency\n*,2024-01-01,1000000,CNY\n")
    return for_faults(
        broker.settings.model_copy(
            update={
                "live_source_topic": EVENTS.name,
                "worker_app_id": f"restart-{uuid.uuid4().hex[:8]}",
                "web_port": _free_port(),
                "live_rater": rater_path(),
                "budgets_path": budgets,
            }
        )
    )


def _health(worker: WorkerHandle) -> dict[str, Any] | None:
    with contextlib.suppress(requests.RequestException, ValueError):
        response = requests.get(f"{worker.base_url}/health/", timeout=10)
        if response.status_code == 200:
            health: dict[str, Any] = response.json()
            return health
    return None


def _wait_caught_up(worker: WorkerHandle, expected_events: int, timeout: float) -> dict[str, Any]:
    """Poll health (which answers 503 while Kafka is away) until the worker is caught up."""
    deadline = time.monotonic() + timeout
    health: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        assert worker.process.poll() is None, f"the worker died; see {worker.log_path}"
        health = _health(worker)
        if (
            health
            and health["total_lag"] == 0
            and health["stats"].get("events", 0) >= expected_events
        ):
            return health
        time.sleep(0.5)
    raise AssertionError(f"worker did not catch up within {timeout}s: {health}")


def _stop_broker(broker: LocalKafka, how: str) -> None:
    if how == "graceful":
        broker.down()
        return
    pid = int(broker.pid_file.read_text())
    os.killpg(pid, signal.SIGKILL)  # a crash: no controlled shutdown, no final flush
    broker.down()  # reaps it and removes the pid file


@pytest.mark.parametrize("how", ["graceful", "sigkill"])
def test_broker_restart_while_producing_and_consuming_loses_nothing(
    private_broker: LocalKafka, tmp_path: Path, how: str
) -> None:
    settings = _worker_settings(private_broker, tmp_path)
    path = tmp_path / "stream.jsonl"
    messages = record_stream(path, seed=37, events=3000)
    worker = start_worker(settings)
    errors: list[BaseException] = []
    first_third_sent, broker_down, second_third_sent = (threading.Event() for _ in range(3))
    third = len(messages) // 3

    def produce_across_the_outage() -> None:
        try:
            producer = TokenUsageProducer(settings, topic=settings.live_source_topic)
            for index, (key, value) in enumerate(messages):
                if index == third:
                    first_third_sent.set()
                    broker_down.wait(60)
                if index == 2 * third:
                    second_third_sent.set()  # into the producer's buffer: Kafka is away
                producer.send_raw(key, value)
                if index % 100 == 99:
                    time.sleep(0.05)
            producer.flush(timeout=180)  # buffered messages are retried until acknowledged
        except BaseException as error:  # surfaced in the test thread below
            errors.append(error)

    producing = threading.Thread(target=produce_across_the_outage)
    try:
        producing.start()
        assert first_third_sent.wait(60)
        time.sleep(0.5)  # let some of it be in flight
        _stop_broker(private_broker, how)
        broker_down.set()
        assert second_third_sent.wait(60)
        time.sleep(3)
        private_broker.up()
        producing.join(timeout=240)
        assert not producing.is_alive() and not errors, errors

        health = _wait_caught_up(worker, expected_events=len(messages), timeout=180)
        assert health["stats"]["counted"] == ground_truth(path).height
        assert live_tenant_totals(worker) == expected_tenant_totals(path)
        letters = dead_letters_of(settings, settings.live_source_topic)
        assert letters.as_counter() == expected_dead_letters(path)
    finally:
        stop_worker(worker, kill=True)
