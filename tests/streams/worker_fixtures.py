"""Fixtures for the live worker integration tests: private topic, state, group and port."""

from __future__ import annotations

import importlib
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from confluent_kafka import Consumer, TopicPartition

from streams.app_runner import WorkerHandle, start_worker, stop_worker
from streams.producer import TokenUsageProducer
from streams.settings import Settings

REAL_RATER = "warehouse.pricing.rating:BatchRater"
STAND_IN_RATER = "tests.streams.live_helpers:StandInRater"


def rater_path() -> str:
    """The warehouse's BatchRater when it is there, else the test stand-in."""
    try:
        importlib.import_module("warehouse.pricing.rating").BatchRater  # noqa: B018
    except (ImportError, AttributeError):
        return STAND_IN_RATER
    return REAL_RATER


def load_rater(path: str, settings: Settings) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)(settings)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def live_settings(tmp_home: Settings, unique_topic: str, tmp_path: Path) -> Settings:
    budgets = tmp_path / "budgets.csv"
    budgets.write_text("tenant_id,effective_from,daily_budget,currency\n*,2024-01-01,1000000,CNY\n")
    return tmp_home.model_copy(
        update={
            "live_source_topic": unique_topic,
            "worker_app_id": f"test-live-{uuid.uuid4().hex[:8]}",
            "web_port": free_port(),
            "live_rater": rater_path(),
            "budgets_path": budgets,
            "late_event_allowance_seconds": 60,
            "worker_batch_seconds": 0.3,
        }
    )


@pytest.fixture
def workers(live_settings: Settings) -> Iterator[Callable[..., WorkerHandle]]:
    """Start workers with ``workers()``; every one is stopped at the end of the test."""
    started: list[WorkerHandle] = []

    def start(settings: Settings | None = None, **kwargs: Any) -> WorkerHandle:
        handle = start_worker(settings or live_settings, **kwargs)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        stop_worker(handle, kill=True)


def produce(settings: Settings, messages: list[tuple[bytes | None, bytes]]) -> None:
    with TokenUsageProducer(settings, topic=settings.live_source_topic) as producer:
        for key, value in messages:
            producer.send_raw(key, value)


def view(handle: WorkerHandle, path: str, **params: Any) -> Any:
    response = requests.get(f"{handle.base_url}/{path}/", params=params, timeout=10)
    response.raise_for_status()
    return response.json()


def wait_caught_up(handle: WorkerHandle, *, timeout: float = 60.0) -> dict[str, Any]:
    """Poll the health view until every produced message has been applied."""
    deadline = time.monotonic() + timeout
    health: dict[str, Any] = {}
    while time.monotonic() < deadline:
        health = view(handle, "health")
        if health["status"] == "ok" and health["total_lag"] == 0:
            return health
        time.sleep(0.3)
    raise AssertionError(f"worker did not catch up within {timeout}s: {health}")


def read_topic(settings: Settings, topic: str, *, idle: float = 3.0) -> list[tuple[bytes, Any]]:
    """Every (key, JSON value) of a topic, from the beginning."""
    consumer = Consumer(
        settings.librdkafka(
            **{"group.id": f"reader-{uuid.uuid4().hex}", "enable.auto.commit": False}
        )
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    found: list[tuple[bytes, Any]] = []
    last = time.monotonic()
    try:
        while time.monotonic() - last < idle:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            last = time.monotonic()
            found.append((message.key(), orjson.loads(message.value())))
    finally:
        consumer.close()
    return found
