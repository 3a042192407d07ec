"""The local KRaft broker: the fixture is up with the declared topics; up/down/status behave."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.broker import BrokerError, LocalKafka
from streams.settings import Settings, get_settings
from streams.topics import ALL_TOPICS
from tokenhub.cli import main

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Environment for CLI calls; the cached settings are re-read before and after."""
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def point_cli_at(env: pytest.MonkeyPatch, settings: Settings) -> None:
    env.setenv("TOKENHUB_HOME", str(settings.home))
    env.setenv("TOKENHUB_KAFKA_PORT", str(settings.kafka_port))
    env.setenv("TOKENHUB_KAFKA_CONTROLLER_PORT", str(settings.kafka_controller_port))
    env.delenv("TOKENHUB_BOOTSTRAP_SERVERS", raising=False)
    get_settings.cache_clear()


def test_fixture_broker_is_up_with_every_declared_topic(kafka_broker: LocalKafka) -> None:
    status = kafka_broker.status()
    assert status.running and status.pid is not None
    metadata = kafka_broker.admin().list_topics(timeout=10)
    for spec in ALL_TOPICS:
        assert spec.name in status.topics
        assert len(metadata.topics[spec.name].partitions) == spec.partitions


def test_up_twice_is_harmless(kafka_broker: LocalKafka) -> None:
    before = kafka_broker.status()
    again = kafka_broker.up()
    assert again.running and again.pid == before.pid
    assert set(again.topics) >= {spec.name for spec in ALL_TOPICS}


def test_port_taken_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        broker = LocalKafka(
            Settings(home=tmp_path, kafka_port=port, kafka_controller_port=free_port())
        )
        with pytest.raises(BrokerError, match=f"Port {port} on 127.0.0.1 is already taken") as err:
            broker.up()
    assert "TOKENHUB_KAFKA_PORT" in str(err.value)
    assert broker.status().running is False


def test_kafka_status_exit_codes(
    kafka_broker: LocalKafka, cli_env: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    point_cli_at(cli_env, kafka_broker.settings)
    assert main(["kafka", "status"]) == 0
    assert "Kafka is up on" in capsys.readouterr().out
    assert main(["kafka", "up"]) == 0
    assert capsys.readouterr().out.startswith("Already up.")

    point_cli_at(
        cli_env, Settings(home=tmp_path, kafka_port=free_port(), kafka_controller_port=free_port())
    )
    assert main(["kafka", "status"]) == 1
    assert "Kafka is down" in capsys.readouterr().out
    assert main(["kafka", "down"]) == 0
    assert "not running" in capsys.readouterr().out


def test_a_second_broker_starts_and_stops_cleanly(kafka_broker: LocalKafka, tmp_path: Path) -> None:
    # Uses the jars the session broker fetched; its own folder and ports.
    settings = Settings(
        home=tmp_path,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        cache_dir=kafka_broker.settings.cache_dir,
        kafka_heap="256m",
    )
    broker = LocalKafka(settings, topics=ALL_TOPICS[:1])
    try:
        status = broker.up()
        assert status.running and ALL_TOPICS[0].name in status.topics
    finally:
        assert broker.down() is True
    assert broker.status().running is False
    assert not broker.pid_file.exists()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", settings.kafka_port)) != 0
    assert broker.down() is False  # down twice is harmless too
