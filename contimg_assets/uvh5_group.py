"""The `uvh5_group` asset: one observation group's 16 subband files, validated."""

import math
import os
import time

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from contimg.conversion.group_validation import GroupValidationError, validate_group
from contimg.ingest.registry import IngestRegistry
from contimg.ingest.settings import IngestSettings
from contimg_assets.partitions import observation_groups
from resources import StateDatabasesResource


@asset(partitions_def=observation_groups, group_name="ingest", kinds={"hdf5"})
def uvh5_group(context: AssetExecutionContext, state: StateDatabasesResource) -> MaterializeResult:
    """Check that the group's files agree (antennas, times, polarisations, contiguous
    frequencies, declination) and can be read. A violation fails the group, names the
    file, and leaves every file where it is."""
    group_id = context.partition_key
    settings = IngestSettings.from_settings(state.storage.settings())
    with state.open() as store:
        registry = IngestRegistry(store, settings)
        files = registry.group_files(group_id)
        status = registry.group_state(group_id)
        allow_missing = bool(status and status[2])  # the incomplete-group policy said convert
        try:
            plan = validate_group(files, expected_subbands=settings.expected_subbands,
                                  allow_missing=allow_missing)
        except GroupValidationError as exc:
            # A converted group keeps its state: its raw files may have been purged since.
            if status and status[0] != "completed":
                registry.mark_group(group_id, "failed", str(exc))
            raise Failure(description=f"group {group_id} is not convertible: {exc}",
                          metadata={"files": MetadataValue.json([str(f) for f in files])},
                          allow_retries=False) from exc
        except Exception as exc:
            # Not the files' fault as far as we know: retried under the attempt limit.
            reason = f"{type(exc).__name__}: {exc}"
            fate = registry.defer(group_id, reason, time.time()) if status else "unknown"
            raise Failure(description=f"validating group {group_id} failed ({reason}); the group "
                          f"is now {fate}", allow_retries=False) from exc
    freqs = [f for s in plan.subbands for f in s.freqs_hz]
    return MaterializeResult(metadata={
        "files": MetadataValue.json([str(f) for f in plan.files]),
        "subbands_present": len(plan.files),
        "subbands_missing": len(plan.missing),
        "baseline_times": plan.n_blts,
        "channels": plan.n_channels,
        "frequency_range_mhz": MetadataValue.text(f"{min(freqs) / 1e6:.3f} - {max(freqs) / 1e6:.3f}"),
        "pointing_dec_deg": (round(math.degrees(plan.phase_center_dec), 4)
                             if plan.phase_center_dec is not None else None),
        "total_bytes": sum(os.path.getsize(f) for f in plan.files),
    })
