"""The benchmark harness: a quick producer run end to end, and the results files it writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.common import BenchOptions, Figure
from bench.run import (
    SuiteReport,
    _keep_earlier_figures,
    machine_info,
    markdown_table,
    run_suite,
    write_results,
)
from streams.broker import LocalKafka


def _report(*figures: Figure) -> SuiteReport:
    return SuiteReport(
        started_at="2026-03-20T12:00:00+00:00",
        machine=machine_info(),
        options={"quick": True},
        figures=list(figures),
        problems={"worker": "skipped: streams.app is not in this checkout yet"},
    )


def test_table_shows_figure_baseline_ratio_target_and_whether_met(tmp_path: Path) -> None:
    fast = Figure("producer", "producer throughput", 200_000, "events/s", "Java", 250_000,
                  ">= 150,000 events/s", met=True, target_value=150_000)  # fmt: skip
    slow = Figure("marts", "all marts, 10M events", 14.0, "s", "Polars", 7.0, "<= 10 s",
                  met=False, target_value=10, note="bounded by the rating join")  # fmt: skip
    report = _report(fast, slow)
    table = markdown_table(report)
    assert "| producer throughput | 200,000 events/s | Java | 250,000 events/s | 0.80 |" in table
    assert (
        "| all marts, 10M events | 14.00 s | Polars | 7.00 s | 2.00 | <= 10 s | **no** |" in table
    )
    assert "bounded by the rating join" in table and "skipped: streams.app" in table

    json_path = write_results(report, tmp_path)
    assert json_path.name == "2026-03-20.json"
    saved = json.loads(json_path.read_text())
    assert [f["ratio"] for f in saved["figures"]] == [0.8, 2.0]
    assert (tmp_path / "2026-03-20.md").read_text() == table
    assert (tmp_path / "2026-03-20.png").read_bytes()[:4] == b"\x89PNG"


def test_a_partial_run_keeps_the_other_benchmarks_figures_of_the_day(tmp_path: Path) -> None:
    earlier = Figure("producer", "producer throughput", 1.0, "events/s", "Java", 2.0)
    stale = Figure("memory", "peak RSS, loader", 900.0, "MiB")
    write_results(_report(earlier, stale), tmp_path)
    fresh = _report(Figure("memory", "peak RSS, loader", 800.0, "MiB"))
    _keep_earlier_figures(fresh, tmp_path, "", ["memory"])
    assert [(f.benchmark, f.value) for f in fresh.figures] == [("producer", 1.0), ("memory", 800.0)]
    assert fresh.problems["worker"].startswith("skipped")


@pytest.mark.slow
@pytest.mark.integration
def test_quick_producer_benchmark_runs_against_a_real_broker(
    kafka_broker: LocalKafka, tmp_path: Path
) -> None:
    options = BenchOptions.quick_sizes(broker=kafka_broker, producer_events=20_000)
    report = run_suite(options, only=["producer"], write_to=tmp_path)
    assert report.problems == {}
    (figure,) = report.figures
    assert figure.value > 0 and figure.baseline and figure.baseline > 0
    assert figure.met is not None and figure.ratio is not None
    saved = json.loads(next(tmp_path.glob("*-quick.json")).read_text())
    assert saved["figures"][0]["name"] == figure.name
    assert saved["machine"]["cores"] >= 1
