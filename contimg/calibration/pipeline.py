"""Solve in a workspace, check, place the tables atomically beside the calibrator MS,
then register the set in one transaction. Plain Python; the Dagster assets call it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from contimg import naming
from contimg.calibration.solve import CalibrationError, SolutionSet, SolvedTable
from contimg.conversion.staging import fresh_owned_directory, move_into_place
from contimg.instrument import GROUP_DURATION_S, SECONDS_PER_DAY
from contimg.layout import StorageLayout
from contimg.state import StateStore, products_db
from contimg.state.cal_registry_db import RegisteredTable, record_moved_aside, register_set
from contimg.timeutil import datetime_to_mjd

HOURS = 1.0 / 24.0


@dataclass(frozen=True)
class QualityLimits:
    """A solution failing any of these is never made active."""

    max_flagged_fraction: float = 0.3
    min_median_snr: float = 5.0
    max_phase_scatter_deg: float = 30.0


@dataclass(frozen=True)
class Validity:
    """How long each kind of table applies, centred on the solve's group."""

    bandpass_hours: float = 24.0
    gain_hours: float = 1.0
    gain_fallback_hours: float = 12.0  # neighbouring gains for a time whose own solve failed

    def window(self, kind: str, mid_mjd: float) -> tuple[float, float]:
        """(start, end) MJD of a table of `kind` solved on a group centred at `mid_mjd`."""
        hours = self.bandpass_hours if kind in ("kcal", "bpcal") else self.gain_hours
        return mid_mjd - hours * HOURS / 2, mid_mjd + hours * HOURS / 2


def quality_problems(solved: SolutionSet, limits: QualityLimits) -> list[str]:
    """Every table that fails a limit, with what it failed."""
    problems = []
    for table in solved.tables:
        q = table.quality
        if q.flagged_fraction > limits.max_flagged_fraction:
            problems.append(f"{table.path.name}: {q.flagged_fraction:.0%} of solutions flagged "
                            f"(limit {limits.max_flagged_fraction:.0%})")
        # CASA 6.7's delay solve leaves its SNR column at zero: no SNR limit for K.
        if table.kind != "kcal" and q.median_snr < limits.min_median_snr:
            problems.append(f"{table.path.name}: median SNR {q.median_snr:.1f} "
                            f"(limit {limits.min_median_snr})")
        if table.kind != "bpcal" and q.phase_scatter_deg > limits.max_phase_scatter_deg:
            problems.append(f"{table.path.name}: phase scatter {q.phase_scatter_deg:.1f} deg "
                            f"(limit {limits.max_phase_scatter_deg})")
    return problems


def workspace_for(layout: StorageLayout, group_iso: str) -> Path:
    """A fresh scratch directory for one group's solves (reaped like a conversion's
    workspace when the solving process is killed)."""
    return fresh_owned_directory(layout.staging_dir / f"cal-{naming.group_id(group_iso)}")


def place_and_register(solved: SolutionSet, layout: StorageLayout, store: StateStore, *,
                       source_ms: Path, calibrator: str | None, validity: Validity,
                       limits: QualityLimits) -> list[Path]:
    """Move the tables beside the calibrator MS (ms/calibrators/DATE/), then register
    them as one set: active when they pass the limits, else failed (and raise)."""
    problems = quality_problems(solved, limits)
    destination = layout.ms_date_dir("calibrators", solved.group_id)
    placed = [_place(table, destination, store) for table in solved.tables]
    mid = (datetime_to_mjd(naming.parse_timestamp(solved.group_id))
           + GROUP_DURATION_S / 2 / SECONDS_PER_DAY)
    set_id = f"{solved.group_id}/{'+'.join(t.kind for t in solved.tables)}/{time.time():.0f}"
    register_set(store, set_id=set_id, group_id=solved.group_id, source_ms=source_ms,
                 calibrator=calibrator, refant=solved.refant,
                 registered=[RegisteredTable(t.kind, path, t.quality.as_json(),
                                             t.quality.flagged_fraction)
                             for t, path in zip(solved.tables, placed, strict=True)],
                 windows={t.kind: validity.window(t.kind, mid) for t in solved.tables},
                 status="failed" if problems else "active")
    if problems:
        raise CalibrationError("solution failed its checks (kept as failed, not applied): "
                               + "; ".join(problems))
    return placed


def _place(table: SolvedTable, destination: Path, store: StateStore,
           now: Callable[[], float] = time.time) -> Path:
    """Atomic move into place; an earlier table of the same name is kept aside."""
    final = destination / table.path.name
    if final.exists():
        aside = final.with_name(f"{final.name}.superseded-{now():.0f}")
        final.rename(aside)
        record_moved_aside(store, final, aside)
        products_db.log_move(store, final, aside, action="supersede", actor="calibration",
                             reason="re-solved")
    move_into_place(table.path, final)
    products_db.log_move(store, table.path, final, action="move", actor="calibration",
                         reason=f"{table.kind} solved")
    return final
