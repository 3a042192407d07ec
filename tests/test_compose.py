"""docker-compose.yml is part of the product: check it as far as a machine without Docker can."""

from __future__ import annotations

import importlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.settings import Settings
from tokenhub.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def _argv(service: dict[str, Any]) -> list[str]:
    """What the container runs: the service's entrypoint and command, else the image's."""
    if service.get("image") != "tokenhub:local":
        return [service["image"]]  # another image (the broker): its own entrypoint
    if "entrypoint" in service:  # compose then drops the image's CMD too
        return [*service["entrypoint"], *service.get("command", [])]
    # The Dockerfile's ENTRYPOINT and CMD.
    return ["tokenhub", *service.get("command", ["--help"])]


def test_compose_runs_every_part_of_the_pipeline(compose: dict[str, Any]) -> None:
    assert {"kafka", "topics", "worker", "simulator", "dagster-webserver", "dagster-daemon"} <= set(
        compose["services"]
    )


def test_broker_is_the_official_image_in_kraft_mode_at_our_version(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{Settings().kafka_version}"
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]


def test_tokenhub_services_call_real_subcommands(compose: dict[str, Any]) -> None:
    parser = build_parser()
    checked = 0
    for name, service in compose["services"].items():
        argv = _argv(service)
        if argv[0] != "tokenhub":
            continue
        args = argv[1:]
        if args == ["sql"]:
            args = ["sql", "select 1"]  # the tools profile passes the query at run time
        try:
            parser.parse_args(args)
        except SystemExit as exit_:
            pytest.fail(f"service {name}: `tokenhub {' '.join(args)}` does not parse ({exit_})")
        checked += 1
    assert checked >= 3


def test_dagster_services_load_the_project_definitions(compose: dict[str, Any]) -> None:
    for name in ("dagster-webserver", "dagster-daemon"):
        argv = _argv(compose["services"][name])
        module = argv[argv.index("-m") + 1]
        assert module == "pipelines.definitions", name
    definitions = importlib.import_module("pipelines.definitions")
    assert definitions.defs is not None


def test_warehouse_lives_on_a_volume(compose: dict[str, Any]) -> None:
    assert "warehouse" in compose["volumes"]
    daemon = compose["services"]["dagster-daemon"]
    assert "warehouse:/data" in daemon["volumes"]


def test_compose_file_is_valid_for_the_compose_tool() -> None:
    if shutil.which("docker-compose"):
        command = ["docker-compose", "-f", str(COMPOSE), "config", "-q"]
    elif (
        subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        command = ["docker", "compose", "-f", str(COMPOSE), "config", "-q"]
    else:
        pytest.skip("no docker compose tool on this machine (.ci/run installs docker-compose)")
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr
