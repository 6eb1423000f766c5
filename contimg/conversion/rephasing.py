"""One phase centre per group: the meridian at the group's midpoint, in ICRS.

The files are fringe-stopped on the meridian at every integration (a drift scan).
Calibration and imaging want one field, so every row is re-phased to the position
the pointing had at the middle of the group. The astrometry is pyuvdata's own, so
the result matches `UVData.phase()` followed by `write_ms` to float precision.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pyuvdata import UVData
from pyuvdata.utils.phasing import (
    calc_app_coords,
    calc_frame_pos_angle,
    calc_uvw,
    transform_app_to_icrs,
)

from contimg.uvh5_reading import READ_KWARGS

SPEED_OF_LIGHT = 299_792_458.0


@dataclass(frozen=True)
class Rephasing:
    """New uvw per row and the w change that rotates each visibility."""

    metadata: UVData  # metadata only (no data arrays) of the first subband
    ra_rad: float
    dec_rad: float
    uvw_m: np.ndarray  # (Nblt, 3), pyuvdata's sign convention
    delta_w_m: np.ndarray  # (Nblt,) new w - old w; zero when nothing moves

    def phasor(self, freq_hz: float) -> np.ndarray:
        """exp(-2πi ν Δw / c) for each row: multiplies the file's visibilities."""
        return np.exp(-2j * np.pi * freq_hz * self.delta_w_m / SPEED_OF_LIGHT)


def read_metadata(path: Path) -> UVData:
    """Header-only UVData of one file, uvw cast to float64 (the files store float32)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd = UVData.from_file(str(path), read_data=False, **READ_KWARGS)
    uvd.uvw_array = uvd.uvw_array.astype(np.float64)
    return uvd


def plan_rephasing(path: Path) -> Rephasing:
    """Choose the group's phase centre and compute new uvw and Δw from one file's header."""
    uvd = read_metadata(path)
    catalog = uvd.phase_center_catalog[uvd.phase_center_id_array[0]]
    if catalog["cat_type"] == "sidereal" and len(uvd.phase_center_catalog) == 1:
        # Already phased to a fixed sky position: keep it, nothing to rotate.
        return Rephasing(uvd, float(catalog["cat_lon"]), float(catalog["cat_lat"]),
                         uvd.uvw_array, np.zeros(uvd.Nblts))
    ra, dec = midpoint_centre(uvd)
    location = uvd.telescope.location
    unique_times, time_index = np.unique(uvd.time_array, return_inverse=True)
    app_ra, app_dec = calc_app_coords(lon_coord=ra, lat_coord=dec, coord_frame="icrs",
                                      coord_epoch=2000.0, time_array=unique_times,
                                      telescope_loc=location)
    frame_pa = calc_frame_pos_angle(time_array=unique_times, app_ra=app_ra, app_dec=app_dec,
                                    telescope_loc=location, ref_frame="icrs", ref_epoch=2000.0)
    uvw = calc_uvw(
        app_ra=app_ra[time_index], app_dec=app_dec[time_index], frame_pa=frame_pa[time_index],
        lst_array=uvd.lst_array, use_ant_pos=True,
        antenna_positions=uvd.telescope.antenna_positions,
        antenna_numbers=uvd.telescope.antenna_numbers,
        ant_1_array=uvd.ant_1_array, ant_2_array=uvd.ant_2_array,
        telescope_lat=location.lat.rad, telescope_lon=location.lon.rad,
    )
    return Rephasing(uvd, ra, dec, uvw, uvw[:, 2] - uvd.uvw_array[:, 2])


def midpoint_centre(uvd: UVData) -> tuple[float, float]:
    """ICRS (ra, dec) in radians of the data's phase centre at the middle of the group."""
    unique_times, first = np.unique(uvd.time_array, return_index=True)
    middle = len(unique_times) // 2
    if len(unique_times) % 2 == 0:
        # Even count: the midpoint lies between two integrations; interpolate the LST.
        lst = np.unwrap(uvd.phase_center_app_ra[first])
        app_ra = float(np.mean(lst[middle - 1:middle + 1])) % (2 * np.pi)
        time = float(np.mean(unique_times[middle - 1:middle + 1]))
    else:
        app_ra, time = float(uvd.phase_center_app_ra[first][middle]), float(unique_times[middle])
    app_dec = float(uvd.phase_center_app_dec[first][middle])
    ra, dec = transform_app_to_icrs(time_array=np.array([time]), app_ra=np.array([app_ra]),
                                    app_dec=np.array([app_dec]),
                                    telescope_loc=uvd.telescope.location)
    return float(np.ravel(ra)[0]), float(np.ravel(dec)[0])
