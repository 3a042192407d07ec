"""Aggregate: tumbling windows of 1 minute and 1 hour on event time, per dimension.

Every counted event adds to one window of each size, once per dimension: the whole stream
(``all``), its tenant, model, product, actor type and region. A window holds tokens by
token type, requests, live spend per currency (``Decimal`` kept as strings) and the events
the rating engine could not price (``unrated_*``: counted, never as zero spend), plus the
agent and human totals the tokens-per-request multiplier is computed from.

Event time advances per partition as the largest ``occurred_at`` seen (the *watermark*). A
window closes once the watermark passes its end by ``late_event_allowance_seconds``; an
event for a window that is already closed is *too late*: it is counted under
``stats/too_late`` (and in the tenant's daily budget) but no longer changes the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from streams.agents.overlay import Overlay
from streams.events import TokenUsageEvent

#: Window sizes by label.
WINDOWS: dict[str, int] = {"1m": 60, "1h": 3600}
#: How long closed windows stay queryable in the views (the topic keeps them for good).
WINDOW_RETENTION: dict[str, timedelta] = {"1m": timedelta(hours=3), "1h": timedelta(days=8)}
DIMENSIONS = ("all", "tenant", "model", "product", "actor_type", "region")
TOKEN_FIELDS = ("input_tokens", "cached_input_tokens", "output_tokens", "thinking_tokens")

WINDOW = b"win/"
OPEN = b"open/"
WATERMARK = b"meta/watermark"


@dataclass(frozen=True)
class Rating:
    """What the rating engine said about one event: an amount, or why it is unrated."""

    amount: Decimal | None
    currency: str | None
    unrated_reason: str | None = None


def window_start(moment: datetime, size_seconds: int) -> datetime:
    """The start of the tumbling window holding ``moment``."""
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % size_seconds, UTC)


@lru_cache(maxsize=8192)
def iso(moment: datetime) -> str:
    """``moment`` as RFC 3339 UTC to the second; cached, as window starts repeat."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dimension_values(event: TokenUsageEvent) -> list[tuple[str, str]]:
    return [
        ("all", "all"),
        ("tenant", event.tenant_id),
        ("model", event.model),
        ("product", event.product),
        ("actor_type", event.actor_type),
        ("region", event.region),
    ]


def window_key(label: str, start: datetime, dimension: str, value: str) -> bytes:
    return WINDOW + f"{label}/{iso(start)}/{dimension}/{value}".encode()


def empty_window() -> dict[str, Any]:
    return {
        "requests": 0,
        **dict.fromkeys(TOKEN_FIELDS, 0),
        "total_tokens": 0,
        "spend": {},
        "unrated_requests": 0,
        "unrated_tokens": 0,
        "agent_requests": 0,
        "agent_tokens": 0,
        "human_requests": 0,
        "human_tokens": 0,
    }


def add_event(window: dict[str, Any], event: TokenUsageEvent, rating: Rating) -> None:
    """Add one counted event to a window record (in place)."""
    total = event.input_tokens + event.output_tokens
    window["requests"] += 1
    for name in TOKEN_FIELDS:
        window[name] += getattr(event, name)
    window["total_tokens"] += total
    window[f"{event.actor_type}_requests"] += 1
    window[f"{event.actor_type}_tokens"] += total
    if rating.amount is None or rating.currency is None:
        window["unrated_requests"] += 1
        window["unrated_tokens"] += total
    else:
        spend = window["spend"]
        spend[rating.currency] = str(Decimal(spend.get(rating.currency, "0")) + rating.amount)


def multiplier(window: dict[str, Any]) -> float | None:
    """Agent tokens per request divided by human tokens per request (None without both)."""
    if not window.get("agent_requests") or not window.get("human_tokens"):
        return None
    agent = window["agent_tokens"] / window["agent_requests"]
    human = window["human_tokens"] / window["human_requests"]
    return round(agent / human, 3)


def watermark(state: Overlay) -> datetime | None:
    value = state.get(WATERMARK)
    return None if value is None else _parse_mark(value)


@lru_cache(maxsize=256)
def _parse_mark(value: str) -> datetime:
    # Read once per event: the same few strings again and again within a batch.
    return datetime.fromisoformat(value)


def is_too_late(start: datetime, size_seconds: int, mark: datetime | None, allowance: int) -> bool:
    if mark is None:
        return False
    return start + timedelta(seconds=size_seconds + allowance) <= mark


def aggregate(
    state: Overlay, event: TokenUsageEvent, rating: Rating, *, allowance_seconds: int
) -> bool:
    """Add the event to its windows and advance the watermark; False if it was too late."""
    mark = watermark(state)
    landed = True
    for label, size in WINDOWS.items():
        start = window_start(event.occurred_at, size)
        if is_too_late(start, size, mark, allowance_seconds):
            landed = False
            continue
        state.put(OPEN + f"{label}/{iso(start)}".encode(), 1)
        for dimension, value in dimension_values(event):
            key = window_key(label, start, dimension, value)
            record = state.get(key) or empty_window()
            add_event(record, event, rating)
            state.put(key, record)
    if mark is None or event.occurred_at > mark:
        state.put(WATERMARK, event.occurred_at.isoformat())
    return landed


def closable_windows(state: Overlay, allowance_seconds: int) -> list[tuple[str, datetime]]:
    """Open windows whose end plus the allowance the watermark has passed, oldest first.

    They are taken off the open set here; :func:`close_windows` emits them.
    """
    mark = watermark(state)
    if mark is None:
        return []
    closable = []
    for label, size in WINDOWS.items():
        prefix = OPEN + f"{label}/".encode()
        # is_too_late: start + size + allowance <= mark; starts are whole seconds.
        last_start = (mark - timedelta(seconds=size + allowance_seconds)).replace(microsecond=0)
        bound = prefix + iso(last_start + timedelta(seconds=1)).encode()
        keys = set(state.expire(prefix, bound[len(prefix) :]))
        keys.update(key for key in state.puts if key.startswith(prefix) and key < bound)
        for key in sorted(keys):
            state.delete(key)
            start = key[len(prefix) :].decode().replace("Z", "+00:00")
            closable.append((label, datetime.fromisoformat(start)))
    return closable


def close_windows(
    state: Overlay, windows: list[tuple[str, datetime]]
) -> list[tuple[str, datetime, list[tuple[str, str, dict[str, Any]]]]]:
    """The (dimension, value, record) entries of each window to emit, per window."""
    prefixes = {
        WINDOW + f"{label}/{iso(start)}/".encode(): (label, start) for label, start in windows
    }
    closed = []
    for prefix, entries in sorted(state.items_under(prefixes).items()):
        records = []
        for key, record in entries:
            dimension, value = key[len(prefix) :].decode().split("/", 1)
            records.append((dimension, value, record))
        closed.append((*prefixes[prefix], records))
    return closed


def drop_expired_windows(state: Overlay) -> None:
    """Forget closed windows older than their retention, so the store stays bounded."""
    mark = watermark(state)
    if mark is None:
        return
    for label, keep in WINDOW_RETENTION.items():
        state.expire(WINDOW + f"{label}/".encode(), iso(mark - keep).encode())
