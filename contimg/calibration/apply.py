"""Apply calibration tables to an MS: CORRECTED_DATA from DATA with CASA `applycal`."""

from __future__ import annotations

from pathlib import Path

from contimg.state.cal_registry_db import ApplySet


def apply_tables(ms: Path, tables: ApplySet) -> None:
    """Write CORRECTED_DATA = DATA corrected by the set's tables (in their apply order).

    Idempotent: it always starts from DATA, so an apply cut short is simply done again;
    the products database says whether a group's CORRECTED_DATA is complete.
    """
    from casatasks import applycal

    applycal(vis=str(ms), gaintable=list(tables.paths), interp=tables.interp, calwt=False,
             flagbackup=False, applymode="calflag")
