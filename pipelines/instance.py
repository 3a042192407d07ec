"""The local Dagster instance: ``dagster.yaml`` and ``workspace.yaml`` under ``<home>/dagster``.

Runs are queued one at a time (``max_concurrent_runs: 1``): DuckDB takes one writing
process per file, so two runs writing the warehouse at once would fail on its lock.
"""

from __future__ import annotations

from pathlib import Path

INSTANCE_YAML = """\
# Written by tokenhub (pipelines/instance.py); edits are overwritten.
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    # One run at a time: DuckDB has one writer per file.
    max_concurrent_runs: 1
telemetry:
  enabled: false
"""

WORKSPACE_YAML = """\
# Written by tokenhub (pipelines/instance.py).
load_from:
  - python_module:
      module_name: pipelines.definitions
      working_directory: {working_directory}
"""


def write_instance_config(dagster_home: Path, working_directory: Path | None = None) -> Path:
    """Write ``dagster.yaml`` and ``workspace.yaml``; returns the workspace file."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(INSTANCE_YAML)
    workspace = dagster_home / "workspace.yaml"
    root = working_directory or Path(__file__).resolve().parent.parent
    workspace.write_text(WORKSPACE_YAML.format(working_directory=root))
    return workspace
