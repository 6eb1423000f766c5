"""The `photometry` (per group) and `variability` (daily) assets.

Thin: the work is in `contimg.photometry`. `photometry` runs in the same in-process run as
the group's image (`convert_group_job`, `calibrate_group_job`); `variability` is a daily
time window like the daily mosaic (its members — every measurement so far — come from the
Parquet files, not from a partition mapping), requested by `variability_sensor`.
"""

import base64

import numpy as np
from dagster import (
    AllPartitionMapping,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from contimg.catalogs.nvss import CatalogError
from contimg.photometry.daily import DailyOutcome, judge_day
from contimg.photometry.plots import flux_comparison_png
from contimg.photometry.stage import PhotometryError, PhotometryOptions, PhotometryOutcome, measure_group
from contimg.photometry.variability import Thresholds
from contimg_assets.imaging import image
from contimg_assets.mosaics import mosaic_days
from contimg_assets.partitions import observation_groups
from resources import NotifierResource, StateDatabasesResource, StorageLayoutResource

FLUX_SCALE_WARN = 0.2  # median measured/catalogue flux further than this from 1: WARN
EMBEDDED_LIGHT_CURVES = 6  # pictures in the UI metadata (all are on disk)

PHOTOMETRY_CHECKS = [
    AssetCheckSpec("photometry_flux_scale", asset="photometry",
                   description="WARN: the median measured/catalogue flux of sources above 20 sigma "
                               "is more than 20 % from 1 (flux scale or catalogue mismatch).")]


@asset(partitions_def=observation_groups, deps=[image], group_name="photometry", kinds={"duckdb"},
       check_specs=PHOTOMETRY_CHECKS, pool="photometry")
def photometry(context: AssetExecutionContext, storage: StorageLayoutResource,
               state: StateDatabasesResource) -> MaterializeResult:
    """Forced photometry of master_sources in the group's image and blind detections above
    5 sigma (new sources join master_sources), written to photometry/measurements/
    date=YYYY-MM-DD/GROUP.parquet."""
    try:
        options = PhotometryOptions.from_settings(storage.settings())
        with state.open() as store:
            outcome = measure_group(storage.layout(), store, context.partition_key, options)
    except (PhotometryError, CatalogError) as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc
    ratio = _flux_scale(outcome)
    scale_ok = bool(np.isnan(ratio) or abs(ratio - 1) <= FLUX_SCALE_WARN)
    return MaterializeResult(
        metadata=_photometry_metadata(outcome, ratio),
        check_results=[AssetCheckResult(check_name="photometry_flux_scale", passed=scale_ok,
                                        severity=AssetCheckSeverity.WARN,
                                        metadata={"median_ratio": _round(ratio, 3)})])


@asset(partitions_def=mosaic_days, deps=[AssetDep(photometry, partition_mapping=AllPartitionMapping())],
       group_name="photometry", kinds={"duckdb"}, pool="photometry")
def variability(context: AssetExecutionContext, storage: StorageLayoutResource,
                state: StateDatabasesResource, notifier: NotifierResource) -> MaterializeResult:
    """Every source's eta, V, chi2, Vs and m over its measurements up to the day's end
    (DuckDB over the Parquet files), written to master_sources; candidates with their light
    curves; an alert for each new candidate. New sources are first measured backwards in
    the images before their discovery."""
    settings = storage.settings()
    day = context.partition_time_window.start.date()
    with state.open() as store:
        outcome = judge_day(storage.layout(), store, day, PhotometryOptions.from_settings(settings),
                            Thresholds.from_settings(settings))
    alerts = notifier.notifier()
    for row in outcome.candidates:
        if row["id"] in outcome.new_candidate_ids:
            alerts.notify("variability_candidate",
                          f"new variability candidate {row['name']} (Vs {_round(row['vs_max'], 1)}, "
                          f"m {_round(row['m_at_vs_max'], 2)}, eta {_round(row['eta'], 3)}, "
                          f"V {_round(row['v'], 3)}) on {outcome.day}",
                          source=row["name"], day=outcome.day,
                          light_curve=str(outcome.pictures.get(row["name"], "")))
    return MaterializeResult(metadata=_variability_metadata(outcome))


def _flux_scale(outcome: PhotometryOutcome) -> float:
    known = np.isfinite(outcome.catalog_flux_jy) & (outcome.catalog_flux_jy > 0) & ~outcome.is_new
    bright = known & (outcome.flux_jy > 20 * outcome.median_rms_jy)
    if not bright.any():
        return float("nan")
    return float(np.median(outcome.flux_jy[bright] / outcome.catalog_flux_jy[bright]))


def _photometry_metadata(outcome: PhotometryOutcome, ratio: float) -> dict:
    png = flux_comparison_png(outcome.catalog_flux_jy, outcome.flux_jy, outcome.is_new,
                              f"{outcome.group_id}: {outcome.n_forced} forced, "
                              f"{len(outcome.new_source_ids)} new")
    return {
        "fluxes": MetadataValue.md(f"![fluxes](data:image/png;base64,{base64.b64encode(png).decode()})"),
        "measurements": MetadataValue.path(str(outcome.parquet)),
        "forced": outcome.n_forced,
        "detections_5_sigma": outcome.n_detections,
        "new_sources": len(outcome.new_source_ids),
        "unmatched_not_registered": outcome.unmatched_held,
        "seeded_from_catalogue": outcome.seeded,
        "median_rms_mjy": _round(outcome.median_rms_jy * 1e3, 4),
        "median_measured_over_catalogue": _round(ratio, 3),
    }


def _variability_metadata(outcome: DailyOutcome) -> dict:
    lines = ["| source | N | Vs | m | eta | V | new |", "|---|---|---|---|---|---|---|"]
    for row in outcome.candidates:
        lines.append(f"| {row['name']} | {row['n_measurements']} | {_round(row['vs_max'], 1)} | "
                     f"{_round(row['m_at_vs_max'], 2)} | {_round(row['eta'], 3)} | {_round(row['v'], 3)} | "
                     f"{'yes' if row['is_new'] else ''} |")
    pictures = [f"![{name}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"
                for name, path in list(outcome.pictures.items())[:EMBEDDED_LIGHT_CURVES]]
    return {
        "candidates": MetadataValue.md("\n".join(lines)),
        "light_curves": MetadataValue.md("\n\n".join(pictures) or "no candidates"),
        "n_candidates": len(outcome.candidates),
        "new_candidates": len(outcome.new_candidate_ids),
        "sources_judged": outcome.n_sources,
        "eta_threshold": _round(outcome.eta_threshold, 4),
        "v_threshold": _round(outcome.v_threshold, 4),
        "backfilled": MetadataValue.json(outcome.backfilled),
    }


def _round(value, digits: int):
    return round(float(value), digits) if value is not None and np.isfinite(value) else None
