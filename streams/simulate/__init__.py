"""The realistic load generator: a seeded world of tenants emitting token usage events.

Public API (stable; other tests and the demo rely on it)::

    from streams.simulate import FaultRates, generate, run, ground_truth, expected_invalid

    # Messages in send order: SimulatedMessage(kind, key: bytes | None, value: bytes, ...)
    for message in generate(seed=7, events=10_000, tenants=50, days=3,
                            faults=FaultRates(duplicates=0.02, malformed=0.005)):
        ...

    # Into Kafka and/or a JSONL file, with a summary (counts by kind and actor, rate)
    summary = run(settings, seed=7, events=100_000, days=3, out="stream.jsonl")
    print(summary.describe())

    # The oracle of a recorded stream
    truth = ground_truth("stream.jsonl")        # polars: distinct valid events
    dead = expected_invalid("stream.jsonl")     # polars: messages to dead-letter + reason

Modules: :mod:`.world` (tenants, workspaces, keys, swarms, models, regions, chips),
:mod:`.traffic` (requests, sizes, the daily curve), :mod:`.faults` (fault injection),
:mod:`.stream` (:func:`generate`), :mod:`.jsonl` (the file format), :mod:`.runner`
(:func:`run`, :func:`replay`), :mod:`.truth` (the oracle).
"""

from streams.simulate.faults import FaultRates
from streams.simulate.jsonl import JsonlError, JsonlWriter, read_jsonl
from streams.simulate.runner import SimulationSummary, check_kafka, pump, replay, run
from streams.simulate.stream import (
    INVALID_KINDS,
    KINDS,
    VALID_KINDS,
    SimulatedMessage,
    generate,
)
from streams.simulate.truth import TruthMismatch, expected_invalid, ground_truth
from streams.simulate.world import World, build_world

__all__ = [
    "INVALID_KINDS",
    "KINDS",
    "VALID_KINDS",
    "FaultRates",
    "JsonlError",
    "JsonlWriter",
    "SimulatedMessage",
    "SimulationSummary",
    "TruthMismatch",
    "World",
    "build_world",
    "check_kafka",
    "expected_invalid",
    "generate",
    "ground_truth",
    "pump",
    "read_jsonl",
    "replay",
    "run",
]
