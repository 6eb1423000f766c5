"""The metadata a conversion needs, read straight from a UVH5 header with h5py.

Reading the header through pyuvdata costs seconds per process (it JIT-compiles
baseline helpers); the converter needs only these arrays, so it reads them itself.
Handles current files (a `phase_center_catalog` group) and older ones
(`phase_type` = "drift" or "phased") such as the DSA-110 correlator's, which carry
no `lst_array` (computed here from the times and the site, once per unique time,
offline) and may give times in MJD rather than JD.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from astropy.coordinates import EarthLocation
from pyuvdata.utils import get_lst_for_time

from contimg.astro_offline import configure_offline_astropy
from contimg.instrument import MJD_OFFSET_JD


@dataclass(frozen=True)
class PhaseCentre:
    """The phase centre the file's data are fringe-stopped on."""

    cat_type: str  # "sidereal", "driftscan" or "unprojected"
    lon_rad: float  # RA (sidereal) or azimuth (driftscan)
    lat_rad: float  # Dec (sidereal) or elevation (driftscan)
    frame: str


@dataclass(frozen=True)
class HeaderMetadata:
    """Per-row arrays and telescope facts of one subband file (shared by the group)."""

    time_jd: np.ndarray
    lst_rad: np.ndarray
    integration_s: np.ndarray
    ant_1: np.ndarray
    ant_2: np.ndarray
    uvw_m: np.ndarray  # float64, pyuvdata sign convention
    telescope_name: str
    location: EarthLocation
    antenna_names: list[str]
    antenna_numbers: np.ndarray
    antenna_positions_m: np.ndarray  # relative ECEF
    antenna_diameters_m: np.ndarray
    phase_centre: PhaseCentre
    pointing_dec_rad: float | None = None  # DSA-110: extra_keywords/phase_center_dec

    @property
    def n_rows(self) -> int:
        """Number of baseline-times (MS rows)."""
        return int(self.time_jd.size)


def read_header_metadata(path: Path) -> HeaderMetadata:
    """Read the arrays the converter needs from one file's header."""
    with h5py.File(path, "r") as handle:
        header = handle["Header"]
        numbers = np.asarray(header["antenna_numbers"][()]).astype(np.int32)
        n_ants = int(header["Nants_telescope"][()]) if "Nants_telescope" in header else numbers.size
        diameters = (np.broadcast_to(np.asarray(header["antenna_diameters"][()], float), (n_ants,))
                     if "antenna_diameters" in header else np.full(n_ants, np.nan))
        location = _location(header)
        time_jd = as_julian_date(np.asarray(header["time_array"][()], float))
        return HeaderMetadata(
            time_jd=time_jd,
            lst_rad=(np.asarray(header["lst_array"][()], float) if "lst_array" in header
                     else lsts_for(time_jd, location)),
            integration_s=np.asarray(header["integration_time"][()], float),
            ant_1=header["ant_1_array"][()].astype(np.int32),
            ant_2=header["ant_2_array"][()].astype(np.int32),
            uvw_m=header["uvw_array"][()].astype(np.float64),
            telescope_name=_text(header["telescope_name"][()]),
            location=location,
            antenna_names=[_text(n) for n in header["antenna_names"][()]],
            antenna_numbers=numbers,
            antenna_positions_m=header["antenna_positions"][()].astype(np.float64),
            antenna_diameters_m=np.array(diameters, float),
            phase_centre=_phase_centre(header),
            pointing_dec_rad=(float(header["extra_keywords/phase_center_dec"][()])
                              if "extra_keywords/phase_center_dec" in header else None),
        )


def as_julian_date(times: np.ndarray) -> np.ndarray:
    """Times as JD: UVH5 stores JD, but a writer documented as taking MJD could store
    those (a JD today is ~2.46e6, an MJD ~6.1e4): MJD values are converted."""
    if times.size and float(np.nanmax(times)) < 1_000_000.0:
        return times + MJD_OFFSET_JD
    return times


def lsts_for(time_jd: np.ndarray, location: EarthLocation) -> np.ndarray:
    """Apparent local sidereal time (radians) of each time, computed once per unique
    time with pyuvdata's own routine (the one its reader uses), offline."""
    configure_offline_astropy()
    unique, inverse = np.unique(time_jd, return_inverse=True)
    return np.asarray(get_lst_for_time(unique, telescope_loc=location), float)[inverse]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _location(header: h5py.Group) -> EarthLocation:
    if "latitude" in header:
        return EarthLocation.from_geodetic(lon=float(header["longitude"][()]),
                                           lat=float(header["latitude"][()]),
                                           height=float(header["altitude"][()]))
    x, y, z = header["telescope_location"][()]
    return EarthLocation.from_geocentric(x, y, z, unit="m")


def _phase_centre(header: h5py.Group) -> PhaseCentre:
    if "phase_center_catalog" in header:
        catalog = header["phase_center_catalog"]
        entries = list(catalog.values())
        if len(entries) != 1:
            raise ValueError(f"{len(entries)} phase centres in one file; contimg converts "
                             "single-centre files only")
        entry = entries[0]
        cat_type = _text(entry["cat_type"][()])
        lon = float(entry["cat_lon"][()]) if "cat_lon" in entry else 0.0
        lat = float(entry["cat_lat"][()]) if "cat_lat" in entry else np.pi / 2
        frame = _text(entry["cat_frame"][()]) if "cat_frame" in entry else "altaz"
        return PhaseCentre(cat_type, lon, lat, frame)
    phase_type = _text(header["phase_type"][()]) if "phase_type" in header else "drift"
    if phase_type == "phased":
        return PhaseCentre("sidereal", float(header["phase_center_ra"][()]),
                           float(header["phase_center_dec"][()]), "icrs")
    return PhaseCentre("unprojected", 0.0, np.pi / 2, "altaz")
