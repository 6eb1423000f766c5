"""The primary beam of a group image, and the correction by it (ours: WSClean 3.1 here has
no EveryBeam and no DSA-110 beam).

During a 309 s group the sky drifts 1.29° of right ascension through the fixed meridian
beam, so relative to the image the beam moves: the effective beam is the power pattern
averaged over the integrations and channels with the weight the imager gave each,

    B(p) = Σ_t,c w(t, c) A(p; pointing_t, ν_c) / Σ_t,c w(t, c),

A the Airy power pattern of a 4.65 m dish (or a measured beam FITS). The beam is smooth,
so it is evaluated on a coarse grid of the image (96² points, 8 frequency bins) and
interpolated bicubically to every pixel (agreement to < 1e-4 of the peak, tested).
Pixels below the PB limit are blanked in the corrected image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from scipy.interpolate import RectBivariateSpline, RegularGridInterpolator

from contimg.calibration.sky_model import DriftPointing
from contimg.imaging.coverage import Coverage

COARSE_POINTS = 96
FREQUENCY_BINS = 8


def drift_averaged_beam(wcs: WCS, shape: tuple[int, int], pointing: DriftPointing,
                        coverage: Coverage, *, beam_model: Path | None = None,
                        coarse: int = COARSE_POINTS) -> np.ndarray:
    """B(p) on the image grid (ny, nx) of the celestial `wcs`."""
    ny, nx = shape
    ys, xs = np.linspace(0, ny - 1, min(coarse, ny)), np.linspace(0, nx - 1, min(coarse, nx))
    grid_x, grid_y = np.meshgrid(xs, ys)
    ra, dec = wcs.celestial.pixel_to_world_values(grid_x.ravel(), grid_y.ravel())
    freqs, weights = _frequency_bins(coverage)  # (F,), (T, F)
    power = _power(pointing, ra, dec, freqs, beam_model)  # (S, T, F)
    averaged = (power * weights[None]).sum(axis=(1, 2)) / weights.sum()
    coarse_beam = averaged.reshape(ys.size, xs.size)
    if ys.size == ny and xs.size == nx:
        return coarse_beam
    spline = RectBivariateSpline(ys, xs, coarse_beam, kx=3, ky=3)
    return spline(np.arange(ny), np.arange(nx)).astype(np.float32)


def correct(image: np.ndarray, beam: np.ndarray, limit: float) -> np.ndarray:
    """image / beam where the beam is at least `limit`, NaN (blank) elsewhere."""
    corrected = np.full(image.shape, np.nan, np.float32)
    good = beam >= limit
    corrected[good] = image[good] / beam[good]
    return corrected


def _frequency_bins(coverage: Coverage) -> tuple[np.ndarray, np.ndarray]:
    """Channels combined into `FREQUENCY_BINS` bins: weighted centre frequencies (F,) and
    the weight of each integration and bin (T, F)."""
    edges = np.linspace(0, coverage.freqs_hz.size, min(FREQUENCY_BINS, coverage.freqs_hz.size) + 1)
    edges = edges.astype(int)
    freqs, weights = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        w = coverage.weight[:, lo:hi]
        total = w.sum()
        freqs.append(float((w.sum(axis=0) * coverage.freqs_hz[lo:hi]).sum() / total) if total
                     else float(coverage.freqs_hz[lo:hi].mean()))
        weights.append(w.sum(axis=1))
    return np.array(freqs), np.stack(weights, axis=1)


def _power(pointing: DriftPointing, ra: np.ndarray, dec: np.ndarray, freqs: np.ndarray,
           beam_model: Path | None) -> np.ndarray:
    if beam_model is None:
        return pointing.beam_power(ra, dec, freqs)
    return measured_beam_power(beam_model, pointing, ra, dec, freqs)


def measured_beam_power(path: Path, pointing: DriftPointing, ra: np.ndarray, dec: np.ndarray,
                        freqs: np.ndarray) -> np.ndarray:
    """A measured beam: a FITS image of power against offset from the pointing (axes 1
    and 2 in degrees, east and north; CRVAL 0 at the pointing) at the frequency of keyword
    `FREQ` (Hz), scaled with λ to other frequencies; 0 outside the map. (S, T, F)"""
    if not Path(path).exists():
        raise FileNotFoundError(f"beam model {path} does not exist; put the measured beam FITS "
                                "under static/beam-model/ or leave CONTIMG_BEAM_MODEL empty (Airy).")
    with fits.open(path) as hdul:
        data = np.squeeze(hdul[0].data).astype(float)
        header = hdul[0].header
    if data.ndim != 2 or "FREQ" not in header:
        raise ValueError(f"beam model {path}: expected one 2-D power map with a FREQ keyword")
    axis_x = header["CRVAL1"] + (np.arange(data.shape[1]) + 1 - header["CRPIX1"]) * header["CDELT1"]
    axis_y = header["CRVAL2"] + (np.arange(data.shape[0]) + 1 - header["CRPIX2"]) * header["CDELT2"]
    lookup = RegularGridInterpolator((axis_y, axis_x), data, bounds_error=False, fill_value=0.0)
    # Direction cosines of each position about each integration's pointing (exact, as a
    # beam measured on a tangent plane is), in degrees.
    ra, dec = np.radians(np.asarray(ra))[:, None], np.radians(np.asarray(dec))[:, None]
    ra0, dec0 = np.radians(pointing.ra_deg)[None, :], np.radians(pointing.dec_deg)[None, :]
    east = np.degrees(np.cos(dec) * np.sin(ra - ra0))
    north = np.degrees(np.sin(dec) * np.cos(dec0) - np.cos(dec) * np.sin(dec0) * np.cos(ra - ra0))
    out = np.empty((ra.shape[0], pointing.ra_deg.size, freqs.size))
    for f, freq in enumerate(freqs):
        scale = freq / float(header["FREQ"])  # the pattern shrinks as the frequency rises
        out[:, :, f] = lookup(np.stack([north * scale, east * scale], axis=-1))
    return out
