"""The fault suite's oracle and plumbing: a recorded simulated stream, what it must produce.

Each fault test records a simulated stream (valid events, retries, malformed and invalid
messages) as JSONL, pushes it through the real pipeline while injecting a fault, then checks
the pipeline's outputs against :func:`streams.simulate.ground_truth` (the distinct valid
events) and :func:`streams.simulate.expected_invalid` (what must be dead-lettered, with the
reason): to the last event, the last token and the last reason.
"""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from streams.app_runner import WorkerHandle
from streams.settings import Settings
from streams.simulate import FaultRates, JsonlWriter, expected_invalid, generate, ground_truth
from streams.topics import DEAD_LETTER
from tests.streams import worker_fixtures
from tests.streams.worker_fixtures import read_topic, view

# The live worker fixtures (private topic, state folder, consumer group, web port).
live_settings = worker_fixtures.live_settings
workers = worker_fixtures.workers

#: Fault mix of the recorded streams: every kind of bad input and retry, in volume.
FAULTS = FaultRates(duplicates=0.05, malformed=0.01, invalid=0.02, out_of_order=0.02)


def record_stream(
    path: Path, *, seed: int, events: int, faults: FaultRates = FAULTS
) -> list[tuple[bytes | None, bytes]]:
    """Simulate ``events`` messages (about 40 minutes of event time), record them as JSONL."""
    messages = list(
        generate(
            seed=seed,
            events=events,
            tenants=20,
            days=0.03,
            now=datetime.now(UTC) - timedelta(minutes=1),
            faults=faults,
        )
    )
    with JsonlWriter(path) as writer:
        for message in messages:
            writer.write(message)
    return [(m.key, m.value) for m in messages]


def for_faults(settings: Settings) -> Settings:
    """Worker settings for fault tests: small batches, no event too late for its window."""
    return settings.model_copy(
        update={
            "worker_batch_size": 200,
            "worker_batch_seconds": 0.2,
            # Simulated streams are not in event-time order; these tests are about faults,
            # so every event must still count in its window.
            "late_event_allowance_seconds": 6 * 3600,
        }
    )


@dataclass(frozen=True)
class TenantTotals:
    """What the live views must show per tenant: requests and tokens."""

    requests: int
    total_tokens: int


def expected_tenant_totals(path: Path) -> dict[str, TenantTotals]:
    """Per tenant, the distinct valid events of the stream and their tokens."""
    truth = ground_truth(path)
    grouped = truth.group_by("tenant_id").agg(
        pl.len().alias("requests"),
        (pl.col("input_tokens") + pl.col("output_tokens")).sum().alias("total_tokens"),
    )
    return {
        row["tenant_id"]: TenantTotals(row["requests"], row["total_tokens"])
        for row in grouped.to_dicts()
    }


def live_tenant_totals(worker: WorkerHandle) -> dict[str, TenantTotals]:
    """Per tenant, what the worker's 1-hour windows hold (summed over windows)."""
    requests: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    for window in view(worker, "windows", window="1h", dimension="tenant")["windows"]:
        requests[window["dimension_value"]] += window["requests"]
        tokens[window["dimension_value"]] += window["total_tokens"]
    return {tenant: TenantTotals(requests[tenant], tokens[tenant]) for tenant in requests}


@dataclass(frozen=True)
class DeadLetters:
    """The dead letters of one source topic, by Kafka key (``topic:partition:offset``)."""

    by_key: dict[bytes, dict[str, Any]]
    deliveries: int  # messages read, repeats included

    def as_counter(self) -> Counter[tuple[bytes, str]]:
        """(original bytes, reason) of each distinct dead letter."""
        return Counter(
            (base64.b64decode(letter["original_value_base64"]), letter["reason"])
            for letter in self.by_key.values()
        )


def dead_letters_of(settings: Settings, source_topic: str) -> DeadLetters:
    """Every dead letter whose source is ``source_topic``."""
    found = [
        (key, value)
        for key, value in read_topic(settings, DEAD_LETTER.name, idle=2.0)
        if key.decode().startswith(source_topic + ":")
    ]
    return DeadLetters(dict(found), len(found))


def expected_dead_letters(path: Path) -> Counter[tuple[bytes, str]]:
    """(original bytes, reason) of each message of the stream that must be dead-lettered."""
    invalid = expected_invalid(path)
    return Counter(
        (row["value"].encode(), row["reason"])
        for row in invalid.select("value", "reason").to_dicts()
    )
