"""Live rating: the warehouse's own rating code, called once per micro-batch.

There is one rating implementation, ``warehouse.pricing.rating.BatchRater`` (price books
loaded once into an in-memory DuckDB, the same SQL as the warehouse), so the live spend of a
closed window equals the warehouse's figure for the same events. This module only adapts its
results to :class:`streams.agents.aggregate.Rating`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Protocol

from streams.agents.aggregate import Rating
from streams.events import TokenUsageEvent
from streams.settings import Settings


class BatchRating(Protocol):
    """What the worker needs from a rater: one result per event, in order."""

    def rate(self, events: Sequence[TokenUsageEvent]) -> Sequence[Any]: ...


def load_rater(settings: Settings) -> BatchRating:
    """The warehouse's batch rater over the settings' price books."""
    module_name, _, class_name = settings.live_rater.partition(":")
    rater_class = getattr(importlib.import_module(module_name), class_name)
    rater: BatchRating = rater_class(settings)
    return rater


def to_rating(result: Any) -> Rating:
    """Read a rater result: an amount and currency, or the reason it is unrated."""
    reason = getattr(result, "unrated_reason", None)
    amount = getattr(result, "amount_gross", None)
    currency = getattr(result, "currency", None)
    if reason or amount is None or currency is None:
        return Rating(None, None, reason or "unrated")
    return Rating(Decimal(amount), str(currency), None)


def rate(rater: BatchRating, events: Sequence[TokenUsageEvent]) -> list[Rating]:
    """Rate a micro-batch in one call."""
    if not events:
        return []
    results = list(rater.rate(events))
    if len(results) != len(events):
        raise RuntimeError(f"rater returned {len(results)} results for {len(events)} events")
    return [to_rating(result) for result in results]
