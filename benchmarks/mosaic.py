"""`contimg bench mosaic`: an hourly mosaic of 12 full-size group images.

The 12 image sets are synthesized, not simulated, converted and imaged (that would be 12
full groups, ~20 min of simulation and imaging that this benchmark does not measure): per
group a 2070² SIN image at 6.09″ (the full array's imaging grid, 3.5°) centred 1.29° of RA
after the previous one at δ = 55°, its beam the drift-averaged Airy beam
(`contimg.imaging.primary_beam.drift_averaged_beam` over the group's 24 integrations and the
band), its apparent image Gaussian noise of 0.6 mJy plus a few beam-attenuated sources, a
57″ × 44″ restoring beam. They are written once under `--work` and reused.

Timed, each in its own child process (its wall time and peak RSS its own): ours —
`make_mosaic` (each image and beam reprojected together onto its own footprint's cut-out
of the grid) and writing the products; the reference — the plain per-image loop that
reprojects every image and its beam separately onto the whole mosaic grid (reproject's
defaults) and adds them. One JSON line of figures; `bench_mosaic` returns them as a dict
so other parts (photometry, variability) can join the same line.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import time
from pathlib import Path

import numpy as np

SIZES = {"full": 2070, "small": 768, "tiny": 256}  # image side; the field stays 3.5 deg
FIELD_DEG = 3.5
N_IMAGES = 12
STEP_RA_DEG = 1.29
DEC_DEG = 55.0
NOISE_JY = 6e-4


def bench_mosaic(size: str, work: Path) -> dict:
    """Synthesize (once) and mosaic the 12 images; figures as a dict."""
    members = synthesize_images(size, Path(work) / f"mosaic-{size}")
    context = multiprocessing.get_context("spawn")
    ours = _in_child(context, _ours, members, Path(work) / f"mosaic-{size}" / "out")
    print(f"ours: {ours['seconds']:.2f} s ({ours['combine_s']:.2f} s combine, {ours['write_s']:.2f} s "
          f"write), grid {ours['grid']}, peak {ours['peak_gb']:.2f} GB")
    reference = _in_child(context, _reference, members, None)
    print(f"reference (per image, whole grid): {reference['seconds']:.2f} s, peak "
          f"{reference['peak_gb']:.2f} GB, largest difference {reference['max_diff_jy']:.2e} Jy/beam")
    return {"size": size, "n_images": len(members), "image_side": SIZES[size],
            "mosaic_s": round(ours["seconds"], 2), "mosaic_combine_s": round(ours["combine_s"], 2),
            "mosaic_write_s": round(ours["write_s"], 2), "mosaic_grid": ours["grid"],
            "mosaic_peak_gb": round(ours["peak_gb"], 2),
            "reference_s": round(reference["seconds"], 2),
            "mosaic_ratio": round(reference["seconds"] / ours["seconds"], 2),
            "reference_peak_gb": round(reference["peak_gb"], 2),
            "reference_max_diff_jy": float(f"{reference['max_diff_jy']:.2e}")}


PARTS = ("mosaic", "photometry", "variability")


def run(size: str, work: Path, parts: tuple[str, ...] = PARTS) -> int:
    """The command: the mosaic, photometry and variability figures as one JSON line."""
    from benchmarks.photometry import bench_photometry, bench_variability

    benches = {"mosaic": bench_mosaic, "photometry": bench_photometry, "variability": bench_variability}
    figures: dict = {"size": size}
    for part in parts:
        figures |= benches[part](size, work)
    print(json.dumps(figures))
    return 0


def synthesize_images(size: str, directory: Path) -> list:
    """The 12 image sets (apparent image and beam FITS), written once; MemberImage list."""
    from astropy.io import fits

    from contimg.mosaics.combine import MemberImage

    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    directory.mkdir(parents=True, exist_ok=True)
    side = SIZES[size]
    members = []
    rng = np.random.default_rng(1)
    for index in range(N_IMAGES):
        image, beam = directory / f"g{index:02d}-image.fits", directory / f"g{index:02d}-beam.fits"
        if not (image.exists() and beam.exists()):
            wcs = _wcs(side, 150.0 + index * STEP_RA_DEG)
            power = _drift_beam(wcs, side, 150.0 + index * STEP_RA_DEG)
            apparent = rng.normal(0.0, NOISE_JY, (side, side)).astype(np.float32)
            for _ in range(20):  # sources of 10-100 mJy, seen through the beam
                x, y = rng.integers(8, side - 8, 2)
                apparent[y, x] += power[y, x] * rng.uniform(0.01, 0.1)
            header = wcs.to_header()
            header["BMAJ"], header["BMIN"], header["BPA"] = 57 / 3600, 44 / 3600, 0.0
            header["BUNIT"] = "JY/BEAM"
            fits.PrimaryHDU(apparent[None, None], header).writeto(image, overwrite=True)
            fits.PrimaryHDU(power.astype(np.float32)[None, None], header).writeto(beam, overwrite=True)
        members.append(MemberImage(f"g{index:02d}", image, beam, NOISE_JY))
    return members


def _wcs(side: int, ra_deg: float):
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.crval = [ra_deg, DEC_DEG]
    wcs.wcs.crpix = [side / 2 + 1, side / 2 + 1]
    cell = FIELD_DEG / side
    wcs.wcs.cdelt = [-cell, cell]
    return wcs


def _drift_beam(wcs, side: int, ra_deg: float) -> np.ndarray:
    """The Airy beam averaged over 24 integrations drifting 1.29 deg of RA, 8 band bins."""
    from contimg.calibration.sky_model import DriftPointing
    from contimg.imaging.coverage import Coverage
    from contimg.imaging.primary_beam import drift_averaged_beam

    n_t, freqs = 24, np.linspace(1311.4e6, 1498.6e6, 64)
    offsets = (np.arange(n_t) - (n_t - 1) / 2) * STEP_RA_DEG / n_t
    pointing = DriftPointing(np.arange(n_t) * 12.88, ra_deg + offsets, np.full(n_t, DEC_DEG), freqs,
                             (ra_deg, DEC_DEG), DEC_DEG)
    coverage = Coverage(np.arange(n_t) * 12.88, freqs, 244140.625, 12.88, np.ones((n_t, freqs.size)),
                        1, 1, 2, np.zeros((0, 3), np.float32))
    return drift_averaged_beam(wcs, (side, side), pointing, coverage)


def _in_child(context, target, members, out) -> dict:
    queue = context.Queue()
    process = context.Process(target=target, args=(members, out, queue))
    process.start()
    figures = queue.get()
    process.join()
    return figures


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def _ours(members, out: Path, queue) -> None:
    import shutil

    from contimg import naming
    from contimg.mosaics.combine import make_mosaic
    from contimg.mosaics.stage import summarize, write_products

    began = time.perf_counter()
    planes = make_mosaic(members)
    combine_s = time.perf_counter() - began
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    write_products(out, "hourly", naming.parse_timestamp("2025-10-13T13:00:00"), planes, summarize(planes))
    seconds = time.perf_counter() - began
    np.save(out / "image.npy", planes.image)  # for the reference's comparison (untimed)
    queue.put({"seconds": seconds, "combine_s": combine_s, "write_s": seconds - combine_s,
               "grid": f"{planes.grid.nx}x{planes.grid.ny}", "peak_gb": _peak_gb()})


def _reference(members, _out, queue) -> None:
    """Every image and its beam reprojected separately onto the whole grid, then added."""
    from astropy.io import fits
    from astropy.wcs import WCS
    from reproject import reproject_interp

    from contimg.mosaics.combine import read_plane
    from contimg.mosaics.grid import grid_covering, image_outline

    headers = [fits.getheader(m.image) for m in members]
    grid = grid_covering([image_outline(_celestial(h)) for h in headers], abs(headers[0]["CDELT2"]),
                         DEC_DEG)
    began = time.perf_counter()
    numerator = np.zeros(grid.shape)
    weight = np.zeros(grid.shape)
    target = grid.wcs()
    for member, header in zip(members, headers, strict=True):
        wcs = WCS(header).celestial
        a = reproject_interp((read_plane(member.image), wcs), target, shape_out=grid.shape,
                             return_footprint=False)
        b = reproject_interp((read_plane(member.beam), wcs), target, shape_out=grid.shape,
                             return_footprint=False)
        ok = np.isfinite(a) & np.isfinite(b)
        numerator += np.where(ok, a * b, 0) / member.rms_jy**2
        weight += np.where(ok, b * b, 0) / member.rms_jy**2
    with np.errstate(invalid="ignore", divide="ignore"):
        image = np.where(weight * NOISE_JY**2 >= 0.04, numerator / weight, np.nan)
    seconds = time.perf_counter() - began
    ours = np.load(Path(members[0].image).parent / "out" / "image.npy")
    both = np.isfinite(ours) & np.isfinite(image)
    queue.put({"seconds": seconds, "peak_gb": _peak_gb(),
               "max_diff_jy": float(np.abs(ours[both] - image[both]).max())})


def _celestial(header):
    """The celestial header of an image with its size (what `image_outline` reads)."""
    from astropy.wcs import WCS

    celestial = WCS(header).celestial.to_header()
    celestial["NAXIS1"], celestial["NAXIS2"] = header["NAXIS1"], header["NAXIS2"]
    return celestial
