"""CASA tclean, the alternative imager: the same options, the same FITS products.

tclean writes CASA images `<prefix>.image`, `.residual`, `.model`, `.psf`, …; the image
and residual are exported to the FITS names WSClean would have written
(`<prefix>-image.fits`, `<prefix>-residual.fits`), so everything after the imager is
one path. Primary-beam correction stays ours (pblimit off in tclean: CASA has no
DSA-110 beam), and so is masking (none: WSClean's auto-mask has no equivalent that works
here). CASA runs in a spawned child: it aborts its process on some failures.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from contimg.conversion.isolation import run_in_child
from contimg.imaging.options import ImageGrid, ImagingOptions
from contimg.imaging.wsclean import ImagerError, ImagerRun

CASA_PRODUCTS = ("image", "residual", "model", "psf", "pb", "sumwt", "mask")


def tclean_parameters(ms: Path, prefix: Path, grid: ImageGrid, options: ImagingOptions) -> dict:
    """The tclean keyword arguments for one MS (nothing is run)."""
    parameters = {
        "vis": str(ms), "imagename": str(prefix), "datacolumn": "corrected"
        if options.data_column == "CORRECTED_DATA" else "data",
        "imsize": [grid.size, grid.size], "cell": f"{grid.cell_arcsec:g}arcsec", "stokes": "I",
        "specmode": "mfs", "gridder": "wproject", "wprojplanes": -1,
        "weighting": options.weighting, "niter": options.niter, "gain": 0.1,
        "nsigma": options.auto_threshold, "cyclefactor": 1.0, "pblimit": -1e-4,
        "interactive": False, "savemodel": "none",
    }
    if options.weighting == "briggs":
        parameters["robust"] = options.robust
    # No auto-multithresh: with this array's high PSF sidelobes it left the mask empty and
    # tclean cleaned nothing (measured); it cleans everywhere down to nsigma instead.
    parameters["usemask"] = "user"
    return parameters


def run_tclean(ms: Path, prefix: Path, grid: ImageGrid, options: ImagingOptions) -> ImagerRun:
    """Image with tclean in a child process; FITS exports of image and residual."""
    parameters = tclean_parameters(ms, prefix, grid, options)
    began = time.perf_counter()
    try:
        run_in_child(_tclean_and_export, parameters, str(prefix), start_method="spawn",
                     timeout_s=options.timeout_s)
    except Exception as exc:
        raise ImagerError(f"tclean failed: {exc}") from exc
    products = {name: Path(f"{prefix}-{name}.fits") for name in ("image", "residual")}
    if not products["image"].exists():
        raise ImagerError(f"tclean wrote no image at {prefix}.image")
    return ImagerRun(products, time.perf_counter() - began, ("tclean", repr(parameters)), "")


def _tclean_and_export(parameters: dict, prefix: str) -> None:
    from casatasks import exportfits, tclean

    for suffix in CASA_PRODUCTS:
        shutil.rmtree(f"{prefix}.{suffix}", ignore_errors=True)
    tclean(**parameters)
    for name in ("image", "residual"):
        exportfits(imagename=f"{prefix}.{name}", fitsimage=f"{prefix}-{name}.fits",
                   overwrite=True, dropdeg=False)
