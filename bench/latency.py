"""Produce-to-live-view latency (p50/p99) at fixed rates, and whether lag stays flat.

One ``tokenhub worker`` (default settings) reads a fresh topic. For each rate (1k, 5k, 10k
events/s by default) the harness sends simulated events at that rate for
``latency_seconds``, in 10 ms slices, noting when each slice was sent; meanwhile a thread
polls the worker's health view back to back and notes when the applied-events counter
reached each slice. The latency of a slice is the time from its send to the first view
that counts it, so the time one view takes to answer bounds the resolution (it is in the
details). Lag is read from the same view: it is flat when its linear trend grows by less
than 2% of the rate. A 5 s warm-up at the lowest rate comes first (group join, first batch).
"""

from __future__ import annotations

import bisect
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import BenchOptions, Figure, fresh_topic, kafka, scratch
from bench.worker import health, worker_settings
from streams.broker import LocalKafka
from streams.producer import TokenUsageProducer
from streams.simulate import generate

NAME = "latency"
TARGET_RATE = 5_000
TARGET_P99_MS = 250.0
_SLICE_S = 0.01
WARM_UP_SECONDS = 5.0


class ViewPoller(threading.Thread):
    """Polls the health view back to back: (time, events applied, total lag) samples."""

    def __init__(self, handle: Any) -> None:
        super().__init__(daemon=True)
        self.handle = handle
        self.samples: list[tuple[float, int, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                view = health(self.handle)
            except Exception:  # a slow answer under load: try again
                continue
            stats = view.get("stats", {})
            self.samples.append(
                (time.perf_counter(), int(stats.get("events", 0)), int(view.get("total_lag", 0)))
            )


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _trend(points: list[tuple[float, int]]) -> float:
    """Least-squares slope (lag per second)."""
    if len(points) < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread if spread else 0.0


def at_rate(
    producer: TokenUsageProducer, poller: ViewPoller, messages: list[Any], rate: int, seconds: float
) -> dict[str, Any]:
    """Send at ``rate`` for ``seconds``; latencies of every slice and the lag trend."""
    already = poller.samples[-1][1] if poller.samples else 0
    total = int(rate * seconds)
    sent_marks: list[tuple[float, int]] = []  # (sent at, events sent so far)
    start = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - start + _SLICE_S) * rate))
        while sent < due:
            message = messages[sent % len(messages)]
            producer.send_raw(message.key, message.value)
            sent += 1
        producer.poll(0)
        sent_marks.append((time.perf_counter(), sent))
        pause = start + sent / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    producer.flush()
    # Wait until the view counts everything (or give up after 30 s).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and poller.samples[-1][1] < already + total:
        time.sleep(0.05)
    samples = list(poller.samples)
    times = [t for t, _, _ in samples]
    counts = [n - already for _, n, _ in samples]
    latencies = []
    for sent_at, count in sent_marks:
        index = bisect.bisect_left(times, sent_at)
        seen = next((times[i] for i in range(index, len(samples)) if counts[i] >= count), None)
        if seen is not None:
            latencies.append((seen - sent_at) * 1000)
    lag = [(t, lag) for t, n, lag in samples if start <= t <= start + seconds]
    slope = _trend(lag)
    return {
        "rate": rate,
        "events": total,
        "p50_ms": _percentile(latencies, 0.5) if latencies else None,
        "p99_ms": _percentile(latencies, 0.99) if latencies else None,
        "slices_seen": len(latencies),
        "slices": len(sent_marks),
        "lag_trend_per_s": slope,
        "lag_flat": slope < 0.02 * rate,
        "view_polls_per_s": len(lag) / seconds,
    }


def run(options: BenchOptions) -> list[Figure]:
    from streams.app_runner import start_worker, stop_worker

    rates = options.latency_rates
    with scratch(options, NAME) as home, kafka(options, home / "broker") as broker:
        topic = fresh_topic(broker, "latency")
        count = int(max(rates) * options.latency_seconds)
        options.log(f"  generating {min(count, 200_000):,} simulated events")
        messages = list(generate(seed=options.seed, events=min(count, 200_000)))
        results = _measure(broker, topic, home, messages, rates, options, start_worker, stop_worker)
    figures = []
    for result in results:
        rate = result["rate"]
        p99 = result["p99_ms"]
        target = rate == TARGET_RATE
        figures.append(
            Figure(
                benchmark=NAME,
                name=f"produce-to-live-view p99 at {rate:,} events/s",
                value=p99 if p99 is not None else float("nan"),
                unit="ms",
                target=f"<= {TARGET_P99_MS:.0f} ms" if target else "",
                met=(p99 is not None and p99 <= TARGET_P99_MS) if target else None,
                target_value=TARGET_P99_MS if target else None,
                note=f"p50 {result['p50_ms']:.0f} ms; lag "
                f"{'flat' if result['lag_flat'] else 'GROWING'} "
                f"({result['lag_trend_per_s']:+,.0f} events/s trend); "
                f"{result['slices_seen']} of {result['slices']} slices seen; the view answered "
                f"{result['view_polls_per_s']:.0f} times/s",
                details=result,
            )
        )
    return figures


def _measure(
    broker: LocalKafka,
    topic: str,
    home: Path,
    messages: list[Any],
    rates: tuple[int, ...],
    options: BenchOptions,
    start_worker: Any,
    stop_worker: Any,
) -> list[dict[str, Any]]:
    settings = worker_settings(broker, topic, home, "latency")
    handle = start_worker(settings)
    poller = ViewPoller(handle)
    poller.start()
    producer = TokenUsageProducer(broker.settings, topic=topic)
    try:
        while not poller.samples:
            time.sleep(0.1)
        # Warm up (group join, first batches, JIT-free but cache-cold) before measuring.
        at_rate(producer, poller, messages, min(rates), WARM_UP_SECONDS)
        results = []
        for rate in rates:
            options.log(f"  {rate:,} events/s for {options.latency_seconds:.0f}s")
            results.append(at_rate(producer, poller, messages, rate, options.latency_seconds))
        return results
    finally:
        poller.stopped.set()
        poller.join(timeout=35)
        stop_worker(handle)
