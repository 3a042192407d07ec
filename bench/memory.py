"""Peak resident memory (RSS) of each pipeline process at ``memory_events`` events (10M).

The pipeline runs as the separate processes a deployment runs, one after the other, on
one topic: ``tokenhub simulate`` (the producer SDK) sends the events, ``tokenhub land``
lands them into DuckDB, ``tokenhub rate`` rates them and rebuilds every mart; the broker
runs throughout. Each process's RSS and kernel high-water mark (``VmHWM``) are read from
``/proc`` every 0.1 s until it exits. The live worker's RSS is measured by the ``worker``
benchmark (in its details): draining 10M events through one worker would take hours here.
There is no baseline: the figure is the largest process against the 2 GiB target.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import BenchOptions, Figure, RssSampler, broker_pid, fresh_topic, kafka, scratch
from streams.app_runner import settings_env
from streams.broker import LocalKafka

NAME = "memory"
LIMIT_BYTES = 2 * 2**30


def _run(
    sampler: RssSampler, name: str, command: list[str], env: dict[str, str], log: Path
) -> float:
    """Run one ``tokenhub`` step to completion while ``sampler`` watches it; seconds taken."""
    started = time.perf_counter()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tokenhub.cli", *command],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        sampler.watch(name, process.pid)
        # Not wait4's ru_maxrss: on Linux it starts from the parent's RSS at fork, so it
        # would report the harness. The child's own high-water mark (VmHWM) is read until
        # it exits; at most the last 0.1 s of growth can be missed.
        while process.poll() is None:
            sampler.sample_one(name)
            time.sleep(0.1)
    if process.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:])
        raise RuntimeError(f"tokenhub {' '.join(command)} failed:\n{tail}")
    return time.perf_counter() - started


def pipeline_peaks(
    broker: LocalKafka, home: Path, events: int, seed: int
) -> tuple[dict[str, int], dict[str, float]]:
    """Peak RSS (bytes) and seconds of each process while ``events`` flow through."""
    topic = fresh_topic(broker, "memory")
    settings = broker.settings.model_copy(update={"home": home})
    env = {**os.environ, **settings_env(settings)}
    home.mkdir(parents=True, exist_ok=True)
    log = home / "pipeline.log"
    seconds: dict[str, float] = {}
    with RssSampler(interval=0.2) as sampler:
        pid = broker_pid(broker)
        if pid is not None:
            sampler.watch("Kafka broker (JVM)", pid)
        steps = {
            "producer (tokenhub simulate)": [
                "simulate", "--events", str(events), "--days", "7", "--seed", str(seed),
                "--topic", topic, "--quiet",
            ],
            "loader (tokenhub land)": ["land", "--topic", topic, "--quiet"],
            "rating + marts (tokenhub rate)": ["rate"],
        }  # fmt: skip
        for name, command in steps.items():
            seconds[name] = _run(sampler, name, command, env, log)
    return dict(sampler.peaks), seconds


def run(options: BenchOptions) -> list[Figure]:
    events = options.memory_events
    with scratch(options, NAME) as home, kafka(options, home / "broker") as broker:
        peaks, seconds = pipeline_peaks(broker, home / "pipeline", events, options.seed)
    label = f"{events / 1e6:g}M" if events >= 1_000_000 else f"{events // 1000}k"
    figures = []
    for name, peak in peaks.items():
        if name.startswith("harness"):
            continue  # the harness only waits here; its own figures are elsewhere
        took = f"; ran {seconds[name]:.0f}s" if name in seconds else ""
        figures.append(
            Figure(
                benchmark=NAME,
                name=f"peak RSS, {name}, {label} events",
                value=peak / 2**20,
                unit="MiB",
                target="< 2 GiB",
                met=peak < LIMIT_BYTES,
                target_value=LIMIT_BYTES / 2**20,
                note=f"sampled every 0.1 s with the kernel's high-water mark (VmHWM){took}",
            )
        )
    return figures
