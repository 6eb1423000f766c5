"""The three calibration stages the Dagster assets call (plain Python, no Dagster).

- `solve_bandpass_for_day`: the day's best calibrator transit -> [K], B, gp, 2g.
- `solve_gains_for_hour`: a calibrator transit in the hour, else a science group against
  the NVSS model, with the active bandpass applied -> gp, 2g.
- `calibrate_group`: the registry's tables for the group's time -> CORRECTED_DATA, and the
  group's calibration state in the products database.

Each stage works on the MS in the organised tree under the group's lock (the one
conversion takes), so a solve, an apply and a conversion of one group never overlap.
Solves write their tables in a workspace; `place_and_register` moves them beside the
calibrator-day MS directory and registers the set in one transaction.

The best calibrator transit of a day is the one with the largest *beam-weighted* flux:
the VLA catalogue's 1.4 GHz flux of the calibrator `ms_index` names, times the peak
Airy power (band centre) it reaches during the drift through the group's pointing. The
catalogue flux alone would prefer a bright source passing far off the beam centre.

Calibration state of a group (`ms_index.calibration_status`): `awaiting` (no valid
tables: the calibration sensor asks again once `tables_for` finds them), `calibrating`
(an apply started; a killed apply leaves this and the next run redoes the apply from
DATA — the MS itself is never half-calibrated: the own apply writes scratch columns and
swaps them in whole, `contimg.calibration.column_commit`), `calibrated` (CORRECTED_DATA
complete; `cal_tables` names the tables), `failed`.
Downstream stages must trust only `calibrated`.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from casacore import tables

from contimg import naming
from contimg.calibration.apply import apply_tables
from contimg.calibration.flagging import flag_ms
from contimg.calibration.pipeline import (
    QualityLimits,
    Validity,
    place_and_register,
    quality_problems,
    workspace_for,
)
from contimg.calibration.predict import predict_model_data
from contimg.calibration.sky_model import SkyModelSettings, pointing_from_ms, sky_model_for_ms
from contimg.calibration.solve import (
    CalibrationError,
    SolutionSet,
    SolveOptions,
    TableQuality,
    solve_calibrator,
    solve_gains,
)
from contimg.catalogs.vlacals import load_calibrators
from contimg.conversion.isolation import ConverterCrashedError, run_in_child
from contimg.conversion.staging import keep_for_operator
from contimg.ingest.group_lock import waiting_group_lock
from contimg.layout import StorageLayout
from contimg.state import StateStore, products_db
from contimg.state.cal_registry_db import bandpass_at, record_unsolvable, set_tables, tables_for
from contimg.timeutil import datetime_to_mjd

ROWS_PER_CHUNK = 8192


class EmptySkyModelError(CalibrationError):
    """No catalogue source in the group's beam above the flux floor: nothing to solve on."""


@dataclass(frozen=True)
class CalibrationConfig:
    """Every calibration setting, read once from the validated settings."""

    options: SolveOptions = SolveOptions()
    validity: Validity = Validity()
    limits: QualityLimits = QualityLimits()
    sky: SkyModelSettings | None = None  # None: from the platform's settings
    bandpass_warn_age_h: float = 24.0
    gain_warn_age_h: float = 1.0
    gap_alert_min: float = 15.0
    max_group_flagged: float = 0.5
    flux_tolerance: float = 0.1

    @classmethod
    def from_settings(cls, settings) -> CalibrationConfig:
        """From a `contimg.settings.Settings` (the CONTIMG_* calibration section)."""
        return cls(
            options=SolveOptions(refant=str(settings["CONTIMG_CAL_REFANT"]) or None,
                                 do_k=bool(settings["CONTIMG_CAL_DO_K"]),
                                 short_solint=str(settings["CONTIMG_CAL_GAIN_SOLINT"])),
            validity=Validity(bandpass_hours=float(settings["CONTIMG_BANDPASS_VALIDITY_H"]),
                              gain_hours=float(settings["CONTIMG_GAIN_VALIDITY_H"]),
                              gain_fallback_hours=float(settings["CONTIMG_GAIN_FALLBACK_H"])),
            limits=QualityLimits(max_flagged_fraction=float(settings["CONTIMG_CAL_MAX_FLAGGED"]),
                                 min_median_snr=float(settings["CONTIMG_CAL_MIN_SNR"]),
                                 max_phase_scatter_deg=float(settings["CONTIMG_CAL_MAX_PHASE_SCATTER_DEG"])),
            sky=SkyModelSettings.from_settings(settings),
            bandpass_warn_age_h=float(settings["CONTIMG_BANDPASS_WARN_AGE_H"]),
            gain_warn_age_h=float(settings["CONTIMG_GAIN_WARN_AGE_H"]),
            gap_alert_min=float(settings["CONTIMG_CAL_GAP_ALERT_MIN"]),
            max_group_flagged=float(settings["CONTIMG_CAL_MAX_GROUP_FLAGGED"]),
            flux_tolerance=float(settings["CONTIMG_CAL_FLUX_TOLERANCE"]),
        )


@dataclass(frozen=True)
class PlacedTable:
    """One table of a solve, where it now lives, and its quality."""

    kind: str
    path: Path
    quality: TableQuality


@dataclass
class SolveOutcome:
    """What one solve did, for the asset's metadata and checks."""

    stage: str  # bandpass or gain
    group_id: str
    ms_path: Path
    calibrator: str | None
    chosen_because: str
    refant: str = ""
    tables: list[PlacedTable] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # empty: the set is active
    flags: dict[str, object] = field(default_factory=dict)
    n_components: int = 0
    validity_h: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """True when the set passed its limits and is in use."""
        return not self.problems


@dataclass
class ApplyOutcome:
    """What `calibrate_group` did to one group."""

    group_id: str
    status: str  # awaiting or calibrated
    ms_path: Path
    kind: str
    missing: str = ""  # why a group awaits
    tables: tuple[str, ...] = ()
    bandpass_set: str = ""
    gain_set: str = ""
    bandpass_age_h: float | None = None  # |group time - time of the group it was solved on|
    gain_age_h: float | None = None
    flagged_fraction: float | None = None  # cross-correlations, after the apply
    flux_ratio: float | None = None  # calibrator groups: corrected / model amplitude
    seconds: float = 0.0


# -- the stages ----------------------------------------------------------------------


def solve_bandpass_for_day(layout: StorageLayout, store: StateStore, day: str, *,
                           group: str | None = None, config: CalibrationConfig = CalibrationConfig(),
                           ) -> SolveOutcome:
    """Solve the daily set on `day`'s best calibrator transit (or the operator's `group`)."""
    start = datetime_to_mjd(datetime.strptime(day, naming.DATE_FORMAT).replace(tzinfo=UTC))
    candidates = products_db.converted_between(store, start, start + 1.0, kind="calibrators")
    if group is not None:
        candidates = [r for r in candidates if r["group_id"] == naming.iso_timestamp(group)]
        if not candidates:
            raise CalibrationError(f"{group} is not a converted calibrator group of {day}; "
                                   "`contimg groups` and ms_index list them.")
        row, because = candidates[0], "named by the operator"
    elif not candidates:
        raise CalibrationError(f"no converted calibrator transit on {day}; the bandpass is "
                               "solved once one is converted.")
    else:
        row, because = _brightest_transit(candidates)
    outcome = SolveOutcome("bandpass", row["group_id"], Path(row["path"]), row["calibrator"], because)
    with waiting_group_lock(layout, outcome.group_id):
        ms = outcome.ms_path
        _model_and_flag(ms, config, outcome)
        work = workspace_for(layout, outcome.group_id)
        try:
            lap = time.perf_counter()
            solved = _solve_in_child(layout, store, work, outcome.group_id, solve_calibrator, ms, work,
                                     outcome.group_id, config.options)
            outcome.seconds["solve"] = time.perf_counter() - lap
            # The set's gains cover the transit's whole hour, as an hourly solve's do: the
            # hour's own gain solve is skipped when this set has them (gains_solved_since),
            # so a narrower window left the hour's first groups with no gains at all.
            mid = (row["start_mjd"] + row["end_mjd"]) / 2
            hour = math.floor(mid * 24.0) / 24.0
            validity = widened_to_hour(config.validity, mid, hour, hour + 1.0 / 24.0)
            _place(solved, layout, store, outcome, validity, config.limits)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return outcome


def solve_gains_for_hour(layout: StorageLayout, store: StateStore, hour_start: datetime, *,
                         config: CalibrationConfig = CalibrationConfig()) -> SolveOutcome:
    """Solve gp + 2g for one hour: on its calibrator transit when there is one, else on
    the converted science group nearest the hour's middle, with the active bandpass."""
    start = datetime_to_mjd(hour_start)
    end = start + 1.0 / 24.0
    rows = products_db.converted_between(store, start, end)
    if not rows:
        raise CalibrationError(f"no converted group in the hour from {hour_start:%Y-%m-%d %H:%M}")
    row, because = _gain_group(rows, (start + end) / 2)
    mid = (row["start_mjd"] + row["end_mjd"]) / 2
    bandpass = bandpass_at(store, mid)
    if bandpass is None:
        raise CalibrationError(f"no active bandpass valid at {row['group_id']}: the hourly gains "
                               "need one; they are requested again when a bandpass lands.")
    outcome = SolveOutcome("gain", row["group_id"], Path(row["path"]), row["calibrator"], because)
    validity = widened_to_hour(config.validity, mid, start, end)
    with waiting_group_lock(layout, outcome.group_id):
        try:
            _model_and_flag(outcome.ms_path, config, outcome)
        except EmptySkyModelError as exc:
            # Permanent for this field: recorded, so its groups take neighbouring gains
            # (CONTIMG_GAIN_FALLBACK_H) instead of waiting for gains that never come.
            record_unsolvable(store, kind="2gcal", group_id=outcome.group_id,
                              window=validity.window("2gcal", mid), reason=str(exc))
            raise
        work = workspace_for(layout, outcome.group_id)
        try:
            lap = time.perf_counter()
            solved = _solve_in_child(layout, store, work, outcome.group_id, solve_gains,
                                     outcome.ms_path, work, outcome.group_id, list(bandpass.paths),
                                     config.options)
            outcome.seconds["solve"] = time.perf_counter() - lap
            _place(solved, layout, store, outcome, validity, config.limits)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    outcome.flags["bandpass_applied"] = list(bandpass.paths)
    return outcome


def _solve_in_child(layout: StorageLayout, store: StateStore, work: Path, group_iso: str,
                    solver, *args):
    """Run a CASA solver in a child process (CASA aborts its whole process when a write
    fails, a full disk say, and may crash outright). When the child dies, what it left in
    the workspace (CASA's log and partial tables) is kept in ms/failed/DATE/ with the
    reason, the move is logged, and a CalibrationError names the group, the reason, the
    place and the fix."""
    try:
        return run_in_child(solver, *args, start_method="spawn")
    except ConverterCrashedError as exc:
        reason = f"{solver.__name__} crashed: {exc}"
        kept = keep_for_operator(work, layout.ms_date_dir("failed", group_iso) / (
            f"{work.name}.failed-{time.strftime('%Y%m%dT%H%M%S')}"), reason)
        if kept is not None:
            products_db.log_move(store, work, kept, action="quarantine", actor="calibration",
                                 reason=reason[:2000])
        where = f"its workspace is kept in {kept}" if kept else "its workspace could not be kept"
        raise CalibrationError(
            f"the solve on {group_iso} failed: {reason}; {where}. Fix the cause (the CASA log "
            "there says it), then materialise the solution's partition again.") from exc


def calibrate_group(layout: StorageLayout, store: StateStore, group_id: str, *,
                    config: CalibrationConfig = CalibrationConfig()) -> ApplyOutcome:
    """Apply the registry's tables for the group's time (CORRECTED_DATA) and record the
    state; with no valid tables the group is left `awaiting` (not an error)."""
    group_iso = naming.iso_timestamp(group_id)
    row = products_db.ms_record(store, group_iso)
    if row is None or row["status"] != "converted":
        raise CalibrationError(f"group {group_iso} has no converted MS in ms_index; convert it first.")
    began = time.perf_counter()
    outcome = ApplyOutcome(group_iso, "awaiting", Path(row["path"]), row["kind"])
    mid = (row["start_mjd"] + row["end_mjd"]) / 2
    with waiting_group_lock(layout, group_iso):
        found = tables_for(store, mid, gain_fallback_h=config.validity.gain_fallback_hours)
        if found is None:
            outcome.missing = _what_is_missing(store, mid)
            products_db.set_calibration_status(store, group_iso, "awaiting", note=outcome.missing)
            return outcome
        products_db.set_calibration_status(store, group_iso, "calibrating", tables=list(found.paths))
        try:
            run_in_child(apply_tables, outcome.ms_path, found, start_method="spawn")
            _measure_group(outcome, row["kind"] == "calibrators", config)
        except Exception as exc:
            products_db.set_calibration_status(store, group_iso, "failed", tables=list(found.paths),
                                               note=f"{type(exc).__name__}: {exc}")
            raise
        products_db.set_calibration_status(store, group_iso, "calibrated", tables=list(found.paths))
    outcome.status, outcome.tables = "calibrated", found.paths
    outcome.bandpass_set, outcome.gain_set = found.bandpass_set, found.gain_set
    outcome.bandpass_age_h = _set_age_h(store, found.bandpass_set, mid)
    outcome.gain_age_h = _set_age_h(store, found.gain_set, mid)
    outcome.seconds = time.perf_counter() - began
    return outcome


# -- helpers -------------------------------------------------------------------------


def widened_to_hour(validity: Validity, mid: float, start: float, end: float) -> Validity:
    """The gain window stays centred on its group but covers the whole hour partition:
    a calibrator transiting at 10:05 must still calibrate the groups at 10:50."""
    half_h = max(mid - start, end - mid) * 24.0
    return replace(validity, gain_hours=max(validity.gain_hours, 2.0 * half_h))


def hour_start_of(key: str) -> datetime:
    """The start of an hourly partition key (`YYYY-MM-DD-HH:MM`, Dagster's format)."""
    return datetime.strptime(key, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)


def beam_weighted_flux(ms: Path, calibrator: str | None) -> float:
    """Catalogue 1.4 GHz flux of the named calibrator x its peak beam power (band centre)
    during the group's drift; 0 when the calibrator is unknown."""
    listed = {name: cal for cal in load_calibrators() for name in (cal.name, *cal.alt_names)}
    cal = listed.get(calibrator or "")
    if cal is None:
        return 0.0
    pointing = pointing_from_ms(ms)
    centre = np.array([float(np.mean(pointing.freqs_hz))])
    power = pointing.beam_power(np.array([cal.ra_deg]), np.array([cal.dec_deg]), centre)
    return float(cal.flux_jy * power.max())


def _brightest_transit(rows: list) -> tuple:
    """The calibrator group with the largest beam-weighted flux, and why."""
    fluxes = [beam_weighted_flux(Path(r["path"]), r["calibrator"]) for r in rows]
    best = int(np.argmax(fluxes))
    listing = ", ".join(f"{r['group_id']} {r['calibrator']} {f:.2f} Jy"
                        for r, f in zip(rows, fluxes, strict=True))
    return rows[best], f"largest beam-weighted flux of the day ({listing})"


def _gain_group(rows: list, middle: float) -> tuple:
    """A calibrator transit of the hour (the first) if any, else the group nearest the middle."""
    calibrators = [r for r in rows if r["kind"] == "calibrators"]
    if calibrators:
        return calibrators[0], f"calibrator transit of the hour ({calibrators[0]['calibrator']})"
    nearest = min(rows, key=lambda r: abs((r["start_mjd"] + r["end_mjd"]) / 2 - middle))
    return nearest, "science group nearest the hour's middle (NVSS model)"


def _model_and_flag(ms: Path, config: CalibrationConfig, outcome: SolveOutcome) -> None:
    """MODEL_DATA from the sky model, then flagging (autos, zeros, RFI) before the solve."""
    lap = time.perf_counter()
    components = sky_model_for_ms(ms, config.sky)
    if not components:
        raise EmptySkyModelError(f"the sky model of {ms.name} is empty (no catalogue source in "
                                 "the beam above the flux floor): nothing to solve against.")
    predict_model_data(ms, components)
    outcome.n_components = len(components)
    outcome.seconds["model"] = time.perf_counter() - lap
    lap = time.perf_counter()
    outcome.flags = flag_ms(ms).metadata()
    outcome.seconds["flag"] = time.perf_counter() - lap


def _place(solved: SolutionSet, layout: StorageLayout, store: StateStore, outcome: SolveOutcome,
           validity: Validity, limits: QualityLimits) -> None:
    """Place and register; a set failing its limits is registered failed (never active)."""
    outcome.refant = solved.refant
    outcome.problems = quality_problems(solved, limits)
    outcome.validity_h = {"bandpass": validity.bandpass_hours, "gain": round(validity.gain_hours, 3)}
    destination = layout.ms_date_dir("calibrators", solved.group_id)
    placed = [PlacedTable(t.kind, destination / t.path.name, t.quality) for t in solved.tables]
    try:
        place_and_register(solved, layout, store, source_ms=outcome.ms_path,
                           calibrator=outcome.calibrator, validity=validity, limits=limits)
    except CalibrationError:
        if not outcome.problems:
            raise  # not a quality failure: something else went wrong
    outcome.tables = placed


def _what_is_missing(store: StateStore, mid: float) -> str:
    """Why no tables apply at `mid`: which kind is missing."""
    when = _mjd_text(mid)
    if bandpass_at(store, mid) is None:
        return f"no active bandpass valid at {when}"
    return f"no active gains valid at {when}"


def _set_age_h(store: StateStore, set_id: str, mid: float) -> float | None:
    """Hours between a group and the group its set was solved on (the window's centre)."""
    rows = set_tables(store, set_id)
    if not rows:
        return None
    centre = (rows[0]["valid_start_mjd"] + rows[0]["valid_end_mjd"]) / 2
    return abs(mid - centre) * 24.0


def _measure_group(outcome: ApplyOutcome, calibrator: bool, config: CalibrationConfig) -> None:
    """Flagged fraction (cross-correlations) after the apply; on a calibrator group the
    least-squares amplitude of CORRECTED_DATA against MODEL_DATA (predicted if absent)."""
    ms = outcome.ms_path
    if calibrator:
        with tables.table(str(ms), ack=False) as main:
            has_model = "MODEL_DATA" in main.colnames()
        if not has_model:
            predict_model_data(ms, sky_model_for_ms(ms, config.sky))
    flagged = total = 0
    cross = model_power = 0.0
    with tables.table(str(ms), ack=False) as main:
        for start in range(0, main.nrows(), ROWS_PER_CHUNK):
            count = min(ROWS_PER_CHUNK, main.nrows() - start)
            keep = main.getcol("ANTENNA1", start, count) != main.getcol("ANTENNA2", start, count)
            flags = main.getcol("FLAG", start, count)[keep]
            flagged += int(flags.sum())
            total += flags.size
            if calibrator:
                good = ~flags
                data = main.getcol("CORRECTED_DATA", start, count)[keep][good]
                model = main.getcol("MODEL_DATA", start, count)[keep][good]
                cross += float(np.real(np.sum(data * np.conj(model))))
                model_power += float(np.sum(np.abs(model) ** 2))
    outcome.flagged_fraction = flagged / total if total else 1.0
    if calibrator:
        outcome.flux_ratio = cross / model_power if model_power else 0.0


def _mjd_text(mjd: float) -> str:
    moment = datetime(1858, 11, 17, tzinfo=UTC) + timedelta(days=mjd)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")
