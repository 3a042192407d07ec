"""Resources: the DuckDB warehouse, the Kafka cluster and the books folder.

Each is a :class:`dagster.ConfigurableResource` whose fields mirror
:class:`streams.settings.Settings`, so assets never read the environment themselves.
:func:`resources_for` picks the set for an environment (``TOKENHUB_ENV``):

- ``local`` (default): values of the settings object of this process (``.env``,
  ``TOKENHUB_*``), resolved once at load time: the laptop and the tests;
- ``deployed``: every value is an :class:`dagster.EnvVar`, resolved by Dagster when a run
  starts, so secrets (the SASL password) never appear in the UI or in the run config.

:meth:`Resources.settings` turns the resources back into a :class:`Settings` for the
warehouse entry points (``land``, ``rate``, ``publish``), which take one settings object.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from streams.settings import Settings
from streams.topics import AGGREGATES, EVENTS
from warehouse import db

ENVIRONMENTS = ("local", "deployed")


class WarehouseBusy(RuntimeError):
    """Another process holds the DuckDB write lock (a run is writing)."""


class WarehouseResource(ConfigurableResource):
    """The DuckDB warehouse under ``home`` (``<home>/warehouse/tokenhub.duckdb``)."""

    home: str = Field(description="The tokenhub working folder (TOKENHUB_HOME).")
    reporting_currency: str = Field(default="CNY", description="Currency of consolidated reports.")
    landing_lag_bound_seconds: int = Field(
        default=900, description="Freshness bound of the landing lag check."
    )

    @property
    def path(self) -> Path:
        return Settings(home=Path(self.home)).warehouse_path

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection closed on exit, so the file's write lock is held no longer than a step.

        A read-only open while a run writes raises :class:`WarehouseBusy` (DuckDB allows
        one writing process or several readers): sensors skip their tick on it.
        """
        try:
            con = db.connect(self.path, read_only=read_only)
        except duckdb.IOException as error:
            if "lock" in str(error).lower():
                raise WarehouseBusy(f"{self.path} is locked by another process") from error
            raise
        try:
            yield con
        finally:
            con.close()


class KafkaResource(ConfigurableResource):
    """Where the events and the live aggregates are, and how to authenticate."""

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_location: str | None = None
    events_topic: str = EVENTS.name
    aggregates_topic: str = AGGREGATES.name
    late_event_allowance_seconds: int = Field(
        default=60, description="The live worker's allowance before a window closes."
    )

    def settings_overrides(self) -> dict[str, Any]:
        """Settings fields this resource sets; a missing password is read by ``Settings()``."""
        overrides: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
            "late_event_allowance_seconds": self.late_event_allowance_seconds,
        }
        for name in ("sasl_mechanism", "sasl_username", "sasl_password", "ssl_ca_location"):
            value = getattr(self, name)
            if value:
                overrides[name] = value
        return overrides

    def librdkafka(self, **overrides: Any) -> dict[str, Any]:
        """Client configuration (security applied once, by the settings object)."""
        return Settings(**self.settings_overrides()).librdkafka(**overrides)

    def high_watermarks(self, topic: str | None = None, timeout: float = 10.0) -> dict[int, int]:
        """The next offset to be written, per partition of ``topic`` (the events by default)."""
        from confluent_kafka import Consumer, TopicPartition

        topic = topic or self.events_topic
        consumer = Consumer(
            self.librdkafka(
                **{"group.id": "tokenhub-dagster-watermarks", "enable.auto.commit": False}
            )
        )
        try:
            metadata = consumer.list_topics(topic, timeout=timeout)
            partitions = metadata.topics[topic].partitions
            return {
                partition: consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout
                )[1]
                for partition in sorted(partitions)
            }
        finally:
            consumer.close()


class BooksResource(ConfigurableResource):
    """The folder of price, cost, transfer, FX, quota and segment books."""

    path: str

    def files(self) -> list[Path]:
        return sorted(p for p in Path(self.path).rglob("*") if p.is_file())

    def content_hash(self) -> str:
        """SHA-256 over every file's relative name and bytes: changes iff a book changes."""
        digest = hashlib.sha256()
        root = Path(self.path)
        for file in self.files():
            digest.update(str(file.relative_to(root)).encode() + b"\0")
            digest.update(file.read_bytes() + b"\0")
        return digest.hexdigest()

    def file_hashes(self) -> dict[str, str]:
        """Short content hash of each book file, for metadata."""
        root = Path(self.path)
        return {
            str(file.relative_to(root)): hashlib.sha256(file.read_bytes()).hexdigest()[:12]
            for file in self.files()
        }


def to_settings(
    warehouse: WarehouseResource, kafka: KafkaResource, books: BooksResource
) -> Settings:
    """The one settings object the warehouse entry points take, from the resources.

    Fields the resources do not carry keep their ``TOKENHUB_*`` / default values.
    """
    return Settings(
        home=Path(warehouse.home),
        books_dir=Path(books.path),
        reporting_currency=warehouse.reporting_currency,
        landing_lag_bound_seconds=warehouse.landing_lag_bound_seconds,
        **kafka.settings_overrides(),
    )


def current_environment() -> str:
    """``TOKENHUB_ENV`` (``local`` or ``deployed``), ``local`` when unset."""
    env = os.environ.get("TOKENHUB_ENV", "local")
    if env not in ENVIRONMENTS:
        raise ValueError(f"TOKENHUB_ENV must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")
    return env


def _optional_env(**names: str) -> dict[str, Any]:
    # Only variables set in the deployment become EnvVars: Dagster fails a run on an unset
    # EnvVar, and these have defaults.
    return {field: EnvVar(name) for field, name in names.items() if name in os.environ}


def resources_for(env: str | None = None, settings: Settings | None = None) -> Mapping[str, Any]:
    """The resources of an environment (``local`` from ``settings``, ``deployed`` from env vars)."""
    env = env or current_environment()
    if env == "deployed":
        warehouse_options: dict[str, Any] = _optional_env(
            reporting_currency="TOKENHUB_REPORTING_CURRENCY"
        )
        if "TOKENHUB_LANDING_LAG_BOUND_SECONDS" in os.environ:
            warehouse_options["landing_lag_bound_seconds"] = EnvVar.int(
                "TOKENHUB_LANDING_LAG_BOUND_SECONDS"
            )
        return {
            "warehouse": WarehouseResource(home=EnvVar("TOKENHUB_HOME"), **warehouse_options),
            "kafka": KafkaResource(
                bootstrap_servers=EnvVar("TOKENHUB_BOOTSTRAP_SERVERS"),
                **_optional_env(
                    security_protocol="TOKENHUB_SECURITY_PROTOCOL",
                    sasl_mechanism="TOKENHUB_SASL_MECHANISM",
                    sasl_username="TOKENHUB_SASL_USERNAME",
                    sasl_password="TOKENHUB_SASL_PASSWORD",
                    ssl_ca_location="TOKENHUB_SSL_CA_LOCATION",
                ),
            ),
            "books": BooksResource(path=EnvVar("TOKENHUB_BOOKS_DIR")),
        }
    settings = settings or Settings()
    return {
        "warehouse": WarehouseResource(
            home=str(settings.home.resolve()),
            reporting_currency=settings.reporting_currency,
            landing_lag_bound_seconds=settings.landing_lag_bound_seconds,
        ),
        "kafka": KafkaResource(
            bootstrap_servers=settings.bootstrap,
            security_protocol=settings.security_protocol,
            sasl_mechanism=settings.sasl_mechanism,
            sasl_username=settings.sasl_username,
            # Never the password's value: Dagster shows resource config in the UI. Given as an
            # EnvVar when set in the environment; otherwise Settings() reads it (env or .env)
            # when a client is configured (see settings_overrides).
            **_optional_env(sasl_password="TOKENHUB_SASL_PASSWORD"),
            ssl_ca_location=str(settings.ssl_ca_location) if settings.ssl_ca_location else None,
            late_event_allowance_seconds=settings.late_event_allowance_seconds,
        ),
        "books": BooksResource(path=str(settings.books.resolve())),
    }
