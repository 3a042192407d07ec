"""Every Kafka topic tokenhub uses, declared once with its partitions and configuration."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TopicSpec:
    """A topic's name, partition count and topic-level configuration."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    description: str = ""


_THIRTY_DAYS_MS = str(30 * 24 * 3600 * 1000)

EVENTS = TopicSpec(
    "token-usage.events.v1",
    partitions=6,
    config={"retention.ms": _THIRTY_DAYS_MS, "max.message.bytes": "1048576"},
    description="One token usage event per request, JSON, keyed by tenant_id.",
)
DEAD_LETTER = TopicSpec(
    "token-usage.dead-letter.v1",
    partitions=3,
    config={"retention.ms": _THIRTY_DAYS_MS},
    description="Events that failed validation, with the reason and the original bytes.",
)
ALERTS = TopicSpec(
    "token-usage.alerts.v1",
    partitions=1,
    description="Budget alerts: a tenant crossed 50%, 80% or 100% of its daily budget.",
)
AGGREGATES = TopicSpec(
    "token-usage.aggregates.v1",
    partitions=6,
    config={"cleanup.policy": "compact"},
    description="Closed live windows (compacted: the last value per window key wins).",
)

ALL_TOPICS: tuple[TopicSpec, ...] = (EVENTS, DEAD_LETTER, ALERTS, AGGREGATES)
