"""The oracle for tests: what a JSONL stream file must produce downstream.

* :func:`ground_truth`: the distinct valid events of the stream (each message parsed with
  :func:`streams.events.parse`, de-duplicated by ``event_id``, first delivery kept), one row
  per event, in first-delivery order. Whatever lands in the warehouse must equal it.
* :func:`expected_invalid`: the messages that must end in the dead-letter topic /
  quarantine, with the reason code :func:`streams.events.parse` gives.

Both parse every message with the one contract parser, so they agree with the pipeline by
construction; both also check the file's ``kind`` labels and raise :class:`TruthMismatch`
if a message labelled valid does not parse (or one labelled invalid does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import polars as pl

from streams import events
from streams.simulate.jsonl import read_records
from streams.simulate.stream import INVALID_KINDS

_FIELDS = events.TokenUsageEvent.__struct_fields__
_INT_FIELDS = frozenset(
    {
        "schema_version",
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "thinking_tokens",
        "accelerator_ms",
    }
)
#: Polars schema of :func:`ground_truth`: ``sent_index`` then the contract's fields.
GROUND_TRUTH_SCHEMA: dict[str, pl.DataType] = {
    "sent_index": pl.Int64(),
    **{
        name: (
            pl.Datetime("us", "UTC")
            if name == "occurred_at"
            else pl.Int64()
            if name in _INT_FIELDS
            else pl.String()
        )
        for name in _FIELDS
    },
}
#: Polars schema of :func:`expected_invalid`.
EXPECTED_INVALID_SCHEMA: dict[str, pl.DataType] = {
    "sent_index": pl.Int64(),
    "kind": pl.String(),
    "key": pl.String(),
    "value": pl.String(),
    "reason": pl.String(),
}


class TruthMismatch(AssertionError):
    """A message's ``kind`` label disagrees with what the contract parser says."""


@dataclass
class _Classified:
    valid_rows: list[tuple[object, ...]]
    invalid_rows: list[tuple[object, ...]]


def _classify(path: str | Path, now: datetime | None) -> _Classified:
    seen: set[str] = set()
    valid_rows: list[tuple[object, ...]] = []
    invalid_rows: list[tuple[object, ...]] = []
    astuple = msgspec.structs.astuple
    now = now or datetime.now(UTC)  # one clock reading for the whole file
    for index, record in enumerate(read_records(path)):
        try:
            event = events.parse(record.value.encode(), now=now)
        except events.InvalidEvent as error:
            if record.kind not in INVALID_KINDS:
                raise TruthMismatch(
                    f"{path}: message {index} is labelled {record.kind} but is invalid: {error}"
                ) from None
            invalid_rows.append((index, record.kind, record.key, record.value, error.reason))
            continue
        if record.kind in INVALID_KINDS:
            raise TruthMismatch(
                f"{path}: message {index} is labelled {record.kind} but is a valid event"
            )
        if event.event_id not in seen:
            seen.add(event.event_id)
            valid_rows.append((index, *astuple(event)))
    return _Classified(valid_rows, invalid_rows)


def ground_truth(path: str | Path, *, now: datetime | None = None) -> pl.DataFrame:
    """The distinct valid events of a stream file (schema :data:`GROUND_TRUTH_SCHEMA`)."""
    rows = _classify(path, now).valid_rows
    return pl.DataFrame(rows, schema=GROUND_TRUTH_SCHEMA, orient="row")


def expected_invalid(path: str | Path, *, now: datetime | None = None) -> pl.DataFrame:
    """The messages that must be dead-lettered, with their reason codes.

    Columns: ``sent_index`` (0-based position in the stream), ``kind``, ``key``, ``value``
    (the exact payload) and ``reason`` (:attr:`streams.events.InvalidEvent.reason`).
    """
    rows = _classify(path, now).invalid_rows
    return pl.DataFrame(rows, schema=EXPECTED_INVALID_SCHEMA, orient="row")
