"""Measure one group image (plain Python; the `photometry` asset calls it).

Forced photometry at every master source inside the image's PB limit, and blind finding
above 5σ: a detection with no master source within a restoring-beam major axis becomes a
new master source (is_new) and is measured too — unless the image's rms is more than
`new_source_max_rms_ratio` (1.3) times its expectation: the excess is artefacts (sidelobes
of uncleaned or miscalibrated bright sources) whose tails reach far above 5σ (a demo image
at 1.9× had 310 islands, CLEANed to 10000 iterations still 187, all spurious), so there
they are counted, not registered. The measurements go to the group's
Parquet file (replaced whole when the image is measured again). master_sources is seeded
from the NVSS catalogue along the strip the first time an image of that declination is
measured. Under the group's lock, so it never reads an image set being replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from contimg.calibration.sky_model import angular_separation_rad, resolve_catalog_path
from contimg.catalogs.nvss import load_nvss, nvss_name
from contimg.celestial import celestial_wcs
from contimg.ingest.group_lock import waiting_group_lock
from contimg.layout import StorageLayout
from contimg.photometry.background import BOX_PX, noise_maps
from contimg.photometry.finder import DETECTION_SIGMA, find_sources
from contimg.photometry.forced import ForcedFluxes, RestoringBeam, forced_fluxes
from contimg.photometry.measurements import measurements_path, write_measurements
from contimg.state import StateStore, master_sources_db, products_db

MIN_USABLE_PIXELS = 1024  # fewer usable pixels than a 32² box: no noise map can be made


class PhotometryError(RuntimeError):
    """A group cannot be measured (no image yet, or its files are gone)."""


@dataclass(frozen=True)
class PhotometryOptions:
    """How images are measured."""

    catalog_path: Path | None  # NVSS; None: blind detections only
    pb_limit: float = 0.2
    detection_sigma: float = DETECTION_SIGMA
    box_px: int = BOX_PX
    strip_half_width_deg: float = 3.0
    new_source_max_rms_ratio: float = 1.3  # images noisier than this x expectation add none

    @classmethod
    def from_settings(cls, settings) -> PhotometryOptions:
        """From a `contimg.settings.Settings`."""
        return cls(resolve_catalog_path(str(settings["CONTIMG_NVSS_CATALOG"]), settings.layout.static_dir),
                   float(settings["CONTIMG_PB_LIMIT"]), float(settings["CONTIMG_DETECTION_SIGMA"]),
                   int(settings["CONTIMG_PHOTOMETRY_BOX_PX"]),
                   float(settings["CONTIMG_MASTER_STRIP_HALF_WIDTH_DEG"]),
                   float(settings["CONTIMG_NEW_SOURCE_MAX_RMS_RATIO"]))


@dataclass
class PhotometryOutcome:
    """What measuring one image found, for the asset's metadata."""

    group_id: str
    parquet: Path
    n_forced: int
    n_detections: int
    new_source_ids: list[int]
    median_rms_jy: float
    catalog_flux_jy: np.ndarray = field(repr=False)
    flux_jy: np.ndarray = field(repr=False)
    is_new: np.ndarray = field(repr=False)
    seeded: int = 0
    unmatched_held: int = 0  # detections without a counterpart not registered (noisy image)


@dataclass(frozen=True)
class MeasuredImage:
    """An image read for measuring: planes, WCS, beam, noise maps."""

    group_id: str
    path: Path
    mid_mjd: float
    rms_ratio: float  # the image's rms over its expectation (products.images)
    image: np.ndarray
    pb: np.ndarray
    wcs: WCS
    beam: RestoringBeam
    beam_major_deg: float
    background: np.ndarray
    rms: np.ndarray
    usable: np.ndarray


def measure_group(layout: StorageLayout, store: StateStore, group_id: str,
                  options: PhotometryOptions) -> PhotometryOutcome:
    """Measure the group's current image and write its Parquet file (see the module doc)."""
    with waiting_group_lock(layout, group_id):
        measured = read_group_image(store, group_id, options)
        seeded = seed_master_sources(store, measured, options)
        masters = _masters_in(store, measured)
        x, y = measured.wcs.world_to_pixel_values(masters.ra_deg, masters.dec_deg)
        inside = _usable_at(measured, x, y)
        ids, names = masters.ids[inside], [n for n, k in zip(masters.names, inside, strict=True) if k]
        ra, dec, is_new = masters.ra_deg[inside], masters.dec_deg[inside], masters.is_new[inside]
        catalog_flux = masters.catalog_flux_jy[inside]
        detections = find_sources(measured.image, measured.background, measured.rms,
                                  options.detection_sigma)
        unmatched = _unmatched(measured, detections, masters)
        held = 0
        if measured.rms_ratio > options.new_source_max_rms_ratio:
            held, unmatched = len(unmatched), []
        new = _register_new(store, measured, unmatched)
        if new:
            ids = np.concatenate([ids, [n[0] for n in new]])
            names += [n[1] for n in new]
            ra = np.concatenate([ra, [n[2] for n in new]])
            dec = np.concatenate([dec, [n[3] for n in new]])
            is_new = np.concatenate([is_new, np.ones(len(new), bool)])
            catalog_flux = np.concatenate([catalog_flux, np.full(len(new), np.nan)])
        fluxes = measure_positions(measured, ra, dec)
        target = measurements_path(layout.photometry_dir, group_id)
        try:
            parquet = write_measurements(target, measurement_columns(measured, ids, names, ra, dec,
                                                                     is_new, fluxes))
        except OSError as exc:
            raise PhotometryError(f"cannot write the measurements of {group_id} to {target}: {exc}; "
                                  "free space on that disk (CONTIMG_PHOTOMETRY_DIR) and measure "
                                  "the group again") from exc
    return PhotometryOutcome(group_id, parquet, int(inside.sum()), len(detections),
                             [n[0] for n in new], float(np.nanmedian(measured.rms)), catalog_flux,
                             fluxes.flux_jy, is_new, seeded, held)


def read_group_image(store: StateStore, group_id: str, options: PhotometryOptions) -> MeasuredImage:
    """The group's apparent image and beam, with noise maps over the PB-limited area."""
    rows = {r["kind"]: r for r in products_db.image_rows(store, group_id)}
    if "image" not in rows or "beam" not in rows:
        raise PhotometryError(f"group {group_id} has no current image in products.images; it is "
                              "measured once it is imaged.")
    path = reading = Path(rows["image"]["path"])
    try:
        with fits.open(path) as hdul:
            header = hdul[0].header
            image = np.asarray(hdul[0].data, np.float32).reshape(hdul[0].data.shape[-2:])
        reading = Path(rows["beam"]["path"])
        with fits.open(reading) as hdul:
            pb = np.asarray(hdul[0].data, np.float32).reshape(image.shape)
    except (OSError, ValueError, TypeError) as exc:  # missing, truncated, or of another shape
        raise PhotometryError(f"the image of {group_id} cannot be read ({exc}): {reading}; image the "
                              "group again (materialise `image` for its partition).") from exc
    usable = (pb >= options.pb_limit) & np.isfinite(image)
    if usable.sum() < MIN_USABLE_PIXELS:
        raise PhotometryError(f"the image of {group_id} ({path}) has {int(usable.sum())} finite pixels "
                              f"above the PB limit {options.pb_limit}; nothing to measure. Check the "
                              "image (its beam file, CONTIMG_PB_LIMIT) and image the group again.")
    try:
        maps = noise_maps(image, usable, options.box_px)
    except ValueError as exc:  # photutils: too few unmasked pixels for any box
        raise PhotometryError(f"no noise map for the image of {group_id} ({path}): {exc}") from exc
    row = rows["image"]
    ratio = (row["rms_jy"] / row["expected_rms_jy"]) if row["rms_jy"] and row["expected_rms_jy"] else 1.0
    return MeasuredImage(group_id, path, float(row["mid_mjd"]), float(ratio), image, pb,
                         celestial_wcs(header), RestoringBeam.from_header(header), float(header["BMAJ"]),
                         maps.background, maps.rms, usable & np.isfinite(maps.rms))


def measure_positions(measured: MeasuredImage, ra_deg: np.ndarray, dec_deg: np.ndarray) -> ForcedFluxes:
    """Forced photometry at sky positions in one image."""
    x, y = measured.wcs.world_to_pixel_values(np.asarray(ra_deg, float), np.asarray(dec_deg, float))
    return forced_fluxes(measured.image, measured.background, measured.rms, measured.pb,
                         measured.beam, np.atleast_1d(x), np.atleast_1d(y))


def seed_master_sources(store: StateStore, measured: MeasuredImage, options: PhotometryOptions) -> int:
    """Seed the strip around this image's declination from the catalogue, once."""
    if options.catalog_path is None:
        return 0
    dec_centre = float(measured.wcs.wcs.crval[1])
    low = float(np.floor((dec_centre - options.strip_half_width_deg) * 2) / 2)
    high = float(np.ceil((dec_centre + options.strip_half_width_deg) * 2) / 2)
    name = options.catalog_path.name
    if master_sources_db.strip_seeded(store, name, low, high):
        return 0
    nvss = load_nvss(options.catalog_path)
    keep = (nvss.dec_deg >= low) & (nvss.dec_deg <= high)
    names = [nvss_name(r, d) for r, d in zip(nvss.ra_deg[keep], nvss.dec_deg[keep], strict=True)]
    return master_sources_db.seed_strip(store, catalog=name, names=names, ra_deg=nvss.ra_deg[keep],
                                        dec_deg=nvss.dec_deg[keep], flux_jy=nvss.flux_jy[keep],
                                        dec_min=low, dec_max=high)


def _masters_in(store: StateStore, measured: MeasuredImage) -> master_sources_db.SourceSet:
    """Master sources inside the image's RA/Dec bounding box."""
    ny, nx = measured.image.shape
    edge_x = np.concatenate([np.arange(nx), np.arange(nx), np.zeros(ny), np.full(ny, nx - 1)])
    edge_y = np.concatenate([np.zeros(nx), np.full(nx, ny - 1), np.arange(ny), np.arange(ny)])
    ra, dec = measured.wcs.pixel_to_world_values(edge_x, edge_y)
    ra_centre = float(measured.wcs.wcs.crval[0])
    spread = (np.asarray(ra) - ra_centre + 180.0) % 360.0 - 180.0
    return master_sources_db.sources_in_box(store, (ra_centre + spread.min()) % 360.0,
                                            (ra_centre + spread.max()) % 360.0,
                                            float(np.min(dec)), float(np.max(dec)))


def _usable_at(measured: MeasuredImage, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ny, nx = measured.usable.shape
    col, row = np.round(np.asarray(x)).astype(int), np.round(np.asarray(y)).astype(int)
    inside = (col >= 0) & (col < nx) & (row >= 0) & (row < ny)
    usable = np.zeros(col.size, bool)
    usable[inside] = measured.usable[row[inside], col[inside]]
    return usable


def _unmatched(measured: MeasuredImage, detections,
               masters: master_sources_db.SourceSet) -> list[tuple[float, float]]:
    """(ra, dec) of detections inside the PB limit with no master source within a beam
    major axis (two islands of one source count once)."""
    if not len(detections):
        return []
    keep = _usable_at(measured, detections.x, detections.y)
    ra, dec = measured.wcs.pixel_to_world_values(detections.x[keep], detections.y[keep])
    ra, dec = np.atleast_1d(ra) % 360.0, np.atleast_1d(dec)
    radius = np.radians(measured.beam_major_deg)
    found: list[tuple[float, float]] = []
    for r, d in zip(ra, dec, strict=True):
        if masters.ids.size and angular_separation_rad(r, d, masters.ra_deg, masters.dec_deg).min() <= radius:
            continue
        if any(angular_separation_rad(r, d, fr, fd) <= radius for fr, fd in found):
            continue
        found.append((float(r), float(d)))
    return found


def _register_new(store: StateStore, measured: MeasuredImage,
                  positions: list[tuple[float, float]]) -> list[tuple[int, str, float, float]]:
    """Register those positions as new master sources: (id, name, ra, dec) each."""
    new = []
    for r, d in positions:
        name = f"DSA {nvss_name(r, d)}"
        flux = float(measure_positions(measured, np.array([r]), np.array([d])).flux_jy[0])
        source_id = master_sources_db.add_new_source(store, name=name, ra_deg=float(r), dec_deg=float(d),
                                                     flux_jy=flux, group_id=measured.group_id,
                                                     mid_mjd=measured.mid_mjd)
        new.append((source_id, name, float(r), float(d)))
    return new


def measurement_columns(measured: MeasuredImage, ids, names, ra, dec, is_new,
                        fluxes: ForcedFluxes) -> dict:
    """The Parquet columns of forced fluxes at those sources in one image."""
    n = len(ids)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = fluxes.flux_jy / fluxes.error_jy
    return {"source_id": np.asarray(ids, np.int64), "source_name": list(names),
            "group_id": [measured.group_id] * n, "mid_mjd": np.full(n, measured.mid_mjd),
            "ra_deg": np.asarray(ra, float), "dec_deg": np.asarray(dec, float),
            "flux_jy": fluxes.flux_jy, "flux_err_jy": fluxes.error_jy,
            "local_rms_jy": fluxes.local_rms_jy, "pb": fluxes.pb, "snr": snr,
            "is_new": np.asarray(is_new, bool), "flags": fluxes.flags,
            "image_path": [str(measured.path)] * n}
