"""What every benchmark shares: options, the figure it reports, a broker, memory sampling.

A benchmark module exposes ``run(options: BenchOptions) -> list[Figure]``. Each figure is
measured beside its baseline in the same run, back to back, because the machine may be
shared: the ratio is the robust number, the absolute figure the one the target is about.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from streams.broker import LocalKafka
from streams.settings import Settings
from streams.topics import TopicSpec


@dataclass
class BenchOptions:
    """Sizes and switches of one run (``tokenhub bench --help`` documents each)."""

    quick: bool = False
    #: Events the producer benchmark sends per round.
    producer_events: int = 1_000_000
    #: Events the worker benchmark pushes through (per worker count).
    worker_events: int = 150_000
    #: Fixed producer rates (events/s) of the latency benchmark, and seconds at each rate.
    latency_rates: tuple[int, ...] = (1_000, 5_000, 10_000)
    latency_seconds: float = 20.0
    #: Rows the landing benchmark lands from Kafka; the naive baseline inserts a sample.
    landing_events: int = 1_000_000
    naive_sample: int = 5_000
    #: Rated-event counts the marts benchmark builds (and 100M with ``huge``).
    mart_sizes: tuple[int, ...] = (1_000_000, 10_000_000)
    huge: bool = False
    #: Events flowing through the pipeline while the memory benchmark samples RSS.
    memory_events: int = 10_000_000
    #: Rounds of figure and baseline, alternated; the best of each is kept.
    rounds: int = 2
    seed: int = 7
    #: A running broker to reuse; None starts one per benchmark on free ports.
    broker: LocalKafka | None = None
    #: Scratch folder (a temporary one when None).
    workdir: Path | None = None
    log: Callable[[str], None] = field(default=lambda text: print(text, file=sys.stderr))

    @classmethod
    def quick_sizes(cls, **overrides: Any) -> BenchOptions:
        """Small sizes for a smoke run: every benchmark in a few minutes."""
        base: dict[str, Any] = dict(
            quick=True,
            producer_events=50_000,
            worker_events=20_000,
            latency_rates=(1_000, 5_000),
            latency_seconds=5.0,
            landing_events=50_000,
            naive_sample=2_000,
            mart_sizes=(100_000,),
            memory_events=100_000,
            rounds=1,
        )
        base.update(overrides)
        return cls(**base)


@dataclass
class Figure:
    """One measured figure, its same-run baseline and its target."""

    benchmark: str
    name: str
    value: float
    unit: str
    baseline_name: str = ""
    baseline: float | None = None
    #: The target in words (``>= 150,000 events/s``) and whether the figure meets it.
    target: str = ""
    met: bool | None = None
    #: The target as a number in ``unit`` (drawn as a line on the plot), if it is one.
    target_value: float | None = None
    #: How the figure was obtained, or why it misses (the profile and what bounds it).
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """Figure over baseline (for times lower is better, for rates higher)."""
        if not self.baseline:
            return None
        return self.value / self.baseline

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def scratch(options: BenchOptions, name: str) -> Iterator[Path]:
    """A scratch folder for one benchmark, removed afterwards unless ``workdir`` was given."""
    if options.workdir is not None:
        path = options.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=f"tokenhub-bench-{name}-") as tmp:
        yield Path(tmp)


@contextlib.contextmanager
def kafka(options: BenchOptions, home: Path) -> Iterator[LocalKafka]:
    """The broker passed in, or a fresh one on free ports under ``home``, stopped at the end."""
    if options.broker is not None:
        yield options.broker
        return
    settings = Settings(
        home=home, kafka_port=free_port(), kafka_controller_port=free_port(), web_port=free_port()
    )
    broker = LocalKafka(settings)
    options.log(f"  starting a broker on {settings.bootstrap}")
    broker.up()
    try:
        yield broker
    finally:
        broker.down()


def fresh_topic(broker: LocalKafka, prefix: str, partitions: int = 6) -> str:
    """A new topic (the events topic's partition count by default)."""
    name = f"bench.{prefix}.{time.monotonic_ns():x}"
    broker.create_topics([TopicSpec(name, partitions=partitions)])
    return name


def broker_pid(broker: LocalKafka) -> int | None:
    """The broker's process id (None when it is not ours)."""
    try:
        return int(broker.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


# --- memory -----------------------------------------------------------------------------
def rss_bytes(pid: int) -> int:
    """Current resident set size of a process (0 once it is gone); Linux ``/proc``."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def peak_rss_bytes(pid: int) -> int:
    """The kernel's high-water mark of a live process's RSS (``VmHWM``)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


class RssSampler:
    """Samples the RSS of named processes in a thread; keeps each one's peak.

    The kernel's own high-water mark (``VmHWM``) is read too, so a spike between two samples
    is not missed while the process lives.
    """

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.pids: dict[str, int] = {}
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def watch(self, name: str, pid: int) -> None:
        self.pids[name] = pid
        self.peaks.setdefault(name, 0)

    def sample_one(self, name: str) -> None:
        """Sample one watched process now."""
        peak = max(rss_bytes(self.pids[name]), peak_rss_bytes(self.pids[name]))
        self.peaks[name] = max(self.peaks.get(name, 0), peak)

    def _sample(self) -> None:
        for name in list(self.pids):
            self.sample_one(name)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> RssSampler:
        self.watch("harness (this process)", os.getpid())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sample()
        self._stop.set()
        self._thread.join()


def best(values: list[float], *, higher_is_better: bool = True) -> float:
    """The best of several rounds: on a shared machine the others only add noise."""
    return max(values) if higher_is_better else min(values)


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``function`` took, and what it returned."""
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result
