"""The pending changes of one micro-batch over a partition's store, committed at once."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from streams.state import PartitionStore


class Overlay:
    """Reads through to the store, buffers writes and deletes until :meth:`commit`."""

    def __init__(self, store: PartitionStore) -> None:
        self.store = store
        self.puts: dict[bytes, Any] = {}
        self.deletes: set[bytes] = set()

    def get(self, key: bytes) -> Any:
        if key in self.puts:
            return self.puts[key]
        if key in self.deletes:
            return None
        return self.store.get(key)

    def put(self, key: bytes, value: Any) -> None:
        self.puts[key] = value
        self.deletes.discard(key)

    def delete(self, key: bytes) -> None:
        self.puts.pop(key, None)
        self.deletes.add(key)

    def items(self, prefix: bytes) -> list[tuple[bytes, Any]]:
        """Entries under ``prefix`` including this batch's writes, in key order."""
        return self.items_under([prefix])[prefix]

    def items_under(self, prefixes: Iterable[bytes]) -> dict[bytes, list[tuple[bytes, Any]]]:
        """:meth:`items` for many prefixes (none a prefix of another), this batch's writes
        scanned once rather than once per prefix."""
        wanted = set(prefixes)
        if not wanted:
            return {}
        sizes = {len(prefix) for prefix in wanted}
        pending: dict[bytes, dict[bytes, Any]] = defaultdict(dict)
        for key, value in self.puts.items():
            for size in sizes:
                if key[:size] in wanted:
                    pending[key[:size]][key] = value
        result = {}
        for prefix in wanted:
            merged = {k: v for k, v in self.store.items(prefix) if k not in self.deletes}
            merged.update(pending.get(prefix, {}))
            result[prefix] = sorted(merged.items())
        return result

    def expire(self, prefix: bytes, bound: bytes) -> list[bytes]:
        """Delete, and return, the committed keys under ``prefix`` that sort before
        ``prefix + bound``.

        Each call resumes where the previous one stopped (the progress is kept under
        ``meta/expired/<prefix>``): deleted keys stay in RocksDB as tombstones until a
        compaction, and walking them again on every micro-batch made the sweep cost grow
        with everything ever expired. A key written later behind the progress (an event
        older than everything expired so far) is not swept; such keys are rare and few.
        """
        progress_key = _EXPIRED + prefix
        done = self.get(progress_key)
        start = prefix + done.encode() if done else None
        end = prefix + bound
        expired = []
        for key, _ in self.store.items(prefix, start):
            if key >= end:
                break
            self.delete(key)
            expired.append(key)
        if done is None or bound.decode() > done:
            self.put(progress_key, bound.decode())
        return expired


_EXPIRED = b"meta/expired/"
