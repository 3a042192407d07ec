"""Staging: one view per ``warehouse/sql/staging/*.sql`` (rename and cast, nothing else)."""

from __future__ import annotations

from dagster import Definitions

from pipelines.landing import RAW_PRODUCERS
from pipelines.rating import RATING_PRODUCERS
from pipelines.sql_models import models, sql_assets

#: Which asset writes each table a model may read.
PRODUCERS = {**RAW_PRODUCERS, **RATING_PRODUCERS}

defs = Definitions(
    assets=sql_assets(
        [relation for relation in models() if relation.startswith("staging.")],
        group_name="staging",
        producers=PRODUCERS,
    )
)
