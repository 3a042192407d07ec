"""The one settings object of tokenhub.

Every knob is an environment variable prefixed ``TOKENHUB_`` (or a line in ``.env``), so the
same code runs on a laptop and in a deployment. The object also renders the client
configuration for librdkafka (confluent-kafka) and Faust, so security settings (TLS,
SASL/SCRAM) are declared once and reach every client.
"""

from __future__ import annotations

import ssl
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]


class Settings(BaseSettings):
    """Typed, environment-overridable configuration for every tokenhub process."""

    model_config = SettingsConfigDict(env_prefix="TOKENHUB_", env_file=".env", extra="ignore")

    home: Path = Field(
        default=Path(".tokenhub"),
        description="Working folder: local broker data, warehouse files, worker state.",
    )
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "tokenhub",
        description="Where downloaded Kafka jars are kept, shared by every checkout.",
    )

    # --- Kafka -------------------------------------------------------------------------
    kafka_version: str = "3.9.2"
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "768m"
    bootstrap_servers: str | None = Field(
        default=None, description="Overrides kafka_host:kafka_port, e.g. for a remote cluster."
    )
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None

    # --- Warehouse ----------------------------------------------------------------------
    books_dir: Path | None = Field(
        default=None,
        description="Folder of price, cost, transfer, FX and quota books (default: the shipped books).",
    )
    reporting_currency: str = "CNY"
    partitions_start: date = Field(
        default=date(2026, 1, 1),
        description="First daily partition (event date, UTC) of the Dagster assets.",
    )
    landing_lag_bound_seconds: int = Field(
        default=900, description="Freshness check: newest landed event at most this old."
    )
    loader_crash_after_rows: int | None = Field(
        default=None,
        description="Fault injection for tests: the loader SIGKILLs itself inside the batch "
        "transaction (rows inserted, not committed) once it has inserted this many rows.",
    )

    # --- Event contract ------------------------------------------------------------------
    max_future_skew_seconds: int = Field(
        default=900, description="Events stamped further than this in the future are invalid."
    )

    # --- Live worker (Faust) --------------------------------------------------------------
    worker_app_id: str = Field(
        default="tokenhub-live", description="Faust app id: the consumer group of the workers."
    )
    live_source_topic: str = Field(
        default="token-usage.events.v1",
        description="The events topic the workers read (a private one in tests).",
    )
    worker_state_dir: Path | None = Field(
        default=None,
        description="Per-partition state of the workers (default: <home>/worker); shared by "
        "the workers of one machine.",
    )
    web_host: str = Field(default="127.0.0.1", description="Where the worker's HTTP views bind.")
    web_port: int = 6066
    dedup_horizon_days: int = Field(
        default=7, description="A retried event_id is recognised for this many days."
    )
    late_event_allowance_seconds: int = Field(
        default=60, description="A window stays open this long after its end, in event time."
    )
    duckdb_memory_limit: str | None = Field(
        default=None,
        description="Memory DuckDB may use per warehouse connection (e.g. 4GB) before it "
        "spills to disk next to the warehouse file; unset: DuckDB's default, 80% of RAM.",
    )
    worker_batch_size: int = Field(default=2000, description="Events rated per micro-batch.")
    worker_batch_seconds: float = Field(
        default=0.25, description="A micro-batch closes after this long even when not full."
    )
    live_rater: str = Field(
        default="warehouse.pricing.rating:BatchRater",
        description="module:Class of the batch rater the live worker calls (the warehouse's).",
    )
    worker_commit_interval_seconds: float = Field(
        default=1.0,
        description="How often Faust commits consumer offsets (state carries its own offsets).",
    )
    worker_session_timeout_seconds: float = Field(
        default=10.0,
        description="A worker that stops heartbeating (killed) loses its partitions after this.",
    )
    budgets_path: Path | None = Field(
        default=None,
        description="Tenant daily budgets CSV (default: streams/data/tenant_budgets.csv).",
    )

    @property
    def worker_state(self) -> Path:
        """The folder of the live workers' per-partition state (RocksDB)."""
        return self.worker_state_dir or self.home / "worker"

    @property
    def budgets(self) -> Path:
        """The tenant daily budgets file the live alerts read."""
        return self.budgets_path or Path(__file__).resolve().parent / "data" / "tenant_budgets.csv"

    @property
    def bootstrap(self) -> str:
        """The bootstrap server list clients connect to."""
        return self.bootstrap_servers or f"{self.kafka_host}:{self.kafka_port}"

    @property
    def kafka_dir(self) -> Path:
        """State of the local development broker (data, logs, pid file)."""
        return self.home / "kafka"

    @property
    def kafka_libs_dir(self) -> Path:
        """The broker's jars, fetched from Maven Central once per Kafka version."""
        return self.cache_dir / f"kafka-{self.kafka_version}" / "libs"

    @property
    def warehouse_path(self) -> Path:
        """The DuckDB file the pipeline writes (landing, rating, marts)."""
        return self.home / "warehouse" / "tokenhub.duckdb"

    @property
    def published_path(self) -> Path:
        """The read-only copy of the marts that analysts query while the pipeline writes."""
        # Not "marts.duckdb": its catalog would be named "marts", like the schema, and
        # "marts.x" would be ambiguous.
        return self.home / "warehouse" / "published.duckdb"

    @property
    def books(self) -> Path:
        """The folder of business data files (price, cost, transfer, FX, quota books)."""
        return (
            self.books_dir
            or Path(__file__).resolve().parent.parent / "warehouse" / "pricing" / "books"
        )

    def librdkafka(self, **overrides: Any) -> dict[str, Any]:
        """Client configuration for confluent-kafka, with security settings applied."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol.lower(),
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username or ""
            config["sasl.password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else ""
            )
        if self.ssl_ca_location:
            config["ssl.ca.location"] = str(self.ssl_ca_location)
        config.update(overrides)
        return config

    def faust_credentials(self) -> Any:
        """The same security settings for Faust (aiokafka): ``None`` for PLAINTEXT.

        Pass it as ``faust.App(..., broker_credentials=settings.faust_credentials())`` so the
        worker authenticates exactly like the librdkafka clients.
        """
        from faust.auth import SASLCredentials, SSLCredentials  # Faust is slow to import

        use_tls = self.security_protocol in ("SSL", "SASL_SSL")
        context = (
            ssl.create_default_context(
                cafile=str(self.ssl_ca_location) if self.ssl_ca_location else None
            )
            if use_tls
            else None
        )
        if self.security_protocol.startswith("SASL"):
            return SASLCredentials(
                username=self.sasl_username or "",
                password=self.sasl_password.get_secret_value() if self.sasl_password else "",
                mechanism=self.sasl_mechanism or "PLAIN",
                ssl_context=context,
            )
        if context is not None:
            return SSLCredentials(context)
        return None

    def redacted_librdkafka(self) -> dict[str, Any]:
        """The client configuration safe to print or log: secrets replaced by ``***``."""
        return {
            key: ("***" if "password" in key or "secret" in key else value)
            for key, value in self.librdkafka().items()
        }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
