"""Photometry of one full-size image, and the daily variability query over 10⁸ measurements
(parts of `contimg bench mosaic`, which prints every figure on one JSON line).

Photometry: a synthesized 2070² image at 6.09″ (the mosaic benchmark's grid and drift-
averaged beam), noise correlated like an image's (white noise convolved with the 57″ × 44″
beam narrowed by √2, 0.6 mJy rms), 600 beam-shaped sources of 5–500 mJy seen through the
beam, and 1000 master sources (the 600 and 400 empty positions). Timed, each in its own
child process: ours — `measure_group` whole (read, noise maps, forced photometry of every
master source, blind finding, cross-match, Parquet); the reference — photutils'
PSFPhotometry with a Gaussian PSF of the restoring beam fixed at the 600 source positions
on the same background-subtracted image (the library's own forced photometry; it fails on
the empty positions).

Variability: 10⁴ sources × 10⁴ epochs written once as Parquet (date-partitioned, like the
platform's files) by DuckDB; timed: ours — `variability_statistics` (DuckDB SQL); the
reference — the same figures in plain numpy after reading the columns with pyarrow (sort
by source, then reduceat).
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from pathlib import Path

import numpy as np

N_SOURCES, N_EMPTY = 600, 400
BEAM_ARCSEC = (57.0, 44.0, 0.0)
NOISE_JY = 6e-4
VARIABILITY_SIZES = {"full": (10_000, 10_000), "small": (1_000, 1_000), "tiny": (100, 100)}


def bench_photometry(size: str, work: Path) -> dict:
    """Figures of ours and the reference on one synthesized image."""
    field = synthesize_field(size, Path(work) / f"photometry-{size}")
    context = multiprocessing.get_context("spawn")
    ours = _in_child(context, _ours, field)
    reference = _in_child(context, _reference, field)
    agreement = np.nanmedian(np.abs(ours.pop("flux") / reference.pop("flux") - 1))
    print(f"photometry: ours {ours['seconds']:.2f} s, photutils PSFPhotometry {reference['seconds']:.2f} s")
    return {"photometry_s": round(ours["seconds"], 2), "photometry_peak_gb": round(ours["peak_gb"], 2),
            "photometry_forced": ours["forced"], "photometry_detections": ours["detections"],
            "photometry_flux_vs_truth": round(ours["truth_ratio"], 4),
            "photutils_psf_s": round(reference["seconds"], 2),
            "photometry_ratio": round(reference["seconds"] / ours["seconds"], 2),
            "photometry_median_diff_vs_photutils": float(f"{agreement:.2e}")}


def bench_variability(size: str, work: Path) -> dict:
    """Figures of the DuckDB query and the numpy reference over the synthetic measurements."""
    n_sources, n_epochs = VARIABILITY_SIZES[size]
    root = write_measurements_table(Path(work) / f"variability-{size}", n_sources, n_epochs)
    context = multiprocessing.get_context("spawn")
    ours = _in_child(context, _query, root)
    reference = _in_child(context, _numpy_query, root)
    difference = float(np.nanmax(np.abs(ours.pop("eta") / reference.pop("eta") - 1)))
    print(f"variability over {n_sources * n_epochs:.1e} measurements: DuckDB {ours['seconds']:.2f} s, "
          f"numpy {reference['seconds']:.2f} s")
    return {"variability_measurements": n_sources * n_epochs, "variability_s": round(ours["seconds"], 2),
            "variability_peak_gb": round(ours["peak_gb"], 2), "variability_candidates": ours["candidates"],
            "numpy_variability_s": round(reference["seconds"], 2),
            "numpy_variability_peak_gb": round(reference["peak_gb"], 2),
            "variability_ratio": round(reference["seconds"] / ours["seconds"], 2),
            "variability_max_eta_rel_diff": float(f"{difference:.1e}")}


def synthesize_field(size: str, directory: Path) -> dict:
    """The image, its beam and the master positions (written once, reused)."""
    from astropy.io import fits
    from scipy.signal import fftconvolve

    from benchmarks.mosaic import SIZES, _drift_beam, _wcs
    from contimg.photometry.forced import RestoringBeam

    side = SIZES[size]
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"image": directory / "field-image.fits", "beam": directory / "field-beam.fits",
             "truth": directory / "field-truth.npz"}
    if all(p.exists() for p in paths.values()):
        return {k: str(v) for k, v in paths.items()}
    rng = np.random.default_rng(7)
    wcs = _wcs(side, 150.0)
    power = _drift_beam(wcs, side, 150.0)
    cell_arcsec = abs(wcs.wcs.cdelt[1]) * 3600
    beam = RestoringBeam(BEAM_ARCSEC[0] / cell_arcsec, BEAM_ARCSEC[1] / cell_arcsec, 0.0)
    narrow = RestoringBeam(beam.major_px / np.sqrt(2), beam.minor_px / np.sqrt(2), 0.0)
    offsets = np.arange(-beam.half_size, beam.half_size + 1)
    noise = fftconvolve(rng.standard_normal((side, side)), narrow.kernel(offsets[None, :], offsets[:, None]),
                        mode="same")
    image = (noise / noise.std() * NOISE_JY).astype(np.float32)
    margin = beam.half_size + 2
    inside = np.argwhere(power[margin:-margin, margin:-margin] >= 0.3) + margin
    picks = inside[rng.choice(len(inside), N_SOURCES + N_EMPTY, replace=False)]
    y, x = picks[:, 0] + rng.random(len(picks)) - 0.5, picks[:, 1] + rng.random(len(picks)) - 0.5
    flux = np.concatenate([5e-3 * (100 ** rng.random(N_SOURCES)), np.zeros(N_EMPTY)])
    for xi, yi, fi in zip(x[:N_SOURCES], y[:N_SOURCES], flux[:N_SOURCES], strict=True):
        cy, cx = int(round(yi)), int(round(xi))
        h = beam.half_size
        window = np.s_[cy - h:cy + h + 1, cx - h:cx + h + 1]
        rows, cols = np.mgrid[window]
        image[window] += (fi * power[cy, cx] * beam.kernel(cols - xi, rows - yi)).astype(np.float32)
    ra, dec = wcs.pixel_to_world_values(x, y)
    header = wcs.to_header()
    header["BMAJ"], header["BMIN"], header["BPA"] = BEAM_ARCSEC[0] / 3600, BEAM_ARCSEC[1] / 3600, 0.0
    header["BUNIT"] = "JY/BEAM"
    fits.PrimaryHDU(image[None, None], header).writeto(paths["image"], overwrite=True)
    fits.PrimaryHDU(power.astype(np.float32)[None, None], header).writeto(paths["beam"], overwrite=True)
    np.savez(paths["truth"], ra=ra, dec=dec, flux=flux)
    return {k: str(v) for k, v in paths.items()}


def write_measurements_table(directory: Path, n_sources: int, n_epochs: int) -> Path:
    """n_sources × n_epochs measurements as date-partitioned Parquet (written once): steady
    sources with 1 mJy errors, every hundredth one brightening halfway."""
    import duckdb

    marker = directory / ".complete"
    if marker.exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    duckdb.connect().execute(f"""
        COPY (
            SELECT source_id, group_id, mid_mjd, CAST(flux_jy AS DOUBLE) AS flux_jy,
                   CAST(0.001 AS DOUBLE) AS flux_err_jy,
                   CAST(0 AS TINYINT) AS flags,
                   strftime(TIMESTAMP '2025-10-01' + to_seconds(CAST(epoch * 300 AS BIGINT)),
                            '%Y-%m-%d') AS date
            FROM (
                SELECT i % {n_sources} AS source_id, i // {n_sources} AS epoch,
                       'g' || CAST(i // {n_sources} AS VARCHAR) AS group_id,
                       60949.0 + (i // {n_sources}) * 300.0 / 86400.0 AS mid_mjd,
                       0.05 + (i % {n_sources}) * 1e-5 + 0.001 * (random() * 2 - 1) * 1.732
                           + CASE WHEN i % {n_sources} % 100 = 0 AND i // {n_sources} > {n_epochs // 2}
                                  THEN 0.05 ELSE 0 END AS flux_jy
                FROM range({n_sources * n_epochs}) t(i)
            )
        ) TO '{directory}' (FORMAT parquet, PARTITION_BY (date), OVERWRITE_OR_IGNORE)
    """)
    marker.touch()
    return directory


def _in_child(context, target, argument) -> dict:
    """Run `target` in a child process (its own wall time and peak RSS); its figures, or
    RuntimeError when it died without any."""
    import queue as queues

    queue = context.Queue()
    process = context.Process(target=target, args=(argument, queue))
    process.start()
    while True:
        try:
            figures = queue.get(timeout=5)
            break
        except queues.Empty:
            if not process.is_alive():
                raise RuntimeError(f"{target.__name__} died (exit {process.exitcode})") from None
    process.join()
    return figures


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def _ours(field: dict, queue) -> None:
    import tempfile
    import warnings

    from contimg.layout import resolve_layout
    from contimg.photometry.measurements import read_measurements
    from contimg.photometry.stage import PhotometryOptions, measure_group
    from contimg.state import StateStore, master_sources_db, products_db

    warnings.simplefilter("ignore")
    truth = np.load(field["truth"])
    with tempfile.TemporaryDirectory() as home:
        layout = resolve_layout({"CONTIMG_HOME": home, "CONTIMG_TMPFS_DIR": f"{home}/shm"})
        layout.ensure()
        with StateStore(layout.state_dir) as store:
            store.migrate_all()
            names = [f"M{i:04d}" for i in range(truth["ra"].size)]
            master_sources_db.seed_strip(store, catalog="bench", names=names, ra_deg=truth["ra"],
                                         dec_deg=truth["dec"], flux_jy=truth["flux"], dec_min=-90, dec_max=90)
            products_db.record_image_set(
                store, group_id="2025-10-13T13:00:00", ms_path="-", mid_mjd=60961.54,
                image_set=Path(field["image"]).parent,
                products={"image": Path(field["image"]), "beam": Path(field["beam"])}, imager="synthetic",
                quality={}, provenance_json="{}")
            began = time.perf_counter()
            outcome = measure_group(layout, store, "2025-10-13T13:00:00",
                                    PhotometryOptions(catalog_path=None))
            seconds = time.perf_counter() - began
            measured = read_measurements(outcome.parquet)
    flux = np.full(truth["ra"].size, np.nan)
    for name, value in zip(measured["source_name"], measured["flux_jy"], strict=True):
        if str(name).startswith("M"):
            flux[int(str(name)[1:])] = value
    bright = truth["flux"] > 0.05
    queue.put({"seconds": seconds, "peak_gb": _peak_gb(), "forced": outcome.n_forced,
               "detections": outcome.n_detections, "flux": flux,
               "truth_ratio": float(np.nanmedian(flux[bright] / truth["flux"][bright]))})


def _reference(field: dict, queue) -> None:
    import warnings

    from astropy.io import fits
    from astropy.table import QTable
    from astropy.wcs import WCS
    from photutils.psf import GaussianPSF, PSFPhotometry

    from contimg.photometry.background import noise_maps

    warnings.simplefilter("ignore")
    truth = np.load(field["truth"])
    with fits.open(field["image"]) as hdul:
        image, header = hdul[0].data.squeeze().astype(float), hdul[0].header
    power = fits.getdata(field["beam"]).squeeze()
    began = time.perf_counter()
    maps = noise_maps(image, power >= 0.2)
    # The 600 sources only: at the empty positions photutils' fitter stops on NaNs in its
    # least squares (seen with photutils 3.0), so ours measures 1000 positions to its 600.
    x, y = WCS(header).celestial.world_to_pixel_values(truth["ra"][:N_SOURCES], truth["dec"][:N_SOURCES])
    cell = abs(header["CDELT2"])
    fwhm_x, fwhm_y = header["BMIN"] / cell, header["BMAJ"] / cell  # BPA 0: major along y
    psf = GaussianPSF(x_fwhm=fwhm_x, y_fwhm=fwhm_y)
    psf.x_0.fixed = psf.y_0.fixed = True
    side = int(2 * np.ceil(fwhm_y) + 1)
    photometry = PSFPhotometry(psf, fit_shape=(side, side), aperture_radius=fwhm_y)
    data = np.nan_to_num(image - maps.background)
    error = np.where(np.isfinite(maps.rms) & (maps.rms > 0), maps.rms, 1.0)
    area = 2 * np.pi * (fwhm_x / 2.3548) * (fwhm_y / 2.3548)  # integrated / peak of the Gaussian
    rows, cols = np.round(y).astype(int), np.round(x).astype(int)
    start = QTable({"x": x, "y": y, "flux": data[rows, cols] * area})  # the peak as a first guess
    result = photometry(data, error=error, init_params=start)
    seconds = time.perf_counter() - began
    flux = np.full(truth["ra"].size, np.nan)
    flux[:N_SOURCES] = np.asarray(result["flux_fit"]) / area / power[rows, cols]
    queue.put({"seconds": seconds, "peak_gb": _peak_gb(), "flux": flux})


def _query(root: Path, queue) -> None:
    from contimg.photometry.variability import Thresholds, variability_statistics

    began = time.perf_counter()
    table = variability_statistics(str(root / "date=*" / "*.parquet"), 1e9, Thresholds())
    queue.put({"seconds": time.perf_counter() - began, "peak_gb": _peak_gb(),
               "candidates": int(table.candidate.sum()), "eta": table.eta})


def _numpy_query(root: Path, queue) -> None:
    import pyarrow.dataset as ds

    began = time.perf_counter()
    table = ds.dataset(root, format="parquet", partitioning="hive").to_table(
        columns=["source_id", "flux_jy", "flux_err_jy"], filter=ds.field("flags") == 0)
    source = table.column("source_id").to_numpy()
    flux = table.column("flux_jy").to_numpy()
    weight = 1.0 / table.column("flux_err_jy").to_numpy() ** 2
    order = np.argsort(source, kind="stable")
    source, flux, weight = source[order], flux[order], weight[order]
    starts = np.flatnonzero(np.r_[True, source[1:] != source[:-1]])
    n = np.diff(np.r_[starts, source.size])
    sw, sws, swss = (np.add.reduceat(v, starts) for v in (weight, weight * flux, weight * flux * flux))
    eta = (swss - sws * sws / sw) / (n - 1)
    np.maximum.reduceat(flux, starts), np.minimum.reduceat(flux, starts)
    queue.put({"seconds": time.perf_counter() - began, "peak_gb": _peak_gb(), "eta": eta})
