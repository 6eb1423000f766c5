"""The incoming-file sensor: complete groups become partitions and conversion runs."""

import time

from dagster import (
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)

from contimg.ingest.group_lock import is_locked
from contimg.ingest.registry import IngestRegistry, TickReport
from contimg.ingest.scanner import scan_incoming
from contimg.ingest.settings import IngestSettings
from contimg.layout import StorageLayout
from contimg.ops.notifier import Notifier, level_changed
from contimg.ops.thresholds import conversion_hold
from contimg.state import StateStore
from contimg.state.connection import StateDatabaseError
from contimg_assets.executors import run_executor
from contimg_assets.partitions import GROUP_TAG, LIVE_RUN_STATUSES, REDONE_BY_SENSORS, observation_groups
from resources import NotifierResource, StateDatabasesResource, StorageLayoutResource

# One run per group does the whole per-group chain in one process (in_process_executor):
# Dagster's default executor starts a process per step, ~2.5 s each here, which would
# cost more than a tiny conversion and its apply (README, "Automation and the
# calibration assets"). A group without valid tables leaves calibrated_ms unmaterialised.
convert_group_job = define_asset_job(
    "convert_group_job",
    selection=AssetSelection.assets("uvh5_group", "measurement_set", "calibrated_ms", "image",
                                    "photometry"),
    executor_def=run_executor(),
    # Conversion first in the queue: it takes the raw files off incoming/ in seconds, while
    # the applies and images queued before it wait for the imaging pool (bench day).
    tags={**REDONE_BY_SENSORS, "dagster/priority": "1"},
    description="Validate one observation group, convert it to a Measurement Set, calibrate "
                "and image it (one run, one process).",
)


def build_incoming_files_sensor(interval_s: int = 15) -> SensorDefinition:
    """The incoming sensor, ticking every `interval_s` (CONTIMG_SENSOR_INTERVAL_S)."""

    @sensor(name="incoming_files_sensor", job=convert_group_job,
            minimum_interval_seconds=interval_s, default_status=DefaultSensorStatus.RUNNING)
    def incoming_files_sensor(context: SensorEvaluationContext, storage: StorageLayoutResource,
                              state: StateDatabasesResource, notifier: NotifierResource):
        """Scan incoming/, record files and groups in ingest.sqlite3, and request one run
        per group ready to convert. Each request has its own run key (`convert-GROUP`,
        then `convert-GROUP-rN` for a retry or a requeue), so a group that failed,
        was replaced or lost its run is converted again, and never twice at once."""
        layout = storage.layout()

        def run_queued(group_id: str) -> bool:
            runs = context.instance.get_run_records(
                RunsFilter(tags={GROUP_TAG: group_id}, statuses=LIVE_RUN_STATUSES), limit=1)
            return bool(runs)

        hold = conversion_hold(layout, storage.settings())
        try:
            with state.open() as store:
                report = run_tick(layout, store, IngestSettings.from_settings(storage.settings()),
                                  run_queued=run_queued, hold=hold is not None)
                _log_and_alert(context, notifier.notifier(), store, report)
                _alert_on_hold(context, notifier.notifier(), store, hold)
        except StateDatabaseError as exc:
            # A lost or broken state database stops ingest (nothing is recreated empty);
            # the operator hears about it once an hour until it is restored.
            _alert_hourly(notifier.notifier(), "state_database", str(exc))
            raise
        if not report.ready:
            return SkipReason(f"{report.new_files} new file(s), {len(report.writing)} still being "
                              "written, " + (f"groups held: {hold}" if hold else "no group ready"))
        return SensorResult(
            run_requests=[RunRequest(partition_key=g.group_id, run_key=g.run_key,
                                     tags={GROUP_TAG: g.group_id}) for g in report.ready],
            dynamic_partitions_requests=[observation_groups.build_add_request(report.ready_ids)],
            cursor=str(time.time()),
        )

    return incoming_files_sensor


def run_tick(layout: StorageLayout, store: StateStore, settings: IngestSettings, *,
             run_queued=None, hold: bool = False) -> TickReport:
    """One sensor tick's work without Dagster: scan and update the registry (with `hold`,
    complete groups stay pending)."""
    registry = IngestRegistry(store, settings)
    return registry.update(scan_incoming(layout.incoming_dir), time.time(),
                           lock_held=lambda group: is_locked(layout, group), run_queued=run_queued,
                           hold=hold)


def _alert_on_hold(context: SensorEvaluationContext, notifier: Notifier, store: StateStore,
                   hold: str | None) -> None:
    """One `conversion_held` alert when the disk floor starts holding groups, one
    `conversion_resumed` when it lets them go; a warning in the tick's log meanwhile."""
    if hold:
        context.log.warning(hold)
    previous = level_changed(store, "conversion_hold", "HELD" if hold else "OK")
    if previous is not None and hold:
        notifier.notify("conversion_held", hold)
    elif previous is not None:
        notifier.notify("conversion_resumed", "the fast disk has room again: held groups convert")


_LAST_ALERT: dict[str, float] = {}


def _alert_hourly(notifier: Notifier, kind: str, message: str) -> None:
    if time.time() - _LAST_ALERT.get(message, 0.0) >= 3600:
        _LAST_ALERT[message] = time.time()
        notifier.notify(kind, message)


def _log_and_alert(context: SensorEvaluationContext, notifier: Notifier, store: StateStore,
                   report: TickReport) -> None:
    for _path, reason in report.rejected + report.duplicates:
        context.log.warning(reason)
    for _path, note in report.changed:
        context.log.warning(note)
    for group_id, reason in report.requeued:
        context.log.warning(f"group {group_id} back in line: {reason}")
    for group_id, missing in report.incomplete:
        notifier.notify("incomplete_group", f"group {group_id} still misses {len(missing)} subband(s)",
                        group_id=group_id, missing=missing)
    for group_id in report.stuck:
        if level_changed(store, f"stuck:{group_id}", "STUCK") is None:
            continue  # alerted already
        notifier.notify("stuck_group", f"group {group_id} has been converting for longer than "
                        "CONTIMG_STALE_RUN_S; its process still holds the lock", group_id=group_id)


# The sensor with the default interval, for tests and tools that build their own Definitions.
incoming_files_sensor = build_incoming_files_sensor()
