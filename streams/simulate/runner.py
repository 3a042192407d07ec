"""Send a simulated (or recorded) stream to Kafka and/or a JSONL file, with a summary.

:func:`run` is what ``tokenhub simulate`` and the demo call; :func:`replay` is what
``tokenhub replay`` calls. Both pace the stream (``rate`` messages per second, 0 = as fast as
possible), show a progress bar with the live rate on stderr when asked, send valid events'
already-encoded bytes with :meth:`TokenUsageProducer.send_raw` (they were built valid, so
they are not validated twice) and return a :class:`SimulationSummary`.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from confluent_kafka import KafkaException

from streams.broker import BrokerError
from streams.producer import TokenUsageProducer
from streams.settings import Settings
from streams.simulate.faults import FaultRates
from streams.simulate.jsonl import JsonlWriter, read_jsonl
from streams.simulate.stream import SimulatedMessage, generate
from streams.topics import EVENTS


@dataclass
class SimulationSummary:
    """What flowed: messages by kind, distinct events and tokens by actor type, speed."""

    messages: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    #: Distinct valid events (``valid`` and ``late``; duplicates not counted) by actor type.
    events_by_actor: Counter[str] = field(default_factory=Counter)
    #: Input + output tokens of those events by actor type.
    tokens_by_actor: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    topic: str | None = None
    bootstrap: str | None = None
    out: Path | None = None

    @property
    def rate(self) -> float:
        """Messages per second over the run."""
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def tokens_per_request(self, actor_type: str) -> float:
        """Mean input + output tokens per request of ``actor_type`` (0 if none)."""
        count = self.events_by_actor[actor_type]
        return self.tokens_by_actor[actor_type] / count if count else 0.0

    @property
    def agent_human_ratio(self) -> float | None:
        """Agent tokens per request over human tokens per request (None without humans)."""
        human = self.tokens_per_request("human")
        return self.tokens_per_request("agent") / human if human else None

    def add(self, message: SimulatedMessage) -> None:
        self.messages += 1
        self.by_kind[message.kind] += 1
        if message.actor_type is not None and message.kind != "duplicate":
            self.events_by_actor[message.actor_type] += 1
            self.tokens_by_actor[message.actor_type] += message.tokens

    def describe(self) -> str:
        """A few lines for people: where it went, what kinds, agents vs humans, speed."""
        where = []
        if self.topic:
            where.append(f"Kafka topic {self.topic} on {self.bootstrap}")
        if self.out:
            where.append(f"file {self.out}")
        kinds = ", ".join(f"{kind} {count:,}" for kind, count in sorted(self.by_kind.items()))
        lines = [
            f"Sent {self.messages:,} messages to {' and '.join(where) or 'nowhere'} in "
            f"{self.elapsed_s:.1f}s ({self.rate:,.0f} msg/s).",
            f"  by kind: {kinds or 'none'}",
        ]
        if self.events_by_actor:
            actors = ", ".join(
                f"{actor} {self.events_by_actor[actor]:,} events / "
                f"{self.tokens_by_actor[actor]:,} tokens"
                for actor in sorted(self.events_by_actor)
            )
            lines.append(f"  distinct events: {actors}")
            if self.agent_human_ratio is not None:
                lines.append(
                    f"  an agent request uses {self.agent_human_ratio:.1f}x the tokens of a "
                    "human query"
                )
        return "\n".join(lines)


def check_kafka(settings: Settings, *, timeout: float = 5.0) -> None:
    """Raise :class:`BrokerError` (with what to do) unless Kafka answers within ``timeout``."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(settings.librdkafka(log_level=0))
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as error:
        raise BrokerError(
            f"Kafka is not reachable at {settings.bootstrap} ({error.args[0].str()}). Start the "
            "local broker with 'tokenhub kafka up', or point TOKENHUB_BOOTSTRAP_SERVERS at yours."
        ) from None
    if not metadata.brokers:
        raise BrokerError(f"Kafka at {settings.bootstrap} has no brokers; is it starting up?")


def pump(
    messages: Iterable[SimulatedMessage],
    *,
    settings: Settings | None = None,
    kafka: bool = True,
    topic: str = EVENTS.name,
    out: str | Path | None = None,
    rate: float = 0.0,
    duration: float | None = None,
    total: int | None = None,
    progress: bool = False,
) -> SimulationSummary:
    """Send ``messages`` (in order) to Kafka and/or record them in ``out``, paced at ``rate``."""
    from tqdm import tqdm

    if not kafka and out is None:
        raise ValueError("nowhere to send: enable Kafka or give an output file")
    summary = SimulationSummary(out=Path(out) if out is not None else None)
    producer: TokenUsageProducer | None = None
    if kafka:
        settings = settings or Settings()
        check_kafka(settings)
        producer = TokenUsageProducer(settings, topic=topic)
        summary.topic, summary.bootstrap = topic, settings.bootstrap
    writer = JsonlWriter(out) if out is not None else None
    # Check the clock, pace and redraw the bar every `step` messages: per message is too slow.
    step = 1000 if rate <= 0 else max(1, min(1000, int(rate // 20)))
    bar = tqdm(
        total=total,
        unit="msg",
        unit_scale=True,
        file=sys.stderr,
        disable=not progress,
        mininterval=0.5,
        smoothing=0.1,
    )
    start = time.perf_counter()
    summary_add = summary.add
    try:
        for count, message in enumerate(messages, start=1):
            if producer is not None:
                producer.send_raw(message.key, message.value)
            if writer is not None:
                writer.write(message)
            summary_add(message)
            if count % step == 0:
                bar.update(step)
                elapsed = time.perf_counter() - start
                if rate > 0 and count / rate > elapsed:
                    time.sleep(count / rate - elapsed)
                if duration is not None and time.perf_counter() - start >= duration:
                    break
        if producer is not None:
            producer.close()
    finally:
        if writer is not None:
            writer.close()
        bar.update(summary.messages - bar.n)
        bar.close()
        summary.elapsed_s = time.perf_counter() - start
    return summary


def run(
    settings: Settings | None = None,
    *,
    seed: int = 0,
    events: int | None = 10_000,
    duration: float | None = None,
    rate: float = 0.0,
    tenants: int = 50,
    days: float = 0.0,
    faults: FaultRates | None = None,
    out: str | Path | None = None,
    kafka: bool = True,
    topic: str = EVENTS.name,
    progress: bool = False,
    now: datetime | None = None,
) -> SimulationSummary:
    """Simulate traffic (see :func:`generate`) into Kafka and/or a JSONL file.

    Stops after ``events`` messages, or after ``duration`` seconds when ``events`` is None.
    """
    if events is None and duration is None:
        raise ValueError("give a number of events or a duration")
    messages = generate(
        seed=seed, events=events, tenants=tenants, days=days, faults=faults, now=now
    )
    return pump(
        messages,
        settings=settings,
        kafka=kafka,
        topic=topic,
        out=out,
        rate=rate,
        duration=duration,
        total=events,
        progress=progress,
    )


def replay(
    path: str | Path,
    settings: Settings | None = None,
    *,
    rate: float = 0.0,
    topic: str = EVENTS.name,
    progress: bool = False,
) -> SimulationSummary:
    """Send a JSONL stream file to Kafka exactly as recorded (keys, bytes, order).

    The whole file is read once before anything is sent: a broken line raises
    :class:`JsonlError` naming it, and nothing of the file reaches Kafka.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no stream file at {path}")
    total = sum(1 for _ in read_jsonl(path))
    return pump(
        read_jsonl(path),
        settings=settings,
        topic=topic,
        rate=rate,
        total=total,
        progress=progress,
    )
