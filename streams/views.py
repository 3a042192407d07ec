"""HTTP views of the live state, served by the worker's Faust web server (JSON).

Bound to ``Settings.web_host`` (127.0.0.1 by default), port ``Settings.web_port``. Every
view answers for all partitions, whichever worker serves it (see :mod:`streams.live_state`).
Money is a decimal string per currency. Examples in the README (section *Live streams*).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from streams import live_state
from streams.agents.aggregate import WINDOWS
from streams.app import app, events_topic, settings

PREFIX = "/tokenhub"


def _partitions() -> Any:
    """The live state of every partition: this worker's open stores, read-only for the rest."""
    from streams.agents.live import stores  # the agent module imports the app: not at load

    return live_state.open_partitions(settings, held=stores.open)


def _window_label(request: Any) -> str:
    label = request.query.get("window", "1h")
    return label if label in WINDOWS else "1h"


def _latest(windows: dict[tuple[str, str], dict[str, Any]], count: int) -> list[dict[str, Any]]:
    starts = sorted({start for start, _ in windows})[-count:]
    return [
        {"window_start": start, "dimension_value": value, **record}
        for (start, value), record in windows.items()
        if start in starts
    ]


def _amount(spend: dict[str, str]) -> Decimal:
    # Ranking needs one number: the sum over currencies (the books normally use one).
    return sum((Decimal(v) for v in spend.values()), Decimal(0))


@app.page(f"{PREFIX}/spend/")
async def spend(web: Any, request: Any) -> Any:
    """Rated spend today per tenant, and per recent window (``?tenant=``, ``?window=``, ``?last=``)."""
    tenant = request.query.get("tenant")
    label = _window_label(request)
    last = int(request.query.get("last", "5"))
    with _partitions() as stores:
        today = live_state.day_spend(stores)
        recent = _latest(live_state.windows(stores, label, "tenant", tenant), last)
    if tenant is not None:
        today = {tenant: today.get(tenant, {})}
    return web.json({"today": today, "window": label, "windows": recent})


@app.page(f"{PREFIX}/windows/")
async def windows(web: Any, request: Any) -> Any:
    """Every stored window of a size and dimension (``?window=1m|1h``, ``?dimension=tenant``)."""
    label = _window_label(request)
    dimension = request.query.get("dimension", "tenant")
    with _partitions() as stores:
        found = live_state.windows(stores, label, dimension, request.query.get("value"))
    return web.json(
        {
            "window": label,
            "dimension": dimension,
            "windows": [
                {"window_start": start, "dimension_value": value, **record}
                for (start, value), record in found.items()
            ],
        }
    )


@app.page(f"{PREFIX}/top-tenants/")
async def top_tenants(web: Any, request: Any) -> Any:
    """Tenants by rated spend today (``?n=10``)."""
    n = int(request.query.get("n", "10"))
    with _partitions() as stores:
        today = live_state.day_spend(stores)
    ranked = sorted(today.items(), key=lambda item: _amount(item[1]), reverse=True)[:n]
    return web.json({"top": [{"tenant_id": t, "spend": s} for t, s in ranked]})


@app.page(f"{PREFIX}/agents-vs-humans/")
async def agents_vs_humans(web: Any, request: Any) -> Any:
    """Tokens and requests by actor type and the multiplier, per recent window."""
    label = _window_label(request)
    last = int(request.query.get("last", "5"))
    with _partitions() as stores:
        recent = live_state.windows(stores, label, "all")
    rows = [
        {
            "window_start": start,
            "agent_tokens": r["agent_tokens"],
            "agent_requests": r["agent_requests"],
            "human_tokens": r["human_tokens"],
            "human_requests": r["human_requests"],
            "agent_human_multiplier": r["agent_human_multiplier"],
        }
        for (start, _), r in list(recent.items())[-last:]
    ]
    overall = live_state.merge_windows(
        [{k: v for k, v in r.items() if k != "agent_human_multiplier"} for r in recent.values()]
    )
    return web.json(
        {
            "window": label,
            "windows": rows,
            "overall_multiplier": overall["agent_human_multiplier"],
        }
    )


@app.page(f"{PREFIX}/dead-letters/")
async def dead_letters(web: Any, request: Any) -> Any:
    """Dead-letter counts by reason code."""
    with _partitions() as stores:
        counts = live_state.dead_letter_counts(stores)
    return web.json({"total": sum(counts.values()), "by_reason": counts})


def _end_offsets() -> dict[int, int]:
    """The end offset of every partition of the source topic (however many it has)."""
    topic = settings.live_source_topic
    consumer = Consumer(settings.librdkafka(**{"group.id": f"{settings.worker_app_id}-lag"}))
    try:
        metadata = consumer.list_topics(topic, timeout=5).topics[topic]
        if metadata.error is not None:
            raise RuntimeError(f"topic {topic}: {metadata.error}")
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
            for p in sorted(metadata.partitions)
        }
    finally:
        consumer.close()


@app.page(f"{PREFIX}/health/")
async def health(web: Any, request: Any) -> Any:
    """Liveness and consumer lag: per partition, end offset minus messages applied."""
    try:
        ends = await asyncio.to_thread(_end_offsets)
    except Exception as error:  # the health view reports a broker problem, never crashes
        return web.json({"status": "kafka_unreachable", "error": str(error)}, status=503)
    with _partitions() as stores:
        applied = live_state.applied_offsets(stores)
        stats = live_state.stats(stores)
    assigned = sorted(
        tp.partition
        for tp in app.consumer.assignment()
        if tp.topic == events_topic.get_topic_name()
    )
    partitions = [
        {
            "partition": p,
            "end_offset": end,
            "applied_offset": applied.get(p, -1),
            "lag": max(end - applied.get(p, -1) - 1, 0),
        }
        for p, end in sorted(ends.items())
    ]
    return web.json(
        {
            "status": "ok",
            "assigned_partitions": assigned,
            "total_lag": sum(row["lag"] for row in partitions),
            "partitions": partitions,
            "stats": stats,
        }
    )
