"""Read the live state of every partition (read-only), merged: what the views serve.

Each worker writes the databases of the partitions it owns; any process of the machine can
read all of them read-only at once, so a view answers for the whole topic whichever worker
serves it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from streams.agents import aggregate as agg
from streams.agents import alerts
from streams.agents.process import DEAD_LETTERS, STATS
from streams.settings import Settings
from streams.state import PartitionStore


@contextlib.contextmanager
def open_partitions(
    settings: Settings, held: Mapping[int, PartitionStore] | None = None
) -> Iterator[dict[int, PartitionStore]]:
    """Handles on the partition databases that exist: ``held`` ones (the stores this worker
    writes, read as they are) and read-only handles on the others.

    Opening a RocksDB database costs milliseconds per partition; a worker answering its own
    views from read-only copies of the stores it holds open spent most of its time there
    when a dashboard polled it.
    """
    held = dict(held or {})
    opened: dict[int, PartitionStore] = {}
    try:
        for path in sorted(settings.worker_state.glob("partition-*")):
            partition = int(path.name.removeprefix("partition-"))
            if partition not in held and (path / "CURRENT").exists():
                with contextlib.suppress(Exception):
                    opened[partition] = PartitionStore(path, read_only=True, open_timeout=0)
        yield dict(sorted({**opened, **held}.items()))
    finally:
        for store in opened.values():
            store.close()


def merge_windows(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum window records (from several partitions) into one."""
    total = agg.empty_window()
    for record in records:
        for name, value in record.items():
            if name == "spend":
                for currency, amount in value.items():
                    total["spend"][currency] = str(
                        Decimal(total["spend"].get(currency, "0")) + Decimal(amount)
                    )
            else:
                total[name] += value
    total["agent_human_multiplier"] = agg.multiplier(total)
    return total


def windows(
    stores: dict[int, PartitionStore],
    label: str,
    dimension: str,
    value: str | None = None,
) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(window_start, dimension_value): merged record}`` for one window size and dimension."""
    gathered: dict[tuple[str, str], list[dict[str, Any]]] = {}
    prefix = agg.WINDOW + f"{label}/".encode()
    for store in stores.values():
        for key, record in store.items(prefix):
            start, dim, dim_value = key[len(prefix) :].decode().split("/", 2)
            if dim == dimension and (value is None or dim_value == value):
                gathered.setdefault((start, dim_value), []).append(record)
    return {key: merge_windows(records) for key, records in sorted(gathered.items())}


def day_spend(
    stores: dict[int, PartitionStore], day: datetime | None = None
) -> dict[str, dict[str, str]]:
    """``{tenant: {currency: amount}}`` of rated spend on the UTC day (default today)."""
    wanted = (day or datetime.now(UTC)).date().isoformat()
    prefix = alerts.BUDGET + f"{wanted}/".encode()
    spend: dict[str, dict[str, str]] = {}
    for store in stores.values():
        for key, amounts in store.items(prefix):
            spend[key[len(prefix) :].decode()] = amounts
    return spend


def counters(stores: dict[int, PartitionStore], prefix: bytes) -> dict[str, int]:
    totals: dict[str, int] = {}
    for store in stores.values():
        for key, count in store.items(prefix):
            name = key[len(prefix) :].decode()
            totals[name] = totals.get(name, 0) + int(count)
    return totals


def dead_letter_counts(stores: dict[int, PartitionStore]) -> dict[str, int]:
    return counters(stores, DEAD_LETTERS)


def stats(stores: dict[int, PartitionStore]) -> dict[str, Any]:
    return counters(stores, STATS)


def applied_offsets(stores: dict[int, PartitionStore]) -> dict[int, int]:
    return {partition: store.applied_offset for partition, store in stores.items()}
