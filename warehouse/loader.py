"""Landing: Kafka ``token-usage.events.v1`` -> ``raw.*`` in DuckDB, exactly once.

How exactly-once works: the loader does not use Kafka's committed offsets. Each batch of
messages is written to DuckDB in **one transaction** together with the next offset of every
partition it read (``raw.kafka_offsets``). On start the loader reads those offsets and
``assign()``s every partition at them. A loader killed at any point either committed a batch
(rows and offsets) or did not (neither), so a restart re-reads exactly what is missing.

On top of that, events are de-duplicated by ``event_id`` across the whole history: the first
delivery lands in ``raw.token_usage_events``; every later delivery (a producer retry, a
replay days later, a repeat within the same batch) is recorded in ``raw.redeliveries``.
Messages that fail the contract (:func:`streams.events.parse`) land in ``raw.quarantine``
with the reason code and the original bytes: nothing is dropped silently.

Writes are in bulk: each batch becomes Python column lists, one Arrow table, and a few
``insert ... select`` statements (never a row at a time).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter
from typing import Any

import duckdb
import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from streams import events
from streams.broker import BrokerError
from streams.settings import Settings
from streams.topics import EVENTS
from warehouse import db

#: The name under which offsets are kept in ``raw.kafka_offsets`` (and the Kafka group id,
#: used only for client bookkeeping: offsets are never committed to Kafka).
CONSUMER_GROUP = "tokenhub-loader"
#: Messages per batch (one DuckDB transaction each).
BATCH_SIZE = 50_000
#: How long one ``consume`` call waits for a full batch.
POLL_SECONDS = 0.5
#: Without ``follow``: give up waiting for the high watermarks seen at start after this
#: long without a single message (a partition whose leader is gone must not hang a run).
IDLE_LIMIT_SECONDS = 15.0

_EVENT_FIELDS: tuple[str, ...] = events.TokenUsageEvent.__struct_fields__
_INT_TYPES = {"schema_version": pa.int32()}
_BIGINT_FIELDS = frozenset(
    {"input_tokens", "cached_input_tokens", "output_tokens", "thinking_tokens", "accelerator_ms"}
)

#: DDL of the raw tables, as in the warehouse contract (/tmp/team/WAREHOUSE_CONTRACT.md).
RAW_DDL = (
    """
    create table if not exists raw.token_usage_events (
        event_id varchar primary key,
        schema_version integer,
        occurred_at timestamptz,
        tenant_id varchar,
        workspace_id varchar,
        api_key_id varchar,
        product varchar,
        channel varchar,
        actor_type varchar,
        actor_id varchar,
        swarm_id varchar,
        task_id varchar,
        session_id varchar,
        request_id varchar,
        model varchar,
        region varchar,
        chip_family varchar,
        mode varchar,
        input_tokens bigint,
        cached_input_tokens bigint,
        output_tokens bigint,
        thinking_tokens bigint,
        accelerator_ms bigint,
        kafka_topic varchar,
        kafka_partition integer,
        kafka_offset bigint,
        landed_at timestamptz
    )
    """,
    """
    create table if not exists raw.redeliveries (
        event_id varchar,
        kafka_partition integer,
        kafka_offset bigint,
        landed_at timestamptz
    )
    """,
    """
    create table if not exists raw.quarantine (
        kafka_topic varchar,
        kafka_partition integer,
        kafka_offset bigint,
        message_key varchar,
        payload blob,
        reason varchar,
        detail varchar,
        landed_at timestamptz
    )
    """,
    """
    create table if not exists raw.kafka_offsets (
        consumer_group varchar,
        topic varchar,
        partition integer,
        next_offset bigint,
        primary key (consumer_group, topic, partition)
    )
    """,
)

_EVENT_SCHEMA = pa.schema(
    [
        (
            name,
            pa.timestamp("us", tz="UTC")
            if name == "occurred_at"
            else _INT_TYPES.get(name, pa.int64() if name in _BIGINT_FIELDS else pa.string()),
        )
        for name in _EVENT_FIELDS
    ]
    + [("kafka_partition", pa.int32()), ("kafka_offset", pa.int64())]
)
_REDELIVERY_SCHEMA = pa.schema(
    [("event_id", pa.string()), ("kafka_partition", pa.int32()), ("kafka_offset", pa.int64())]
)
_QUARANTINE_SCHEMA = pa.schema(
    [
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
        ("message_key", pa.string()),
        ("payload", pa.binary()),
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)
_EVENT_COLUMNS = ", ".join(_EVENT_FIELDS)


class WarehouseWriteError(RuntimeError):
    """The warehouse file could not be opened or written: disk full, read-only, or held.

    Nothing of the failed batch was kept (rows and offsets commit together), so running the
    loader again once the cause is fixed resumes exactly where it stopped.
    """


#: DuckDB errors of the storage and the transaction, not of the SQL: the operator's to fix.
_STORAGE_ERRORS = (duckdb.IOException, duckdb.FatalException, duckdb.TransactionException)


@dataclass
class LandingResult:
    """What one :func:`land` run did."""

    landed: int = 0
    duplicates: int = 0
    quarantined: int = 0
    batches: int = 0
    seconds: float = 0.0
    #: UTC event dates of the newly landed rows: the daily partitions to re-materialise.
    event_dates: set[date] = field(default_factory=set)

    @property
    def messages(self) -> int:
        """Messages read: landed + duplicates + quarantined."""
        return self.landed + self.duplicates + self.quarantined

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    def add(self, other: LandingResult) -> None:
        self.landed += other.landed
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        self.batches += other.batches
        self.event_dates |= other.event_dates

    def describe(self) -> str:
        dates = sorted(self.event_dates)
        span = f"{dates[0]} .. {dates[-1]}" if dates else "none"
        return (
            f"Landed {self.landed:,} new events, {self.duplicates:,} redeliveries, "
            f"{self.quarantined:,} quarantined in {self.batches:,} batches, "
            f"{self.seconds:.1f}s ({self.rate:,.0f} msg/s); event dates touched: {span}."
        )


def ensure_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw tables if they do not exist yet."""
    for ddl in RAW_DDL:
        con.execute(ddl)


def stored_offsets(
    con: duckdb.DuckDBPyConnection, topic: str, group: str = CONSUMER_GROUP
) -> dict[int, int]:
    """Next offset to read per partition, as the last committed batch left it."""
    rows = con.execute(
        "select partition, next_offset from raw.kafka_offsets "
        "where consumer_group = ? and topic = ?",
        [group, topic],
    ).fetchall()
    return {int(partition): int(offset) for partition, offset in rows}


def _decode_key(key: bytes | None) -> str | None:
    return None if key is None else key.decode("utf-8", errors="replace")


@dataclass
class _Batch:
    """One batch, parsed: new-in-batch events, repeats within it, invalid messages."""

    events: list[events.TokenUsageEvent] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    redeliveries: list[tuple[str, int, int]] = field(default_factory=list)
    quarantine: list[tuple[Any, ...]] = field(default_factory=list)


def _parse_all(messages: list[Any], now: datetime, skew: timedelta) -> _Batch:
    """Parse every message (the one contract) and sort it: new event, repeat or invalid."""
    batch = _Batch()
    seen: set[str] = set()
    # Local names: this loop runs once per message and is the loader's hot path.
    parse = events.parse
    invalid_event = events.InvalidEvent
    new_events, partitions, offsets = batch.events, batch.partitions, batch.offsets
    for message in messages:
        value = message.value()
        try:
            event = parse(value if value is not None else b"", now=now, max_future_skew=skew)
        except invalid_event as error:
            batch.quarantine.append(
                (
                    message.partition(),
                    message.offset(),
                    _decode_key(message.key()),
                    value if value is not None else b"",
                    error.reason,
                    error.detail,
                )
            )
            continue
        event_id = event.event_id
        if event_id in seen:
            batch.redeliveries.append((event_id, message.partition(), message.offset()))
            continue
        seen.add(event_id)
        new_events.append(event)
        partitions.append(message.partition())
        offsets.append(message.offset())
    return batch


_FIELD_GETTERS = tuple(attrgetter(name) for name in _EVENT_FIELDS)


def _event_table(batch: _Batch) -> pa.Table:
    """The batch's new events as one Arrow table, one column at a time.

    ``map(attrgetter)`` gathers a column in C; transposing row tuples with ``zip(*rows)``
    cost more than parsing the messages.
    """
    structs = batch.events
    columns = [
        pa.array(list(map(getter, structs)), type=_EVENT_SCHEMA.field(i).type)
        for i, getter in enumerate(_FIELD_GETTERS)
    ]
    columns.append(pa.array(batch.partitions, pa.int32()))
    columns.append(pa.array(batch.offsets, pa.int64()))
    return pa.Table.from_arrays(columns, schema=_EVENT_SCHEMA)


def _arrow(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.Table:
    """Row tuples -> one Arrow table (for the small tables: repeats and invalid messages)."""
    if not rows:
        return schema.empty_table()
    columns = list(zip(*rows, strict=True))
    return pa.Table.from_arrays(
        [pa.array(column, type=schema.field(i).type) for i, column in enumerate(columns)],
        schema=schema,
    )


@dataclass
class PreparedBatch:
    """One batch parsed into Arrow tables, ready for :func:`write_batch`."""

    events: pa.Table
    repeats: pa.Table
    invalid: pa.Table
    offsets: pa.Table


def prepare_batch(
    messages: list[Any],
    next_offsets: dict[int, int],
    *,
    now: datetime | None = None,
    max_future_skew: timedelta = timedelta(minutes=15),
) -> PreparedBatch:
    """Parse ``messages`` (the one contract) into Arrow tables: the Python half of a batch."""
    batch = _parse_all(messages, now or datetime.now(UTC), max_future_skew)
    return PreparedBatch(
        events=_event_table(batch),
        repeats=_arrow(batch.redeliveries, _REDELIVERY_SCHEMA),
        invalid=_arrow(batch.quarantine, _QUARANTINE_SCHEMA),
        offsets=pa.table(
            {
                "partition": pa.array(list(next_offsets), pa.int32()),
                "next_offset": pa.array(list(next_offsets.values()), pa.int64()),
            }
        ),
    )


def write_batch(
    con: duckdb.DuckDBPyConnection,
    topic: str,
    batch: PreparedBatch,
    *,
    group: str = CONSUMER_GROUP,
    before_commit: Callable[[int], None] | None = None,
) -> LandingResult:
    """Write a prepared batch and its next offsets in one DuckDB transaction.

    ``before_commit`` (fault injection) is called with the number of new rows inserted, after
    every insert and before the commit.
    """
    tables = {
        "batch_events": batch.events,
        "batch_repeats": batch.repeats,
        "batch_invalid": batch.invalid,
        "batch_offsets": batch.offsets,
    }
    con.execute("begin transaction")
    try:
        for name, table in tables.items():
            con.register(name, table)
        # Deliveries of event_ids landed by an earlier batch: redeliveries, not new rows.
        con.execute(
            """
            insert into raw.redeliveries
            select b.event_id, b.kafka_partition, b.kafka_offset, current_timestamp
            from batch_events as b semi join raw.token_usage_events as e using (event_id)
            union all
            select event_id, kafka_partition, kafka_offset, current_timestamp
            from batch_repeats
            """
        )
        inserted = con.execute(
            f"""
            insert into raw.token_usage_events by name
            select {_EVENT_COLUMNS}, ? as kafka_topic, kafka_partition, kafka_offset,
                current_timestamp as landed_at
            from batch_events as b anti join raw.token_usage_events as e using (event_id)
            """,
            [topic],
        ).fetchone()
        # current_timestamp is the transaction's start: it marks exactly this batch's rows,
        # and landed_at only grows, so zone maps skip the older row groups.
        event_dates = con.execute(
            """
            select distinct cast(occurred_at at time zone 'UTC' as date)
            from raw.token_usage_events where landed_at = current_timestamp
            """
        ).fetchall()
        con.execute(
            """
            insert into raw.quarantine
            select ?, kafka_partition, kafka_offset, message_key, payload, reason, detail,
                current_timestamp
            from batch_invalid
            """,
            [topic],
        )
        con.execute(
            """
            insert or replace into raw.kafka_offsets
            select ?, ?, partition, next_offset from batch_offsets
            """,
            [group, topic],
        )
        if before_commit is not None:
            before_commit(int(inserted[0]) if inserted else 0)
        con.execute("commit")
    except BaseException:
        # A failed commit has already ended the transaction; its own error is the one to see.
        with contextlib.suppress(duckdb.Error):
            con.execute("rollback")
        raise
    finally:
        for name in tables:
            con.unregister(name)
    landed = int(inserted[0]) if inserted else 0
    return LandingResult(
        landed=landed,
        duplicates=batch.repeats.num_rows + batch.events.num_rows - landed,
        quarantined=batch.invalid.num_rows,
        batches=1,
        event_dates={row[0] for row in event_dates},
    )


class _Writer:
    """Writes prepared batches in order on one background thread.

    DuckDB releases the GIL while it executes, so the next batch is consumed and parsed
    while the previous one is written. At most one batch waits: memory stays bounded.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        topic: str,
        group: str,
        before_commit: Callable[[int], None] | None = None,
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenhub-land")
        self._con, self._topic, self._group = con, topic, group
        self._before_commit = before_commit
        self._pending: Future[LandingResult] | None = None
        self.total = LandingResult()

    def submit(self, batch: PreparedBatch) -> None:
        self.wait()
        self._pending = self._pool.submit(
            write_batch,
            self._con,
            self._topic,
            batch,
            group=self._group,
            before_commit=self._before_commit,
        )

    def wait(self) -> None:
        """Block until the batch in flight is committed (re-raises its error)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self.total.add(pending.result())

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)


def _consumer(settings: Settings, group: str) -> Consumer:
    return Consumer(
        settings.librdkafka(
            **{
                "group.id": group,
                # The offsets live in DuckDB, committed with the rows; Kafka's are not used.
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "fetch.max.bytes": 64 * 1024 * 1024,
                "max.partition.fetch.bytes": 8 * 1024 * 1024,
                "queued.min.messages": 200_000,
                "log_level": 0,
            }
        )
    )


def _partitions(consumer: Consumer, settings: Settings, topic: str, timeout: float) -> list[int]:
    """The topic's partitions; a one-line error if the broker or the topic is missing."""
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
    except KafkaException as error:
        raise BrokerError(
            f"Kafka is not reachable at {settings.bootstrap} ({error.args[0].str()}). Start "
            "the local broker with 'tokenhub kafka up', or point TOKENHUB_BOOTSTRAP_SERVERS "
            "at yours."
        ) from None
    described = metadata.topics.get(topic)
    if described is None or described.error is not None or not described.partitions:
        raise BrokerError(
            f"topic {topic} does not exist on {settings.bootstrap}: run 'tokenhub kafka up' "
            "(creates the topics) or 'tokenhub simulate' first."
        )
    return sorted(described.partitions)


@contextlib.contextmanager
def _stop_on_signals(enabled: bool) -> Iterator[threading.Event]:
    """An event set by SIGINT/SIGTERM (main thread only), so the current batch commits."""
    stop = threading.Event()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _crash_hook(settings: Settings) -> Callable[[int], None] | None:
    """SIGKILL this process mid-transaction once ``loader_crash_after_rows`` rows went in.

    A fault injection for tests (``TOKENHUB_LOADER_CRASH_AFTER_ROWS``): a real crash at the
    worst moment, rows inserted and offsets written but not committed.
    """
    limit = settings.loader_crash_after_rows
    if limit is None:
        return None
    inserted_so_far = 0

    def crash_when_due(inserted: int) -> None:
        nonlocal inserted_so_far
        inserted_so_far += inserted
        if inserted_so_far >= limit:
            os.kill(os.getpid(), signal.SIGKILL)

    return crash_when_due


def land(
    settings: Settings,
    *,
    follow: bool = False,
    max_batches: int | None = None,
    topic: str = EVENTS.name,
    group_id: str = CONSUMER_GROUP,
    progress: bool = False,
    con: duckdb.DuckDBPyConnection | None = None,
    batch_size: int = BATCH_SIZE,
    idle_timeout: float = IDLE_LIMIT_SECONDS,
    metadata_timeout: float = 10.0,
) -> LandingResult:
    """Land the events topic into ``raw.*`` exactly once; see the module docstring.

    Without ``follow``, stops once every partition reached the high watermark seen at start
    (or after ``idle_timeout`` seconds without a message); with it, runs until SIGINT/SIGTERM
    (the batch in flight commits first). ``max_batches`` stops earlier. ``group_id`` names
    the offsets kept in ``raw.kafka_offsets`` (one loader per warehouse file needs no other).
    ``con`` is an open writer connection (default: open the warehouse file). An unreachable
    broker raises :class:`streams.broker.BrokerError` after ``metadata_timeout``.
    """
    # The handlers go in first: a stop request during start-up is honoured, not fatal.
    with _stop_on_signals(follow) as stop:
        try:
            return _land(
                settings,
                stop,
                follow=follow,
                max_batches=max_batches,
                topic=topic,
                group_id=group_id,
                progress=progress,
                con=con,
                batch_size=batch_size,
                idle_timeout=idle_timeout,
                metadata_timeout=metadata_timeout,
            )
        except _STORAGE_ERRORS as error:
            reason = " ".join(str(error).split())
            raise WarehouseWriteError(
                f"cannot write the warehouse {settings.warehouse_path}: {reason}. Nothing of "
                "the failed batch was kept; free disk space, make the file writable or stop "
                "the process holding it, then run `tokenhub land` again: it resumes where it "
                "stopped."
            ) from error


def _land(
    settings: Settings,
    stop: threading.Event,
    *,
    follow: bool = False,
    max_batches: int | None = None,
    topic: str = EVENTS.name,
    group_id: str = CONSUMER_GROUP,
    progress: bool = False,
    con: duckdb.DuckDBPyConnection | None = None,
    batch_size: int = BATCH_SIZE,
    idle_timeout: float = IDLE_LIMIT_SECONDS,
    metadata_timeout: float = 10.0,
) -> LandingResult:
    """:func:`land`, with ``stop`` set by the signal handlers."""
    from tqdm import tqdm

    started = time.perf_counter()
    consumer = _consumer(settings, group_id)
    own_connection = con is None
    writer: _Writer | None = None
    try:
        partitions = _partitions(consumer, settings, topic, metadata_timeout)
        if con is None:
            con = db.connect(settings.warehouse_path)
        ensure_raw_tables(con)
        stored = stored_offsets(con, topic, group_id)
        positions: dict[int, int] = {}
        targets: dict[int, int] = {}
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            positions[partition] = max(stored.get(partition, low), low)
            targets[partition] = high
        consumer.assign(
            [TopicPartition(topic, p, stored.get(p, OFFSET_BEGINNING)) for p in partitions]
        )
        remaining = sum(max(0, targets[p] - positions[p]) for p in partitions)
        skew = timedelta(seconds=settings.max_future_skew_seconds)
        writer = _Writer(con, topic, group_id, _crash_hook(settings))
        batches = 0
        bar = tqdm(
            total=None if follow else remaining,
            unit="msg",
            unit_scale=True,
            disable=not progress,
            mininterval=0.5,
        )
        idle_since = time.monotonic()
        with bar:
            while not stop.is_set():
                if max_batches is not None and batches >= max_batches:
                    break
                if not follow and all(positions[p] >= targets[p] for p in partitions):
                    break
                messages = consumer.consume(num_messages=batch_size, timeout=POLL_SECONDS)
                good = []
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.fatal():
                            raise KafkaException(error)
                        continue  # partition EOF and other informational events
                    good.append(message)
                if not good:
                    writer.wait()  # nothing new: commit what is in flight now
                    if not follow and time.monotonic() - idle_since > idle_timeout:
                        break
                    continue
                idle_since = time.monotonic()
                next_offsets: dict[int, int] = {}
                for message in good:
                    read_from, offset = message.partition(), message.offset()
                    assert read_from is not None and offset is not None  # a message, not an error
                    next_offsets[read_from] = offset + 1
                writer.submit(prepare_batch(good, next_offsets, max_future_skew=skew))
                positions.update(next_offsets)
                batches += 1
                bar.update(len(good))
    finally:
        try:
            if writer is not None:
                writer.close()  # the batch in flight commits (or its error surfaces)
        finally:
            consumer.close()
            if own_connection and con is not None:
                # After a storage error the database may be invalidated: closing must not
                # replace that error with its own.
                with contextlib.suppress(duckdb.Error):
                    con.close()
    total = writer.total
    total.seconds = time.perf_counter() - started
    return total
