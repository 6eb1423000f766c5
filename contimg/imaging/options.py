"""Every imaging parameter in one frozen, validated object (read once from the settings).

Defaults are the telescope pipeline's (Briggs 0, niter 1000, auto-mask 3, auto-threshold
0.5, PB limit 0.2) over a 3.5° field, except mgain 0.9 instead of 0.8: on a full group
with a 5 Jy source in the field WSClean needed 4 major cycles at 0.8 and 3 at 0.9 (57.0 s
and 46.5 s at gridder accuracy 1e-3), with the same residual rms (0.535 / 0.536 mJy).
The pixel size comes from the longest baseline unless set: 0.4 λ/B_max at the top of the
band, ≈ 6″ for DSA-110 (λ/B_max ≈ 15″, while the restoring beam is ≈ 60″ × 18″ — the
array's uv coverage is far from round — so 6″ is a fifth of the beam's geometric mean
and a third of its minor axis); the image size is then the field over the cell (≈ 2066²
for 3.5°).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from casacore import tables

from contimg.instrument import SPEED_OF_LIGHT_M_S

ARCSEC_PER_RAD = 180.0 / np.pi * 3600.0


class ImagingOptionsError(ValueError):
    """An imaging option out of range or inconsistent with another."""


@dataclass(frozen=True)
class ImagingOptions:
    """How a group is imaged; `validate()` runs on construction."""

    imager: str = "wsclean"  # or "tclean"
    size: int = 0  # pixels per side; 0: field_deg / cell
    field_deg: float = 3.5
    cell_arcsec: float = 0.0  # 0: from the longest baseline
    cell_fraction: float = 0.4  # of λ/B_max, when the cell is derived
    weighting: str = "briggs"
    robust: float = 0.0
    niter: int = 1000
    mgain: float = 0.9  # the pipeline's 0.8 costs a major cycle (~13 s) on bright fields
    auto_mask: float = 3.0  # 0: off
    auto_threshold: float = 0.5
    threads: int = 0  # 0: every core
    wgridder_accuracy: float = 1e-3  # WSClean's default 1e-4 costs ~10 s more, same rms
    baseline_averaging: bool = True
    max_smearing_loss: float = 0.05  # of a source at the PB-limit radius, per averaged baseline
    data_column: str = "CORRECTED_DATA"
    timeout_s: float = 900.0
    pb_limit: float = 0.2
    beam_model: str = ""  # a beam FITS path; empty: Airy
    sefd_jy: float = 5800.0
    noise_warn_ratio: float = 2.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ImagingOptionsError naming the first bad option and the fix."""
        checks = [
            (self.imager in ("wsclean", "tclean"), "imager must be wsclean or tclean"),
            (self.weighting in ("briggs", "natural", "uniform"),
             "weighting must be briggs, natural or uniform"),
            (-2.0 <= self.robust <= 2.0, "robust must be within -2..2"),
            (self.size >= 0 and (self.size == 0 or self.size >= 64), "size must be 0 or >= 64 pixels"),
            (0 < self.field_deg <= 30, "field_deg must be within (0, 30]"),
            (self.cell_arcsec >= 0, "cell_arcsec must be >= 0 (0: derived)"),
            (0 < self.cell_fraction <= 0.5, "cell_fraction must be within (0, 0.5]"),
            (self.niter >= 0, "niter must be >= 0"),
            (0 < self.mgain <= 1, "mgain must be within (0, 1]"),
            (self.auto_mask >= 0 and self.auto_threshold > 0,
             "auto_mask must be >= 0 and auto_threshold > 0"),
            (self.auto_mask == 0 or self.auto_mask > self.auto_threshold,
             "auto_mask must exceed auto_threshold (WSClean's rule)"),
            (self.threads >= 0, "threads must be >= 0"),
            (1e-7 <= self.wgridder_accuracy <= 1e-1, "wgridder_accuracy must be within [1e-7, 0.1]"),
            (0 < self.max_smearing_loss < 0.5, "max_smearing_loss must be within (0, 0.5)"),
            (0 < self.pb_limit <= 1, "pb_limit must be within (0, 1]"),
            (self.data_column in ("DATA", "CORRECTED_DATA"), "data_column must be DATA or CORRECTED_DATA"),
        ]
        for ok, message in checks:
            if not ok:
                raise ImagingOptionsError(f"imaging option: {message} (see the [imaging] settings).")

    @classmethod
    def from_settings(cls, settings) -> ImagingOptions:
        """From a `contimg.settings.Settings` (the CONTIMG_IMAGE*/PB/SEFD settings)."""
        beam_model = str(settings["CONTIMG_BEAM_MODEL"])
        if beam_model and not Path(beam_model).is_absolute():
            beam_model = str(settings.layout.static_dir / "beam-model" / beam_model)
        return cls(
            imager=str(settings["CONTIMG_IMAGER"]), size=int(settings["CONTIMG_IMAGE_SIZE"]),
            field_deg=float(settings["CONTIMG_IMAGE_FIELD_DEG"]),
            cell_arcsec=float(settings["CONTIMG_IMAGE_CELL_ARCSEC"]),
            cell_fraction=float(settings["CONTIMG_IMAGE_CELL_FRACTION"]),
            weighting=str(settings["CONTIMG_IMAGE_WEIGHTING"]),
            robust=float(settings["CONTIMG_IMAGE_ROBUST"]), niter=int(settings["CONTIMG_IMAGE_NITER"]),
            mgain=float(settings["CONTIMG_IMAGE_MGAIN"]),
            auto_mask=float(settings["CONTIMG_IMAGE_AUTO_MASK"]),
            auto_threshold=float(settings["CONTIMG_IMAGE_AUTO_THRESHOLD"]),
            threads=int(settings["CONTIMG_IMAGE_THREADS"]),
            wgridder_accuracy=float(settings["CONTIMG_IMAGE_WGRIDDER_ACCURACY"]),
            baseline_averaging=bool(settings["CONTIMG_IMAGE_BASELINE_AVERAGING"]),
            max_smearing_loss=float(settings["CONTIMG_IMAGE_MAX_SMEARING_LOSS"]),
            timeout_s=float(settings["CONTIMG_IMAGE_TIMEOUT_S"]),
            pb_limit=float(settings["CONTIMG_PB_LIMIT"]), beam_model=beam_model,
            sefd_jy=float(settings["CONTIMG_SEFD_JY"]),
            noise_warn_ratio=float(settings["CONTIMG_IMAGE_NOISE_WARN_RATIO"]))


@dataclass(frozen=True)
class ImageGrid:
    """The grid one MS is imaged on: pixels per side and pixel size."""

    size: int
    cell_arcsec: float

    @property
    def field_deg(self) -> float:
        """Side of the image in degrees."""
        return self.size * self.cell_arcsec / 3600.0


def longest_baseline_m(ms: Path) -> float:
    """The longest projected baseline length (|uvw|) in the MS, metres."""
    with tables.table(str(ms), ack=False) as main:
        uvw = main.getcol("UVW")
    return float(np.sqrt((uvw**2).sum(axis=1)).max())


def highest_frequency_hz(ms: Path) -> float:
    """The top of the band (the smallest synthesised beam)."""
    with tables.table(str(ms / "SPECTRAL_WINDOW"), ack=False) as spw:
        return float(spw.getcol("CHAN_FREQ").max())


def lowest_frequency_hz(ms: Path) -> float:
    """The bottom of the band (the widest primary beam)."""
    with tables.table(str(ms / "SPECTRAL_WINDOW"), ack=False) as spw:
        return float(spw.getcol("CHAN_FREQ").min())


def grid_for(ms: Path, options: ImagingOptions) -> ImageGrid:
    """Pixel size (set, or `cell_fraction` of λ/B_max at the band's top) and image size
    (set, or the field divided by the cell), the size rounded up to an even number."""
    cell = options.cell_arcsec
    if cell <= 0:
        wavelength = SPEED_OF_LIGHT_M_S / highest_frequency_hz(ms)
        cell = options.cell_fraction * wavelength / longest_baseline_m(ms) * ARCSEC_PER_RAD
        cell = float(np.floor(cell * 100) / 100)  # a round number of centi-arcseconds
    size = options.size or int(np.ceil(options.field_deg * 3600.0 / cell))
    return ImageGrid(size + size % 2, cell)
