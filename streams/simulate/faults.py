"""Fault injection: what real producers and networks do to a stream.

Rates are probabilities per message slot (see :class:`FaultRates`); the kinds:

* ``duplicate``: a retry that re-sends an earlier valid event byte for byte (same
  ``event_id``); most follow the original closely, some arrive thousands of messages later.
* ``malformed``: bytes that are not a JSON object (truncated, garbage, Python repr, ...).
* ``invalid``: well-formed JSON that breaks the contract in one of many ways
  (:data:`INVALID_VARIANTS`: negative or non-integer counts, cached > input, unknown enum
  values, missing or badly formed ids, timestamps in 2099 or before 2000, extra fields,
  oversized messages, ...). Each is derived from a real event, so it looks plausible.
* ``late``: a valid event whose ``occurred_at`` is hours or days old.
* out of order: a valid event held back and delivered up to a few hundred messages later
  (its kind stays ``valid``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from streams.events import MAX_EVENT_BYTES, MAX_TOKENS, TokenUsageEvent, to_dict

#: Event times of "future" invalid events: far enough ahead to stay invalid for decades.
FAR_FUTURE = datetime(2099, 6, 1, tzinfo=UTC)

_json = msgspec.json.Encoder()


@dataclass(frozen=True)
class FaultRates:
    """Probability per message slot of each fault (each in 0..1, their sum at most 1)."""

    duplicates: float = 0.0
    malformed: float = 0.0
    invalid: float = 0.0
    late: float = 0.0
    out_of_order: float = 0.0

    def __post_init__(self) -> None:
        for name in ("duplicates", "malformed", "invalid", "late", "out_of_order"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault rate {name}={value} is not between 0 and 1")
        if self.total > 1.0:
            raise ValueError(f"fault rates add up to {self.total:.3f}; they must not exceed 1")

    @property
    def total(self) -> float:
        return self.duplicates + self.malformed + self.invalid + self.late + self.out_of_order


# --- malformed: not a JSON object ---------------------------------------------------------


def malformed_payload(rng: random.Random, payload: bytes) -> bytes:
    """Broken bytes derived from a valid payload (always UTF-8, never a valid event)."""
    variant = rng.randrange(7)
    if variant == 0:  # truncated mid-flight: an unclosed object
        return payload[: rng.randrange(1, len(payload) - 1)]
    if variant == 1:  # trailing comma: a hand-rolled serialiser
        return payload[:-1] + b",}"
    if variant == 2:  # a Python dict printed instead of JSON
        return repr(msgspec.json.decode(payload)).encode()
    if variant == 3:  # two events glued together
        return payload + payload
    if variant == 4:
        return b""
    if variant == 5:
        return b"GET /v1/usage HTTP/1.1"
    return payload.replace(b'"', b"", 2)  # lost quotes


# --- invalid: valid JSON, broken contract -------------------------------------------------

_COUNT_FIELDS = ("input_tokens", "cached_input_tokens", "output_tokens", "thinking_tokens")
_ID_FIELDS = ("event_id", "tenant_id", "workspace_id", "api_key_id", "actor_id", "request_id")
_ENUMS = (
    ("channel", "email"),
    ("actor_type", "robot"),
    ("mode", "priority"),
    ("schema_version", 2),
)


def _negative_count(rng: random.Random, data: dict[str, Any]) -> None:
    data[rng.choice(_COUNT_FIELDS)] = -rng.randint(1, 5_000)


def _non_integer_count(rng: random.Random, data: dict[str, Any]) -> None:
    field = rng.choice(_COUNT_FIELDS)
    data[field] = rng.choice((data[field] + 0.5, str(data[field])))


def _cached_exceeds_input(rng: random.Random, data: dict[str, Any]) -> None:
    data["cached_input_tokens"] = min(data["input_tokens"] + rng.randint(1, 1_000), MAX_TOKENS)


def _thinking_exceeds_output(rng: random.Random, data: dict[str, Any]) -> None:
    data["thinking_tokens"] = data["output_tokens"] + rng.randint(1, 1_000)


def _unknown_enum(rng: random.Random, data: dict[str, Any]) -> None:
    field, value = rng.choice(_ENUMS)
    data[field] = value


def _missing_id(rng: random.Random, data: dict[str, Any]) -> None:
    del data[rng.choice(_ID_FIELDS)]


def _bad_id(rng: random.Random, data: dict[str, Any]) -> None:
    field = rng.choice(_ID_FIELDS)
    data[field] = rng.choice((f"{data[field]} copy", "", "-" + data[field], "租户-7", "x" * 200))


def _future_timestamp(rng: random.Random, data: dict[str, Any]) -> None:
    data["occurred_at"] = (FAR_FUTURE + timedelta(seconds=rng.randrange(86_400 * 365))).isoformat()


def _before_2000(rng: random.Random, data: dict[str, Any]) -> None:
    data["occurred_at"] = f"19{rng.randint(70, 99)}-0{rng.randint(1, 9)}-15T08:00:00Z"


def _naive_timestamp(_rng: random.Random, data: dict[str, Any]) -> None:
    data["occurred_at"] = data["occurred_at"].rstrip("Z")


def _extra_field(rng: random.Random, data: dict[str, Any]) -> None:
    data[rng.choice(("cost_cny", "user_email", "prompt"))] = "not part of the contract"


def _oversized(_rng: random.Random, data: dict[str, Any]) -> None:
    data["actor_id"] = "a" + "x" * MAX_EVENT_BYTES  # a prompt pasted into an id


def _human_in_swarm(rng: random.Random, data: dict[str, Any]) -> None:
    data["actor_type"] = "human"
    data["swarm_id"] = data.get("swarm_id") or f"sw-{rng.getrandbits(32):08x}"


def _wrong_product_for_channel(_rng: random.Random, data: dict[str, Any]) -> None:
    data["channel"] = "direct_api" if data["product"] != "api" else "own_product"


InvalidVariant = Callable[[random.Random, dict[str, Any]], None]

#: Each way an event can break the contract (name, mutation of the event's JSON object).
INVALID_VARIANTS: tuple[tuple[str, InvalidVariant], ...] = (
    ("negative_count", _negative_count),
    ("non_integer_count", _non_integer_count),
    ("cached_exceeds_input", _cached_exceeds_input),
    ("thinking_exceeds_output", _thinking_exceeds_output),
    ("unknown_enum_value", _unknown_enum),
    ("missing_id", _missing_id),
    ("bad_id", _bad_id),
    ("future_timestamp", _future_timestamp),
    ("before_2000", _before_2000),
    ("naive_timestamp", _naive_timestamp),
    ("extra_field", _extra_field),
    ("oversized", _oversized),
    ("human_in_swarm", _human_in_swarm),
    ("wrong_product_for_channel", _wrong_product_for_channel),
)


def invalid_payload(rng: random.Random, event: TokenUsageEvent) -> tuple[bytes | None, bytes]:
    """(key, value) of a schema-invalid message derived from ``event``."""
    data = to_dict(event)
    _name, mutate = INVALID_VARIANTS[rng.randrange(len(INVALID_VARIANTS))]
    mutate(rng, data)
    tenant_id = data.get("tenant_id")
    key = tenant_id.encode() if isinstance(tenant_id, str) and tenant_id else None
    return key, _json.encode(data)


def late_time(rng: random.Random, ts: float) -> float:
    """An event time hours (60%) or days (40%) before ``ts``."""
    if rng.random() < 0.6:
        return ts - rng.uniform(3_600, 12 * 3_600)
    return ts - rng.uniform(86_400, 5 * 86_400)
