"""WSClean: the command built from the options (testable without the tool), then run.

The command for Debian's WSClean 3.1: `-use-wgridder` (the w-stacking default loses ~5 %
off-centre on this array) at accuracy 1e-3 (its default 1e-4 costs a fifth more time for
no change in the residual rms), `-parallel-reordering`, `-no-update-model-required` (the
calibration's MODEL_DATA stays), `-no-dirty`, Stokes I of CORRECTED_DATA, and
baseline-dependent time averaging sized so that an averaged baseline loses at most
`max_smearing_loss` (5 %) of a source at the PB-limit radius.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import brentq

from contimg.imaging.options import ImageGrid, ImagingOptions

# WSClean's products for a prefix P (one channel, Stokes I).
PRODUCT_SUFFIXES = ("image", "residual", "model", "psf")


class ImagerError(RuntimeError):
    """The imager failed, timed out, or wrote no image."""


@dataclass(frozen=True)
class ImagerRun:
    """What one imager run produced and cost."""

    products: dict[str, Path]  # image, residual, model, psf -> FITS
    seconds: float
    command: tuple[str, ...]
    log_tail: str


def baseline_averaging_wavelengths(max_loss: float, radius_rad: float) -> float:
    """WSClean's `-baseline-averaging` size (wavelengths of uv track per averaged sample)
    at which a source `radius_rad` from the phase centre loses at most `max_loss` of its
    amplitude on any averaged baseline: averaging a fringe whose phase runs through Δφ
    keeps sin(Δφ/2)/(Δφ/2) of it, and Δφ = 2π Δu θ.

    (Averaging up to what the longest baseline moves in one 12.9 s integration, ≈ 12.6 λ,
    would cost ~25 % at the PB-0.2 radius on every baseline.)"""
    if not 0 < max_loss < 1:
        raise ValueError(f"max_loss must be within (0, 1), got {max_loss}")
    half_phase = brentq(lambda y: np.sin(y) / y - (1.0 - max_loss), 1e-9, np.pi)
    return float(half_phase / (np.pi * radius_rad))


def wsclean_command(ms: Path, prefix: Path, grid: ImageGrid, options: ImagingOptions, *,
                    averaging_wavelengths: float | None = None, temp_dir: Path | None = None,
                    executable: str = "wsclean") -> list[str]:
    """The WSClean command line for one MS (nothing is run)."""
    threads = options.threads or os.cpu_count() or 1
    command = [executable, "-name", str(prefix), "-size", str(grid.size), str(grid.size),
               "-scale", f"{grid.cell_arcsec:g}asec", "-pol", "I",
               "-data-column", options.data_column, "-use-wgridder",
               "-wgridder-accuracy", f"{options.wgridder_accuracy:g}",
               "-weight", *(_weighting(options)),
               "-niter", str(options.niter), "-mgain", f"{options.mgain:g}",
               "-auto-threshold", f"{options.auto_threshold:g}",
               "-j", str(threads), "-parallel-reordering", str(threads),
               "-no-update-model-required", "-no-dirty", "-quiet"]
    if options.auto_mask > 0:
        command += ["-auto-mask", f"{options.auto_mask:g}"]
    if options.baseline_averaging and averaging_wavelengths:
        command += ["-baseline-averaging", f"{averaging_wavelengths:.3f}"]
    if temp_dir is not None:
        command += ["-temp-dir", str(temp_dir)]
    return [*command, str(ms)]


def _weighting(options: ImagingOptions) -> list[str]:
    if options.weighting == "briggs":
        return ["briggs", f"{options.robust:g}"]
    return [options.weighting]


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the parent dies. A run killed with -9 must
    not leave WSClean writing into the workspace its retry is about to use."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, 9)


def run_wsclean(command: list[str], prefix: Path, timeout_s: float) -> ImagerRun:
    """Run the command; its products or ImagerError with the log's tail."""
    executable = shutil.which(command[0])
    if executable is None:
        raise ImagerError(f"{command[0]} is not installed; run scripts/setup.sh (it installs the "
                          "Debian package wsclean).")
    began = time.perf_counter()
    try:
        done = subprocess.run([executable, *command[1:]], capture_output=True, text=True,
                              timeout=timeout_s, check=False, preexec_fn=_die_with_parent)
    except subprocess.TimeoutExpired as exc:
        raise ImagerError(f"WSClean ran over {timeout_s:.0f} s and was stopped "
                          "(CONTIMG_IMAGE_TIMEOUT_S)") from exc
    seconds = time.perf_counter() - began
    log = (done.stdout + done.stderr)[-3000:]
    products = {suffix: Path(f"{prefix}-{suffix}.fits") for suffix in PRODUCT_SUFFIXES}
    if done.returncode != 0 or not products["image"].exists():
        raise ImagerError(f"WSClean failed (exit {done.returncode}): {log[-1500:]}")
    return ImagerRun({k: p for k, p in products.items() if p.exists()}, seconds, tuple(command), log)
