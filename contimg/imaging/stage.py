"""Image one calibrated group (plain Python; the `image` asset calls it).

In a staging workspace (tmpfs when it has room): the imager writes `<ts>.img-image.fits`
and `-residual.fits`; the drift-averaged primary beam `-beam.fits`, the corrected image
`-image-pb.fits` (blanked below the PB limit) and a quick-look PNG are added; every FITS
header gets the provenance and the quality figures. Then the whole set — the directory
`<ts>.img` — moves into `images/YYYY-MM-DD/` by one rename (an earlier set of the group
is moved aside as `.superseded-<time>`), and its rows go into products.images in one
transaction. Under the group's lock, so it never overlaps a conversion, solve or apply.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from astropy.io import fits
from casacore import tables

from contimg import naming
from contimg.calibration.sky_model import beam_radius_rad, pointing_from_ms
from contimg.celestial import celestial_wcs
from contimg.conversion.staging import keep_for_operator, move_into_place, workspace
from contimg.imaging.coverage import measure_coverage
from contimg.imaging.options import (
    ImageGrid,
    ImagingOptions,
    grid_for,
    lowest_frequency_hz,
)
from contimg.imaging.primary_beam import correct, drift_averaged_beam
from contimg.imaging.provenance import Provenance, contimg_version, imager_version, stamp
from contimg.imaging.quality import ImageQuality, measure_quality
from contimg.imaging.quicklook import quicklook_png
from contimg.imaging.tclean import run_tclean
from contimg.imaging.wsclean import (
    ImagerRun,
    baseline_averaging_wavelengths,
    run_wsclean,
    wsclean_command,
)
from contimg.ingest.group_lock import waiting_group_lock
from contimg.ingest.registry import group_member_files
from contimg.layout import StorageLayout
from contimg.state import StateStore, products_db

FITS_PRODUCTS = ("image", "image-pb", "residual", "beam")


class ImagingError(RuntimeError):
    """A group cannot be imaged (not converted or not calibrated, or the imager failed)."""


@dataclass
class ImageOutcome:
    """What imaging one group made, for the asset's metadata and checks."""

    group_id: str
    image_set: Path
    products: dict[str, Path]
    quality: ImageQuality
    provenance: Provenance
    grid: ImageGrid
    png: bytes
    superseded: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def image_group(layout: StorageLayout, store: StateStore, group_id: str, *,
                options: ImagingOptions | None = None) -> ImageOutcome:
    """Image the group's calibrated MS and register the products (see the module doc)."""
    options = options or ImagingOptions()
    group_iso = naming.iso_timestamp(group_id)
    row = products_db.ms_record(store, group_iso)
    if row is None or row["status"] != "converted":
        raise ImagingError(f"group {group_iso} has no converted MS in ms_index; convert it first.")
    if options.data_column == "CORRECTED_DATA" and row["calibration_status"] != "calibrated":
        raise ImagingError(f"group {group_iso} is not calibrated (calibration status "
                           f"{row['calibration_status']!r}); it is imaged once it is.")
    ms = Path(row["path"])
    if not (ms / "table.dat").exists():
        raise ImagingError(f"the MS of {group_iso} is missing or not a table: {ms}; convert the "
                           f"group again (`contimg requeue {group_iso} --force`).")
    began = time.perf_counter()
    with waiting_group_lock(layout, group_iso), \
            workspace(layout, f"img-{naming.group_id(group_iso)}", _workspace_bytes(ms)) as space:
        set_dir = space.path / naming.image_set_name(group_iso)
        set_dir.mkdir()
        made_from = ImageSource(group_iso, ms, tuple(p.name for p in group_member_files(store, group_iso)),
                                tuple(json.loads(row["cal_tables"] or "[]")))
        try:
            outcome = _make_set(ms, set_dir, made_from, options)
        except Exception as exc:
            raise _quarantined(layout, store, group_iso, set_dir, exc) from exc
        lap = time.perf_counter()
        final, superseded = _place(set_dir, layout.image_set_dir(group_iso))
        outcome.image_set, outcome.superseded = final, superseded
        outcome.products = {k: final / p.name for k, p in outcome.products.items()}
        products_db.record_image_set(
            store, group_id=group_iso, ms_path=ms, mid_mjd=(row["start_mjd"] + row["end_mjd"]) / 2,
            image_set=final, products={k: p for k, p in outcome.products.items() if k in FITS_PRODUCTS},
            imager=options.imager, quality=outcome.quality.as_dict(),
            provenance_json=outcome.provenance.as_json(),
            superseded=(final, superseded) if superseded else None)
        outcome.seconds["place"] = time.perf_counter() - lap
    outcome.seconds["total"] = time.perf_counter() - began
    return outcome


def _quarantined(layout: StorageLayout, store: StateStore, group_iso: str, set_dir: Path,
                 exc: Exception) -> ImagingError:
    """Keep what a failed imaging left (the imager's log among it) in images/failed/, record
    the failure with its reason, and return the error to raise: it names the group, the
    reason, where the workspace went and how to image the group again."""
    reason = f"{type(exc).__name__}: {exc}"
    kept = keep_for_operator(set_dir, layout.failed_image_set_dir(group_iso), reason)
    products_db.record_image_failure(store, group_iso, reason, kept)
    where = f"its workspace is kept in {kept}" if kept else "its workspace could not be kept"
    return ImagingError(f"imaging {group_iso} failed ({reason[:1500]}); {where}. It is not "
                        "retried automatically: fix the cause, then materialise `image` for the "
                        "partition again.")


def image_ms(ms: Path, out_dir: Path, layout: StorageLayout, *,
             options: ImagingOptions | None = None) -> ImageOutcome:
    """Image any Measurement Set (one the platform did not make, too) into
    `out_dir/<ms stem>.img/`, with the same products, beam, quality and provenance as a
    group image, but registered nowhere. DATA is imaged when the MS has no CORRECTED_DATA."""
    options = options or ImagingOptions()
    ms, out_dir = Path(ms), Path(out_dir)
    if not (ms / "table.dat").exists():
        raise ImagingError(f"{ms} is not a Measurement Set (no table.dat); give the MS directory.")
    with tables.table(str(ms), ack=False) as main:
        columns = set(main.colnames())
    if options.data_column not in columns:
        if "DATA" not in columns:
            raise ImagingError(f"{ms} has neither {options.data_column} nor DATA to image.")
        options = replace(options, data_column="DATA")
    final = out_dir / naming.ms_image_set_name(ms)
    began = time.perf_counter()
    name = re.sub(r"[^A-Za-z0-9._-]", "_", final.name)
    with workspace(layout, f"img-ms-{name}", _workspace_bytes(ms)) as space:
        set_dir = space.path / final.name
        set_dir.mkdir()
        outcome = _make_set(ms, set_dir, ImageSource(ms.name, ms, (), ()), options)
        out_dir.mkdir(parents=True, exist_ok=True)
        outcome.image_set, outcome.superseded = _place(set_dir, final)
        outcome.products = {k: final / p.name for k, p in outcome.products.items()}
    outcome.seconds["total"] = time.perf_counter() - began
    return outcome


@dataclass(frozen=True)
class ImageSource:
    """What an image set is made from, for its provenance."""

    group_id: str
    ms: Path
    raw_files: tuple[str, ...]
    cal_tables: tuple[str, ...]


def _make_set(ms: Path, set_dir: Path, made_from: ImageSource, options: ImagingOptions) -> ImageOutcome:
    prefix = set_dir / set_dir.name
    grid = grid_for(ms, options)
    seconds: dict[str, float] = {}
    lap = time.perf_counter()
    run = _run_imager(ms, prefix, grid, options, set_dir.parent / "imager-tmp")
    seconds["imager"] = run.seconds
    for leftover in set_dir.iterdir():  # only the products stay in the set
        if not any(leftover.name.endswith(f"-{k}.fits") for k in ("image", "residual")):
            _remove(leftover)
    lap = time.perf_counter()
    image, header = _read_plane(run.products["image"])
    residual, _ = _read_plane(run.products["residual"])
    wcs = celestial_wcs(header)
    coverage = measure_coverage(ms)
    beam = drift_averaged_beam(wcs, image.shape, pointing_from_ms(ms), coverage,
                               beam_model=Path(options.beam_model) if options.beam_model else None)
    seconds["beam"] = time.perf_counter() - lap
    restoring = tuple(float(header.get(key, 0.0)) for key in ("BMAJ", "BMIN", "BPA"))
    factor = coverage.weighting_noise_factor(size=grid.size, cell_arcsec=grid.cell_arcsec,
                                             weighting=options.weighting, robust=options.robust)
    quality = measure_quality(image, residual, beam, options.pb_limit, restoring, coverage,
                              options.sefd_jy, factor)
    corrected = correct(image, beam, options.pb_limit)
    products = {"image": run.products["image"], "residual": run.products["residual"],
                "image-pb": set_dir / naming.set_product_name(set_dir.name, "image-pb"),
                "beam": set_dir / naming.set_product_name(set_dir.name, "beam")}
    _write_like(run.products["image"], products["image-pb"], corrected)
    _write_like(run.products["image"], products["beam"], beam.astype(np.float32), unit="")
    provenance = _provenance(made_from, run, grid, options)
    for path in products.values():
        stamp(path, provenance, _finite(quality.as_dict()))
    png = quicklook_png(corrected, wcs, restoring, quality.rms_jy,
                        f"{made_from.group_id}  rms {quality.rms_jy * 1e3:.2f} mJy/beam  "
                        f"peak {quality.peak_jy:.3g} Jy  DR {quality.dynamic_range:.0f}")
    quicklook = set_dir / naming.set_product_name(set_dir.name, "quicklook")
    quicklook.write_bytes(png)
    products["quicklook"] = quicklook
    seconds["quality"] = time.perf_counter() - lap - seconds["beam"]
    return ImageOutcome(made_from.group_id, set_dir, products, quality, provenance, grid, png,
                        seconds=seconds)


def _run_imager(ms: Path, prefix: Path, grid: ImageGrid, options: ImagingOptions,
                temp_dir: Path) -> ImagerRun:
    if options.imager == "tclean":
        return run_tclean(ms, prefix, grid, options)
    temp_dir.mkdir(exist_ok=True)
    # The PB-limit radius at the band's bottom (the beam's widest): the edge that matters.
    radius = beam_radius_rad(options.pb_limit, lowest_frequency_hz(ms))
    averaging = baseline_averaging_wavelengths(options.max_smearing_loss, radius)
    command = wsclean_command(ms, prefix, grid, options, averaging_wavelengths=averaging,
                              temp_dir=temp_dir)
    return run_wsclean(command, prefix, options.timeout_s)


def _provenance(made_from: ImageSource, run: ImagerRun, grid: ImageGrid,
                options: ImagingOptions) -> Provenance:
    parameters = {"size": grid.size, "cell_arcsec": grid.cell_arcsec, "field_deg": round(grid.field_deg, 3),
                  "weighting": options.weighting, "robust": options.robust, "niter": options.niter,
                  "mgain": options.mgain, "auto_mask": options.auto_mask,
                  "auto_threshold": options.auto_threshold, "pb_limit": options.pb_limit,
                  "data_column": options.data_column, "beam": options.beam_model or "airy-4.65m"}
    return Provenance(made_from.group_id, str(made_from.ms), made_from.raw_files,
                      made_from.cal_tables, options.imager,
                      imager_version(options.imager), contimg_version(), parameters, run.command)


def _place(set_dir: Path, final: Path) -> tuple[Path, Path | None]:
    """Move the set into place by one rename; an earlier set is moved aside first."""
    aside = None
    if final.exists():
        aside = final.with_name(f"{final.name}.superseded-{time.time():.0f}")
        final.rename(aside)
    move_into_place(set_dir, final)
    return final, aside


def _read_plane(path: Path) -> tuple[np.ndarray, fits.Header]:
    with fits.open(path) as hdul:
        return np.asarray(hdul[0].data, np.float32).reshape(hdul[0].data.shape[-2:]), hdul[0].header


def _write_like(template: Path, path: Path, plane: np.ndarray, unit: str | None = None) -> None:
    """A FITS file with the template's header and axes, holding `plane`."""
    with fits.open(template) as hdul:
        header = hdul[0].header.copy()
        shape = hdul[0].data.shape
    if unit is not None:
        header["BUNIT"] = unit
    fits.PrimaryHDU(plane.reshape(shape), header).writeto(path, overwrite=True)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _finite(figures: dict) -> dict:
    return {k: v for k, v in figures.items() if isinstance(v, (int, float)) and np.isfinite(v)}


def _workspace_bytes(ms: Path) -> int:
    """Room for WSClean's reordered visibilities (≈ the MS's DATA) plus the products."""
    with tables.table(str(ms), ack=False) as main:
        rows = main.nrows()
        cell = main.getcell("DATA", 0).shape
    return int(rows * int(np.prod(cell)) * 6 + 200e6)

