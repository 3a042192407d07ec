"""Helpers shared by the live worker tests: events built in code and a stand-in rater."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from streams import events
from streams.settings import Settings

UNIT_PRICE = Decimal("0.000001")


def make_event(**overrides: Any) -> dict[str, Any]:
    """A valid event as a dict (human chat on qwen-plus), fields overridable."""
    occurred_at = overrides.pop("occurred_at", datetime.now(UTC) - timedelta(minutes=5))
    base: dict[str, Any] = {
        "event_id": f"ev-{uuid.uuid4().hex}",
        "schema_version": 1,
        "occurred_at": occurred_at.isoformat(),
        "tenant_id": "tenant-a",
        "workspace_id": "ws-1",
        "api_key_id": "key-1",
        "product": "chat",
        "channel": "own_product",
        "actor_type": "human",
        "actor_id": "user-1",
        "session_id": "s-1",
        "request_id": f"r-{uuid.uuid4().hex[:8]}",
        "model": "qwen-plus",
        "region": "cn-beijing",
        "chip_family": "gpu-a",
        "mode": "realtime",
        "input_tokens": 1000,
        "cached_input_tokens": 0,
        "output_tokens": 200,
        "thinking_tokens": 0,
        "accelerator_ms": 30,
    }
    base.update(overrides)
    return base


def encode(event: dict[str, Any]) -> bytes:
    return events.encode(events.from_dict(event))


@dataclass(frozen=True)
class StandInResult:
    amount_gross: Decimal | None
    currency: str | None
    unrated_reason: str | None


class StandInRater:
    """A test double with the BatchRater interface: a flat price per token, not a rating.

    Used where the test is about the worker (offsets, duplicates, windows), not prices;
    models named ``unknown-*`` come back unrated, as the real rater does for unknown models.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.calls = 0

    def rate(self, batch: Sequence[events.TokenUsageEvent]) -> list[StandInResult]:
        self.calls += 1
        return [
            StandInResult(None, None, "unknown_model")
            if event.model.startswith("unknown")
            else StandInResult(UNIT_PRICE * (event.input_tokens + event.output_tokens), "CNY", None)
            for event in batch
        ]


def stand_in_amount(event: dict[str, Any]) -> Decimal:
    return UNIT_PRICE * (event["input_tokens"] + event["output_tokens"])
