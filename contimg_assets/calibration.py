"""Calibration assets: the daily bandpass, the hourly gains and each group's calibrated MS.

Thin: the work is in `contimg.calibration.stages`; here are the partitions, the metadata
an operator reads in the UI (tables, refant, quality, flags, plots) and the checks.
"""

import base64
from collections.abc import Iterator
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetObservation,
    AssetSpec,
    Config,
    DailyPartitionsDefinition,
    Failure,
    HourlyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from contimg.calibration.solution_plot import solution_png
from contimg.calibration.solve import CalibrationError
from contimg.calibration.stages import (
    ApplyOutcome,
    CalibrationConfig,
    EmptySkyModelError,
    SolveOutcome,
    calibrate_group,
    hour_start_of,
    solve_bandpass_for_day,
    solve_gains_for_hour,
)
from contimg_assets.executors import celery_queue
from contimg_assets.measurement_set import measurement_set
from contimg_assets.partitions import observation_groups
from resources import NotifierResource, StateDatabasesResource, StorageLayoutResource

# end_offset=1: today's (this hour's) partition exists while its data arrive.
CALIBRATION_START = "2024-01-01"
calibration_days = DailyPartitionsDefinition(start_date=CALIBRATION_START, end_offset=1)
calibration_hours = HourlyPartitionsDefinition(start_date=f"{CALIBRATION_START}-00:00", end_offset=1)


class BandpassConfig(Config):
    """Launchpad config: name a calibrator group (ISO time) to solve on instead of the
    day's best transit."""

    group: str = ""


def _solution_check(name: str, asset_name: str) -> AssetCheckSpec:
    # Not blocking: a solve that ran and found its set below the limits has done its job,
    # and its verdict is this check (ERROR, red on the asset, an alert). What keeps a
    # failed set from being applied is the registry (it is never active), and nothing
    # downstream materialises in the solve's run for a blocking check to hold back; a
    # blocking check would only turn a verdict on the sky into a failed run.
    return AssetCheckSpec(name, asset=asset_name,
                          description="Flagged-solution fraction, median SNR and phase scatter "
                                      "within CONTIMG_CAL_* limits; a failed set is never active.")


@asset(partitions_def=calibration_days, group_name="calibration", kinds={"casa"}, pool="calibration",
       op_tags=celery_queue("calibration"),
       check_specs=[_solution_check("bandpass_quality", "bandpass_solution")])
def bandpass_solution(context: AssetExecutionContext, config: BandpassConfig,
                      storage: StorageLayoutResource, state: StateDatabasesResource,
                      notifier: NotifierResource) -> MaterializeResult:
    """The day's set ([K], B, gp, 2g) on its best calibrator transit (largest beam-weighted
    flux), tables beside the calibrator MS in `ms/calibrators/YYYY-MM-DD/`, registered
    with a validity of CONTIMG_BANDPASS_VALIDITY_H centred on the transit."""
    cal = CalibrationConfig.from_settings(storage.settings())
    with state.open() as store:
        try:
            outcome = solve_bandpass_for_day(storage.layout(), store, context.partition_key,
                                             group=config.group or None, config=cal)
        except CalibrationError as exc:
            raise Failure(description=str(exc), allow_retries=False) from exc
    return _solution_result(outcome, "bandpass_quality", notifier)


@asset(partitions_def=calibration_hours, group_name="calibration", kinds={"casa"}, pool="calibration",
       op_tags=celery_queue("calibration"),
       check_specs=[_solution_check("gain_quality", "gain_solution")])
def gain_solution(context: AssetExecutionContext, storage: StorageLayoutResource,
                  state: StateDatabasesResource, notifier: NotifierResource) -> MaterializeResult:
    """The hour's gains (gp, 2g) with the active bandpass applied: on a calibrator transit
    of the hour, else on the science group nearest its middle against the NVSS model;
    valid CONTIMG_GAIN_VALIDITY_H centred on that group, widened to cover the hour."""
    cal = CalibrationConfig.from_settings(storage.settings())
    with state.open() as store:
        try:
            outcome = solve_gains_for_hour(storage.layout(), store, hour_start_of(context.partition_key),
                                           config=cal)
        except EmptySkyModelError as exc:
            # A verdict on the hour's data, as a solve failing its limits is: recorded by
            # the stage (its groups take neighbouring gains), shown as the failed check.
            return _unsolvable_result(context.partition_key, str(exc), notifier)
        except CalibrationError as exc:
            raise Failure(description=str(exc), allow_retries=False) from exc
    return _solution_result(outcome, "gain_quality", notifier)


GROUP_CHECKS = [
    AssetCheckSpec("group_flagging", asset="calibrated_ms", blocking=True,
                   description="Flagged fraction of the calibrated group's cross-correlations "
                               "at most CONTIMG_CAL_MAX_GROUP_FLAGGED."),
    AssetCheckSpec("calibrator_flux_scale", asset="calibrated_ms", blocking=True,
                   description="Calibrator groups: corrected amplitude within "
                               "CONTIMG_CAL_FLUX_TOLERANCE of the model (science groups pass)."),
    AssetCheckSpec("bandpass_age", asset="calibrated_ms",
                   description="WARN: the bandpass was solved more than "
                               "CONTIMG_BANDPASS_WARN_AGE_H hours from the group."),
    AssetCheckSpec("gain_age", asset="calibrated_ms",
                   description="WARN: the gains were solved more than CONTIMG_GAIN_WARN_AGE_H "
                               "hours from the group."),
]


CALIBRATED_MS_DOC = """CORRECTED_DATA of the group from the registry's bandpass and gains valid at its time.

With no valid tables nothing is materialised (downstream never sees an uncalibrated
group): the group is recorded `awaiting` in ms_index, an observation says what is
missing, and the calibration sensor requests it again once a solution lands."""


# A multi_asset only to make the output and its checks skippable together (an @asset's
# check outputs stay required even with output_required=False).
@multi_asset(name="calibrated_ms", partitions_def=observation_groups, check_specs=GROUP_CHECKS,
             can_subset=True, description=CALIBRATED_MS_DOC, op_tags=celery_queue("calibration"),
             specs=[AssetSpec("calibrated_ms", deps=[measurement_set], group_name="calibration",
                              kinds={"casa"}, skippable=True, description=CALIBRATED_MS_DOC)])
def calibrated_ms(context: AssetExecutionContext, storage: StorageLayoutResource,
                  state: StateDatabasesResource) -> Iterator[MaterializeResult]:
    """See CALIBRATED_MS_DOC."""
    cal = CalibrationConfig.from_settings(storage.settings())
    with state.open() as store:
        try:
            outcome = calibrate_group(storage.layout(), store, context.partition_key, config=cal)
        except CalibrationError as exc:
            raise Failure(description=str(exc), allow_retries=False) from exc
    if outcome.status == "awaiting":
        context.log.info(f"{outcome.group_id} awaits calibration: {outcome.missing}")
        context.log_event(AssetObservation(asset_key="calibrated_ms", partition=context.partition_key,
                                           metadata={"calibration_status": "awaiting",
                                                     "missing": outcome.missing}))
        return
    selected = {key.name for key in context.selected_asset_check_keys}
    checks = [c for c in _group_checks(outcome, cal) if c.check_name in selected]
    yield MaterializeResult(asset_key="calibrated_ms", metadata=_group_metadata(outcome),
                            check_results=checks)


# -- metadata and checks -------------------------------------------------------------


def _solution_result(outcome: SolveOutcome, check: str, notifier: NotifierResource) -> MaterializeResult:
    """Metadata (tables, refant, quality, flags, plots) and the quality check (ERROR when
    failed); a failed set (registered failed, never active) also raises an alert."""
    if not outcome.active:
        notifier.notifier().notify("calibration_failed",
                                   f"{outcome.stage} solution on {outcome.group_id} failed its "
                                   "checks and is not applied: " + "; ".join(outcome.problems),
                                   group_id=outcome.group_id, problems=outcome.problems)
    return MaterializeResult(
        metadata=_solution_metadata(outcome),
        check_results=[AssetCheckResult(
            check_name=check, passed=outcome.active, severity=AssetCheckSeverity.ERROR,
            metadata={"problems": MetadataValue.json(outcome.problems),
                      **{f"{t.kind}_flagged": round(t.quality.flagged_fraction, 4) for t in outcome.tables},
                      **{f"{t.kind}_median_snr": round(t.quality.median_snr, 1) for t in outcome.tables},
                      **{f"{t.kind}_phase_scatter_deg": round(t.quality.phase_scatter_deg, 2)
                         for t in outcome.tables}})])


def _unsolvable_result(hour: str, reason: str, notifier: NotifierResource) -> MaterializeResult:
    """An hour whose gains cannot be solved at all: the reason, an alert, the failed check."""
    notifier.notifier().notify("calibration_failed", f"the gains of {hour} cannot be solved and "
                               f"neighbouring gains stand in: {reason}", problems=[reason])
    return MaterializeResult(
        metadata={"status": "unsolvable", "reason": reason},
        check_results=[AssetCheckResult(check_name="gain_quality", passed=False,
                                        severity=AssetCheckSeverity.ERROR,
                                        metadata={"problems": MetadataValue.json([reason])})])


def _solution_metadata(outcome: SolveOutcome) -> dict:
    rows = "| kind | table | flagged | median SNR | phase scatter (deg) |\n|---|---|---|---|---|\n"
    for table in outcome.tables:
        q = table.quality
        rows += (f"| {table.kind} | `{table.path}` | {q.flagged_fraction:.3f} | {q.median_snr:.1f} | "
                 f"{q.phase_scatter_deg:.2f} |\n")
    metadata = {
        "status": "active" if outcome.active else "failed",
        "group": outcome.group_id,
        "ms": MetadataValue.path(str(outcome.ms_path)),
        "calibrator": outcome.calibrator or "",
        "chosen_because": outcome.chosen_because,
        "refant": outcome.refant,
        "tables": MetadataValue.md(rows),
        "table_paths": MetadataValue.json([str(t.path) for t in outcome.tables]),
        "validity_h": MetadataValue.json(outcome.validity_h),
        "sky_model_components": outcome.n_components,
        "flags": MetadataValue.json(outcome.flags),
        "flag_fraction_after": outcome.flags.get("flag_fraction_after"),
        "seconds": MetadataValue.json({k: round(v, 2) for k, v in outcome.seconds.items()}),
    }
    for table in outcome.tables:
        metadata[f"plot_{table.kind}"] = _png_markdown(table.path)
    return metadata


def _png_markdown(table: Path) -> MetadataValue:
    """The table's amplitude/phase plot inline (a data URI, as storage_usage shows its plot)."""
    encoded = base64.b64encode(solution_png(table)).decode()
    return MetadataValue.md(f"![{table.name}](data:image/png;base64,{encoded})")


def _group_metadata(outcome: ApplyOutcome) -> dict:
    return {
        "calibration_status": outcome.status,
        "ms": MetadataValue.path(str(outcome.ms_path)),
        "kind": outcome.kind,
        "tables": MetadataValue.json(list(outcome.tables)),
        "table_names": ", ".join(Path(t).name for t in outcome.tables),
        "bandpass_set": outcome.bandpass_set,
        "gain_set": outcome.gain_set,
        "bandpass_age_h": round(outcome.bandpass_age_h or 0.0, 3),
        "gain_age_h": round(outcome.gain_age_h or 0.0, 3),
        "flagged_fraction": round(outcome.flagged_fraction or 0.0, 4),
        "calibrator_flux_ratio": round(outcome.flux_ratio, 4) if outcome.flux_ratio is not None else "",
        "apply_seconds": round(outcome.seconds, 2),
    }


def _group_checks(outcome: ApplyOutcome, cal: CalibrationConfig) -> list[AssetCheckResult]:
    flagged = outcome.flagged_fraction or 0.0
    if outcome.flux_ratio is None:
        flux = AssetCheckResult(check_name="calibrator_flux_scale", passed=True,
                                metadata={"note": "science group: no calibrator to compare"})
    else:
        flux = AssetCheckResult(check_name="calibrator_flux_scale",
                                passed=abs(outcome.flux_ratio - 1.0) <= cal.flux_tolerance,
                                severity=AssetCheckSeverity.ERROR,
                                metadata={"corrected_over_model": round(outcome.flux_ratio, 4),
                                          "tolerance": cal.flux_tolerance})
    return [
        AssetCheckResult(check_name="group_flagging", passed=flagged <= cal.max_group_flagged,
                         severity=AssetCheckSeverity.ERROR,
                         metadata={"flagged_fraction": round(flagged, 4), "limit": cal.max_group_flagged}),
        flux,
        _age_check("bandpass_age", outcome.bandpass_age_h, cal.bandpass_warn_age_h),
        _age_check("gain_age", outcome.gain_age_h, cal.gain_warn_age_h),
    ]


def _age_check(name: str, age_h: float | None, limit_h: float) -> AssetCheckResult:
    age = age_h or 0.0
    return AssetCheckResult(check_name=name, passed=age <= limit_h, severity=AssetCheckSeverity.WARN,
                            metadata={"age_h": round(age, 3), "limit_h": limit_h})
