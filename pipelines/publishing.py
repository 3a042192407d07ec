"""Publishing: the marts copied to the read-only file analysts query (``warehouse.publish``).

One asset downstream of every mart: whenever a mart changes, the copy is refreshed
(declarative automation), so ``tokenhub sql`` and notebooks read fresh marts while landing
holds the writer's file.
"""

from __future__ import annotations

from dagster import (
    AssetDep,
    AssetKey,
    AutomationCondition,
    BackfillPolicy,
    Definitions,
    MaterializeResult,
    MetadataValue,
    asset,
)

from pipelines.resources import BooksResource, KafkaResource, WarehouseResource, to_settings
from pipelines.sql_models import models, relation_key

PUBLISHED_MARTS = AssetKey(["published", "marts"])


@asset(
    key=PUBLISHED_MARTS,
    deps=[AssetDep(relation_key(r)) for r in models() if r.startswith("marts.")],
    group_name="publishing",
    kinds={"duckdb"},
    # Follows the marts; waits while any of them is being rebuilt.
    automation_condition=AutomationCondition.eager(),
    # Part of a range backfill of the marts: copied once at the end of the run.
    backfill_policy=BackfillPolicy.single_run(),
    description="Every mart copied atomically into the read-only file "
    "(`.tokenhub/warehouse/marts.duckdb`) analysts query while the pipeline writes.",
)
def published_marts(
    warehouse: WarehouseResource, kafka: KafkaResource, books: BooksResource
) -> MaterializeResult:
    from warehouse.publish import publish, published_relations

    settings = to_settings(warehouse, kafka, books)
    with warehouse.connect() as con:
        path = publish(settings, con)
        relations = published_relations(con)
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(path)),
            "relations": MetadataValue.int(len(relations)),
            "size (MB)": MetadataValue.float(round(path.stat().st_size / 1e6, 2)),
        }
    )


defs = Definitions(assets=[published_marts])
