"""The one settings object of tokenhub.

Every knob is an environment variable prefixed ``TOKENHUB_`` (or a line in ``.env``), so the
same code runs on a laptop and in a deployment. The object also renders the client
configuration for librdkafka (confluent-kafka) and Faust, so security settings (TLS,
SASL/SCRAM) are declared once and reach every client.
"""

from __future__ import annotations

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

    # --- Event contract ------------------------------------------------------------------
    max_future_skew_seconds: int = Field(
        default=900, description="Events stamped further than this in the future are invalid."
    )

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
        return self.home / "warehouse" / "marts.duckdb"

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
