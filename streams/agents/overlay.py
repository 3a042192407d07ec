"""The pending changes of one micro-batch over a partition's store, committed at once."""

from __future__ import annotations

from collections.abc import Iterator
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

    def store_items(self, prefix: bytes) -> Iterator[tuple[bytes, Any]]:
        """Committed entries under ``prefix`` (this batch's own writes are not included)."""
        return self.store.items(prefix)

    def items(self, prefix: bytes) -> list[tuple[bytes, Any]]:
        """Entries under ``prefix`` including this batch's writes, in key order."""
        merged = {k: v for k, v in self.store.items(prefix) if k not in self.deletes}
        merged.update({k: v for k, v in self.puts.items() if k.startswith(prefix)})
        return sorted(merged.items())
