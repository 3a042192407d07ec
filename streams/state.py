"""The live workers' state: one RocksDB database per source partition, written atomically.

Why not Faust tables with ``processing_guarantee="exactly_once"``: Faust 0.15 opens one
transactional producer per *source* partition and picks the transaction of a send from the
*destination* partition number, so a send to a topic that is not co-partitioned with the
events (alerts has 1 partition, dead letters 3) fails with "No transaction producer found"
as soon as two workers share the partitions; and a table cannot be updated from a
``stream.take()`` micro-batch ("Cannot modify table key from outside of stream iteration").

So each source partition keeps its whole state (de-duplication index, windows, budget
totals, fired alerts, dead-letter counts) in its own RocksDB database together with **the
offset of the last message applied**. A micro-batch is applied in one atomic ``WriteBatch``
that also moves that offset, and a redelivered message (Kafka's committed offset lags after a
crash) is recognised by its offset and skipped: every message changes the state exactly once.
Messages for other topics (dead letters, alerts, closed windows) are written to an *outbox*
in the same ``WriteBatch`` and sent afterwards with a stable key each; see the README.

Keys are bytes with a prefix per kind (``seen/``, ``win/`` ...), values are JSON.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from rocksdict import AccessType, Options, Rdict, WriteBatch

_OFFSET_KEY = b"meta/offset"
_OUTBOX_SEQ_KEY = b"meta/outbox_seq"
OUTBOX_PREFIX = b"outbox/"


def partition_path(state_dir: Path, partition: int) -> Path:
    """The database folder of one source partition."""
    return state_dir / f"partition-{partition:03d}"


def _options() -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    return options


def _prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


class PartitionStore:
    """The state of one source partition; the owning worker holds it open for writing."""

    def __init__(self, path: Path, *, read_only: bool = False, open_timeout: float = 30.0) -> None:
        self.path = path
        self.read_only = read_only
        path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + open_timeout
        while True:
            try:
                if read_only:
                    self._db = Rdict(str(path), _options(), access_type=AccessType.read_only())
                else:
                    self._db = Rdict(str(path), _options())
                break
            except Exception as error:
                # Another worker of this machine may still hold the lock for a moment
                # while a rebalance hands the partition over.
                if "lock" not in str(error).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    # --- reading -------------------------------------------------------------------------
    def get(self, key: bytes) -> Any:
        raw = self._db.get(key)
        return None if raw is None else orjson.loads(raw)

    def items(self, prefix: bytes, start: bytes | None = None) -> Iterator[tuple[bytes, Any]]:
        """Every (key, value) whose key starts with ``prefix``, in key order (from ``start``)."""
        end = _prefix_end(prefix)
        iterator = self._db.iter()
        iterator.seek(max(prefix, start or prefix))
        while iterator.valid():
            key = iterator.key()
            if key >= end:
                break
            yield key, orjson.loads(iterator.value())
            iterator.next()

    @property
    def applied_offset(self) -> int:
        """The offset of the last source message applied (-1 before the first)."""
        value = self.get(_OFFSET_KEY)
        return -1 if value is None else int(value)

    # --- writing -------------------------------------------------------------------------
    def commit(
        self,
        puts: dict[bytes, Any],
        deletes: set[bytes],
        *,
        applied_offset: int,
        outbox: list[tuple[str, bytes, bytes]],
    ) -> list[tuple[bytes, str, bytes, bytes]]:
        """Apply one micro-batch atomically; returns the outbox entries it queued."""
        batch = WriteBatch(raw_mode=True)
        for key in deletes:
            if key not in puts:
                batch.delete(key)
        for key, value in puts.items():
            batch.put(key, orjson.dumps(value))
        sequence = int(self.get(_OUTBOX_SEQ_KEY) or 0)
        queued = []
        for topic, key, value in outbox:
            sequence += 1
            outbox_key = OUTBOX_PREFIX + f"{sequence:020d}".encode()
            batch.put(
                outbox_key,
                orjson.dumps({"topic": topic, "key": key.decode(), "value": value.decode()}),
            )
            queued.append((outbox_key, topic, key, value))
        batch.put(_OUTBOX_SEQ_KEY, orjson.dumps(sequence))
        batch.put(_OFFSET_KEY, orjson.dumps(applied_offset))
        self._db.write(batch)
        return queued

    def pending_outbox(self) -> list[tuple[bytes, str, bytes, bytes]]:
        """Outbox entries not yet confirmed as delivered (left by a crash, or just queued)."""
        return [
            (key, entry["topic"], entry["key"].encode(), entry["value"].encode())
            for key, entry in self.items(OUTBOX_PREFIX)
        ]

    def delivered(self, outbox_keys: list[bytes]) -> None:
        """Forget outbox entries Kafka acknowledged."""
        batch = WriteBatch(raw_mode=True)
        for key in outbox_keys:
            batch.delete(key)
        self._db.write(batch)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._db.close()
