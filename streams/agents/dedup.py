"""De-duplicate: an ``event_id`` is counted once within the horizon (default 7 days).

Producers key events by ``tenant_id``, so every retry of an event lands on the same
partition as the original and the partition's own index is enough. The index lives in the
partition's RocksDB database (on disk, so memory stays bounded) under ``seen/<event_id>``,
with an expiry index ``seen-by-day/<day>/<event_id>`` swept as event time advances. A retry
that arrives after the horizon (by event time) would be counted again; the warehouse, which
de-duplicates over all time, is the reference for those.
"""

from __future__ import annotations

from datetime import datetime

from streams.agents.overlay import Overlay
from streams.events import TokenUsageEvent

SEEN = b"seen/"
SEEN_BY_DAY = b"seen-by-day/"


def _day_number(moment: datetime) -> int:
    return int(moment.timestamp() // 86400)


def is_duplicate(state: Overlay, event: TokenUsageEvent) -> bool:
    """True when this event_id was already counted (in this batch or before)."""
    return state.get(SEEN + event.event_id.encode()) is not None


def remember(state: Overlay, event: TokenUsageEvent) -> None:
    """Record the event_id, with its event day for expiry."""
    day = _day_number(event.occurred_at)
    state.put(SEEN + event.event_id.encode(), day)
    state.put(SEEN_BY_DAY + f"{day:08d}/".encode() + event.event_id.encode(), 1)


def expire(state: Overlay, watermark: datetime, horizon_days: int) -> int:
    """Forget event ids older than the horizon (by event time); returns how many."""
    cutoff = _day_number(watermark) - horizon_days
    expired = state.expire(SEEN_BY_DAY, f"{cutoff:08d}/".encode())
    for key in expired:
        state.delete(SEEN + key[len(SEEN_BY_DAY) + 9 :])
    return len(expired)
