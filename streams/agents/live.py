"""The Faust agent: micro-batches of the events topic through :class:`BatchProcessor`.

Partition stores are opened when the partition is first seen and closed when a rebalance
takes the partition away, so another worker of this machine can open it. After each
micro-batch the outbox (dead letters, alerts, closed windows) is sent and, once Kafka
acknowledged it, forgotten; an outbox left by a crash is sent again on the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from faust.exceptions import ConsumerNotStarted

from streams.agents.alerts import Budgets
from streams.agents.process import BatchOutcome, BatchProcessor
from streams.agents.rating import load_rater
from streams.agents.validate import SourceMessage
from streams.app import app, events_topic, settings
from streams.state import PartitionStore, partition_path

log = logging.getLogger(__name__)

Sender = Callable[[str, bytes, bytes], Awaitable[Any]]


class Stores:
    """The partition stores this worker holds open, one lock each."""

    def __init__(self) -> None:
        self.open: dict[int, PartitionStore] = {}
        self.locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    def get(self, partition: int) -> tuple[PartitionStore, bool]:
        """The store (opened now if needed) and whether it was just opened."""
        if partition in self.open:
            return self.open[partition], False
        store = PartitionStore(partition_path(settings.worker_state, partition))
        self.open[partition] = store
        return store, True

    async def close(self, partition: int) -> None:
        async with self.locks[partition]:
            store = self.open.pop(partition, None)
            if store is not None:
                store.close()


stores = Stores()
_processor: BatchProcessor | None = None


def processor() -> BatchProcessor:
    """The batch processor, built once per process (loads price books and budgets)."""
    global _processor
    if _processor is None:
        _processor = BatchProcessor(settings, load_rater(settings), Budgets.load(settings.budgets))
    return _processor


async def send_to_kafka(topic: str, key: bytes, value: bytes) -> Any:
    return await app.producer.send(topic, key, value, None, None, None)


async def flush_outbox(
    store: PartitionStore, entries: list[tuple[bytes, str, bytes, bytes]], send: Sender
) -> None:
    """Send outbox entries, wait for Kafka's acknowledgements, then forget them."""
    if not entries:
        return
    pending = [await send(topic, key, value) for _, topic, key, value in entries]
    await asyncio.gather(*pending)
    store.delivered([outbox_key for outbox_key, *_ in entries])


def _owns(partition: int) -> bool:
    try:
        assignment = app.consumer.assignment()
    except ConsumerNotStarted:  # unit tests (test_context) run without a consumer group
        return True
    return any(
        tp.topic == events_topic.get_topic_name() and tp.partition == partition for tp in assignment
    )


async def handle_batch(batch: list[SourceMessage], send: Sender = send_to_kafka) -> None:
    """Apply one micro-batch: every partition it holds, rated in one call, committed each."""
    by_partition: dict[int, list[SourceMessage]] = defaultdict(list)
    for message in batch:
        by_partition[message.partition].append(message)
    async with contextlib.AsyncExitStack() as held:
        work = []
        for partition, messages in sorted(by_partition.items()):  # one lock order: no deadlock
            await held.enter_async_context(stores.locks[partition])
            if not _owns(partition):
                continue  # revoked while buffered; the new owner processes it
            store, just_opened = stores.get(partition)
            if just_opened:
                await flush_outbox(store, store.pending_outbox(), send)
            work.append((store, partition, messages))
        outcomes = processor().process_many(work)
        for (store, partition, _), outcome in zip(work, outcomes, strict=True):
            await flush_outbox(store, outcome.outbox, send)
            _log_outcome(partition, outcome)


def _log_outcome(partition: int, outcome: BatchOutcome) -> None:
    if outcome.applied or outcome.skipped_already_applied:
        log.info(
            "partition %d: %d applied (%d counted, %d duplicates, %d dead letters, "
            "%d too late, %d alerts, %d windows closed), %d already applied",
            partition,
            outcome.applied,
            outcome.counted,
            outcome.duplicates,
            outcome.dead_letters,
            outcome.too_late,
            outcome.alerts,
            outcome.closed_windows,
            outcome.skipped_already_applied,
        )


@app.agent(events_topic)
async def usage(stream: Any) -> None:
    """Validate, de-duplicate, rate, aggregate and alert, one micro-batch at a time."""
    async for events in stream.take_events(
        settings.worker_batch_size, within=settings.worker_batch_seconds
    ):
        batch = [
            SourceMessage(
                topic=event.message.topic,
                partition=event.message.partition,
                offset=event.message.offset,
                key=event.message.key,
                value=event.message.value or b"",
                timestamp=event.message.timestamp,
            )
            for event in events
        ]
        await handle_batch(batch)


@app.timer(interval=5.0)
async def flush_leftover_outboxes() -> None:
    """Send outbox entries a crash left behind, even for partitions with no new traffic."""
    try:
        assignment = app.consumer.assignment()
    except ConsumerNotStarted:
        return
    for tp in sorted(assignment):
        if tp.topic != events_topic.get_topic_name():
            continue
        async with stores.locks[tp.partition]:
            if not _owns(tp.partition):
                continue
            store, _ = stores.get(tp.partition)
            await flush_outbox(store, store.pending_outbox(), send_to_kafka)


@app.on_partitions_revoked.connect  # type: ignore[arg-type]
async def close_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
    """Release the stores of partitions another worker is about to own."""
    for tp in revoked:
        if tp.topic == events_topic.get_topic_name():
            await stores.close(tp.partition)
