"""Fill a fresh SQLite Dagster instance with N observation-group partitions and one
materialisation per group of each per-group asset, fast.

`report_runless_asset_event` costs ~42 ms a call on SQLite here (a connection and a
transaction per event, in the run shard and the index shard): 5 x 100k events would take
six hours. The same rows are written here through the event-log storage's own SQL
helpers, one index-shard transaction per batch: what dagster-postgres's
`store_event_batch` does for materialisations. The run-shard copy of runless events is
left out; no asset page reads it.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from contimg import naming
from contimg.simulation.instrument import GROUP_DURATION_S
from contimg.simulation.telescope import DEFAULT_START

PARTITIONS = "observation_groups"
# The assets a group's run materialises (convert_group_job), in order.
GROUP_ASSETS = ("uvh5_group", "measurement_set", "calibrated_ms", "image", "photometry")
BATCH = 5000
INSERT_ROWS = 1000


def group_keys(n: int, first: int = 0) -> list[str]:
    """`n` group keys as the platform writes them: ISO timestamps one group cadence apart."""
    return [naming.iso_timestamp(DEFAULT_START + timedelta(seconds=i * GROUP_DURATION_S))
            for i in range(first, first + n)]


def image_path(key: str) -> str:
    """The (fictitious) image path recorded for `key`: a text a page can be waited on for."""
    return f"/stage/images/{key[:10]}/{key}.img/{key}.img-image-pb.fits"


def fill(instance, n: int) -> dict:
    """Register `n` keys (batches of BATCH) and materialise every GROUP_ASSETS asset once
    per key; return the seconds each part took."""
    keys = group_keys(n)
    began = time.perf_counter()
    for start in range(0, n, BATCH):
        instance.add_dynamic_partitions(PARTITIONS, keys[start:start + BATCH])
    register_s = time.perf_counter() - began
    began = time.perf_counter()
    storage = instance.event_log_storage
    for asset in GROUP_ASSETS:
        for start in range(0, n, BATCH):
            _store_batch(storage, [_materialization(asset, key) for key in keys[start:start + BATCH]])
    materialize_s = time.perf_counter() - began
    return {"register_s": round(register_s, 2), "materialize_s": round(materialize_s, 2),
            "events": n * len(GROUP_ASSETS)}


def _materialization(asset: str, key: str):
    # Dagster's own event types (private module paths: no public constructor for a log
    # entry exists; report_runless_asset_event builds exactly these).
    from dagster import AssetMaterialization, DagsterEvent, DagsterEventType
    from dagster._core.events import StepMaterializationData
    from dagster._core.events.log import EventLogEntry
    from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID

    metadata = {"path": image_path(key)} if asset == "image" else {"group": key}
    event = DagsterEvent(event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
                         event_specific_data=StepMaterializationData(
                             AssetMaterialization(asset, partition=key, metadata=metadata)),
                         job_name=RUNLESS_JOB_NAME)
    return EventLogEntry(user_message="", level=logging.INFO, job_name=RUNLESS_JOB_NAME,
                         run_id=RUNLESS_RUN_ID, error_info=None, timestamp=time.time(),
                         dagster_event=event)


def _store_batch(storage, entries: list) -> None:
    """The index-shard rows `store_event` writes for each entry, in one transaction; the
    asset's row (its latest materialisation) from the last entry, as dagster-postgres does."""
    from dagster._core.storage.event_log.schema import SqlEventLogStorageTable

    with storage.index_transaction() as conn:
        ids: list[int] = []
        # Multi-row INSERT ... RETURNING id (SQLite >= 3.35), under SQLite's bound-variable limit.
        for start in range(0, len(entries), INSERT_ROWS):
            statement = storage.prepare_insert_event_batch(entries[start:start + INSERT_ROWS])
            ids += [row[0] for row in conn.execute(statement.returning(SqlEventLogStorageTable.c.id))]
        storage._store_asset_event_tags(conn, entries, ids)
        storage._store_asset_event(conn, entries[-1], ids[-1])
