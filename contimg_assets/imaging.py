"""The `image` asset: one primary-beam-corrected image per calibrated group.

Thin: the work is in `contimg.imaging.stage`; here are the partition, the metadata an
operator reads (the quick-look, the quality figures, what made the image) and the checks.
It runs in the same in-process run as conversion and calibration (`convert_group_job`,
`calibrate_group_job`): no extra run start per group.
"""

import base64
import math
from datetime import timedelta

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)

from contimg.imaging.options import ImagingOptions, ImagingOptionsError
from contimg.imaging.stage import ImageOutcome, ImagingError, image_group
from contimg.imaging.wsclean import ImagerError
from contimg.instrument import GROUP_DURATION_S
from contimg_assets.calibration import calibrated_ms
from contimg_assets.executors import celery_queue
from contimg_assets.partitions import observation_groups
from resources import StateDatabasesResource, StorageLayoutResource

STALE_AFTER_CADENCES = 3  # no image for three group cadences while groups arrive: stalled

IMAGE_CHECKS = [
    AssetCheckSpec("image_valid", asset="image", blocking=True,
                   description="The image has finite pixels inside the PB limit and a finite rms."),
    AssetCheckSpec("image_noise", asset="image",
                   description="WARN: the residual rms exceeds CONTIMG_IMAGE_NOISE_WARN_RATIO x "
                               "the radiometer-equation expectation."),
    AssetCheckSpec("image_beam", asset="image",
                   description="WARN: the fitted restoring beam spans at least a quarter pixel on "
                               "both axes (a collapsed PSF fit makes fluxes per beam meaningless)."),
]


@asset(partitions_def=observation_groups, deps=[calibrated_ms], group_name="imaging",
       kinds={"wsclean"}, check_specs=IMAGE_CHECKS, pool="imaging",
       op_tags=celery_queue("imaging"),
       # Whole seconds: the UI's GraphQL types failWindowSeconds as Int, and a fractional
       # window (3 x 309.24 s) broke every page that loads the assets with an error.
       freshness_policy=FreshnessPolicy.time_window(
           fail_window=timedelta(seconds=math.ceil(STALE_AFTER_CADENCES * GROUP_DURATION_S))))
def image(context: AssetExecutionContext, storage: StorageLayoutResource,
          state: StateDatabasesResource) -> MaterializeResult:
    """The group's PB-corrected image in images/YYYY-MM-DD/TIMESTAMP.img/ (WSClean, or
    tclean with CONTIMG_IMAGER), its beam, residual and quick-look, registered in
    products.images."""
    try:
        options = ImagingOptions.from_settings(storage.settings())
        with state.open() as store:
            outcome = image_group(storage.layout(), store, context.partition_key, options=options)
    except (ImagingError, ImagerError, ImagingOptionsError) as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc
    return MaterializeResult(metadata=_metadata(outcome), check_results=_checks(outcome, options))


def _metadata(outcome: ImageOutcome) -> dict:
    quality = outcome.quality
    encoded = base64.b64encode(outcome.png).decode()
    return {
        "quicklook": MetadataValue.md(f"![{outcome.group_id}](data:image/png;base64,{encoded})"),
        "image_pb": MetadataValue.path(str(outcome.products["image-pb"])),
        "image_set": MetadataValue.path(str(outcome.image_set)),
        "rms_mjy": round(quality.rms_jy * 1e3, 4),
        "expected_rms_mjy": round(quality.expected_rms_jy * 1e3, 4),
        "rms_ratio": round(quality.rms_ratio, 3),
        "peak_jy": round(quality.peak_jy, 4),
        "dynamic_range": round(quality.dynamic_range, 1),
        "restoring_beam": f"{quality.bmaj_arcsec:.1f}\" x {quality.bmin_arcsec:.1f}\" "
                          f"PA {quality.bpa_deg:.1f} deg",
        "sources_above_5_sigma": quality.n_sources_5sigma,
        "flagged_fraction": round(quality.flagged_fraction, 4),
        "grid": f"{outcome.grid.size}^2 x {outcome.grid.cell_arcsec:g}\" "
                f"({outcome.grid.field_deg:.2f} deg)",
        "imager": outcome.provenance.imager_version,
        "ms": MetadataValue.path(outcome.provenance.ms_path),
        "cal_tables": MetadataValue.json(list(outcome.provenance.cal_tables)),
        "raw_files": MetadataValue.json(list(outcome.provenance.raw_files)),
        "parameters": MetadataValue.json(outcome.provenance.parameters),
        "superseded": str(outcome.superseded or ""),
        "seconds": MetadataValue.json({k: round(v, 2) for k, v in outcome.seconds.items()}),
    }


def _checks(outcome: ImageOutcome, options: ImagingOptions) -> list[AssetCheckResult]:
    quality = outcome.quality
    beam_problem = quality.beam_problem(outcome.grid.cell_arcsec)
    valid = bool(quality.rms_jy == quality.rms_jy and quality.rms_jy > 0
                 and quality.peak_jy == quality.peak_jy)
    return [
        AssetCheckResult(check_name="image_valid", passed=valid, severity=AssetCheckSeverity.ERROR,
                         metadata={"rms_jy": quality.rms_jy, "peak_jy": quality.peak_jy}),
        AssetCheckResult(check_name="image_noise", passed=quality.rms_ratio <= options.noise_warn_ratio,
                         severity=AssetCheckSeverity.WARN,
                         metadata={"rms_ratio": round(quality.rms_ratio, 3),
                                   "limit": options.noise_warn_ratio}),
        AssetCheckResult(check_name="image_beam", passed=beam_problem is None,
                         severity=AssetCheckSeverity.WARN,
                         description=beam_problem or "the PSF fit was measured on the pixel grid",
                         metadata={"bmaj_arcsec": round(quality.bmaj_arcsec, 2),
                                   "bmin_arcsec": round(quality.bmin_arcsec, 2),
                                   "cell_arcsec": outcome.grid.cell_arcsec}),
    ]
