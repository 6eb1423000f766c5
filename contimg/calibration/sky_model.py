"""The sky model of a group: catalogue point sources seen by the drift-scan primary beam.

Components come from NVSS (read from `CONTIMG_NVSS_CATALOG`, never from a simulator's
truth) and from the VLA calibrator list, which replaces every NVSS component within
MATCH_RADIUS_ARCSEC of it (its 20 cm flux is a total flux and it carries a spectral
index); a calibrator NVSS does not list is left out (north of NVSS's southern limit). A source is kept when,
at some integration of the group, it sits inside the primary beam down to
`CONTIMG_SKY_BEAM_LEVEL` of the peak power (at the band's lowest frequency, where the
beam is widest) and its apparent flux (1.4 GHz flux x peak beam power at the band
centre) is at least `CONTIMG_SKY_FLUX_FLOOR_JY`.

The pointing: DSA-110 stares at a fixed hour angle (the meridian) at a fixed apparent
declination while the sky drifts through. The MS keeps only the phase centre (FIELD
PHASE_DIR, the pointing at the group's midpoint, in ICRS). Its apparent position at
the midpoint gives the pointing's apparent declination and hour angle (zero for
DSA-110: the converter puts the centre at LST_mid); the pointing at each integration
is then (LST(t) - HA, that declination), taken back to ICRS with pyuvdata's astrometry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.coordinates import EarthLocation
from scipy.optimize import brentq

from contimg.beam import airy_power
from contimg.catalogs.nvss import NvssTable, load_nvss, nvss_name
from contimg.catalogs.vlacals import DEFAULT_SPECTRAL_INDEX, L_BAND_HZ, Calibrator, load_calibrators
from contimg.instrument import (
    DISH_DIAMETER_M,
    MJD_OFFSET_JD,
    SECONDS_PER_DAY,
    SITE_HEIGHT_M,
    SITE_LAT_DEG,
    SITE_LON_DEG,
    SPEED_OF_LIGHT_M_S,
)

CATALOG_SUBDIR = "catalogs"
MATCH_RADIUS_ARCSEC = 60.0  # NVSS components this close to a VLA calibrator are that calibrator
NVSS_SOUTH_LIMIT_DEG = -40.4  # NVSS covers the sky north of this


@dataclass(frozen=True)
class Component:
    """A point source of the model: J2000 position, 1.4 GHz flux and spectral index."""

    name: str
    ra_deg: float
    dec_deg: float
    flux_jy: float  # at 1.4 GHz
    spectral_index: float = DEFAULT_SPECTRAL_INDEX

    def flux_at(self, freq_hz: np.ndarray | float) -> np.ndarray:
        """Flux density (Jy) at the given frequencies: S(ν) = S₁.₄ (ν / 1.4 GHz)^α."""
        return self.flux_jy * (np.asarray(freq_hz, dtype=float) / L_BAND_HZ) ** self.spectral_index


@dataclass(frozen=True)
class SkyModelSettings:
    """Where the NVSS catalogue is and how deep the selection goes."""

    catalog_path: Path
    beam_level: float = 0.1
    flux_floor_jy: float = 0.02

    @classmethod
    def from_settings(cls, settings=None) -> SkyModelSettings:
        """From the validated settings (`contimg.settings.load_settings()` by default)."""
        if settings is None:
            from contimg.settings import load_settings

            settings = load_settings()
        return cls(catalog_path=resolve_catalog_path(str(settings["CONTIMG_NVSS_CATALOG"]),
                                                     settings.layout.static_dir),
                   beam_level=float(settings["CONTIMG_SKY_BEAM_LEVEL"]),
                   flux_floor_jy=float(settings["CONTIMG_SKY_FLUX_FLOOR_JY"]))


@dataclass(frozen=True)
class DriftPointing:
    """Where the dish points at each integration of a group, and the band."""

    times_mjd_s: np.ndarray  # unique integration centres (MS TIME, MJD seconds)
    ra_deg: np.ndarray  # ICRS pointing per integration
    dec_deg: np.ndarray
    freqs_hz: np.ndarray
    phase_centre_deg: tuple[float, float]  # FIELD PHASE_DIR (ICRS)
    apparent_dec_deg: float  # the fixed pointing declination (apparent)

    def beam_power(self, ra_deg: np.ndarray, dec_deg: np.ndarray, freqs_hz: np.ndarray,
                   dish_m: float = DISH_DIAMETER_M) -> np.ndarray:
        """Airy power of sources (S,) at every integration and frequency: (S, T, F)."""
        offset = angular_separation_rad(np.asarray(ra_deg)[:, None], np.asarray(dec_deg)[:, None],
                                        self.ra_deg[None, :], self.dec_deg[None, :])
        return airy_power(offset[:, :, None], np.asarray(freqs_hz)[None, None, :], dish_m)


def beam_radius_rad(level: float, freq_hz: float, dish_m: float = DISH_DIAMETER_M) -> float:
    """Offset at which the main lobe's power falls to `level` (0 < level <= 1)."""
    if level >= 1.0:
        return 0.0
    first_null = np.arcsin(min(1.0, 3.8317059702075125 * SPEED_OF_LIGHT_M_S / (np.pi * dish_m * freq_hz)))
    return float(brentq(lambda t: float(airy_power(t, freq_hz, dish_m)) - level, 0.0, first_null))


def angular_separation_rad(ra1_deg, dec1_deg, ra2_deg, dec2_deg) -> np.ndarray:
    """Great-circle separation (Vincenty's formula: exact at small and large angles)."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(a, dtype=float))
                            for a in (ra1_deg, dec1_deg, ra2_deg, dec2_deg))
    delta = ra2 - ra1
    num = np.hypot(np.cos(dec2) * np.sin(delta),
                   np.cos(dec1) * np.sin(dec2) - np.sin(dec1) * np.cos(dec2) * np.cos(delta))
    den = np.sin(dec1) * np.sin(dec2) + np.cos(dec1) * np.cos(dec2) * np.cos(delta)
    return np.arctan2(num, den)


def resolve_catalog_path(value: str, static_dir: Path) -> Path:
    """The catalogue setting as a path: absolute as given; a bare file name in
    `static/catalogs/`; any other relative path under `static/`."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    if len(path.parts) == 1:
        return Path(static_dir) / CATALOG_SUBDIR / path
    return Path(static_dir) / path


def site_location() -> EarthLocation:
    """The array reference position (the LSTs of the pointing are computed here)."""
    return EarthLocation.from_geodetic(SITE_LON_DEG, SITE_LAT_DEG, SITE_HEIGHT_M)


def pointing_from_ms(ms_path: Path) -> DriftPointing:
    """The drift-scan pointing of a contimg MS at each of its integrations (see module doc)."""
    from casacore import tables

    with tables.table(str(ms_path), ack=False) as main:
        times_s = np.unique(main.getcol("TIME"))
    with tables.table(str(Path(ms_path) / "FIELD"), ack=False) as field:
        ra0, dec0 = (float(v) for v in field.getcol("PHASE_DIR")[0, 0])
    with tables.table(str(Path(ms_path) / "SPECTRAL_WINDOW"), ack=False) as spw:
        freqs = np.asarray(spw.getcol("CHAN_FREQ")[0], dtype=float)
    return drift_pointing(times_s, ra0, dec0, freqs)


def drift_pointing(times_mjd_s: np.ndarray, ra0_rad: float, dec0_rad: float,
                   freqs_hz: np.ndarray) -> DriftPointing:
    """The pointing per integration of a drift scan phased to (ra0, dec0) at its midpoint."""
    from pyuvdata.utils.phasing import calc_app_coords, transform_app_to_icrs
    from pyuvdata.utils.times import get_lst_for_time

    from contimg.astro_offline import configure_offline_astropy

    configure_offline_astropy()
    site = site_location()
    jd = np.asarray(times_mjd_s, dtype=float) / SECONDS_PER_DAY + MJD_OFFSET_JD
    mid_jd = np.array([(jd.min() + jd.max()) / 2])
    app_ra, app_dec = calc_app_coords(lon_coord=np.array([ra0_rad]), lat_coord=np.array([dec0_rad]),
                                      coord_frame="icrs", coord_epoch=2000.0, time_array=mid_jd,
                                      telescope_loc=site)
    lst = get_lst_for_time(np.concatenate([mid_jd, jd]), telescope_loc=site)
    hour_angle = float(lst[0] - np.ravel(app_ra)[0])  # zero for DSA-110's meridian centre
    dec_app = float(np.ravel(app_dec)[0])
    ra, dec = transform_app_to_icrs(time_array=jd, app_ra=(lst[1:] - hour_angle) % (2 * np.pi),
                                    app_dec=np.full(jd.size, dec_app), telescope_loc=site)
    return DriftPointing(np.asarray(times_mjd_s, dtype=float), np.degrees(np.atleast_1d(ra)),
                         np.degrees(np.atleast_1d(dec)), np.asarray(freqs_hz, dtype=float),
                         (float(np.degrees(ra0_rad)), float(np.degrees(dec0_rad))),
                         float(np.degrees(dec_app)))


def select_components(pointing: DriftPointing, nvss: NvssTable, calibrators: Sequence[Calibrator],
                      *, beam_level: float, flux_floor_jy: float) -> tuple[Component, ...]:
    """Calibrators and NVSS sources in the beam above the apparent-flux floor, brightest first."""
    low, centre = float(pointing.freqs_hz.min()), float(np.mean(pointing.freqs_hz))
    radius_deg = np.degrees(beam_radius_rad(beam_level, low))
    near = np.flatnonzero(_near_track(pointing, nvss.ra_deg, nvss.dec_deg, radius_deg))
    cals = _listed_calibrators(pointing, calibrators, nvss.ra_deg[near], nvss.dec_deg[near], radius_deg)
    near = near[~_matches_any(nvss.ra_deg[near], nvss.dec_deg[near], cals)]
    field = [Component(nvss_name(nvss.ra_deg[i], nvss.dec_deg[i]), float(nvss.ra_deg[i]),
                       float(nvss.dec_deg[i]), float(nvss.flux_jy[i])) for i in near]
    candidates = cals + field
    if not candidates:
        return ()
    ra = np.array([c.ra_deg for c in candidates])
    dec = np.array([c.dec_deg for c in candidates])
    at_low = pointing.beam_power(ra, dec, np.array([low]))[:, :, 0].max(axis=1)
    at_centre = pointing.beam_power(ra, dec, np.array([centre]))[:, :, 0].max(axis=1)
    flux = np.array([c.flux_jy for c in candidates])
    keep = (at_low >= beam_level) & (flux * at_centre >= flux_floor_jy)
    chosen = [c for c, k in zip(candidates, keep, strict=True) if k]
    return tuple(sorted(chosen, key=lambda c: -c.flux_jy))


def _listed_calibrators(pointing: DriftPointing, calibrators: Sequence[Calibrator],
                        nvss_ra: np.ndarray, nvss_dec: np.ndarray, radius_deg: float) -> list[Component]:
    """VLA calibrators near the track that replace their NVSS entries.

    The catalogue defines the sky: a calibrator counts where NVSS lists it too (every VLA
    calibrator is in the real NVSS), so a cut-out or simulated catalogue never gains
    sources its sky lacks. South of NVSS's limit the VLA list stands alone."""
    found = []
    for cal in calibrators:
        if not _near_track(pointing, np.array([cal.ra_deg]), np.array([cal.dec_deg]), radius_deg)[0]:
            continue
        comp = Component(cal.name, cal.ra_deg, cal.dec_deg, cal.flux_jy, cal.spectral_index)
        if cal.dec_deg < NVSS_SOUTH_LIMIT_DEG or _matches_any(nvss_ra, nvss_dec, [comp]).any():
            found.append(comp)
    return found


def _near_track(pointing: DriftPointing, ra_deg: np.ndarray, dec_deg: np.ndarray,
                radius_deg: float) -> np.ndarray:
    """Sources within `radius_deg` of the pointing at some integration (a cheap cut:
    declination band first, then exact separations of what is left)."""
    inside = np.zeros(ra_deg.size, bool)
    band = np.flatnonzero(np.abs(dec_deg - pointing.dec_deg.mean()) <= radius_deg + 0.1)
    if band.size == 0:
        return inside
    offset = angular_separation_rad(ra_deg[band, None], dec_deg[band, None],
                                    pointing.ra_deg[None, :], pointing.dec_deg[None, :])
    inside[band] = np.degrees(offset.min(axis=1)) <= radius_deg
    return inside


def _matches_any(ra_deg: np.ndarray, dec_deg: np.ndarray, components: Sequence[Component]) -> np.ndarray:
    """Which positions lie within MATCH_RADIUS_ARCSEC of one of the components."""
    matched = np.zeros(ra_deg.size, bool)
    for comp in components:
        separation = angular_separation_rad(ra_deg, dec_deg, comp.ra_deg, comp.dec_deg)
        matched |= np.degrees(separation) * 3600.0 <= MATCH_RADIUS_ARCSEC
    return matched


def sky_model_for_ms(ms_path: Path, config: SkyModelSettings | None = None) -> tuple[Component, ...]:
    """The components for one group's MS, with the platform's settings unless given."""
    config = config or SkyModelSettings.from_settings()
    return select_components(pointing_from_ms(ms_path), load_nvss(config.catalog_path),
                             load_calibrators(), beam_level=config.beam_level,
                             flux_floor_jy=config.flux_floor_jy)
