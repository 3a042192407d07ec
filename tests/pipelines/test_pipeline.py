"""The whole pipeline in-process against a real broker and a real DuckDB file.

One module-scoped run of :func:`pipelines.run.materialize_all` over simulated traffic (with
retried deliveries) must pass every check; then bad data is planted in copies of that
warehouse (a duplicate, an unknown model, a cost book missing a chip family, a stream
window the warehouse lacks) and the check that guards it must fail. The webserver test
reads the same instance through GraphQL over HTTP.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests
from dagster import AssetKey, DagsterInstance, build_sensor_context

from pipelines import checks_stream, landing, rating
from pipelines.economics import all_usage_costed, layer_margin_identity
from pipelines.instance import write_instance_config
from pipelines.resources import BooksResource, KafkaResource, WarehouseResource, resources_for
from pipelines.run import PipelineResult, materialize_all
from pipelines.sensors import books_changed_sensor, event_dates_sensor, kafka_lag_sensor
from streams.broker import LocalKafka
from streams.producer import TokenUsageProducer
from streams.settings import Settings
from streams.simulate.faults import FaultRates
from streams.simulate.stream import generate
from streams.topics import TopicSpec

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@dataclass
class Pipeline:
    settings: Settings
    resources: dict[str, Any]
    result: PipelineResult
    instance: DagsterInstance
    events_sent: int

    @property
    def warehouse(self) -> WarehouseResource:
        return self.resources["warehouse"]  # type: ignore[no-any-return]

    @property
    def kafka(self) -> KafkaResource:
        return self.resources["kafka"]  # type: ignore[no-any-return]


def _topics(broker: LocalKafka) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    events, aggregates = f"test.events.{suffix}", f"test.aggregates.{suffix}"
    broker.create_topics(
        [
            TopicSpec(events, partitions=6),
            TopicSpec(aggregates, partitions=6, config={"cleanup.policy": "compact"}),
        ]
    )
    return events, aggregates


def _resources(settings: Settings, events_topic: str, aggregates_topic: str) -> dict[str, Any]:
    resources = dict(resources_for("local", settings))
    # Resources are rebuilt, not model_copy'd: Dagster reads a resource's config from its
    # constructor arguments.
    resources["kafka"] = KafkaResource(
        **{
            **resources["kafka"].model_dump(),
            "events_topic": events_topic,
            "aggregates_topic": aggregates_topic,
        }
    )
    return resources


@pytest.fixture(scope="module")
def pipeline(
    kafka_broker: LocalKafka, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    home = tmp_path_factory.mktemp("pipeline-home")
    settings = kafka_broker.settings.model_copy(update={"home": home})
    events_topic, aggregates_topic = _topics(kafka_broker)
    sent = 0
    with TokenUsageProducer(settings, topic=events_topic) as producer:
        for message in generate(
            seed=11, events=600, tenants=8, days=3, now=NOW, faults=FaultRates(duplicates=0.05)
        ):
            producer.send_raw(message.key, message.value)
            sent += 1
    resources = _resources(settings, events_topic, aggregates_topic)
    instance_dir = home / "dagster"
    write_instance_config(instance_dir)
    instance = DagsterInstance.from_config(str(instance_dir))
    started = time.monotonic()
    result = materialize_all(settings, instance=instance, resources=resources)
    print(f"materialize_all: {time.monotonic() - started:.1f}s")
    yield Pipeline(settings, resources, result, instance, sent)
    instance.dispose()


def _copy(pipeline: Pipeline, tmp_path: Path, **books: Any) -> dict[str, Any]:
    """The pipeline's resources over a copy of its warehouse (and books) in ``tmp_path``."""
    source = pipeline.warehouse.path
    target = Settings(home=tmp_path).warehouse_path
    target.parent.mkdir(parents=True)
    shutil.copy(source, target)
    resources = dict(pipeline.resources)
    resources["warehouse"] = WarehouseResource(
        **{**pipeline.warehouse.model_dump(), "home": str(tmp_path)}
    )
    if books:
        resources["books"] = BooksResource(**books)
    return resources


# --- clean data ------------------------------------------------------------------------------


def test_every_asset_materialises_and_every_check_passes_on_clean_data(
    pipeline: Pipeline,
) -> None:
    result = pipeline.result
    assert all(run.success for run in result.runs), [c for c in result.checks if not c.passed]
    assert len(result.runs) == 2
    checks = {check.check: check for check in result.checks}
    assert {
        "raw/token_usage_events:no_duplicate_event_id",
        "raw/token_usage_events:landing_freshness",
        "rating/rated_usage:no_unrated_usage",
        "marts/fct_layer_margin:layer_margin_identity",
        "marts/rpt_uncosted_usage:all_usage_costed",
        "marts/fct_usage_rated:stream_reconciliation",
    } <= checks.keys()
    assert not result.failed_checks, result.failed_checks
    # No worker ran: the reconciliation says so instead of failing.
    assert "skipped" in (checks["marts/fct_usage_rated:stream_reconciliation"].description or "")
    # The event dates of the traffic (3 days before NOW) are built as partitions.
    assert result.event_dates[-1] == "2026-11-20" and len(result.event_dates) >= 3
    # The read-only copy for analysts is refreshed after the marts.
    with duckdb.connect(str(pipeline.settings.published_path), read_only=True) as published:
        assert published.execute("select count(*) from marts.fct_layer_margin").fetchall()[0][0]
    summary = result.describe()
    assert "2/2 run(s) succeeded" in summary
    assert "check pass marts/fct_layer_margin:layer_margin_identity" in summary
    partitions = pipeline.instance.get_materialized_partitions(
        AssetKey(["marts", "fct_layer_margin"])
    )
    assert set(result.event_dates) <= partitions


def test_landing_reports_counts_dates_and_top_tenants(pipeline: Pipeline) -> None:
    event = pipeline.instance.get_latest_materialization_event(landing.RAW_EVENTS)
    assert event is not None and event.asset_materialization is not None
    metadata = event.asset_materialization.metadata
    with pipeline.warehouse.connect() as con:
        landed = con.execute("select count(*) from raw.token_usage_events").fetchall()[0][0]
        redelivered = con.execute("select count(*) from raw.redeliveries").fetchall()[0][0]
    assert metadata["dagster/row_count"].value == landed
    assert landed + redelivered == pipeline.events_sent  # every message counted exactly once
    assert redelivered > 0
    assert metadata["event_dates"].value == pipeline.result.event_dates
    assert "| tenant_id |" in metadata["top tenants"].value


def test_plots_are_attached_inline_and_saved(pipeline: Pipeline) -> None:
    for key, plot in [
        (AssetKey(["marts", "fct_layer_margin"]), "margin_by_layer"),
        (AssetKey(["marts", "rpt_actor_economics"]), "agent_vs_human"),
        (AssetKey(["marts", "rpt_cost_per_million_tokens"]), "cost_per_million_tokens"),
        (AssetKey(["marts", "fct_usage_rated"]), "revenue_per_day"),
    ]:
        event = pipeline.instance.get_latest_materialization_event(key)
        assert event is not None and event.asset_materialization is not None, key
        metadata = event.asset_materialization.metadata
        assert metadata[f"plot: {plot}"].value.startswith(f"![{plot}](data:image/png;base64,")
        path = Path(metadata[f"plot file: {plot}"].value)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- planted bad data ------------------------------------------------------------------------


def test_a_duplicate_event_id_fails_the_duplicate_check(pipeline: Pipeline, tmp_path: Path) -> None:
    resources = _copy(pipeline, tmp_path)
    warehouse: WarehouseResource = resources["warehouse"]
    with warehouse.connect() as con:
        # The loader's primary key forbids it; a table rebuilt by hand would not.
        con.execute(
            "create or replace table raw.token_usage_events as "
            "select * from raw.token_usage_events "
            "union all (select * from raw.token_usage_events limit 1)"
        )
    result = landing.no_duplicate_event_id(warehouse=warehouse)
    assert not result.passed
    assert result.metadata["duplicated event_ids"].value == 1


def test_an_unknown_model_fails_the_unrated_check_naming_the_model(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    resources = _copy(pipeline, tmp_path)
    warehouse: WarehouseResource = resources["warehouse"]
    with warehouse.connect() as con:
        con.execute(
            """
            insert into raw.token_usage_events
            select * replace ('evt-unknown-model-' || event_id as event_id,
                              'qwen-imaginary' as model)
            from raw.token_usage_events limit 2
            """
        )
    from dagster import AssetSelection, materialize

    from pipelines.definitions import defs

    run = materialize(
        [*(defs.assets or []), *(defs.asset_checks or [])],  # type: ignore[list-item]
        selection=AssetSelection.assets(
            rating.RATED_USAGE, rating.UNRATED_USAGE, rating.RATING_ADJUSTMENTS
        ),
        resources=resources,
        raise_on_error=False,
    )
    [evaluation] = run.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.metadata["unknown models"].value == ["qwen-imaginary"]
    assert evaluation.metadata["unrated events"].value == 2


def _books_copy(pipeline: Pipeline, tmp_path: Path) -> tuple[Path, list[dict[str, str]]]:
    books = tmp_path / "books"
    shutil.copytree(pipeline.resources["books"].path, books)
    with (books / "cost_book.csv").open() as file:
        return books, list(csv.DictReader(file))


def _write_cost_book(books: Path, rows: list[dict[str, str]]) -> None:
    with (books / "cost_book.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _most_used(pipeline: Pipeline, column: str) -> str:
    with pipeline.warehouse.connect() as con:
        return str(
            con.execute(
                f"select {column} from raw.token_usage_events group by 1 order by count(*) desc limit 1"
            ).fetchall()[0][0]
        )


def test_a_cost_book_with_no_cost_in_force_fails_the_costing_check(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    books, rows = _books_copy(pipeline, tmp_path)
    model = _most_used(pipeline, "model")
    # The model's serving cost only starts in 2099: its usage has no cost in force.
    dated = [
        {**row, "effective_from": "2099-01-01"}
        if row["layer"] == "model" and row["model"] == model
        else row
        for row in rows
    ]
    assert dated != rows
    _write_cost_book(books, dated)
    home = tmp_path / "home"
    resources = _copy(pipeline, home, path=str(books))
    result = materialize_all(
        pipeline.settings.model_copy(update={"home": home, "books_dir": books}),
        instance=DagsterInstance.ephemeral(),
        resources=resources,
    )
    failed = {check.check for check in result.failed_checks}
    assert "marts/rpt_uncosted_usage:all_usage_costed" in failed
    # Uncosted usage is left out of the margins (never costed at zero): the identity holds.
    assert "marts/fct_layer_margin:layer_margin_identity" not in failed


def test_an_invalid_book_fails_the_books_asset_naming_the_file(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    books, rows = _books_copy(pipeline, tmp_path)
    chip = _most_used(pipeline, "chip_family")
    _write_cost_book(books, [row for row in rows if row["chip_family"] != chip])
    home = tmp_path / "home"
    resources = _copy(pipeline, home, path=str(books))
    result = materialize_all(
        pipeline.settings.model_copy(update={"home": home, "books_dir": books}),
        instance=DagsterInstance.ephemeral(),
        resources=resources,
    )
    [run] = result.runs
    assert not run.success
    [failure] = [event for event in run.all_events if event.is_step_failure]
    assert failure.step_key == "books_asset"
    assert "cost_book.csv" in str(failure.event_specific_data.error)  # type: ignore[union-attr]


def test_a_broken_layer_margin_fails_the_identity_check(pipeline: Pipeline, tmp_path: Path) -> None:
    resources = _copy(pipeline, tmp_path)
    warehouse: WarehouseResource = resources["warehouse"]
    with warehouse.connect() as con:
        con.execute(
            "update marts.fct_layer_margin set margin = margin + 0.000000000001 "
            "where event_id = (select min(event_id) from marts.fct_layer_margin)"
        )
    result = layer_margin_identity(warehouse=warehouse)
    assert not result.passed
    assert result.metadata["violations"].value >= 1
    assert all_usage_costed(warehouse=warehouse).passed


# --- stream vs warehouse ---------------------------------------------------------------------


def _publish_windows(
    pipeline: Pipeline, extra_requests: int = 0, partitions: set[int] | None = None
) -> int:
    """Publish the warehouse's hourly figures as the worker would (aggregates format), for
    ``partitions`` of the events topic (all by default)."""
    from confluent_kafka import Producer

    from streams.agents.aggregates_out import aggregate_message

    with pipeline.warehouse.connect() as con:
        starts = [
            row[0]
            for row in con.execute(
                "select distinct time_bucket(interval 1 hour, occurred_at) "
                "from raw.token_usage_events order by 1"
            ).fetchall()
        ]
        stored, _, _ = checks_stream.warehouse_windows(
            con,
            [start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for start in starts],
            topic=pipeline.kafka.events_topic,
            allowance_seconds=pipeline.kafka.late_event_allowance_seconds,
        )
    producer = Producer(pipeline.kafka.librdkafka())
    published = 0
    for (start_key, partition), totals in sorted(stored.items()):
        if partitions is not None and partition not in partitions:
            continue
        start = datetime.strptime(start_key, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        record = {
            "requests": totals.requests + (extra_requests if published == 0 else 0),
            "input_tokens": 0,
            "cached_input_tokens": 0,
            "output_tokens": 0,
            "thinking_tokens": 0,
            "total_tokens": totals.tokens,
            "spend": {currency: str(amount) for currency, amount in totals.spend.items()},
            "unrated_requests": 0,
            "unrated_tokens": 0,
            "agent_requests": 0,
            "agent_tokens": 0,
            "human_requests": 0,
            "human_tokens": 0,
        }
        key, value = aggregate_message(
            "1h", start, "all", "all", partition, record, closed_at=NOW + timedelta(days=1)
        )
        producer.produce(pipeline.kafka.aggregates_topic, key=key, value=value)
        published += 1
    producer.flush(30)
    return published


def test_stream_windows_equal_to_the_warehouse_pass_and_a_stream_ahead_fails(
    pipeline: Pipeline,
) -> None:
    # A worker stopped part-way has closed its hours on some partitions only: what it did
    # close must equal the warehouse, partition by partition.
    first = _publish_windows(pipeline, partitions={0})
    result = checks_stream.stream_reconciliation(kafka=pipeline.kafka, warehouse=pipeline.warehouse)
    assert result.passed, result.description
    assert first - 1 <= result.metadata["compared windows"].value <= first
    windows = _publish_windows(pipeline)
    result = checks_stream.stream_reconciliation(kafka=pipeline.kafka, warehouse=pipeline.warehouse)
    assert result.passed, result.description
    assert result.metadata["equal windows"].value == result.metadata["compared windows"].value
    # The newest hour may still be open, on each of the 6 partitions.
    assert result.metadata["compared windows"].value >= windows - 6
    # The same keys again, one window claiming 3 requests the warehouse never landed:
    # compaction keeps the last value, the check reads the last value.
    _publish_windows(pipeline, extra_requests=3)
    result = checks_stream.stream_reconciliation(kafka=pipeline.kafka, warehouse=pipeline.warehouse)
    assert not result.passed
    assert "| " in result.metadata["mismatches"].value


# --- automation ------------------------------------------------------------------------------


def test_lag_sensor_lands_only_when_kafka_holds_unlanded_messages(pipeline: Pipeline) -> None:
    resources = {"warehouse": pipeline.warehouse, "kafka": pipeline.kafka}
    with build_sensor_context(resources=resources) as context:
        assert "no consumer lag" in str(kafka_lag_sensor(context).skip_message)  # type: ignore[union-attr]
    with TokenUsageProducer(pipeline.settings, topic=pipeline.kafka.events_topic) as producer:
        for message in generate(seed=12, events=5, tenants=2, now=NOW):
            producer.send_raw(message.key, message.value)
    with build_sensor_context(resources=resources) as context:
        request = kafka_lag_sensor(context)
    assert request.tags["tokenhub/messages_waiting"] == "5"  # type: ignore[union-attr]


def test_books_sensor_requests_a_rerating_when_a_book_changes(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    books = tmp_path / "books"
    shutil.copytree(pipeline.resources["books"].path, books)
    resource = BooksResource(path=str(books))
    with build_sensor_context(resources={"books": resource}) as context:
        assert books_changed_sensor(context).skip_message.startswith("watching")  # type: ignore[union-attr]
        cursor = context.cursor
    with build_sensor_context(resources={"books": resource}, cursor=cursor) as context:
        assert books_changed_sensor(context).skip_message == "books unchanged"  # type: ignore[union-attr]
    with (books / "cost_book.csv").open("a") as file:
        file.write("\n")
    with build_sensor_context(resources={"books": resource}, cursor=cursor) as context:
        request = books_changed_sensor(context)
    assert request.run_key.startswith("books-")  # type: ignore[union-attr]


def test_event_dates_sensor_requests_the_touched_partitions(pipeline: Pipeline) -> None:
    with build_sensor_context(instance=pipeline.instance) as context:
        request = event_dates_sensor(context)
    tags = request.tags  # type: ignore[union-attr]
    assert tags["dagster/asset_partition_range_start"] == pipeline.result.event_dates[0]
    assert tags["dagster/asset_partition_range_end"] == pipeline.result.event_dates[-1]


def test_late_events_rematerialise_the_partitions_they_touch(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """Late events land, the sensor asks for their dates, the marts then equal a full build."""
    from dagster import AssetSelection, materialize

    from pipelines.definitions import defs
    from pipelines.sql_models import models

    resources = _copy(pipeline, tmp_path)
    late_day = NOW - timedelta(days=2)
    with TokenUsageProducer(pipeline.settings, topic=pipeline.kafka.events_topic) as producer:
        for message in generate(seed=13, events=40, tenants=8, now=late_day):
            producer.send_raw(message.key, message.value)
    instance = DagsterInstance.ephemeral()
    assets = [*(defs.assets or []), *(defs.asset_checks or [])]
    upstream = materialize(
        assets,  # type: ignore[arg-type]
        selection=AssetSelection.groups("landing", "rating", "staging"),
        resources=resources,
        instance=instance,
    )
    assert upstream.success
    with build_sensor_context(instance=instance) as context:
        request = event_dates_sensor(context)
    tags = request.tags  # type: ignore[union-attr]
    assert late_day.date().isoformat() in tags["tokenhub/event_dates"].split(",")
    marts = materialize(
        assets,  # type: ignore[arg-type]
        selection=AssetSelection.groups("revenue", "economics"),
        resources=resources,
        instance=instance,
        tags=tags,
    )
    assert marts.success
    written = instance.get_latest_materialization_event(AssetKey(["marts", "fct_usage_rated"]))
    assert written is not None and written.asset_materialization is not None
    assert "replaced" in str(written.asset_materialization.metadata["written as"].value)
    warehouse: WarehouseResource = resources["warehouse"]
    with warehouse.connect() as con:
        late = con.execute(
            "select count(*) from marts.fct_usage_rated where event_date = ?", [late_day.date()]
        ).fetchall()[0][0]
        assert late >= 40
        for relation, model in models().items():
            if not relation.startswith("marts."):
                continue
            query = model.sql.rstrip().rstrip(";")
            differing = con.execute(
                f"""
                select count(*) from (
                    (select * from {relation} except all select * from ({query}))
                    union all
                    (select * from ({query}) except all select * from {relation})
                )
                """
            ).fetchall()[0][0]
            assert differing == 0, relation


def test_a_backfill_from_the_cli_replaces_a_range_in_one_run(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """The README's command: every mart downstream of the rated usage, over a range."""
    _copy(pipeline, tmp_path)
    dagster_home = tmp_path / "dagster"
    write_instance_config(dagster_home)
    first, last = pipeline.result.event_dates[0], pipeline.result.event_dates[-1]
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "TOKENHUB_HOME": str(tmp_path),
        "TOKENHUB_BOOTSTRAP_SERVERS": pipeline.settings.bootstrap,
    }
    completed = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-m",
            "pipelines.definitions",
            "--select",
            'key:"marts/fct_usage_rated"+',
            "--partition-range",
            f"{first}...{last}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    instance = DagsterInstance.from_config(str(dagster_home))
    try:
        assert len(instance.get_runs()) == 1
        event = instance.get_latest_materialization_event(AssetKey(["marts", "fct_layer_margin"]))
        assert event is not None and event.asset_materialization is not None
        written = event.asset_materialization.metadata["written as"].value
        assert written == f"{len(pipeline.result.event_dates)} event date(s) replaced"
        swarms = instance.get_latest_materialization_event(AssetKey(["marts", "fct_swarm"]))
        assert swarms is not None  # the whole-table marts downstream, rebuilt in the same run
    finally:
        instance.dispose()


# --- the UI ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


GRAPH_QUERY = """
{
  assetNodes {
    assetKey { path }
    groupName
    isPartitioned
    dependencyKeys { path }
    assetChecksOrError {
      ... on AssetChecks { checks { name executionForLatestMaterialization { status } } }
    }
  }
}
"""


def test_the_webserver_serves_the_asset_graph_and_check_results(pipeline: Pipeline) -> None:
    dagster_home = pipeline.settings.home / "dagster"
    workspace = write_instance_config(dagster_home)
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "TOKENHUB_HOME": str(pipeline.settings.home),
    }
    webserver = Path(sys.executable).parent / "dagster-webserver"
    process = subprocess.Popen(
        [str(webserver), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/graphql"
        deadline = time.monotonic() + 90
        nodes = None
        while time.monotonic() < deadline:
            try:
                response = requests.post(url, json={"query": GRAPH_QUERY}, timeout=10)
                nodes = response.json()["data"]["assetNodes"]
                if nodes:
                    break
            except (requests.ConnectionError, KeyError, TypeError, json.JSONDecodeError):
                pass
            assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
            time.sleep(1)
        assert nodes, "the webserver did not answer in 90 s"
    finally:
        process.terminate()
        process.wait(timeout=30)
    by_key = {"/".join(node["assetKey"]["path"]): node for node in nodes}
    assert by_key["marts/fct_layer_margin"]["isPartitioned"]
    assert {"path": ["marts", "fct_request_economics"]} in by_key["marts/fct_layer_margin"][
        "dependencyKeys"
    ]
    assert by_key["raw/token_usage_events"]["groupName"] == "landing"
    statuses = {
        f"{key}:{check['name']}": (check["executionForLatestMaterialization"] or {}).get("status")
        for key, node in by_key.items()
        for check in node["assetChecksOrError"].get("checks", [])
    }
    assert statuses["raw/token_usage_events:no_duplicate_event_id"] == "SUCCEEDED"
    assert statuses["marts/fct_layer_margin:layer_margin_identity"] == "SUCCEEDED"
    assert statuses["rating/rated_usage:no_unrated_usage"] == "SUCCEEDED"


# --- the headline figures tokenhub demo prints ------------------------------------------------


def test_headlines_of_the_published_copy_agree_with_the_marts_and_each_other(
    pipeline: Pipeline,
) -> None:
    from warehouse.reports import headlines

    with duckdb.connect(str(pipeline.settings.published_path), read_only=True) as con:
        figures = headlines(con, top=3)
        distinct_events = con.execute(
            "select count(distinct event_id) from marts.fct_usage_rated"
        ).fetchall()[0][0]
        tenant_arr = dict(
            con.sql(
                "select scope_id, arr from marts.rpt_run_rate where scope = 'tenant'"
            ).fetchall()
        )
    # Retried deliveries (5% of the traffic) are rated once.
    assert figures.requests == distinct_events < pipeline.events_sent
    assert figures.currency == pipeline.settings.reporting_currency
    # All usage is costed, so the group's external revenue is the rated revenue, exactly.
    assert sum(line.external_revenue for line in figures.layers) == figures.revenue > 0
    assert sum(line.margin for line in figures.layers) == figures.consolidated_margin
    assert [line.layer for line in figures.layers] == ["chip", "cloud", "model", "application"]
    assert (
        figures.top_tenants == sorted(tenant_arr.items(), key=lambda item: (-item[1], item[0]))[:3]
    )
    # Each run-rate is truncated at 10^-12 after dividing by 30, so the tenants' add up to
    # the total within one unit of the 12th decimal place per tenant.
    assert 0 <= figures.arr - sum(tenant_arr.values()) < len(tenant_arr) * Decimal("1e-12")
    text = figures.render()
    fen = figures.revenue.quantize(Decimal("0.01"))
    assert f"{fen:,} {figures.currency}" in text
    assert figures.top_tenants[0][0] in text


def test_headlines_of_an_empty_warehouse_say_nothing_is_rated(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    from warehouse.reports import headlines

    resources = _copy(pipeline, tmp_path)
    with duckdb.connect(str(resources["warehouse"].path)) as con:
        con.execute("delete from marts.fct_usage_rated")
        with pytest.raises(LookupError, match="nothing has been rated"):
            headlines(con)
