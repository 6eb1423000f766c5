"""One phase centre per group: the meridian at the group's midpoint, in ICRS.

The files are fringe-stopped on the meridian at every integration (a drift scan).
Calibration and imaging want one field, so every row is re-phased to the position
the pointing had at the middle of the group. The astrometry is pyuvdata's own, so
the result matches `UVData.phase()` followed by `write_ms` to float precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pyuvdata.utils.phasing import (
    calc_app_coords,
    calc_frame_pos_angle,
    calc_uvw,
    transform_app_to_icrs,
)

from contimg.astro_offline import configure_offline_astropy
from contimg.conversion.uvh5_header import HeaderMetadata, read_header_metadata
from contimg.instrument import SPEED_OF_LIGHT_M_S


@dataclass(frozen=True)
class Rephasing:
    """New uvw per row and the w change that rotates each visibility."""

    metadata: HeaderMetadata  # header of the first subband (shared by the group)
    ra_rad: float
    dec_rad: float
    uvw_m: np.ndarray  # (Nblt, 3), pyuvdata's sign convention
    delta_w_m: np.ndarray  # (Nblt,) new w - old w; zero when nothing moves

    def phasor(self, freq_hz: float) -> np.ndarray:
        """exp(-2πi ν Δw / c) for each row: multiplies the file's visibilities."""
        return np.exp(-2j * np.pi * freq_hz * self.delta_w_m / SPEED_OF_LIGHT_M_S)


def plan_rephasing(path: Path) -> Rephasing:
    """Choose the group's phase centre and compute new uvw and Δw from one file's header."""
    configure_offline_astropy()
    meta = read_header_metadata(path)
    centre = meta.phase_centre
    if centre.cat_type == "sidereal":
        # Already phased to a fixed sky position: keep it, nothing to rotate.
        return Rephasing(meta, centre.lon_rad, centre.lat_rad, meta.uvw_m, np.zeros(meta.n_rows))
    unique_times, first, time_index = np.unique(meta.time_jd, return_index=True,
                                                return_inverse=True)
    ra, dec = midpoint_centre(meta, unique_times, meta.lst_rad[first])
    location = meta.location
    app_ra, app_dec = calc_app_coords(lon_coord=ra, lat_coord=dec, coord_frame="icrs",
                                      coord_epoch=2000.0, time_array=unique_times,
                                      telescope_loc=location)
    frame_pa = calc_frame_pos_angle(time_array=unique_times, app_ra=app_ra, app_dec=app_dec,
                                    telescope_loc=location, ref_frame="icrs", ref_epoch=2000.0)
    uvw = calc_uvw(
        app_ra=app_ra[time_index], app_dec=app_dec[time_index], frame_pa=frame_pa[time_index],
        lst_array=meta.lst_rad, use_ant_pos=True,
        antenna_positions=meta.antenna_positions_m, antenna_numbers=meta.antenna_numbers,
        ant_1_array=meta.ant_1, ant_2_array=meta.ant_2,
        telescope_lat=location.lat.rad, telescope_lon=location.lon.rad,
    )
    return Rephasing(meta, ra, dec, uvw, uvw[:, 2] - meta.uvw_m[:, 2])


def midpoint_centre(meta: HeaderMetadata, unique_times: np.ndarray,
                    unique_lsts: np.ndarray) -> tuple[float, float]:
    """ICRS (ra, dec) in radians of the drift-scan pointing at the middle of the group.

    DSA-110 profile: files carry the pointing declination in
    `extra_keywords/phase_center_dec` and are fringe-stopped on the meridian, so the
    centre is (HA 0, that declination) — even when the header calls the data
    "drift"/unprojected. Other files: their own driftscan (or zenith) position.
    """
    middle = len(unique_times) // 2
    if len(unique_times) % 2 == 0:
        # Even count: the midpoint lies between two integrations.
        time = float(np.mean(unique_times[middle - 1:middle + 1]))
        lst = float(np.mean(np.unwrap(unique_lsts[middle - 1:middle + 1]))) % (2 * np.pi)
    else:
        time, lst = float(unique_times[middle]), float(unique_lsts[middle])
    centre = meta.phase_centre
    if meta.pointing_dec_rad is not None:
        app_ra, app_dec = lst, meta.pointing_dec_rad  # the meridian: hour angle zero
    else:
        app_ra, app_dec = calc_app_coords(
            lon_coord=centre.lon_rad, lat_coord=centre.lat_rad, coord_type="driftscan",
            time_array=np.array([time]), lst_array=np.array([lst]),
            telescope_loc=meta.location)
    ra, dec = transform_app_to_icrs(time_array=np.array([time]), app_ra=np.atleast_1d(app_ra),
                                    app_dec=np.atleast_1d(app_dec),
                                    telescope_loc=meta.location)
    return float(np.ravel(ra)[0]), float(np.ravel(dec)[0])
