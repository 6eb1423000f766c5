"""Make, write and register one hourly or daily mosaic (plain Python; the mosaic assets
call it).

Members come from products.images (hourly: the current group images whose mid time falls
in the UTC hour) or products.mosaics (daily: the day's current hourly mosaics). In a
staging workspace the set `<name>.mosaic/` is written — `<name>.mosaic.fits` (the image,
Jy/beam, PB-corrected, NaN where blanked), `-noise.fits`, `-weight.fits` (W, and the
numerator Σ B A/σ² as extension NUMERATOR) and `-quicklook.png` — every FITS header
listing the members and the method; then it moves into `mosaics/<kind>/YYYY-MM-DD/` by one
rename (an earlier mosaic of the window is moved aside as `.superseded-<time>`) and its row
goes into products.mosaics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from astropy.io import fits

from contimg import naming
from contimg.conversion.staging import move_into_place, workspace
from contimg.imaging.quicklook import quicklook_png
from contimg.layout import StorageLayout
from contimg.mosaics.combine import METHOD, MemberImage, MosaicError, MosaicPlanes, make_mosaic
from contimg.mosaics.daily import combine_hourly
from contimg.state import StateStore, products_db
from contimg.timeutil import datetime_to_mjd

PRODUCT_KEYS = ("image", "noise", "weight", "quicklook")


@dataclass(frozen=True)
class MosaicOptions:
    """The combined-beam cutoff and the daily grid's block factor (settings
    CONTIMG_MOSAIC_BEAM_CUTOFF, CONTIMG_DAILY_MOSAIC_CELL_FACTOR)."""

    cutoff: float = 0.2
    daily_cell_factor: int = 4

    def __post_init__(self):
        if not 0 < self.cutoff <= 1:
            raise ValueError(f"the mosaic beam cutoff must be in (0, 1], got {self.cutoff}")
        if self.daily_cell_factor not in (1, 2, 4, 8, 16):
            raise ValueError(f"the daily cell factor must be 1, 2, 4, 8 or 16 (it must tile the "
                             f"grid's turn around the sky), got {self.daily_cell_factor}")

    @classmethod
    def from_settings(cls, settings) -> MosaicOptions:
        return cls(float(settings["CONTIMG_MOSAIC_BEAM_CUTOFF"]),
                   int(settings["CONTIMG_DAILY_MOSAIC_CELL_FACTOR"]))


@dataclass
class MosaicOutcome:
    """What making one mosaic produced, for the asset's metadata and checks."""

    name: str
    kind: str
    set_dir: Path
    products: dict[str, Path]
    quality: dict[str, float | int]
    members: list[dict]
    png: bytes
    superseded: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def window(kind: str, moment: datetime) -> tuple[datetime, datetime]:
    """The UTC hour or day holding `moment`: [start, end)."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    if kind == "hourly":
        start = moment.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def hourly_members(store: StateStore, hour: datetime) -> list[MemberImage]:
    """The current group images whose mid time falls in the hour."""
    start, end = window("hourly", hour)
    return [MemberImage(row["group_id"], Path(row["image_path"]), Path(row["beam_path"]),
                        row["rms_jy"], Path(row["residual_path"]) if row["residual_path"] else None,
                        row["created"])
            for row in products_db.images_between(store, datetime_to_mjd(start), datetime_to_mjd(end))]


def make_hourly_mosaic(layout: StorageLayout, store: StateStore, hour: datetime, *,
                       options: MosaicOptions | None = None) -> MosaicOutcome:
    """The hour's mosaic from its group images, written and registered."""
    options = options or MosaicOptions()
    members = hourly_members(store, hour)
    if not members:
        raise MosaicError(f"no current group image has its mid time in the hour "
                          f"{naming.mosaic_name('hourly', hour)}; nothing to mosaic")
    began = time.perf_counter()
    planes = make_mosaic(members, cutoff=options.cutoff)
    combine_s = time.perf_counter() - began
    outcome = _write_and_register(layout, store, "hourly", hour, planes)
    outcome.seconds = {"combine": combine_s, "total": time.perf_counter() - began}
    return outcome


def make_daily_mosaic(layout: StorageLayout, store: StateStore, day: datetime, *,
                      options: MosaicOptions | None = None) -> MosaicOutcome:
    """The day's mosaic from its hourly mosaics (`daily.py`), written and registered."""
    options = options or MosaicOptions()
    start, end = window("daily", day)
    rows = products_db.mosaics_between(store, "hourly", datetime_to_mjd(start), datetime_to_mjd(end))
    if not rows:
        raise MosaicError(f"no hourly mosaic of {naming.mosaic_name('daily', day)} exists; "
                          "the daily mosaic adds the hourly ones")
    began = time.perf_counter()
    planes = combine_hourly([(r["name"], Path(r["path"]), Path(r["weight_path"])) for r in rows],
                            factor=options.daily_cell_factor, cutoff=options.cutoff)
    combine_s = time.perf_counter() - began
    outcome = _write_and_register(layout, store, "daily", day, planes)
    outcome.seconds = {"combine": combine_s, "total": time.perf_counter() - began}
    return outcome


def summarize(planes: MosaicPlanes) -> dict[str, float | int]:
    """The figures recorded with a mosaic and shown in the UI."""
    noise = planes.noise[np.isfinite(planes.noise)]
    image = planes.image[np.isfinite(planes.image)]
    cell_arcsec = planes.grid.cell_deg * planes.grid.factor * 3600
    return {
        "n_members": len(planes.members), "ny": planes.grid.ny, "nx": planes.grid.nx,
        "cell_arcsec": cell_arcsec,
        "kept_fraction": planes.kept_fraction,
        "kept_area_deg2": float(image.size * (cell_arcsec / 3600) ** 2),
        "min_noise_jy": float(noise.min()) if noise.size else float("nan"),
        "median_noise_jy": float(np.median(noise)) if noise.size else float("nan"),
        "sigma_ref_jy": planes.sigma_ref, "cutoff": planes.cutoff,
        "peak_jy": float(image.max()) if image.size else float("nan"),
        "bmaj_arcsec": planes.restoring.bmaj_deg * 3600, "bmin_arcsec": planes.restoring.bmin_deg * 3600,
        "bpa_deg": planes.restoring.bpa_deg,
    }


def _write_and_register(layout: StorageLayout, store: StateStore, kind: str, moment: datetime,
                        planes: MosaicPlanes) -> MosaicOutcome:
    name = naming.mosaic_name(kind, moment)
    start, end = window(kind, moment)
    quality = summarize(planes)
    needed = int(planes.image.size * 4 * 6 + 100e6)  # five float32 maps and the picture
    with workspace(layout, f"mosaic-{kind}-{naming.group_id(start)}", needed) as space:
        set_dir = space.path / naming.mosaic_set_name(kind, moment)
        set_dir.mkdir()
        products = write_products(set_dir, kind, moment, planes, quality)
        png = products["quicklook"].read_bytes()
        final = layout.mosaic_set_dir(kind, moment)
        aside = None
        if final.exists():
            aside = final.with_name(f"{final.name}.superseded-{time.time():.0f}")
            final.rename(aside)
        move_into_place(set_dir, final)
        products = {k: final / p.name for k, p in products.items()}
        products_db.record_mosaic(
            store, name=name, kind=kind, set_dir=final, image=products["image"],
            noise=products["noise"], weight=products["weight"], start_mjd=datetime_to_mjd(start),
            end_mjd=datetime_to_mjd(end), members=planes.members, quality=quality,
            superseded=(final, aside) if aside else None)
    return MosaicOutcome(name, kind, final, products, quality, planes.members, png, aside)


def write_products(set_dir: Path, kind: str, moment: datetime, planes: MosaicPlanes,
                   quality: dict) -> dict[str, Path]:
    """The FITS maps and the quick-look of a mosaic into `set_dir`."""
    header = planes.grid.wcs().to_header()
    header["BMAJ"], header["BMIN"], header["BPA"] = (planes.restoring.bmaj_deg,
                                                     planes.restoring.bmin_deg, planes.restoring.bpa_deg)
    for key, value in planes.grid.header_cards().items():
        header[key] = value
    header["MOSKIND"] = (kind, "hourly or daily mosaic")
    header["MOSNAME"] = naming.mosaic_name(kind, moment)
    header["MOSSREF"] = (planes.sigma_ref, "median member noise, Jy/beam")
    header["MOSCUT"] = (planes.cutoff, "NaN where MOSSREF*sqrt(W) < MOSCUT")
    header["NMEMBERS"] = len(planes.members)
    header["METHOD"] = ("linear, beam and noise weighted", "see HISTORY")
    header.add_history(f"method: {METHOD}")
    for index, member in enumerate(planes.members):
        header[f"MEMB{index:04d}"] = member["name"]
        header.add_history(f"member {member['name']}: {member['image']}"
                           + (f" sigma {member['sigma_jy']:.4g} Jy" if "sigma_jy" in member else ""))
    paths = {key: set_dir / naming.mosaic_product_name(kind, moment, key) for key in PRODUCT_KEYS}
    _write(paths["image"], planes.image, header, "JY/BEAM")
    _write(paths["noise"], planes.noise, header, "JY/BEAM")
    weight = fits.PrimaryHDU(planes.weight, _with_unit(header, "1/(JY/BEAM)**2"))
    numerator = fits.ImageHDU(planes.numerator, _with_unit(header, "1/(JY/BEAM)"), name="NUMERATOR")
    fits.HDUList([weight, numerator]).writeto(paths["weight"])
    title = (f"{naming.mosaic_name(kind, moment)} {kind} mosaic, {len(planes.members)} members, "
             f"noise {quality['min_noise_jy'] * 1e3:.2f}-{quality['median_noise_jy'] * 1e3:.2f} mJy/beam")
    restoring = (planes.restoring.bmaj_deg, planes.restoring.bmin_deg, planes.restoring.bpa_deg)
    paths["quicklook"].write_bytes(quicklook_png(planes.image, planes.grid.wcs(), restoring,
                                                 quality["median_noise_jy"], title))
    return paths


def _with_unit(header: fits.Header, unit: str) -> fits.Header:
    header = header.copy()
    header["BUNIT"] = unit
    return header


def _write(path: Path, plane: np.ndarray, header: fits.Header, unit: str) -> None:
    fits.PrimaryHDU(plane, _with_unit(header, unit)).writeto(path)
