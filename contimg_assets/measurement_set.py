"""The `measurement_set` asset: one date-organised CASA Measurement Set per group."""

from dagster import (
    AssetExecutionContext,
    Backoff,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
)

from contimg.conversion.group_validation import GroupValidationError
from contimg.conversion.pipeline import ConversionOptions, MsValidationError, convert_into_tree
from contimg.conversion.staging import InsufficientSpaceError, reap_stale_workspaces
from contimg.ingest.registry import IngestRegistry
from contimg.ingest.settings import IngestSettings
from contimg_assets.partitions import observation_groups
from contimg_assets.uvh5_group import uvh5_group
from resources import StateDatabasesResource, StorageLayoutResource

# Bad input never gets better by retrying; a full disk or a killed neighbour might.
PERMANENT_ERRORS = (GroupValidationError, MsValidationError, FileExistsError)


@asset(
    partitions_def=observation_groups,
    deps=[uvh5_group],
    group_name="conversion",
    kinds={"casa"},
    pool="conversion",
    retry_policy=RetryPolicy(max_retries=2, delay=30, backoff=Backoff.EXPONENTIAL),
)
def measurement_set(context: AssetExecutionContext, storage: StorageLayoutResource,
                    state: StateDatabasesResource) -> MaterializeResult:
    """Convert the group in a tmpfs (or scratch) workspace, validate, classify as
    calibrator or science, move atomically to ms/{kind}/YYYY-MM-DD/<ts>.ms and register it.
    A failure leaves nothing in the organised tree and records the reason."""
    group_id = context.partition_key
    layout = storage.layout()
    store = state.store()
    settings = IngestSettings.from_env()
    registry = IngestRegistry(store, settings)
    for path in reap_stale_workspaces(layout):
        context.log.warning("removed a stale workspace left by a killed run: %s", path)
    status = registry.group_state(group_id)
    registry.mark_group(group_id, "in_progress")
    try:
        outcome = convert_into_tree(
            group_id, registry.group_files(group_id), layout, store,
            ConversionOptions(expected_subbands=settings.expected_subbands),
            progress=context.log.debug, allow_missing=bool(status and status[2]))
    except PERMANENT_ERRORS as exc:
        registry.mark_group(group_id, "failed", f"{type(exc).__name__}: {exc}")
        raise Failure(description=f"conversion of {group_id} failed: {exc}",
                      allow_retries=False) from exc
    except InsufficientSpaceError as exc:
        registry.mark_group(group_id, "pending", str(exc))
        raise
    except Exception as exc:
        registry.mark_group(group_id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    registry.mark_group(group_id, "completed")
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
