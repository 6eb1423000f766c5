"""How good one group image is: figures an operator reads on its materialisation.

All in the apparent (not beam-corrected) image inside the PB limit, where the noise is
flat: robust rms from the residual (1.4826 × MAD), peak, dynamic range, the restoring
beam, islands above 5σ, the flagged fraction, and the rms against the radiometer
equation, raised by the imaging weights' factor (Briggs 0 costs ≈ 1.2–1.6× over natural
weighting on this array; `contimg.imaging.weighting`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from contimg.imaging.coverage import Coverage

MAD_TO_SIGMA = 1.4826
DETECTION_SIGMA = 5.0
MIN_BEAM_AXIS_PIXELS = 0.25  # a fitted beam axis narrower than this was not measured


@dataclass(frozen=True)
class ImageQuality:
    """The figures recorded in products.images and shown in the UI."""

    rms_jy: float
    peak_jy: float
    dynamic_range: float
    bmaj_arcsec: float
    bmin_arcsec: float
    bpa_deg: float
    n_sources_5sigma: int
    flagged_fraction: float
    expected_rms_jy: float  # radiometer equation × weighting factor
    weighting_noise_factor: float
    rms_ratio: float  # rms / expected

    def as_dict(self) -> dict[str, float | int]:
        """The figures by name (full precision: an rms of tens of µJy must survive)."""
        return asdict(self)

    def beam_problem(self, cell_arcsec: float) -> str | None:
        """Why the restoring beam is not a usable PSF fit, or None when it is.

        A fitted axis narrower than a quarter pixel (or zero, or not finite) cannot have
        been measured on the pixel grid: the PSF fit collapsed, as it can for a few antennas
        over a short track, and fluxes per beam, the mosaics' common beam and source sizes
        from such an image are not to be trusted. (The tiny array's real minor axis is
        about one pixel: its beam is long and thin, not collapsed.)
        """
        floor = MIN_BEAM_AXIS_PIXELS * cell_arcsec
        for name, value in (("BMAJ", self.bmaj_arcsec), ("BMIN", self.bmin_arcsec)):
            if not np.isfinite(value) or value < floor:
                return (f"restoring beam {name} {value:.2f}\" is below {MIN_BEAM_AXIS_PIXELS:g} pixel "
                        f"({floor:.2f}\" of a {cell_arcsec:.2f}\" cell): the PSF fit collapsed")
        return None


def robust_rms(values: np.ndarray) -> float:
    """1.4826 × median absolute deviation of the finite values."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan")
    return float(MAD_TO_SIGMA * np.median(np.abs(finite - np.median(finite))))


def count_islands(image: np.ndarray, threshold: float) -> int:
    """Connected regions of pixels above `threshold` (8-connectivity)."""
    labels, count = ndimage.label(np.nan_to_num(image, nan=-np.inf) > threshold,
                                  structure=np.ones((3, 3), bool))
    return int(count)


def measure_quality(image: np.ndarray, residual: np.ndarray, beam: np.ndarray, pb_limit: float,
                    restoring_beam_deg: tuple[float, float, float], coverage: Coverage,
                    sefd_jy: float, weighting_factor: float = 1.0) -> ImageQuality:
    """The figures of one apparent image, its residual and its beam; `weighting_factor`
    (Coverage.weighting_noise_factor) turns the natural-weighting expectation into the
    imaging weights' own."""
    inside = beam >= pb_limit
    rms = robust_rms(residual[inside])
    peak = float(np.nanmax(np.where(inside, image, np.nan)))
    expected = coverage.expected_image_rms_jy(sefd_jy) * weighting_factor
    bmaj, bmin, bpa = restoring_beam_deg
    return ImageQuality(
        rms_jy=rms, peak_jy=peak, dynamic_range=peak / rms if rms > 0 else float("inf"),
        bmaj_arcsec=bmaj * 3600.0, bmin_arcsec=bmin * 3600.0, bpa_deg=bpa,
        n_sources_5sigma=count_islands(np.where(inside, image, np.nan), DETECTION_SIGMA * rms),
        flagged_fraction=coverage.flagged_fraction, expected_rms_jy=expected,
        weighting_noise_factor=weighting_factor,
        rms_ratio=rms / expected if expected > 0 else float("inf"))
