"""One micro-batch of one partition, through every processor, committed atomically.

validate -> de-duplicate -> rate (one call for the batch) -> aggregate and budget alerts ->
close windows -> commit the state, the outbox and the new offset in one RocksDB write.
Messages at or below the partition's applied offset were applied before a crash and are
skipped, which is what makes a redelivery harmless (see :mod:`streams.state`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from streams.agents import aggregate as agg
from streams.agents import alerts, dedup
from streams.agents.aggregates_out import aggregate_message
from streams.agents.overlay import Overlay
from streams.agents.rating import BatchRating, rate
from streams.agents.validate import DeadLetter, SourceMessage, validate
from streams.events import TokenUsageEvent
from streams.settings import Settings
from streams.state import PartitionStore
from streams.topics import AGGREGATES, ALERTS, DEAD_LETTER

STATS = b"stats/"
DEAD_LETTERS = b"dead-letters/"


@dataclass
class BatchOutcome:
    """What a micro-batch did (for logs and tests)."""

    applied: int = 0
    skipped_already_applied: int = 0
    counted: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    too_late: int = 0
    alerts: int = 0
    closed_windows: int = 0
    outbox: list[tuple[bytes, str, bytes, bytes]] = field(default_factory=list)


def _bump(state: Overlay, key: bytes, by: int = 1) -> None:
    if by:
        state.put(key, int(state.get(key) or 0) + by)


class BatchProcessor:
    """Applies micro-batches to partition stores; pure apart from the store it is given."""

    def __init__(
        self,
        settings: Settings,
        rater: BatchRating,
        budgets: alerts.Budgets,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.rater = rater
        self.budgets = budgets
        self.clock = clock
        self.max_future_skew = timedelta(seconds=settings.max_future_skew_seconds)

    def process(
        self, store: PartitionStore, partition: int, messages: Sequence[SourceMessage]
    ) -> BatchOutcome:
        """Apply one partition's messages (see :meth:`process_many`)."""
        return self.process_many([(store, partition, messages)])[0]

    def process_many(
        self, work: Sequence[tuple[PartitionStore, int, Sequence[SourceMessage]]]
    ) -> list[BatchOutcome]:
        """Apply a micro-batch of several partitions, each committed to its own store.

        The rating engine runs once for all of them: a call has a fixed cost of about 10 ms
        whatever its size, and a micro-batch spread over a dozen partitions would pay it a
        dozen times.
        """
        now = self.clock()
        admitted = [
            self._admit(store, partition, messages, now) for store, partition, messages in work
        ]
        ratings = iter(rate(self.rater, [event for batch in admitted for event in batch.counted]))
        for batch in admitted:
            self._apply(batch, [next(ratings) for _ in batch.counted], now)
        return [batch.outcome for batch in admitted]

    def _admit(
        self,
        store: PartitionStore,
        partition: int,
        messages: Sequence[SourceMessage],
        now: datetime,
    ) -> _Admitted:
        """Validate and de-duplicate the messages not applied yet."""
        applied_offset = store.applied_offset
        fresh = sorted((m for m in messages if m.offset > applied_offset), key=lambda m: m.offset)
        admitted = _Admitted(store, partition, Overlay(store), fresh)
        admitted.outcome.skipped_already_applied = len(messages) - len(fresh)
        state, outcome = admitted.state, admitted.outcome
        for message in fresh:
            checked = validate(message, now=now, max_future_skew=self.max_future_skew)
            if isinstance(checked, DeadLetter):
                admitted.outbox.append((DEAD_LETTER.name, checked.key, checked.to_json()))
                _bump(state, DEAD_LETTERS + checked.reason.encode())
                outcome.dead_letters += 1
            elif dedup.is_duplicate(state, checked):
                outcome.duplicates += 1
            else:
                dedup.remember(state, checked)
                admitted.counted.append(checked)
        return admitted

    def _apply(self, admitted: _Admitted, ratings: list[agg.Rating], now: datetime) -> None:
        """Aggregate, alert, close windows, expire, and commit one partition's batch."""
        if not admitted.fresh:
            return
        state, outcome, outbox = admitted.state, admitted.outcome, admitted.outbox
        for event, rating in zip(admitted.counted, ratings, strict=True):
            if not agg.aggregate(
                state, event, rating, allowance_seconds=self.settings.late_event_allowance_seconds
            ):
                outcome.too_late += 1
            if rating.amount is not None and rating.currency is not None:
                fired = alerts.add_spend(
                    state,
                    self.budgets,
                    tenant_id=event.tenant_id,
                    occurred_at=event.occurred_at,
                    amount=rating.amount,
                    currency=rating.currency,
                    now=now,
                )
                outbox.extend((ALERTS.name, key, value) for key, value in fired)
                outcome.alerts += len(fired)
            else:
                _bump(state, STATS + b"unrated/" + (rating.unrated_reason or "unrated").encode())
        outcome.counted = len(admitted.counted)

        closable = agg.closable_windows(state, self.settings.late_event_allowance_seconds)
        for label, start, entries in agg.close_windows(state, closable):
            for dimension, value, record in entries:
                key, body = aggregate_message(
                    label, start, dimension, value, admitted.partition, record, closed_at=now
                )
                outbox.append((AGGREGATES.name, key, body))
            outcome.closed_windows += 1

        mark = agg.watermark(state)
        if mark is not None:
            dedup.expire(state, mark, self.settings.dedup_horizon_days)
            agg.drop_expired_windows(state)
            alerts.expire(state, mark, self.settings.dedup_horizon_days)
        _bump(state, STATS + b"events", len(admitted.fresh))
        _bump(state, STATS + b"counted", outcome.counted)
        _bump(state, STATS + b"duplicates", outcome.duplicates)
        _bump(state, STATS + b"too_late", outcome.too_late)
        _bump(state, STATS + b"dead_letters", outcome.dead_letters)
        outcome.outbox = admitted.store.commit(
            state.puts, state.deletes, applied_offset=admitted.fresh[-1].offset, outbox=outbox
        )
        outcome.applied = len(admitted.fresh)


@dataclass
class _Admitted:
    """One partition's share of a micro-batch between admission and commit."""

    store: PartitionStore
    partition: int
    state: Overlay
    fresh: list[SourceMessage]
    counted: list[TokenUsageEvent] = field(default_factory=list)
    outbox: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    outcome: BatchOutcome = field(default_factory=BatchOutcome)
