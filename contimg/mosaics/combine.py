"""The linear mosaic of group images: each apparent image weighted by its own beam and noise.

With A_i the apparent (not beam-corrected) image of group i, B_i its drift-averaged primary
beam (`-beam.fits`) and σ_i its noise (the robust rms of its residual inside the PB limit,
products.images `rms_jy`), every pixel of the mosaic is the minimum-variance estimate of
the true sky I from the A_i = B_i·I + n_i:

    I = Σ(B_i A_i / σ_i²) / Σ(B_i² / σ_i²),   noise 1/√W,   weight W = Σ(B_i² / σ_i²).

Both sums are maps, so a source is weighted by each image's beam *at the source*: the
telescope's own pipeline weighted each tile by one scalar and divided by one beam at the
mosaic centre, which for a drift scan (the beam moves 1.29° across each image) mis-scales
everything off the centre. Pixels are blanked (NaN) where the combined beam
B_c = σ_ref·√W falls below `cutoff` (default the PB limit, 0.2), σ_ref the members' median
noise: there the mosaic is noisier than one typical image at its PB limit. For one image
this is exactly the PB-limit blanking of `-image-pb.fits`; unlike an average of the beams
over the images "covering" a pixel, it does not depend on where the images' square edges
happen to fall, and adding an image never blanks a pixel.

Each image (with its beam, both in one call: reproject broadcasts over the leading axis and
maps the coordinates once) is reprojected (bilinear) onto its own footprint's cut-out of the
mosaic grid only, so memory and time grow with the images, not with the mosaic's area.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from reproject import reproject_interp

from contimg.celestial import celestial_wcs
from contimg.imaging.quality import robust_rms
from contimg.mosaics.grid import MosaicGrid, footprint_box, grid_covering, image_outline
from contimg.mosaics.restoring_beam import RestoringBeam, common_beam, to_common_beam

DEFAULT_CUTOFF = 0.2
METHOD = "linear: I = sum(B A / s^2) / sum(B^2 / s^2); noise 1/sqrt(W); W = sum(B^2 / s^2)"


class MosaicError(RuntimeError):
    """A mosaic cannot be made (no members, unreadable or inconsistent images)."""


@dataclass(frozen=True)
class MemberImage:
    """One group image going into a mosaic: its apparent image, its beam, its noise (None:
    measured here from the residual, or from the image itself) and its residual."""

    name: str
    image: Path
    beam: Path
    rms_jy: float | None = None
    residual: Path | None = None
    created: str = ""


@dataclass
class MosaicPlanes:
    """The combined maps on `grid`: image (Jy/beam, PB-corrected, NaN where blanked), noise
    (Jy/beam, NaN where blanked), weight W and the numerator Σ B A/σ² (both unblanked:
    the daily roll-up adds them exactly)."""

    grid: MosaicGrid
    image: np.ndarray
    noise: np.ndarray
    weight: np.ndarray
    numerator: np.ndarray
    restoring: RestoringBeam
    sigma_ref: float
    cutoff: float
    members: list[dict] = field(default_factory=list)

    @property
    def kept_fraction(self) -> float:
        """Share of the grid's pixels that are not blanked."""
        return float(np.isfinite(self.image).mean())


class LinearMosaic:
    """Running sums Σ B A/σ² and Σ B²/σ² on a grid."""

    def __init__(self, grid: MosaicGrid):
        self.grid = grid
        self.numerator = np.zeros(grid.shape, np.float64)
        self.weight = np.zeros(grid.shape, np.float64)

    def add(self, apparent: np.ndarray, beam: np.ndarray, sigma: float, wcs: WCS,
            outline: tuple[np.ndarray, np.ndarray]) -> bool:
        """Add one image (apparent, beam on its own `wcs`); False when it misses the grid."""
        if not (sigma > 0 and math.isfinite(sigma)):
            raise MosaicError(f"an image's noise must be a positive number, got {sigma!r}")
        box = footprint_box(self.grid, outline)
        if box is None:
            return False
        rows, cols = box
        cut = self.grid.cutout(cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start)
        # Round-trip checks of the coordinates cost 2.5x the time; both WCS are analytic.
        (a, b) = reproject_interp((np.stack([apparent, beam]), wcs), cut.wcs(),
                                  shape_out=(2, cut.ny, cut.nx), return_footprint=False,
                                  roundtrip_coords=False)
        valid = np.isfinite(a) & np.isfinite(b) & (b > 0)
        inverse_var = 1.0 / sigma**2
        self.numerator[rows, cols] += np.where(valid, b * a * inverse_var, 0.0)
        self.weight[rows, cols] += np.where(valid, b * b * inverse_var, 0.0)
        return True

    def finish(self, restoring: RestoringBeam, sigma_ref: float, cutoff: float) -> MosaicPlanes:
        """The image, noise and weight maps, blanked below the combined-beam `cutoff`."""
        return planes_from_sums(self.grid, self.numerator, self.weight, restoring, sigma_ref, cutoff)


def planes_from_sums(grid: MosaicGrid, numerator: np.ndarray, weight: np.ndarray,
                     restoring: RestoringBeam, sigma_ref: float, cutoff: float) -> MosaicPlanes:
    """I = num/W and noise 1/√W where σ_ref·√W ≥ cutoff, NaN elsewhere."""
    keep = weight * sigma_ref**2 >= cutoff**2
    with np.errstate(divide="ignore", invalid="ignore"):
        image = np.where(keep, numerator / weight, np.nan).astype(np.float32)
        noise = np.where(keep, 1.0 / np.sqrt(weight), np.nan).astype(np.float32)
    return MosaicPlanes(grid, image, noise, weight.astype(np.float32),
                        numerator.astype(np.float32), restoring, sigma_ref, cutoff)


def make_mosaic(members: list[MemberImage], *, cutoff: float = DEFAULT_CUTOFF,
                grid: MosaicGrid | None = None) -> MosaicPlanes:
    """The linear mosaic of `members` on `grid` (default: the CAR cut-out covering them at
    the images' cell), after bringing them to a common restoring beam."""
    if not members:
        raise MosaicError("a mosaic needs at least one image")
    headers = [_header(m.image) for m in members]
    restorings = [RestoringBeam.from_header(h) for h in headers]
    target = common_beam(restorings)
    cells = [abs(float(h["CDELT2"])) for h in headers]
    if max(cells) / min(cells) - 1 > 1e-6:
        raise MosaicError(f"the images have different cells ({min(cells) * 3600:.3f}\" to "
                          f"{max(cells) * 3600:.3f}\"); mosaic images made with one cell")
    outlines = [image_outline(h) for h in headers]
    if grid is None:
        dec = float(np.median([float(h["CRVAL2"]) for h in headers]))
        grid = grid_covering(outlines, cells[0], dec)
    mosaic = LinearMosaic(grid)
    sigmas, described = [], []
    for member, header, restoring, outline in zip(members, headers, restorings, outlines, strict=True):
        apparent, beam, sigma = load_member(member, restoring, target, cells[0], cutoff)
        used = mosaic.add(apparent, beam, sigma, celestial_wcs(header), outline)
        del apparent, beam
        if used:
            sigmas.append(sigma)
            described.append({"name": member.name, "image": str(member.image),
                              "beam": str(member.beam), "sigma_jy": sigma,
                              "convolved": not restoring.close_to(target),
                              "created": member.created})
    if not sigmas:
        raise MosaicError("no image overlaps the mosaic grid")
    planes = mosaic.finish(target, float(np.median(sigmas)), cutoff)
    planes.members = described
    return planes


def load_member(member: MemberImage, restoring: RestoringBeam, target: RestoringBeam,
                cell_deg: float, cutoff: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(apparent image at the target beam, beam, σ). σ is the registered rms, or, if none was
    registered, the robust rms of the residual (else of the image) inside the cutoff. When the
    image had to be convolved, its noise changed: σ is measured again on the residual brought
    to the target beam, or, without a residual, scaled by √(Ω_target/Ω_i) (noise correlated
    over the restoring beam, as imaged noise is, grows so under the convolution and the
    Jy/beam rescaling)."""
    apparent = read_plane(member.image)
    beam = read_plane(member.beam)
    if apparent.shape != beam.shape:
        raise MosaicError(f"{member.beam} is {beam.shape}, its image {member.image} {apparent.shape}")
    convolved = not restoring.close_to(target)
    apparent = to_common_beam(apparent, restoring, target, cell_deg)
    residual = None
    if member.residual is not None and Path(member.residual).exists():
        residual = read_plane(member.residual)
    sigma = member.rms_jy if member.rms_jy is not None and member.rms_jy > 0 else None
    if convolved and residual is not None:
        sigma = robust_rms(to_common_beam(residual, restoring, target, cell_deg)[beam >= cutoff])
    elif sigma is None:
        sigma = robust_rms((residual if residual is not None else apparent)[beam >= cutoff])
    elif convolved:
        sigma *= math.sqrt(target.area_deg2 / restoring.area_deg2)
    return apparent, beam, float(sigma)


def read_plane(path: Path) -> np.ndarray:
    """The 2-D image plane of a FITS file (degenerate frequency/Stokes axes dropped)."""
    with fits.open(path, memmap=False) as hdul:
        data = hdul[0].data
        return np.asarray(data, np.float32).reshape(data.shape[-2:])


def _header(path: Path) -> fits.Header:
    """The celestial WCS of an image as a header, with its size and restoring beam."""
    try:
        full = fits.getheader(path)
    except OSError as exc:
        raise MosaicError(f"cannot read {path}: {exc}") from exc
    missing = [k for k in ("BMAJ", "BMIN", "BPA") if k not in full]
    if missing:
        raise MosaicError(f"{path} lacks {missing}; the mosaic needs each image's restoring beam")
    header = WCS(full).celestial.to_header()
    for key in ("BMAJ", "BMIN", "BPA", "NAXIS1", "NAXIS2"):
        header[key] = full[key]
    return header
