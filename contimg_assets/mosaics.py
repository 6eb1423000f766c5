"""The `hourly_mosaic` and `daily_mosaic` assets: linear mosaics of the group images.

Thin: the work is in `contimg.mosaics.stage`. Partitions are time windows (a UTC hour, a
UTC day), not the per-group partitions of `image`: Dagster has no built-in mapping that
rolls up dynamic per-group partitions into hours, and the members of a window are known
only once images exist, so each run reads them from products.images (products.mosaics for
the daily) and lists them in its metadata. The dependency on `image` (all partitions: the
window's images are a data-dependent subset) draws the lineage mosaic → image in the UI.
"""

import base64

from dagster import (
    AllPartitionMapping,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    DailyPartitionsDefinition,
    Failure,
    HourlyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from contimg.mosaics.combine import MosaicError
from contimg.mosaics.stage import MosaicOptions, MosaicOutcome, make_daily_mosaic, make_hourly_mosaic
from contimg.settings import load_settings
from contimg_assets.imaging import image
from resources import StateDatabasesResource, StorageLayoutResource

# From a setting (validated), read when the code location loads: partitions before it are
# not offered. end_offset=1: the current hour (day) is a partition, so a replayed or a
# late window can be requested as soon as its images exist.
PARTITIONS_START = str(load_settings()["CONTIMG_PARTITIONS_START"])
mosaic_hours = HourlyPartitionsDefinition(start_date=f"{PARTITIONS_START}-00:00", end_offset=1)
mosaic_days = DailyPartitionsDefinition(start_date=PARTITIONS_START, end_offset=1)


def _check_specs(asset_name: str) -> list[AssetCheckSpec]:
    return [AssetCheckSpec("mosaic_valid", asset=asset_name, blocking=True,
                           description="The mosaic has finite pixels, and its noise map is "
                                       "positive wherever the image is not blank.")]


@asset(partitions_def=mosaic_hours, deps=[AssetDep(image, partition_mapping=AllPartitionMapping())],
       group_name="mosaics", kinds={"numpy"}, check_specs=_check_specs("hourly_mosaic"), pool="mosaics")
def hourly_mosaic(context: AssetExecutionContext, storage: StorageLayoutResource,
                  state: StateDatabasesResource) -> MaterializeResult:
    """The hour's linear mosaic (beam- and noise-weighted) of the group images whose mid time
    falls in it: mosaics/hourly/YYYY-MM-DD/<YYYY-MM-DDTHH>.mosaic/ with noise and weight maps,
    registered in products.mosaics."""
    window = context.partition_time_window.start
    try:
        options = MosaicOptions.from_settings(storage.settings())
        with state.open() as store:
            outcome = make_hourly_mosaic(storage.layout(), store, window, options=options)
    except (MosaicError, ValueError) as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc
    return MaterializeResult(metadata=_metadata(outcome), check_results=[_valid(outcome, "hourly_mosaic")])


@asset(partitions_def=mosaic_days, deps=["hourly_mosaic"], group_name="mosaics", kinds={"numpy"},
       check_specs=_check_specs("daily_mosaic"), pool="mosaics")
def daily_mosaic(context: AssetExecutionContext, storage: StorageLayoutResource,
                 state: StateDatabasesResource) -> MaterializeResult:
    """The day's mosaic: the hourly mosaics' sums added exactly, on a grid
    CONTIMG_DAILY_MOSAIC_CELL_FACTOR times coarser (a day at full cell is a 360° strip)."""
    window = context.partition_time_window.start
    try:
        options = MosaicOptions.from_settings(storage.settings())
        with state.open() as store:
            outcome = make_daily_mosaic(storage.layout(), store, window, options=options)
    except (MosaicError, ValueError) as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc
    return MaterializeResult(metadata=_metadata(outcome), check_results=[_valid(outcome, "daily_mosaic")])


def _metadata(outcome: MosaicOutcome) -> dict:
    quality = outcome.quality
    encoded = base64.b64encode(outcome.png).decode()
    return {
        "quicklook": MetadataValue.md(f"![{outcome.name}](data:image/png;base64,{encoded})"),
        "image": MetadataValue.path(str(outcome.products["image"])),
        "noise": MetadataValue.path(str(outcome.products["noise"])),
        "weight": MetadataValue.path(str(outcome.products["weight"])),
        "n_members": int(quality["n_members"]),
        "members": MetadataValue.json([m["name"] for m in outcome.members]),
        "member_noise_mjy": MetadataValue.json({m["name"]: round(1e3 * _member_noise(m), 4)
                                                for m in outcome.members}),
        "min_noise_mjy": round(1e3 * float(quality["min_noise_jy"]), 4),
        "median_noise_mjy": round(1e3 * float(quality["median_noise_jy"]), 4),
        "peak_jy": round(float(quality["peak_jy"]), 4),
        "grid": f"{quality['nx']} x {quality['ny']} x {quality['cell_arcsec']:.2f}\" (CAR)",
        "kept_area_deg2": round(float(quality["kept_area_deg2"]), 2),
        "restoring_beam": f"{quality['bmaj_arcsec']:.1f}\" x {quality['bmin_arcsec']:.1f}\" "
                          f"PA {quality['bpa_deg']:.1f} deg",
        "superseded": str(outcome.superseded or ""),
        "seconds": MetadataValue.json({k: round(v, 2) for k, v in outcome.seconds.items()}),
    }


def _member_noise(member: dict) -> float:
    """An image's σ (hourly), or an hourly mosaic's reference σ (daily)."""
    return float(member.get("sigma_jy", member.get("sigma_ref_jy", 0.0)))


def _valid(outcome: MosaicOutcome, asset_name: str) -> AssetCheckResult:
    """Finite pixels exist, and the noise map is positive and finite where the image is."""
    import numpy as np
    from astropy.io import fits

    with fits.open(outcome.products["image"]) as image_hdul, fits.open(outcome.products["noise"]) as noise:
        finite = np.isfinite(image_hdul[0].data)
        noise_ok = bool(np.all(np.isfinite(noise[0].data[finite]) & (noise[0].data[finite] > 0)))
    return AssetCheckResult(check_name="mosaic_valid", asset_key=asset_name,
                            passed=bool(finite.any()) and noise_ok, severity=AssetCheckSeverity.ERROR,
                            metadata={"finite_pixels": int(finite.sum()), "noise_positive": noise_ok})
