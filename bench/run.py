"""The benchmark harness: run the suite, write ``bench/results/<date>.{json,md,png}``.

    from bench.run import run_suite
    report = run_suite(BenchOptions.quick_sizes(), only=["producer"])

Each benchmark module (``bench/<name>.py``) exposes ``run(options) -> list[Figure]``. A
benchmark whose component is not in this checkout yet is reported as skipped; one that
fails is reported with its error and the others still run.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import BENCHMARKS
from bench.common import BenchOptions, Figure

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class SuiteReport:
    """Everything one run measured, and where it ran."""

    started_at: str
    machine: dict[str, Any]
    options: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    #: Benchmark name -> why it did not produce figures (skipped or failed).
    problems: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "elapsed_s": round(self.elapsed_s, 1),
            "machine": self.machine,
            "options": self.options,
            "figures": [figure.as_dict() for figure in self.figures],
            "problems": self.problems,
        }


def _first(path: str, prefix: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine_info() -> dict[str, Any]:
    """Cores, RAM, CPU model, Python and library versions, and how busy the machine was."""
    from importlib.metadata import version

    from streams.settings import Settings

    mem_kib = _first("/proc/meminfo", "MemTotal")
    ram_gib = round(int(mem_kib.split()[0]) / 1024**2, 1) if mem_kib != "unknown" else None

    def installed(name: str) -> str:
        try:
            return version(name)
        except Exception:
            return "not installed"

    return {
        "cpu_model": _first("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "ram_gib": ram_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "kafka": Settings().kafka_version,
        "confluent_kafka": installed("confluent-kafka"),
        "faust_streaming": installed("faust-streaming"),
        "duckdb": installed("duckdb"),
        "polars": installed("polars"),
        "load_average_at_start": list(os.getloadavg()),
    }


def run_suite(
    options: BenchOptions, *, only: list[str] | None = None, write_to: Path | None = RESULTS_DIR
) -> SuiteReport:
    """Run the chosen benchmarks (all by default) and write the results files."""
    names = [name for name in BENCHMARKS if only is None or name in only]
    started = time.monotonic()
    opts = {
        key: value
        for key, value in vars(options).items()
        if key not in ("broker", "log", "workdir")
    }
    report = SuiteReport(
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=machine_info(),
        options=opts,
    )
    for name in names:
        options.log(f"bench {name}")
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as error:
            report.problems[name] = f"skipped: {error.name} is not in this checkout yet"
            options.log(f"  {report.problems[name]}")
            continue
        began = time.monotonic()
        try:
            figures: list[Figure] = module.run(options)
        except ModuleNotFoundError as error:
            report.problems[name] = f"skipped: {error.name} is not in this checkout yet"
        except Exception as error:  # one broken benchmark must not hide the others
            report.problems[name] = f"failed: {type(error).__name__}: {error}"
            options.log(traceback.format_exc())
        else:
            for figure in figures:
                figure.details.setdefault("measured_at", report.started_at)
            report.figures.extend(figures)
            for figure in figures:
                options.log(f"  {_row(figure)}")
        if name in report.problems:
            options.log(f"  {report.problems[name]}")
        options.log(f"  ({time.monotonic() - began:.0f}s)")
    report.machine["load_average_at_end"] = list(os.getloadavg())
    report.elapsed_s = time.monotonic() - started
    if write_to is not None:
        suffix = "-quick" if options.quick else ""
        if only is not None:
            _keep_earlier_figures(report, write_to, suffix, names)
        write_results(report, write_to, suffix=suffix)
    return report


def _keep_earlier_figures(report: SuiteReport, folder: Path, suffix: str, ran: list[str]) -> None:
    """With ``--only``, today's file keeps the figures of the benchmarks not run again."""
    earlier = folder / f"{report.started_at[:10]}{suffix}.json"
    if not earlier.exists():
        return
    saved = json.loads(earlier.read_text())
    kept = [
        Figure(**{key: value for key, value in figure.items() if key != "ratio"})
        for figure in saved["figures"]
        if figure["benchmark"] not in ran
    ]
    for figure in kept:
        figure.details.setdefault("measured_at", saved["started_at"])
    report.figures[:0] = kept
    # In suite order, whichever run each figure came from.
    report.figures.sort(key=lambda figure: BENCHMARKS.index(figure.benchmark))
    for name, problem in saved.get("problems", {}).items():
        if name not in ran:
            report.problems.setdefault(name, problem)


# --- output -------------------------------------------------------------------------------
def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("s",):
        return f"{value:,.2f} {unit}"
    if unit in ("ms",):
        return f"{value:,.1f} {unit}"
    if unit == "MiB":
        return f"{value:,.0f} {unit}"
    return f"{value:,.0f} {unit}"


def _met(figure: Figure) -> str:
    return {True: "yes", False: "**no**", None: "-"}[figure.met]


def _row(figure: Figure) -> str:
    text = f"{figure.name}: {_number(figure.value, figure.unit)}"
    if figure.baseline is not None and figure.ratio is not None:
        text += (
            f" vs {figure.baseline_name} {_number(figure.baseline, figure.unit)} "
            f"(ratio {figure.ratio:.2f})"
        )
    if figure.target:
        text += f"; target {figure.target}: {_met(figure)}"
    return text


def markdown_table(report: SuiteReport) -> str:
    """The results as a Markdown table (figure, baseline, ratio, target, met) plus notes."""
    machine = report.machine
    lines = [
        "| figure | value | baseline | baseline value | ratio | target | met |",
        "|---|---:|---|---:|---:|---|---|",
    ]
    for figure in report.figures:
        ratio = f"{figure.ratio:.2f}" if figure.ratio is not None else "-"
        lines.append(
            f"| {figure.name} | {_number(figure.value, figure.unit)} | "
            f"{figure.baseline_name or '-'} | {_number(figure.baseline, figure.unit)} | "
            f"{ratio} | {figure.target or '-'} | {_met(figure)} |"
        )
    notes = [f"- **{f.name}**: {f.note}" for f in report.figures if f.note]
    notes += [f"- **{name}**: {problem}" for name, problem in report.problems.items()]
    load = machine.get("load_average_at_start", [0.0])[0]
    busy = " (other processes were running)" if load >= 0.5 else ""
    header = (
        f"Run {report.started_at} ({report.elapsed_s / 60:.0f} min) on {machine['cpu_model']}, "
        f"{machine['cores']} cores, {machine['ram_gib']} GiB RAM; Python {machine['python']}, "
        f"Kafka {machine['kafka']}, DuckDB {machine['duckdb']}, Polars {machine['polars']}. "
        f"Load average at start {load:.2f}{busy}."
    )
    runs = sorted({f.details.get("measured_at", report.started_at) for f in report.figures})
    if len(runs) > 1:
        header += (
            f" Benchmarks not re-run keep their figures from earlier runs that day ({runs[0]} "
            "onwards; `measured_at` in the JSON)."
        )
    return "\n".join([header, "", *lines, "", *notes]) + "\n"


def plot(report: SuiteReport, path: Path) -> None:
    """One small panel per figure: the figure beside its baseline, the target as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = report.figures
    if not figures:
        return
    columns = min(3, len(figures))
    rows = (len(figures) + columns - 1) // columns
    canvas, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for ax, figure in zip(axes.flat, figures, strict=False):
        labels = ["tokenhub"] + (["baseline"] if figure.baseline is not None else [])
        values = [figure.value] + ([figure.baseline] if figure.baseline is not None else [])
        colour = {True: "tab:green", False: "tab:red", None: "tab:blue"}[figure.met]
        ax.bar(labels, values, color=[colour, "tab:gray"][: len(values)])
        if figure.target_value is not None:
            ax.axhline(figure.target_value, color="black", linestyle="--", linewidth=1)
        ax.set_title(figure.name, fontsize=9)
        ax.set_ylabel(figure.unit, fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(figures) :]:
        ax.axis("off")
    canvas.suptitle(f"tokenhub benchmarks {report.started_at} (dashed: target)", fontsize=10)
    canvas.tight_layout()
    canvas.savefig(path, dpi=110)
    plt.close(canvas)


def write_results(report: SuiteReport, folder: Path, *, suffix: str = "") -> Path:
    """Write ``<date><suffix>.json``, ``.md`` and ``.png`` into ``folder``; returns the JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{report.started_at[:10]}{suffix}"
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps(report.as_dict(), indent=2, default=str) + "\n")
    stem.with_suffix(".md").write_text(markdown_table(report))
    plot(report, stem.with_suffix(".png"))
    return json_path
