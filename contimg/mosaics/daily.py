"""The daily mosaic: the day's hourly mosaics added exactly, on a coarser grid.

Each hourly mosaic keeps its unblanked sums (weight W and numerator Σ B A/σ², in the
`-weight.fits` file) on the global CAR grid (`grid.py`), so the daily sums are those same
sums added pixel for pixel: no image is read again and nothing is interpolated, and where
one hour's mosaic was blanked at its edge (few images) the other hour's still gets its
weight. A day at the images' full cell would be a 360° × 3.5° strip of ≈ 122,000 × 2,100
pixels (≈ 1 GB a map); the daily grid therefore takes blocks of `factor`² fine pixels
(default 4: 24.4″ pixels for 6.09″ images, 30,500 × 530, ≈ 65 MB a map) and holds the
weighted mean of each block, Σnum/ΣW over the block's pixels, with W the block mean: a
beam (≈ 57″ × 44″ on the full array) still spans about two daily pixels. Per-source
science at full resolution uses the hourly mosaics (and the group images).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from astropy.io import fits

from contimg.mosaics.combine import MosaicError, MosaicPlanes, planes_from_sums
from contimg.mosaics.grid import MosaicGrid, grid_covering, grid_from_header
from contimg.mosaics.restoring_beam import RestoringBeam, common_beam


def combine_hourly(hourly: list[tuple[str, Path, Path]], *, factor: int,
                   cutoff: float) -> MosaicPlanes:
    """The daily mosaic of hourly mosaics given as (name, image FITS, weight FITS)."""
    if not hourly:
        raise MosaicError("a daily mosaic needs at least one hourly mosaic")
    headers = [fits.getheader(image) for _, image, _ in hourly]
    grids = [grid_from_header(h) for h in headers]
    family = {(g.cell_deg, g.n_360) for g in grids}
    if len(family) > 1:
        raise MosaicError(f"the hourly mosaics lie on different grids {sorted(family)} (the "
                          "pointing or the cell changed during the day); mosaic each part alone")
    if grids[0].n_360 % factor:
        raise MosaicError(f"the daily cell factor {factor} must divide the grid's {grids[0].n_360} "
                          "columns around the sky; use 1, 2, 4, 8 or 16")
    outlines = [_grid_outline(g) for g in grids]
    daily = grid_covering(outlines, grids[0].cell_deg, 0.0, factor, n_360=grids[0].n_360)
    numerator = np.zeros(daily.shape, np.float64)
    weight = np.zeros(daily.shape, np.float64)
    for grid, (_, _, weight_path) in zip(grids, hourly, strict=True):
        with fits.open(weight_path, memmap=True) as hdul:
            _add_blocks(numerator, daily, grid, np.asarray(hdul["NUMERATOR"].data, np.float64))
            _add_blocks(weight, daily, grid, np.asarray(hdul[0].data, np.float64))
    restoring = common_beam([RestoringBeam.from_header(h) for h in headers])
    sigma_ref = float(np.median([float(h["MOSSREF"]) for h in headers]))
    planes = planes_from_sums(daily, numerator, weight, restoring, sigma_ref, cutoff)
    planes.members = [{"name": name, "image": str(image), "sigma_ref_jy": float(h["MOSSREF"]),
                       "n_images": int(h["NMEMBERS"])}
                      for (name, image, _), h in zip(hourly, headers, strict=True)]
    return planes


def block_mean(plane: np.ndarray, lead_y: int, lead_x: int, factor: int) -> np.ndarray:
    """Means over factor × factor blocks of `plane`, whose first pixel sits `lead_y`, `lead_x`
    fine pixels into its block (pixels outside `plane` count as zero)."""
    ny = math.ceil((lead_y + plane.shape[0]) / factor) * factor
    nx = math.ceil((lead_x + plane.shape[1]) / factor) * factor
    padded = np.zeros((ny, nx), plane.dtype)
    padded[lead_y:lead_y + plane.shape[0], lead_x:lead_x + plane.shape[1]] = plane
    return padded.reshape(ny // factor, factor, nx // factor, factor).mean(axis=(1, 3))


def _add_blocks(total: np.ndarray, daily: MosaicGrid, hourly: MosaicGrid, plane: np.ndarray) -> None:
    f = daily.factor
    lead_y, lead_x = hourly.y0 % f, hourly.x0 % f
    blocks = block_mean(np.nan_to_num(plane), lead_y, lead_x, f)
    first_row = (hourly.y0 - lead_y) // f - daily.y0
    # Columns wrap around the sky: the grid's turn is a whole number of blocks.
    cols = ((hourly.x0 - lead_x) // f + np.arange(blocks.shape[1]) - daily.x0) % daily.columns_around
    rows = first_row + np.arange(blocks.shape[0])
    row_ok, col_ok = (rows >= 0) & (rows < daily.ny), cols < daily.nx
    total[np.ix_(rows[row_ok], cols[col_ok])] += blocks[np.ix_(row_ok, col_ok)]


def _grid_outline(grid: MosaicGrid) -> tuple[np.ndarray, np.ndarray]:
    """(RA, Dec) of the corners and edge midpoints of a grid's pixel centres."""
    xs = np.array([0, grid.nx // 2, grid.nx - 1, 0, grid.nx - 1, 0, grid.nx // 2, grid.nx - 1])
    ys = np.array([0, 0, 0, grid.ny // 2, grid.ny // 2, grid.ny - 1, grid.ny - 1, grid.ny - 1])
    ra, dec = grid.wcs().pixel_to_world_values(xs, ys)
    return np.asarray(ra), np.asarray(dec)

