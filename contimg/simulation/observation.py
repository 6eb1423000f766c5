"""Observation geometry: the telescope, the blt layout and per-source phase delays.

All directions go through pyuvdata's own astrometry (apparent coordinates and
`calc_uvw`), so simulated phases agree exactly with what pyuvdata, CASA and
WSClean assume when the data are re-phased and imaged.
"""

from __future__ import annotations

import warnings
from datetime import datetime
from itertools import combinations_with_replacement

import numpy as np
from astropy.coordinates import EarthLocation
from astropy.time import Time
from pyuvdata import Telescope, UVData
from pyuvdata.utils.phasing import calc_app_coords, calc_uvw

from contimg.simulation import instrument as inst

_WAVES_PER_SECOND_OF_W = 1.0 / 299_792_458.0


def site_location() -> EarthLocation:
    """The array reference position (≈37.2339 N, 118.2825 W, 1222 m)."""
    return EarthLocation.from_geodetic(inst.SITE_LON_DEG, inst.SITE_LAT_DEG, inst.SITE_HEIGHT_M)


def dsa110_telescope() -> Telescope:
    """All 117 stations, named "1".."117" and numbered 0..116, positions relative to the site."""
    site = site_location()
    stations = inst.load_station_positions()
    numbers = sorted(stations)
    lat, lon, height = (np.array([stations[n][i] for n in numbers]) for i in range(3))
    ecef = EarthLocation.from_geodetic(lon, lat, height)
    xyz = np.stack([ecef.x.value, ecef.y.value, ecef.z.value], axis=1)
    site_xyz = np.array([site.x.value, site.y.value, site.z.value])
    return Telescope.new(
        name=inst.TELESCOPE_NAME,
        location=site,
        instrument=inst.INSTRUMENT_NAME,
        antenna_names=[str(n) for n in numbers],
        antenna_numbers=np.array(numbers) - 1,
        antenna_positions=xyz - site_xyz,
        antenna_diameters=np.full(len(numbers), inst.DISH_DIAMETER_M),
        feed_array=np.tile(np.array(["x", "y"]), (len(numbers), 1)),
        feed_angle=np.tile(np.array([np.pi / 2, 0.0]), (len(numbers), 1)),
        mount_type=["fixed"] * len(numbers),
    )


def meridian_altaz(dec_deg: float) -> tuple[float, float]:
    """(azimuth, elevation) in radians of the meridian at a declination."""
    lat = inst.SITE_LAT_DEG
    elevation = 90.0 - abs(lat - dec_deg)
    azimuth = 180.0 if dec_deg < lat else 0.0
    return np.radians(azimuth), np.radians(elevation)


def template_uvdata(start: datetime, dec_deg: float, stations: list[int],
                    freqs_hz: np.ndarray, channel_width_hz: float) -> UVData:
    """Empty UVData of one subband: drift scan fringe-stopped on the meridian at `dec_deg`."""
    start_jd = Time(start).jd
    times = start_jd + (np.arange(inst.N_INTEGRATIONS) + 0.5) * inst.INTEGRATION_S / 86400.0
    antenna_numbers = [s - 1 for s in stations]
    azimuth, elevation = meridian_altaz(dec_deg)
    catalog = {0: {
        "cat_name": f"meridian_dec{dec_deg:+.2f}", "cat_type": "driftscan",
        "cat_lon": azimuth, "cat_lat": elevation, "cat_frame": "altaz",
        "cat_epoch": None, "cat_times": None, "cat_pm_ra": None, "cat_pm_dec": None,
        "cat_dist": None, "cat_vrad": None, "info_source": "user",
    }}
    with warnings.catch_warnings():
        # pyuvdata notes that it computes uvw "without adjusting visibility phases":
        # expected here, there are no visibilities yet.
        warnings.simplefilter("ignore")
        uvd = _new_uvdata(times, antenna_numbers, freqs_hz, channel_width_hz, catalog)
    uvd.extra_keywords["phase_center_dec"] = float(np.radians(dec_deg))
    return uvd


def _new_uvdata(times: np.ndarray, antenna_numbers: list[int], freqs_hz: np.ndarray,
                channel_width_hz: float, catalog: dict) -> UVData:
    return UVData.new(
        freq_array=np.asarray(freqs_hz, dtype=float),
        polarization_array=["xx", "yy"],
        times=times,
        telescope=dsa110_telescope(),
        antpairs=list(combinations_with_replacement(antenna_numbers, 2)),
        do_blt_outer=True,
        time_axis_faster_than_bls=False,
        integration_time=inst.INTEGRATION_S,
        channel_width=channel_width_hz,
        phase_center_catalog=catalog,
        update_telescope_from_known=False,
        vis_units="uncalib",
        empty=True,
    )


def apparent_position(uvd: UVData, ra_deg: float, dec_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Apparent (RA, Dec) in radians of a J2000 position at each unique time of the data."""
    unique_times = np.unique(uvd.time_array)
    app_ra, app_dec = calc_app_coords(
        lon_coord=np.radians(ra_deg), lat_coord=np.radians(dec_deg), coord_frame="icrs",
        coord_epoch=2000.0, time_array=unique_times, telescope_loc=uvd.telescope.location,
    )
    return (np.broadcast_to(app_ra, unique_times.shape).copy(),
            np.broadcast_to(app_dec, unique_times.shape).copy())


def source_w_offset_m(uvd: UVData, app_ra: np.ndarray, app_dec: np.ndarray) -> np.ndarray:
    """w(source) - w(phase centre) in metres for each blt, from per-time apparent coordinates.

    A source at that position has visibility phase exp(+2πi ν Δw / c) in data phased
    to the current centre: pyuvdata's convention, checked by phasing to the source
    (tests/test_simulator.py), which then leaves a constant real visibility.
    """
    _, time_index = np.unique(uvd.time_array, return_inverse=True)
    source_uvw = calc_uvw(
        app_ra=app_ra[time_index], app_dec=app_dec[time_index], lst_array=uvd.lst_array,
        use_ant_pos=True, antenna_positions=uvd.telescope.antenna_positions,
        antenna_numbers=uvd.telescope.antenna_numbers,
        ant_1_array=uvd.ant_1_array, ant_2_array=uvd.ant_2_array,
        telescope_lat=uvd.telescope.location.lat.rad,
        telescope_lon=uvd.telescope.location.lon.rad,
    )
    return source_uvw[:, 2] - uvd.uvw_array[:, 2]


def offset_from_pointing_rad(uvd: UVData, app_ra: np.ndarray, app_dec: np.ndarray) -> np.ndarray:
    """Angle between a source and the dish pointing (the phase centre) per unique time."""
    _, first = np.unique(uvd.time_array, return_index=True)
    centre_ra = uvd.phase_center_app_ra[first]
    centre_dec = uvd.phase_center_app_dec[first]
    cos_sep = (np.sin(app_dec) * np.sin(centre_dec)
               + np.cos(app_dec) * np.cos(centre_dec) * np.cos(app_ra - centre_ra))
    return np.arccos(np.clip(cos_sep, -1.0, 1.0))
