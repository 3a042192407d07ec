"""Run the whole pipeline in-process, with every check: what ``tokenhub demo`` calls.

:func:`materialize_all` lands, rates and builds every asset against the settings'
warehouse and Kafka, in the Dagster instance under ``<home>/dagster`` (so ``tokenhub ui``
shows these runs, their checks and plots afterwards). Two runs: landing, books, rating and
staging first; then every mart over the event dates that hold usage, in one run (the
partitioned marts take the range at once: ``BackfillPolicy.single_run``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import (
    AssetSelection,
    DagsterInstance,
    ExecuteInProcessResult,
    materialize,
)

from pipelines.partitions import EVENT_DATE_SQL, partition_keys_for
from pipelines.resources import WarehouseResource, resources_for
from pipelines.sensors import RANGE_END_TAG, RANGE_START_TAG
from streams.settings import Settings

UPSTREAM = AssetSelection.groups("landing", "rating", "staging")
MARTS = AssetSelection.groups("revenue", "economics", "publishing")


@dataclass(frozen=True)
class CheckOutcome:
    """One asset check's verdict."""

    check: str
    passed: bool
    description: str | None


@dataclass
class PipelineResult:
    """What :func:`materialize_all` did: its runs, the checks and the event dates built."""

    runs: list[ExecuteInProcessResult] = field(default_factory=list)
    event_dates: list[str] = field(default_factory=list)
    dates_without_partition: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        """Every step succeeded and every check passed."""
        return all(run.success for run in self.runs) and all(c.passed for c in self.checks)

    @property
    def checks(self) -> list[CheckOutcome]:
        return [
            CheckOutcome(
                evaluation.asset_check_key.to_user_string(),
                evaluation.passed,
                evaluation.description,
            )
            for run in self.runs
            for evaluation in run.get_asset_check_evaluations()
        ]

    @property
    def failed_checks(self) -> list[CheckOutcome]:
        return [check for check in self.checks if not check.passed]

    def describe(self) -> str:
        """A few lines for people: runs, assets, event dates and every check's verdict."""
        materialized = sum(len(run.get_asset_materialization_events()) for run in self.runs)
        runs_ok = sum(run.success for run in self.runs)
        lines = [
            f"Dagster: {runs_ok}/{len(self.runs)} run(s) succeeded, "
            f"{materialized} asset materialisation(s)"
            + (
                f", event dates {self.event_dates[0]} .. {self.event_dates[-1]}"
                if self.event_dates
                else ", no usage landed yet"
            )
        ]
        if self.dates_without_partition:
            lines.append(
                f"  usage on dates before TOKENHUB_PARTITIONS_START, not in any partition: "
                f"{', '.join(self.dates_without_partition)}"
            )
        for check in self.checks:
            verdict = "pass" if check.passed else "FAIL"
            detail = f": {check.description}" if check.description else ""
            lines.append(f"  check {verdict:4} {check.check}{detail}")
        return "\n".join(lines)


def dagster_home(settings: Settings) -> Path:
    """The Dagster instance folder of this checkout (``<home>/dagster``)."""
    return (settings.home / "dagster").resolve()


def instance_for(settings: Settings) -> DagsterInstance:
    """The persistent local instance (runs, event log, sensor cursors) under the home."""
    from pipelines.instance import write_instance_config

    home = dagster_home(settings)
    write_instance_config(home)
    return DagsterInstance.from_config(str(home))


def materialize_all(
    settings: Settings,
    *,
    instance: DagsterInstance | None = None,
    resources: Mapping[str, Any] | None = None,
    log_level: str = "INFO",
) -> PipelineResult:
    """Land, rate and build every asset with its checks; never raises on a failed check.

    ``resources`` overrides the local resources built from ``settings`` (tests point the
    Kafka resource at their own topics). ``log_level`` is the console's: ``INFO`` prints what
    each asset reports, ``DEBUG`` every step event too (the Dagster UI keeps them all).
    """
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    from pipelines.definitions import defs

    resources = resources or resources_for("local", settings)
    assets = [*(defs.assets or []), *(defs.asset_checks or [])]
    instance = instance or instance_for(settings)
    result = PipelineResult()
    upstream = materialize(
        assets,  # type: ignore[arg-type]
        selection=UPSTREAM,
        resources=resources,
        instance=instance,
        raise_on_error=False,
        run_config=run_config,
        tags={"tokenhub/trigger": "materialize_all"},
    )
    result.runs.append(upstream)
    if not upstream.success:
        return result
    warehouse: WarehouseResource = resources["warehouse"]
    with warehouse.connect() as con:
        dates = [
            str(row[0])
            for row in con.execute(
                f"select distinct {EVENT_DATE_SQL} from raw.token_usage_events order by 1"
            ).fetchall()
        ]
    result.event_dates, result.dates_without_partition = partition_keys_for(dates)
    if not result.event_dates:
        return result  # nothing landed yet: no partition to build
    result.runs.append(
        materialize(
            assets,  # type: ignore[arg-type]
            selection=MARTS,
            resources=resources,
            instance=instance,
            raise_on_error=False,
            run_config=run_config,
            tags={
                "tokenhub/trigger": "materialize_all",
                RANGE_START_TAG: result.event_dates[0],
                RANGE_END_TAG: result.event_dates[-1],
            },
        )
    )
    return result
