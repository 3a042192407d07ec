"""The JSONL record of a simulated (or any) stream: one line per message, in send order.

Each line is a JSON object::

    {"kind": "valid", "key": "tn-0001-3fa2b1", "value": "{\\"event_id\\":...}"}

``kind`` is ``valid``, ``duplicate``, ``late``, ``malformed`` or ``invalid``; ``key`` is the
Kafka key as a string (or null); ``value`` is the exact payload as a string (payloads are
UTF-8, so ``value.encode()`` gives back the bytes that were sent). ``tokenhub replay`` sends a
file back to Kafka with the same keys, bytes and order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO

import msgspec

from streams.simulate.stream import Kind, SimulatedMessage


class JsonlRecord(msgspec.Struct):
    """One line of a JSONL stream file."""

    kind: Kind
    key: str | None
    value: str


class JsonlError(ValueError):
    """A line of a JSONL stream file is not a record; the message names file and line."""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(JsonlRecord)


def encode_line(message: SimulatedMessage) -> bytes:
    """The JSONL line (with its newline) recording ``message``."""
    key = message.key.decode() if message.key is not None else None
    return _encoder.encode(JsonlRecord(message.kind, key, message.value.decode())) + b"\n"


class JsonlWriter:
    """Append messages to a JSONL file (a context manager; buffered)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = self.path.open("wb", buffering=1 << 20)

    def write(self, message: SimulatedMessage) -> None:
        self._file.write(encode_line(message))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def read_records(path: str | Path) -> Iterator[JsonlRecord]:
    """The records of a JSONL file, in order; raises :class:`JsonlError` on a bad line."""
    with Path(path).open("rb") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                yield _decoder.decode(line)
            except msgspec.DecodeError as error:
                raise JsonlError(f"{path}, line {number}: not a stream record ({error})") from None


def read_jsonl(path: str | Path) -> Iterator[SimulatedMessage]:
    """The messages of a JSONL file as :class:`SimulatedMessage` (key and value as bytes)."""
    for record in read_records(path):
        key = record.key.encode() if record.key is not None else None
        yield SimulatedMessage(record.kind, key, record.value.encode())
