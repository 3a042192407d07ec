"""Security: SASL/SCRAM through the one settings object, and secrets never leak.

A second real broker (its own ports and folder) opens a ``SASL_PLAINTEXT`` listener with one
SCRAM-SHA-512 user whose password is a unique marker string. Every test that could print,
log or raise something also checks the marker (and the wrong password, another marker) is
absent from what came out: stdout, stderr, librdkafka's debug log, exception messages and the
broker's own files.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from streams.broker import SCRAM_MECHANISM, LocalKafka
from streams.events import parse
from streams.producer import DeliveryFailed, TokenUsageProducer
from streams.settings import Settings
from streams.topics import EVENTS

RIGHT_PASSWORD = f"right-pw-{uuid.uuid4().hex}"
WRONG_PASSWORD = f"wrong-pw-{uuid.uuid4().hex}"
SECRETS = (RIGHT_PASSWORD, WRONG_PASSWORD)
USER = "tokenhub-admin"

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def assert_no_secret(*texts: object) -> None:
    """Fail if any SASL password appears in any of ``texts``."""
    for text in texts:
        for secret in SECRETS:
            assert secret not in str(text), f"a SASL password leaked into: {str(text)[:300]!r}"


def valid_event(event_id: str | None = None) -> dict[str, Any]:
    """One valid token usage event (human chat request)."""
    return {
        "event_id": event_id or f"sec-{uuid.uuid4().hex}",
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "tenant_id": "tenant-sec",
        "workspace_id": "ws-1",
        "api_key_id": "key-1",
        "product": "chat",
        "channel": "own_product",
        "actor_type": "human",
        "actor_id": "user-1",
        "session_id": "session-1",
        "request_id": "request-1",
        "model": "qwen-plus",
        "region": "cn-beijing",
        "chip_family": "gpu",
        "mode": "realtime",
        "input_tokens": 120,
        "cached_input_tokens": 20,
        "output_tokens": 80,
        "thinking_tokens": 0,
        "accelerator_ms": 40,
    }


@pytest.fixture(scope="module")
def scram_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A broker with a SCRAM-SHA-512 listener beside PLAINTEXT, one user: ``USER``."""
    home = tmp_path_factory.mktemp("scram-home")
    settings = Settings(
        home=home, kafka_port=_free_port(), kafka_controller_port=_free_port(), kafka_heap="384m"
    )
    broker = LocalKafka(settings, scram_users={USER: RIGHT_PASSWORD}, sasl_port=_free_port())
    broker.up()
    try:
        yield broker
    finally:
        broker.down()


def scram_settings(broker: LocalKafka, password: str, **extra: Any) -> Settings:
    """Client settings for the SASL listener, as a deployment would set them."""
    return Settings(
        **{"home": broker.settings.home, **extra},
        bootstrap_servers=broker.sasl_bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=SCRAM_MECHANISM,
        sasl_username=USER,
        sasl_password=SecretStr(password),
    )


def scram_env(broker: LocalKafka, password: str, bootstrap: str | None = None) -> dict[str, str]:
    """The same settings as environment variables, for a CLI process."""
    return {
        **os.environ,
        "TOKENHUB_HOME": str(broker.settings.home),
        "TOKENHUB_BOOTSTRAP_SERVERS": bootstrap or broker.sasl_bootstrap or "",
        "TOKENHUB_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "TOKENHUB_SASL_MECHANISM": SCRAM_MECHANISM,
        "TOKENHUB_SASL_USERNAME": USER,
        "TOKENHUB_SASL_PASSWORD": password,
    }


def test_wrong_scram_password_is_refused_with_an_authentication_error(
    scram_broker: LocalKafka,
) -> None:
    errors: list[KafkaError] = []
    admin = AdminClient(
        scram_settings(scram_broker, WRONG_PASSWORD).librdkafka(error_cb=errors.append, log_level=0)
    )
    with pytest.raises(KafkaException) as refused:
        admin.list_topics(timeout=6)
    admin.poll(1)  # serve the error callbacks
    assert any(error.code() == KafkaError._AUTHENTICATION for error in errors), errors
    assert_no_secret(refused.value, *(error.str() for error in errors))


def test_right_scram_password_produces_and_consumes(scram_broker: LocalKafka) -> None:
    settings = scram_settings(scram_broker, RIGHT_PASSWORD)
    event = valid_event()
    with TokenUsageProducer(settings) as producer:
        producer.send(event)
    assert producer.stats.delivered == 1

    consumer = Consumer(
        settings.librdkafka(
            **{
                "group.id": f"sec-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    try:
        consumer.subscribe([EVENTS.name])
        seen: list[str] = []
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            seen.append(parse(message.value()).event_id)
            if event["event_id"] in seen:
                break
    finally:
        consumer.close()
    assert event["event_id"] in seen


def test_plaintext_client_cannot_use_the_sasl_listener(scram_broker: LocalKafka) -> None:
    # A client that forgot its credentials gets nothing, not an unauthenticated session.
    settings = Settings(
        home=scram_broker.settings.home, bootstrap_servers=scram_broker.sasl_bootstrap
    )
    admin = AdminClient(settings.librdkafka(log_level=0))
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=4)


def test_producer_with_wrong_password_fails_delivery_without_leaking_it(
    scram_broker: LocalKafka, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    logger = logging.getLogger("tokenhub.test.librdkafka")
    caplog.set_level(logging.DEBUG, logger=logger.name)
    settings = scram_settings(scram_broker, WRONG_PASSWORD)
    # librdkafka's most talkative debug output, configuration dump included, is checked too.
    producer = TokenUsageProducer(
        settings,
        config={
            "message.timeout.ms": 4000,
            "debug": "conf,security,broker,protocol",
            "logger": logger,
        },
    )
    producer.send(valid_event())
    with pytest.raises(DeliveryFailed) as failed:
        producer.flush(timeout=15)
    captured = capfd.readouterr()
    assert caplog.records, "the debug logger received nothing: the check below would be empty"
    assert_no_secret(
        failed.value,
        repr(failed.value.failures),
        captured.out,
        captured.err,
        "\n".join(record.getMessage() for record in caplog.records),
    )


def test_settings_never_show_the_password() -> None:
    settings = Settings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=SCRAM_MECHANISM,
        sasl_username=USER,
        sasl_password=SecretStr(RIGHT_PASSWORD),
    )
    assert settings.librdkafka()["sasl.password"] == RIGHT_PASSWORD  # the client does get it
    credentials = settings.faust_credentials()
    assert credentials.password == RIGHT_PASSWORD
    assert_no_secret(
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        settings.redacted_librdkafka(),
        repr(credentials),
    )


def test_faust_gets_the_same_scram_and_tls_settings(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=tokenhub-test-ca", "-keyout", str(tmp_path / "ca.key")),
            *("-out", str(ca)),
        ],
        check=True,
        capture_output=True,
    )
    settings = Settings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=USER,
        sasl_password=SecretStr(RIGHT_PASSWORD),
        ssl_ca_location=ca,
    )
    config = settings.librdkafka()
    assert config["security.protocol"] == "sasl_ssl"
    assert config["ssl.ca.location"] == str(ca)
    credentials = settings.faust_credentials()
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.ssl_context is not None
    assert credentials.ssl_context.get_ca_certs()[0]["subject"] == (
        (("commonName", "tokenhub-test-ca"),),
    )
    tls_only = Settings(security_protocol="SSL", ssl_ca_location=ca).faust_credentials()
    assert tls_only.protocol.value == "SSL"
    assert Settings().faust_credentials() is None


def _run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenhub.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("case", "password", "expect_ok"),
    [("right password", RIGHT_PASSWORD, True), ("wrong password", WRONG_PASSWORD, False)],
    ids=["right-password", "wrong-password"],  # not the passwords: test ids are printed
)
def test_cli_never_prints_the_sasl_password(
    scram_broker: LocalKafka, case: str, password: str, expect_ok: bool
) -> None:
    result = _run_cli("kafka", "topics", env=scram_env(scram_broker, password))
    assert (result.returncode == 0) is expect_ok, (case, result.stdout, result.stderr)
    if not expect_ok:
        # A one-line error, not a traceback, and still no secret in it.
        assert "Traceback" not in result.stderr
        assert "error" in result.stderr
    assert_no_secret(result.stdout, result.stderr)


def test_cli_with_unreachable_broker_does_not_print_the_password(
    scram_broker: LocalKafka,
) -> None:
    closed = f"127.0.0.1:{_free_port()}"
    result = _run_cli("kafka", "topics", env=scram_env(scram_broker, RIGHT_PASSWORD, closed))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert_no_secret(result.stdout, result.stderr)


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses with a socket listening on ``port`` (from /proc/net/tcp)."""
    found: set[str] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def test_worker_authenticates_with_scram_and_its_views_bind_to_localhost(
    scram_broker: LocalKafka, tmp_path: Path
) -> None:
    # Imported here: the worker's app module reads the process settings when imported.
    from streams.app_runner import start_worker, stop_worker
    from streams.topics import TopicSpec
    from tests.streams.worker_fixtures import free_port, produce, rater_path, view, wait_caught_up

    topic = f"test.sec.{uuid.uuid4().hex[:8]}"
    scram_broker.create_topics([TopicSpec(topic, partitions=EVENTS.partitions)])
    budgets = tmp_path / "budgets.csv"
    budgets.write_text("tenant_id,effective_from,daily_budget,currency\n*,2024-01-01,1000000,CNY\n")
    settings = scram_settings(
        scram_broker,
        RIGHT_PASSWORD,
        home=tmp_path,
        live_source_topic=topic,
        worker_app_id=f"sec-live-{uuid.uuid4().hex[:8]}",
        web_port=free_port(),
        live_rater=rater_path(),
        budgets_path=budgets,
        worker_batch_seconds=0.3,
    )
    assert settings.web_host == "127.0.0.1"  # the default, not set by this test
    produce(settings, [(b"tenant-sec", orjson_dumps(valid_event())) for _ in range(3)])
    produce(settings, [(b"tenant-sec", b"{not json")])
    worker = start_worker(settings)
    try:
        health = wait_caught_up(worker)
        assert health["stats"]["counted"] == 3
        assert view(worker, "dead-letters")["total"] == 1
        assert _listening_addresses(worker.web_port) == {"127.0.0.1"}
        with pytest.raises(OSError):  # another loopback address is not served
            socket.create_connection(("127.0.0.2", worker.web_port), timeout=2).close()
    finally:
        stop_worker(worker, kill=True)
    assert_no_secret(worker.log_path.read_text(errors="replace"))


def orjson_dumps(event: dict[str, Any]) -> bytes:
    import orjson

    return orjson.dumps(event)


def test_loader_lands_from_a_scram_cluster_and_never_prints_the_password(
    scram_broker: LocalKafka, tmp_path: Path
) -> None:
    import duckdb

    from streams.topics import TopicSpec

    topic = f"test.sec.land.{uuid.uuid4().hex[:8]}"
    scram_broker.create_topics([TopicSpec(topic, partitions=2)])
    settings = scram_settings(scram_broker, RIGHT_PASSWORD, home=tmp_path)
    with TokenUsageProducer(settings, topic=topic) as producer:
        for _ in range(3):
            producer.send(valid_event())
        producer.send_raw(b"tenant-sec", b"{not json")
    env = {**scram_env(scram_broker, RIGHT_PASSWORD), "TOKENHUB_HOME": str(tmp_path)}
    landed = _run_cli("land", "--topic", topic, env=env)
    assert landed.returncode == 0, landed.stderr
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert con.execute("select count(*) from raw.token_usage_events").fetchone() == (3,)
        assert con.execute("select reason from raw.quarantine").fetchall() == [("malformed_json",)]

    refused = _run_cli(
        "land", "--topic", topic, env={**env, "TOKENHUB_SASL_PASSWORD": WRONG_PASSWORD}
    )
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    assert_no_secret(landed.stdout, landed.stderr, refused.stdout, refused.stderr)


# Last in the module (tests run in file order): after every other test used the broker.
def test_zz_broker_files_hold_no_password(scram_broker: LocalKafka) -> None:
    # The broker stores salted SCRAM hashes, never the password: not in its properties, its
    # log, or its metadata log.
    for path in scram_broker.dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in SECRETS:
                assert secret.encode() not in data, f"password found in {path}"
