"""The one ``Definitions`` of tokenhub: every domain module merged, with the resources of
the environment (``TOKENHUB_ENV=local|deployed``, see ``pipelines/resources.py``).

Load it with ``dagster dev -m pipelines.definitions`` or ``tokenhub ui``.
"""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from pipelines import economics, landing, publishing, rating, revenue, sensors, staging
from pipelines.resources import resources_for

defs = Definitions.merge(
    landing.defs,
    rating.defs,
    staging.defs,
    revenue.defs,
    economics.defs,
    publishing.defs,
    sensors.defs,
    Definitions(
        resources=resources_for(),
        # DuckDB has one writer per file: the steps of a run share one process, one at a
        # time (runs are queued one at a time by the instance, see tokenhub ui).
        executor=in_process_executor,
    ),
)
