"""Resumable expiry sweeps over a real RocksDB partition store, and window closing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.agents import aggregate as agg
from streams.agents.overlay import Overlay
from streams.state import PartitionStore

PREFIX = b"seen-by-day/"


def _commit(store: PartitionStore, state: Overlay, offset: int) -> None:
    store.commit(state.puts, state.deletes, applied_offset=offset, outbox=[])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    days=st.lists(st.integers(0, 60), min_size=1, max_size=40),
    bounds=st.lists(st.integers(0, 70), min_size=1, max_size=6),
)
def test_each_sweep_deletes_exactly_the_keys_below_the_highest_bound_so_far(
    tmp_path_factory: pytest.TempPathFactory, days: list[int], bounds: list[int]
) -> None:
    store = PartitionStore(tmp_path_factory.mktemp("store") / "p0")
    try:
        state = Overlay(store)
        for index, day in enumerate(days):
            state.put(PREFIX + f"{day:08d}/evt-{index}".encode(), 1)
        _commit(store, state, 0)
        highest = -1
        for offset, bound in enumerate(bounds, start=1):
            state = Overlay(store)
            expired = state.expire(PREFIX, f"{bound:08d}/".encode())
            _commit(store, state, offset)
            previous, highest = highest, max(highest, bound)
            expected = {
                PREFIX + f"{day:08d}/evt-{index}".encode()
                for index, day in enumerate(days)
                if previous <= day < bound
            }
            assert set(expired) == expected
            left = {key for key, _ in store.items(PREFIX)}
            assert left == {
                PREFIX + f"{day:08d}/evt-{index}".encode()
                for index, day in enumerate(days)
                if day >= highest
            }
    finally:
        store.close()


def test_windows_close_once_whether_opened_in_this_batch_or_an_earlier_one(
    tmp_path: Path,
) -> None:
    store = PartitionStore(tmp_path / "p0")
    start = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    try:
        state = Overlay(store)
        state.put(agg.OPEN + f"1m/{agg.iso(start)}".encode(), 1)
        state.put(agg.WATERMARK, (start + timedelta(seconds=30)).isoformat())
        assert agg.closable_windows(state, allowance_seconds=60) == []
        _commit(store, state, 0)
        # Next batch: the 10:01 window opens, and event time passes both windows' ends.
        state = Overlay(store)
        later = start + timedelta(minutes=1)
        state.put(agg.OPEN + f"1m/{agg.iso(later)}".encode(), 1)
        state.put(agg.WATERMARK, (later + timedelta(seconds=120)).isoformat())
        assert agg.closable_windows(state, allowance_seconds=60) == [("1m", start), ("1m", later)]
        _commit(store, state, 1)
        # Nothing is left open, and nothing closes twice.
        state = Overlay(store)
        state.put(agg.WATERMARK, (later + timedelta(hours=1)).isoformat())
        assert agg.closable_windows(state, allowance_seconds=60) == []
        assert list(store.items(agg.OPEN)) == []
    finally:
        store.close()
