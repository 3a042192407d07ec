"""The simulated message stream: traffic plus faults, in send order.

:func:`generate` is the one source of simulated messages; ``tokenhub simulate``, the demo and
tests all draw from it. For a given seed, world size, fault rates and ``now`` it yields the
same messages, byte for byte.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from datetime import datetime
from typing import Literal, NamedTuple

from streams.events import encode
from streams.simulate.faults import FaultRates, invalid_payload, late_time, malformed_payload
from streams.simulate.traffic import HistoryClock, LiveClock, Traffic
from streams.simulate.world import World, build_world

Kind = Literal["valid", "duplicate", "late", "malformed", "invalid"]
KINDS: tuple[Kind, ...] = ("valid", "duplicate", "late", "malformed", "invalid")
#: Kinds whose messages are valid events (``duplicate`` repeats one already sent).
VALID_KINDS: frozenset[str] = frozenset({"valid", "duplicate", "late"})
#: Kinds whose messages must end in the dead-letter topic / quarantine.
INVALID_KINDS: frozenset[str] = frozenset({"malformed", "invalid"})

#: Duplicates pick their original among this many recent valid messages.
_DUPLICATE_MEMORY = 20_000
#: Share of duplicates that are immediate retries (the rest arrive much later).
_PROMPT_RETRY_SHARE = 0.7
#: An out-of-order event is delivered up to this many messages late.
_MAX_REORDER = 500


class SimulatedMessage(NamedTuple):
    """One Kafka message of the simulated stream."""

    kind: Kind
    #: The Kafka key (``tenant_id``), or None when the message has none.
    key: bytes | None
    #: The exact payload bytes.
    value: bytes
    #: For valid events (and their duplicates): the actor type and input + output tokens.
    actor_type: str | None = None
    tokens: int = 0


def generate(
    *,
    seed: int = 0,
    events: int | None = 10_000,
    tenants: int = 50,
    days: float = 0.0,
    faults: FaultRates | None = None,
    now: datetime | None = None,
    world: World | None = None,
) -> Iterator[SimulatedMessage]:
    """Yield ``events`` messages (forever when None) of a seeded simulated world.

    ``days`` > 0 spreads event times over the ``days`` before ``now`` along the daily curve
    (needs ``events``); otherwise events are stamped ``now``, or the wall clock at the moment
    each is generated when ``now`` is None (live traffic). With a fixed ``now`` the output is
    byte-for-byte deterministic for the other arguments.
    """
    faults = faults or FaultRates()
    if events is not None and events < 0:
        raise ValueError("events must not be negative")
    if days < 0:
        raise ValueError("days must not be negative")
    if days > 0 and events is None:
        raise ValueError("spreading events over days needs a number of events")
    world = world or build_world(seed, tenants)
    rng = random.Random(seed)
    traffic = Traffic(world, rng)
    clock: HistoryClock | LiveClock
    if days > 0:
        assert events is not None
        clock = HistoryClock(
            days=days, total=events, agent_share=traffic.agent_share, rng=rng, now=now
        )
    else:
        clock = LiveClock(now)

    malformed_until = faults.malformed
    invalid_until = malformed_until + faults.invalid
    duplicate_until = invalid_until + faults.duplicates
    late_until = duplicate_until + faults.late
    reorder_until = late_until + faults.out_of_order

    held: list[tuple[int, int, SimulatedMessage]] = []  # out-of-order events, by due slot
    held_count = 0  # tie-breaker: equal due slots leave in the order they were held
    recent: list[SimulatedMessage] = []  # ring buffer of sent valid events
    recent_next = 0
    sent = 0
    random_ = rng.random

    while events is None or sent < events:
        if held and (held[0][0] <= sent or (events is not None and events - sent <= len(held))):
            message = heapq.heappop(held)[2]
        else:
            ts = clock.time_for(sent)
            draw = random_()
            if draw >= reorder_until:
                event = traffic.event(ts)
                message = SimulatedMessage(
                    "valid",
                    event.tenant_id.encode(),
                    encode(event),
                    event.actor_type,
                    event.input_tokens + event.output_tokens,
                )
            elif draw < malformed_until:
                event = traffic.event(ts)
                key = event.tenant_id.encode() if random_() < 0.8 else None
                message = SimulatedMessage("malformed", key, malformed_payload(rng, encode(event)))
            elif draw < invalid_until:
                key, value = invalid_payload(rng, traffic.event(ts))
                message = SimulatedMessage("invalid", key, value)
            elif draw < duplicate_until and recent:
                if random_() < _PROMPT_RETRY_SHARE:
                    back = 1 + int(random_() * min(20, len(recent)))
                    original = recent[(recent_next - back) % len(recent)]
                else:
                    original = recent[int(random_() * len(recent))]
                message = original._replace(kind="duplicate")
            elif duplicate_until <= draw < late_until:
                event = traffic.event(late_time(rng, ts))
                message = SimulatedMessage(
                    "late",
                    event.tenant_id.encode(),
                    encode(event),
                    event.actor_type,
                    event.input_tokens + event.output_tokens,
                )
            else:
                # Out of order (or a duplicate before anything was sent): a valid event,
                # held back for a while when reordering.
                event = traffic.event(ts)
                message = SimulatedMessage(
                    "valid",
                    event.tenant_id.encode(),
                    encode(event),
                    event.actor_type,
                    event.input_tokens + event.output_tokens,
                )
                if draw >= late_until:
                    due = sent + 1 + int(random_() * _MAX_REORDER)
                    held_count += 1
                    heapq.heappush(held, (due, held_count, message))
                    continue
        if message.kind == "valid" or message.kind == "late":
            if len(recent) < _DUPLICATE_MEMORY:
                recent.append(message)
            else:
                recent[recent_next] = message
            recent_next = (recent_next + 1) % _DUPLICATE_MEMORY
        sent += 1
        yield message
