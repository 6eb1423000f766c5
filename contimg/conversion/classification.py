"""Calibrator or science? A bright VLA calibrator transiting inside the beam decides."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.time import Time

from contimg.catalogs.vlacals import Calibrator, load_calibrators
from contimg.instrument import SIDEREAL_DAY_S, SITE_LON_DEG

DEFAULT_FLUX_FLOOR_JY = 5.0
DEFAULT_MAX_DEC_OFFSET_DEG = 1.5  # FWHM is 3.3-4 deg: well inside the primary beam


@dataclass(frozen=True)
class Classification:
    """The MS kind, and the calibrator that made it one (if any)."""

    kind: str  # "calibrators" or "science"
    calibrator: str | None = None
    calibrator_flux_jy: float | None = None
    transit_mjd: float | None = None
    dec_offset_deg: float | None = None


def classify_group(start_mjd: float, end_mjd: float, pointing_dec_deg: float | None, *,
                   flux_floor_jy: float = DEFAULT_FLUX_FLOOR_JY,
                   max_dec_offset_deg: float = DEFAULT_MAX_DEC_OFFSET_DEG) -> Classification:
    """Calibrator when a calibrator above the flux floor transits during the group
    within `max_dec_offset_deg` of the pointing declination; otherwise science."""
    if pointing_dec_deg is None:
        return Classification("science")
    lst_start, lst_end = (Time([start_mjd, end_mjd], format="mjd", scale="utc")
                          .sidereal_time("apparent", longitude=SITE_LON_DEG).degree)
    span = (lst_end - lst_start) % 360.0
    best: tuple[float, Calibrator, float] | None = None
    for cal in load_calibrators():
        offset = abs(cal.dec_deg - pointing_dec_deg)
        if cal.flux_jy < flux_floor_jy or offset > max_dec_offset_deg:
            continue
        into = (cal.ra_deg - lst_start) % 360.0  # degrees of sidereal rotation until transit
        if into <= span and (best is None or cal.flux_jy > best[1].flux_jy):
            best = (offset, cal, into)
    if best is None:
        return Classification("science")
    offset, cal, into = best
    transit = start_mjd + into / 360.0 * SIDEREAL_DAY_S / 86400.0
    return Classification("calibrators", cal.name, cal.flux_jy, float(np.round(transit, 8)),
                          offset)
