"""Validate: every message is parsed with the one contract; the invalid ones become dead letters.

A dead letter keeps everything needed to understand and replay the message: the reason code
of :class:`streams.events.InvalidEvent`, its detail, the original key and bytes (base64), the
source topic, partition and offset, and when it was dead-lettered. Its Kafka key is
``<topic>:<partition>:<offset>``, unique per source message, so a consumer can drop the rare
repeat a crash may cause (see the README's exactly-once section).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from streams import events


@dataclass(frozen=True)
class SourceMessage:
    """One record read from the events topic, as it came (bytes), with its coordinates."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: float | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A message that failed validation, with the reason."""

    reason: str
    detail: str
    source: SourceMessage
    dead_lettered_at: datetime

    @property
    def key(self) -> bytes:
        """The stable Kafka key: ``<topic>:<partition>:<offset>`` of the source message."""
        return f"{self.source.topic}:{self.source.partition}:{self.source.offset}".encode()

    def to_json(self) -> bytes:
        """The dead-letter message value (format documented in the README)."""
        source = self.source
        return orjson.dumps(
            {
                "schema": "token-usage.dead-letter.v1",
                "reason": self.reason,
                "detail": self.detail,
                "source_topic": source.topic,
                "source_partition": source.partition,
                "source_offset": source.offset,
                "source_timestamp": (
                    datetime.fromtimestamp(source.timestamp, UTC).isoformat()
                    if source.timestamp is not None
                    else None
                ),
                "original_key_base64": (
                    base64.b64encode(source.key).decode() if source.key is not None else None
                ),
                "original_value_base64": base64.b64encode(source.value).decode(),
                "dead_lettered_at": self.dead_lettered_at.isoformat(),
            }
        )


def validate(
    message: SourceMessage, *, now: datetime, max_future_skew: timedelta
) -> events.TokenUsageEvent | DeadLetter:
    """The parsed event, or a dead letter saying why it is not one. Never raises."""
    try:
        return events.parse(message.value, now=now, max_future_skew=max_future_skew)
    except events.InvalidEvent as error:
        return DeadLetter(error.reason, error.detail, message, now)
    except Exception as error:  # the worker must never crash on input
        return DeadLetter("unparseable", f"{type(error).__name__}: {error}", message, now)
