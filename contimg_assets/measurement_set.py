"""The `measurement_set` asset: one date-organised CASA Measurement Set per group."""

import time

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from contimg.conversion.group_validation import GroupValidationError
from contimg.conversion.pipeline import (
    AlreadyConvertedError,
    ConversionOptions,
    ConversionOutcome,
    MsValidationError,
    convert_into_tree,
)
from contimg.conversion.staging import reap_group_partials, reap_stale_workspaces
from contimg.ingest.group_lock import GroupBusyError, group_lock
from contimg.ingest.registry import IngestRegistry
from contimg.ingest.settings import IngestSettings
from contimg_assets.executors import celery_queue
from contimg_assets.partitions import observation_groups
from contimg_assets.uvh5_group import uvh5_group
from resources import StateDatabasesResource, StorageLayoutResource

# Bad input never gets better by retrying: the group is failed until a file changes or
# an operator requeues it. Anything else (no room, a crashed converter, a surprise) is
# retried by the sensor under a new run key, with a backoff and an attempt limit.
PERMANENT_ERRORS = (GroupValidationError, MsValidationError)


@asset(
    partitions_def=observation_groups,
    deps=[uvh5_group],
    group_name="conversion",
    kinds={"casa"},
    pool="conversion",
    op_tags=celery_queue("conversion"),
)
def measurement_set(context: AssetExecutionContext, storage: StorageLayoutResource,
                    state: StateDatabasesResource) -> MaterializeResult:
    """Convert the group in a tmpfs (or scratch) workspace, validate, classify as calibrator
    or science, move atomically to `ms/{kind}/YYYY-MM-DD/TIMESTAMP.ms` and register it.

    One run per group at a time (a per-group lock); a group already converted is refused
    without touching anything; a failure leaves nothing in the organised tree and
    records the reason; transient failures are retried by the incoming sensor.
    """
    group_id = context.partition_key
    layout = storage.layout()
    settings = IngestSettings.from_settings(storage.settings())
    for path in reap_stale_workspaces(layout) + reap_group_partials(layout, group_id):
        context.log.warning(f"removed what a killed run left behind: {path}")
    try:
        with group_lock(layout, group_id), state.open() as store:
            registry = IngestRegistry(store, settings)
            outcome = _convert(context, registry, layout, store, settings)
    except (GroupBusyError, AlreadyConvertedError) as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc
    report = outcome.report
    return MaterializeResult(metadata={
        "path": MetadataValue.path(str(outcome.ms_path)),
        "kind": outcome.kind,
        "calibrator": outcome.classification.calibrator or "",
        "size_gb": round(outcome.size_bytes / 1e9, 3),
        "rows": report.n_rows,
        "channels": report.n_channels,
        "phase_centre_deg": MetadataValue.json(list(report.phase_centre_deg)),
        "staging": outcome.staging,
        "seconds_total": outcome.timings_s.get("total"),
        "timings_s": MetadataValue.json(outcome.timings_s),
    })


def _convert(context: AssetExecutionContext, registry: IngestRegistry, layout, store,
             settings: IngestSettings) -> ConversionOutcome:
    """Run the conversion under the lock and record the group's fate in the registry."""
    group_id = context.partition_key
    status = registry.group_state(group_id)
    if status is None:
        raise Failure(description=f"group {group_id} is not in the ingest registry "
                      "(state/ingest.sqlite3); the incoming sensor registers groups. Fix: put "
                      "its files in the incoming directory.", allow_retries=False)
    files = registry.group_files(group_id)
    if status[0] == "completed":
        raise AlreadyConvertedError(f"group {group_id} is already converted; nothing was changed.")
    registry.start(group_id, context.run.run_id)
    try:
        outcome = convert_into_tree(
            group_id, files, layout, store,
            ConversionOptions(expected_subbands=settings.expected_subbands,
                              timeout_s=settings.convert_timeout_s),
            progress=context.log.debug, allow_missing=bool(status[2]))
    except AlreadyConvertedError:
        registry.mark_group(group_id, "completed")  # the tree has it: the registry agrees
        raise
    except PERMANENT_ERRORS as exc:
        registry.mark_group(group_id, "failed", f"{type(exc).__name__}: {exc}")
        raise Failure(description=f"conversion of {group_id} failed: {exc}",
                      allow_retries=False) from exc
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        fate = registry.defer(group_id, reason, time.time())
        raise Failure(description=f"conversion of {group_id} failed ({reason}); the group is "
                      f"now {fate}" + (" and will be retried by the incoming sensor"
                                       if fate == "pending" else ""),
                      allow_retries=False) from exc
    registry.mark_group(group_id, "completed")
    return outcome
