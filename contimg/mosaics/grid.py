"""The pixel grid of the mosaics: cut-outs of one global plate carrée (CAR) grid per
declination strip.

The telescope drifts along a strip of constant declination, so the natural map is CAR
with the celestial equator as the native one (CRVAL2 = 0: a CAR grid with CRVAL2 at the
strip's declination would be an oblique projection whose rows are great circles, not
parallels). The Dec step is the images' cell; the RA step is the cell over cos(δ_ref), so
pixels are square on the sky at the strip's declination (±5 % over a 3.5° strip at
δ = 55°), and it divides 360° exactly, so the grid closes around the sky. Every mosaic is
a cut-out of this one grid at whole pixels: the hourly mosaics of a day line up pixel for
pixel, and the daily mosaic adds them without interpolation (`daily.py`). A coarser grid
(`factor` > 1) takes blocks of factor² fine pixels, its pixel centres at the blocks'
centres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from contimg.celestial import celestial_wcs

REF_DEC_STEP_DEG = 0.5  # strips are keyed by the pointing declination rounded to this
# The columns around the sky are a multiple of this, so a coarser grid of factor 2, 4, 8 or
# 16 tiles the turn exactly too.
BLOCK = 16


@dataclass(frozen=True)
class MosaicGrid:
    """A rectangle of the global CAR grid: (ny, nx) pixels from global column `x0` and
    row `y0` at block `factor` (columns count westward from RA 0, rows northward from the
    equator: RA = −(col·f + (f−1)/2)·Δα, Dec = (row·f + (f−1)/2)·Δδ)."""

    cell_deg: float  # Dec step of the fine (factor 1) grid
    n_360: int  # fine columns around the sky
    x0: int
    y0: int
    nx: int
    ny: int
    factor: int = 1

    @property
    def ra_step_deg(self) -> float:
        """RA step of the fine grid (degrees of RA, not on the sky)."""
        return 360.0 / self.n_360

    @property
    def columns_around(self) -> int:
        """Columns of this grid's level around the sky."""
        return self.n_360 // self.factor

    @property
    def shape(self) -> tuple[int, int]:
        return self.ny, self.nx

    def wcs(self) -> WCS:
        """The celestial WCS (CRVAL1 at the cut-out's middle column, so the native longitude
        stays within ±180° of it whatever the RA)."""
        f = self.factor
        middle = self.nx // 2
        ra_mid = -((self.x0 + middle) * f + (f - 1) / 2) * self.ra_step_deg
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---CAR", "DEC--CAR"]
        wcs.wcs.cunit = ["deg", "deg"]
        wcs.wcs.crval = [ra_mid % 360.0, 0.0]
        wcs.wcs.cdelt = [-f * self.ra_step_deg, f * self.cell_deg]
        wcs.wcs.crpix = [middle + 1, 1 - self.y0 - (f - 1) / (2 * f)]
        wcs.wcs.lonpole, wcs.wcs.latpole = 0.0, 90.0
        wcs.wcs.radesys = "ICRS"
        return wcs

    def cutout(self, x_lo: int, y_lo: int, nx: int, ny: int) -> MosaicGrid:
        """The sub-grid of (ny, nx) pixels starting at local column x_lo, row y_lo."""
        return replace(self, x0=self.x0 + x_lo, y0=self.y0 + y_lo, nx=nx, ny=ny)

    def header_cards(self) -> dict[str, object]:
        """FITS keywords that rebuild the grid (`grid_from_header`)."""
        return {"MOSCELL": self.cell_deg, "MOSN360": self.n_360, "MOSX0": self.x0,
                "MOSY0": self.y0, "MOSFACT": self.factor}


def grid_from_header(header: fits.Header) -> MosaicGrid:
    """The grid a mosaic FITS was written on."""
    return MosaicGrid(float(header["MOSCELL"]), int(header["MOSN360"]), int(header["MOSX0"]),
                      int(header["MOSY0"]), int(header["NAXIS1"]), int(header["NAXIS2"]),
                      int(header["MOSFACT"]))


def columns_around(cell_deg: float, dec_deg: float) -> int:
    """Fine columns around the sky for a strip: RA step ≈ cell / cos δ_ref, rounded so the
    count is a multiple of `BLOCK` (δ_ref: the declination rounded to REF_DEC_STEP_DEG, so
    every mosaic of one strip shares the grid)."""
    ref = round(dec_deg / REF_DEC_STEP_DEG) * REF_DEC_STEP_DEG
    ref = min(abs(ref), 89.0)  # near the pole a strip is not a CAR strip; keep the count finite
    return BLOCK * max(1, round(360.0 * math.cos(math.radians(ref)) / cell_deg / BLOCK))


def image_outline(header: fits.Header, samples: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(RA, Dec) in degrees of points along the edge of an image."""
    wcs = celestial_wcs(header)
    ny, nx = int(header["NAXIS2"]), int(header["NAXIS1"])
    xs, ys = np.linspace(-0.5, nx - 0.5, samples), np.linspace(-0.5, ny - 0.5, samples)
    edge_x = np.concatenate([xs, xs, np.full(samples, -0.5), np.full(samples, nx - 0.5)])
    edge_y = np.concatenate([np.full(samples, -0.5), np.full(samples, ny - 0.5), ys, ys])
    ra, dec = wcs.pixel_to_world_values(edge_x, edge_y)
    return np.asarray(ra), np.asarray(dec)


def circular_mean_deg(ra_deg: np.ndarray) -> float:
    """Mean RA that survives the 0/360 wrap."""
    angles = np.radians(ra_deg)
    return float(np.degrees(np.arctan2(np.sin(angles).mean(), np.cos(angles).mean())) % 360.0)


def grid_covering(outlines: list[tuple[np.ndarray, np.ndarray]], cell_deg: float,
                  dec_deg: float, factor: int = 1, n_360: int | None = None) -> MosaicGrid:
    """The smallest cut-out (at block `factor`) holding every outline; RA is unwrapped about
    the outlines' circular mean, and a span of the whole sky is capped at one turn. The
    strip's columns around the sky follow from the cell and declination unless given."""
    n_360 = n_360 or columns_around(cell_deg, dec_deg)
    ra = np.concatenate([o[0] for o in outlines])
    dec = np.concatenate([o[1] for o in outlines])
    centre = circular_mean_deg(ra)
    unwrapped = centre + (ra - centre + 180.0) % 360.0 - 180.0
    step_ra, step_dec = 360.0 / n_360 * factor, cell_deg * factor
    # Column c covers RA −(c ± 1/2)·step (westward), row r Dec (r ± 1/2)·step (block centres
    # sit (f−1)/2 fine pixels in, which only shifts the rounding: a half pixel of margin).
    cols = -unwrapped / step_ra
    x0, x1 = math.floor(cols.min()), math.ceil(cols.max())
    y0, y1 = math.floor(dec.min() / step_dec), math.ceil(dec.max() / step_dec)
    nx = min(x1 - x0 + 1, n_360 // factor)
    return MosaicGrid(cell_deg, n_360, x0, y0, nx, y1 - y0 + 1, factor)


def footprint_box(grid: MosaicGrid, outline: tuple[np.ndarray, np.ndarray]
                  ) -> tuple[slice, slice] | None:
    """(rows, cols) of `grid` that an image's outline spans (a margin of one pixel), or None
    when it misses the grid."""
    x, y = grid.wcs().world_to_pixel_values(*outline)
    x, y = np.asarray(x), np.asarray(y)
    x_lo, x_hi = max(0, math.floor(np.nanmin(x)) - 1), min(grid.nx, math.ceil(np.nanmax(x)) + 2)
    y_lo, y_hi = max(0, math.floor(np.nanmin(y)) - 1), min(grid.ny, math.ceil(np.nanmax(y)) + 2)
    if x_lo >= x_hi or y_lo >= y_hi:
        return None
    return slice(y_lo, y_hi), slice(x_lo, x_hi)
