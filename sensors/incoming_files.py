"""The incoming-file sensor: complete groups become partitions and conversion runs."""

import os
import time

from dagster import (
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)

from contimg.ingest.registry import IngestRegistry
from contimg.ingest.scanner import scan_incoming
from contimg.ingest.settings import IngestSettings
from contimg_assets.partitions import observation_groups
from resources import NotifierResource, StateDatabasesResource, StorageLayoutResource

convert_group_job = define_asset_job(
    "convert_group_job",
    selection=AssetSelection.assets("uvh5_group", "measurement_set"),
    description="Validate one observation group and convert it to a Measurement Set.",
)

SENSOR_INTERVAL_S = int(os.environ.get("CONTIMG_SENSOR_INTERVAL_S", "15"))


@sensor(job=convert_group_job, minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=DefaultSensorStatus.RUNNING)
def incoming_files_sensor(context: SensorEvaluationContext, storage: StorageLayoutResource,
                          state: StateDatabasesResource, notifier: NotifierResource):
    """Scan incoming/, record files and groups in ingest.sqlite3, and request one run
    per complete group (run key `convert-<group>`, so a group never runs twice)."""
    layout = storage.layout()
    report = run_tick(layout, state, IngestSettings.from_env())
    for _path, reason in report.rejected + report.duplicates:
        context.log.warning(reason)
    for group_id, missing in report.incomplete:
        notifier.notifier().notify("incomplete_group",
                                   f"group {group_id} still misses {len(missing)} subband(s)",
                                   group_id=group_id, missing=missing)
    if not report.ready:
        return SkipReason(f"{report.new_files} new file(s), {len(report.writing)} still being "
                          "written, no complete group")
    return SensorResult(
        run_requests=[RunRequest(partition_key=g, run_key=f"convert-{g}",
                                 tags={"contimg/group": g}) for g in report.ready],
        dynamic_partitions_requests=[observation_groups.build_add_request(report.ready)],
        cursor=str(time.time()),
    )


def run_tick(layout, state: StateDatabasesResource, settings: IngestSettings):
    """One sensor tick's work without Dagster: scan and update the registry."""
    registry = IngestRegistry(state.store(), settings)
    return registry.update(scan_incoming(layout.incoming_dir), time.time())
