"""One restoring beam for every member of a mosaic.

A linear mosaic adds images pixel by pixel, so their point-spread functions must agree:
an image whose restoring beam (BMAJ, BMIN, BPA) differs from the common one (the smallest
beam that contains them all, `radio_beam.Beams.common_beam`) is convolved with the
Gaussian that turns its beam into the common one (the difference of their covariance
matrices, applied in Fourier space), and multiplied by
the ratio of the beam areas, Ω_common / Ω_i, so that it stays in Jy per (common) beam and
a point source keeps its peak. The integrated flux is preserved. In a drift scan the uv
coverage barely changes from group to group, so most sets need nothing done (beams within
`SAME_BEAM_TOLERANCE` are taken as equal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from radio_beam import Beam, Beams
from radio_beam.utils import BeamError
from scipy import fft as scipy_fft

SAME_BEAM_TOLERANCE = 0.01  # relative: 1 % in an axis leaves a 1 % peak error at most
FWHM_TO_SIGMA = 1.0 / math.sqrt(8.0 * math.log(2.0))


@dataclass(frozen=True)
class RestoringBeam:
    """An elliptical Gaussian beam: FWHM axes in degrees, position angle in degrees (from
    north through east), as in the FITS keywords BMAJ, BMIN, BPA."""

    bmaj_deg: float
    bmin_deg: float
    bpa_deg: float

    @classmethod
    def from_header(cls, header) -> RestoringBeam:
        """The beam of a FITS header (BMAJ, BMIN, BPA); KeyError names a missing one."""
        return cls(float(header["BMAJ"]), float(header["BMIN"]), float(header["BPA"]))

    @property
    def area_deg2(self) -> float:
        """Ω = π·BMAJ·BMIN / (4 ln 2)."""
        return math.pi * self.bmaj_deg * self.bmin_deg / (4.0 * math.log(2.0))

    def radio_beam(self) -> Beam:
        return Beam(major=self.bmaj_deg * u.deg, minor=self.bmin_deg * u.deg, pa=self.bpa_deg * u.deg)

    def close_to(self, other: RestoringBeam, tolerance: float = SAME_BEAM_TOLERANCE) -> bool:
        """Axes within `tolerance` (relative) and the orientation within what that allows."""
        axes = (abs(self.bmaj_deg / other.bmaj_deg - 1) <= tolerance
                and abs(self.bmin_deg / other.bmin_deg - 1) <= tolerance)
        turn = abs((self.bpa_deg - other.bpa_deg + 90.0) % 180.0 - 90.0)
        round_enough = self.bmaj_deg / self.bmin_deg - 1 <= tolerance
        return axes and (turn <= 1.0 or round_enough)


def common_beam(beams: list[RestoringBeam]) -> RestoringBeam:
    """The smallest beam containing every beam (one of them when it contains the rest)."""
    if all(b.close_to(beams[0]) for b in beams):
        return max(beams, key=lambda b: b.area_deg2)
    try:
        common = Beams(major=[b.bmaj_deg for b in beams] * u.deg,
                       minor=[b.bmin_deg for b in beams] * u.deg,
                       pa=[b.bpa_deg for b in beams] * u.deg).common_beam()
    except BeamError:
        # radio_beam's search fails for very elongated beams at different angles (a sparse
        # array's); the circle as wide as the widest beam contains every one of them.
        widest = max(b.bmaj_deg for b in beams)
        return RestoringBeam(widest, widest, 0.0)
    return RestoringBeam(common.major.to_value(u.deg), common.minor.to_value(u.deg),
                         common.pa.to_value(u.deg))


def to_common_beam(plane: np.ndarray, beam: RestoringBeam, target: RestoringBeam,
                   cell_deg: float) -> np.ndarray:
    """`plane` (Jy/beam, east to the left) at the `target` beam: convolved with the
    difference Gaussian and scaled by Ω_target/Ω_beam; returned as it is when the beams
    agree within the tolerance. NaN pixels count as zero in the convolution."""
    if beam.close_to(target):
        return plane
    difference = covariance_pixels(target, cell_deg) - covariance_pixels(beam, cell_deg)
    smoothed = convolve_gaussian(np.nan_to_num(plane, nan=0.0), difference)
    smoothed *= target.area_deg2 / beam.area_deg2
    return np.where(np.isfinite(plane), smoothed, np.nan).astype(np.float32)


def convolve_gaussian(plane: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """`plane` convolved with the unit-sum Gaussian of `covariance` (pixels², x then y),
    by its analytic transfer function exp(−2π² fᵀΣf). In Fourier space because the
    difference of two similar beams is often very thin in one direction (a tenth of a
    pixel), where a kernel sampled on pixels would lose most of its width. A direction in
    which the target is not wider (the common beam only touches this beam there) gets no
    smoothing. The plane is padded by 4σ so nothing wraps around."""
    values, vectors = np.linalg.eigh(covariance)
    covariance = vectors @ np.diag(np.clip(values, 0.0, None)) @ vectors.T
    pad = int(math.ceil(4 * math.sqrt(max(values.max(), 0.0)))) + 1
    padded = np.pad(plane.astype(np.float64), pad)
    fy = np.fft.fftfreq(padded.shape[0])[:, None]
    fx = np.fft.rfftfreq(padded.shape[1])[None, :]
    transfer = np.exp(-2 * math.pi**2 * (covariance[0, 0] * fx * fx + 2 * covariance[0, 1] * fx * fy
                                         + covariance[1, 1] * fy * fy))
    out = scipy_fft.irfft2(scipy_fft.rfft2(padded, workers=-1) * transfer, s=padded.shape, workers=-1)
    return out[pad:pad + plane.shape[0], pad:pad + plane.shape[1]]


def covariance_pixels(beam: RestoringBeam, cell_deg: float) -> np.ndarray:
    """The Gaussian's covariance (x, y) in pixels², x to the west (east to the left), y north."""
    s_maj, s_min = beam.bmaj_deg * FWHM_TO_SIGMA / cell_deg, beam.bmin_deg * FWHM_TO_SIGMA / cell_deg
    pa = math.radians(beam.bpa_deg)
    major = np.array([-math.sin(pa), math.cos(pa)])  # PA from north through east; east is −x
    minor = np.array([math.cos(pa), math.sin(pa)])
    return s_maj**2 * np.outer(major, major) + s_min**2 * np.outer(minor, minor)


def gaussian_kernel(beam: RestoringBeam, cell_deg: float) -> np.ndarray:
    """A unit-sum Gaussian of `beam` sampled on pixels of `cell_deg` (sky orientation: north
    up, east to the left), out to 4σ of the major axis."""
    inverse = np.linalg.inv(covariance_pixels(beam, cell_deg))
    half = max(1, math.ceil(4 * beam.bmaj_deg * FWHM_TO_SIGMA / cell_deg))
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(float)
    kernel = np.exp(-0.5 * (inverse[0, 0] * x * x + 2 * inverse[0, 1] * x * y + inverse[1, 1] * y * y))
    return kernel / kernel.sum()
