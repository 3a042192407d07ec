"""``tokenhub ui``: its instance files, and a taken port is a one-line user error."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import yaml

from pipelines.instance import write_instance_config


def test_instance_config_queues_one_run_at_a_time_and_loads_the_definitions(
    tmp_path: Path,
) -> None:
    workspace = write_instance_config(tmp_path / "dagster")
    instance = yaml.safe_load((tmp_path / "dagster" / "dagster.yaml").read_text())
    assert instance["run_coordinator"]["config"]["max_concurrent_runs"] == 1
    [location] = yaml.safe_load(workspace.read_text())["load_from"]
    assert location["python_module"]["module_name"] == "pipelines.definitions"
    assert (Path(location["python_module"]["working_directory"]) / "pipelines").is_dir()


def test_a_taken_port_is_a_one_line_error_naming_the_option(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        completed = subprocess.run(
            [sys.executable, "-m", "tokenhub.cli", "ui", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            env={"TOKENHUB_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        f"tokenhub ui: error: port {port} is already in use (another UI?): stop it or run "
        f"`tokenhub ui --port {port + 1}`"
    ]
