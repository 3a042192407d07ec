"""Shared fixtures: a real Kafka broker for the whole session, torn down at the end.

The broker listens on ``TOKENHUB_TEST_KAFKA_PORT`` (default: a free port) with its data in
a temporary folder, so tests never touch a developer's running broker.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.broker import LocalKafka
from streams.settings import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A real single-node KRaft broker with the project's topics created."""
    home = tmp_path_factory.mktemp("tokenhub-home")
    port = int(os.environ.get("TOKENHUB_TEST_KAFKA_PORT") or _free_port())
    settings = Settings(home=home, kafka_port=port, kafka_controller_port=_free_port())
    broker = LocalKafka(settings)
    broker.up()
    try:
        yield broker
    finally:
        broker.down()


@pytest.fixture(scope="session")
def kafka_settings(kafka_broker: LocalKafka) -> Settings:
    """Settings pointing at the session broker."""
    return kafka_broker.settings


@pytest.fixture
def unique_topic(kafka_broker: LocalKafka) -> str:
    """A fresh topic (6 partitions) for a test that must see only its own messages."""
    from streams.topics import TopicSpec

    name = f"test.{uuid.uuid4().hex[:12]}"
    kafka_broker.create_topics([TopicSpec(name, partitions=6)])
    return name


@pytest.fixture
def tmp_home(tmp_path: Path, kafka_settings: Settings) -> Settings:
    """Settings with a private working folder, pointing at the session broker."""
    return kafka_settings.model_copy(update={"home": tmp_path})
