"""Naming conventions of the seed's architecture: timestamps, group ids, date
directories, subband files, calibrator names, calibration tables and image products."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

ISO_FORMAT = "%Y-%m-%dT%H:%M:%S"
GROUP_ID_FORMAT = "%Y-%m-%d_%H_%M_%S"
DATE_FORMAT = "%Y-%m-%d"
CALTABLE_KINDS = ("bpcal", "gpcal", "2gcal", "kcal")

# ASCII digits only and \Z, not $: "$" also matches before a trailing newline and "\d"
# matches any Unicode digit, so both would admit names the instrument never writes.
_SUBBAND_RE = re.compile(
    r"(?P<ts>[0-9]{4}-[0-9]{2}-[0-9]{2}[T_][0-9]{2}[:_][0-9]{2}[:_][0-9]{2})_sb(?P<sb>[0-9]{2})"
    r"\.hdf5\Z"
)
_TS_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T_ ]([0-9]{2})[:_]([0-9]{2})[:_]([0-9]{2})(?:\.[0-9]+)?\Z"
)


def parse_timestamp(text: str) -> datetime:
    """Parse `YYYY-MM-DDTHH:MM:SS` or the file-system form `YYYY-MM-DD_HH_MM_SS` (UTC)."""
    match = _TS_RE.match(text.strip())
    if not match:
        raise ValueError(
            f"not a contimg timestamp: {text!r} (expected YYYY-MM-DDTHH:MM:SS "
            "or YYYY-MM-DD_HH_MM_SS)"
        )
    try:
        return datetime(*(int(part) for part in match.groups()), tzinfo=UTC)
    except ValueError as exc:  # e.g. 2025-02-30: the right shape, not a real time
        raise ValueError(f"not a real time: {text!r} ({exc})") from None


def iso_timestamp(moment: datetime | str) -> str:
    """The standard sortable ISO form, `YYYY-MM-DDTHH:MM:SS`, of a time in UTC."""
    moment = _as_datetime(moment)
    return moment.strftime(ISO_FORMAT)


def group_id(moment: datetime | str) -> str:
    """Group id normalised for file systems (no colons): `YYYY-MM-DD_HH_MM_SS`."""
    return _as_datetime(moment).strftime(GROUP_ID_FORMAT)


def date_dir(moment: datetime | str) -> str:
    """The date directory name, `YYYY-MM-DD`, that a product of this time lives in."""
    return _as_datetime(moment).strftime(DATE_FORMAT)


def subband_filename(moment: datetime | str, subband: int) -> str:
    """The instrument's file name for one subband: `YYYY-MM-DDTHH:MM:SS_sbNN.hdf5`."""
    if not 0 <= subband <= 99:
        raise ValueError(f"subband index must be 0..99, got {subband}")
    return f"{iso_timestamp(moment)}_sb{subband:02d}.hdf5"


def parse_subband_filename(name: str) -> tuple[datetime, int] | None:
    """Return (timestamp, subband) for a subband file name, or None if it is not one."""
    return None if subband_name_problem(name) else _parse_subband(name)


def subband_name_problem(name: str) -> str | None:
    """Why a file name is not a subband file of a real time, or None when it is one."""
    match = _SUBBAND_RE.match(name)
    if not match:
        return "not a subband file name (expected YYYY-MM-DDTHH:MM:SS_sbNN.hdf5)"
    try:
        parse_timestamp(match["ts"])
    except ValueError as exc:
        return f"the name's timestamp is {exc}"
    return None


def _parse_subband(name: str) -> tuple[datetime, int]:
    match = _SUBBAND_RE.match(name)
    assert match is not None
    return parse_timestamp(match["ts"]), int(match["sb"])


def ms_name(moment: datetime | str) -> str:
    """Measurement Set directory name for a group: `<timestamp>.ms`."""
    return f"{iso_timestamp(moment)}.ms"


IMAGE_PRODUCTS = ("image", "image-pb", "residual", "beam", "quicklook")


def image_set_name(moment: datetime | str) -> str:
    """The directory holding one group's image products: `<timestamp>.img` (it appears
    whole, by one rename, in `images/YYYY-MM-DD/`)."""
    return f"{iso_timestamp(moment)}.img"


def image_product_name(moment: datetime | str, product: str) -> str:
    """`<ts>.img-image.fits`, `<ts>.img-image-pb.fits`, `<ts>.img-residual.fits`,
    `<ts>.img-beam.fits` (the drift-averaged primary beam), `<ts>.img-quicklook.png`."""
    return set_product_name(image_set_name(moment), product)


def ms_image_set_name(ms: Path | str) -> str:
    """The image set of any Measurement Set imaged by `contimg image`: `<ms stem>.img`."""
    name = Path(ms).name
    return f"{name[:-3] if name.endswith('.ms') else name}.img"


def set_product_name(set_name: str, product: str) -> str:
    """A product in an image set directory: `<set>-<product>.fits` (`.png` for the quick-look)."""
    if product not in IMAGE_PRODUCTS:
        raise ValueError(f"unknown image product {product!r}; expected one of {IMAGE_PRODUCTS}")
    suffix = ".png" if product == "quicklook" else ".fits"
    return f"{set_name}-{product}{suffix}"


def caltable_name(moment: datetime | str, kind: str) -> str:
    """Calibration table name `<ts>_bpcal`, `<ts>_gpcal`, `<ts>_2gcal` (or `_kcal`)."""
    if kind not in CALTABLE_KINDS:
        raise ValueError(f"unknown calibration table kind {kind!r}; expected one of {CALTABLE_KINDS}")
    return f"{iso_timestamp(moment)}_{kind}"


def calibrator_name(source: str, transit: datetime | str, dec_deg: float) -> str:
    """Calibrator observation name `<source>_<hhmmss>_<dec>`.

    The source name keeps only letters and digits (`0834+555` -> `0834p555`) so the
    result is safe in paths and CASA selections; `<hhmmss>` is the transit time
    (UTC) and `<dec>` the declination in degrees with sign, e.g. `p55.50`.
    """
    clean = source.replace("+", "p").replace("-", "m")
    clean = re.sub(r"[^A-Za-z0-9]", "", clean)
    sign = "p" if dec_deg >= 0 else "m"
    return f"{clean}_{_as_datetime(transit).strftime('%H%M%S')}_{sign}{abs(dec_deg):.2f}"


def _as_datetime(moment: datetime | str) -> datetime:
    if isinstance(moment, str):
        return parse_timestamp(moment)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


MOSAIC_KINDS = ("hourly", "daily")
MOSAIC_PRODUCTS = ("image", "noise", "weight", "quicklook")


def mosaic_name(kind: str, moment: datetime | str) -> str:
    """The name of the mosaic of a time window: `YYYY-MM-DDTHH` (hourly, the UTC hour
    holding `moment`) or `YYYY-MM-DD` (daily)."""
    if kind not in MOSAIC_KINDS:
        raise ValueError(f"unknown mosaic kind {kind!r}; expected one of {MOSAIC_KINDS}")
    return _as_datetime(moment).strftime("%Y-%m-%dT%H" if kind == "hourly" else DATE_FORMAT)


def mosaic_set_name(kind: str, moment: datetime | str) -> str:
    """The directory holding one mosaic's products: `<name>.mosaic` (it appears whole, by
    one rename, in `mosaics/<kind>/YYYY-MM-DD/`)."""
    return f"{mosaic_name(kind, moment)}.mosaic"


def mosaic_product_name(kind: str, moment: datetime | str, product: str) -> str:
    """`<name>.mosaic.fits` (the image), `<name>.mosaic-noise.fits`, `<name>.mosaic-weight.fits`,
    `<name>.mosaic-quicklook.png`. The image's stem prefixes every sidecar, so the archive's
    tarball of a mosaic (`ops.archive.tar_mosaic`, by stem) takes them all."""
    if product not in MOSAIC_PRODUCTS:
        raise ValueError(f"unknown mosaic product {product!r}; expected one of {MOSAIC_PRODUCTS}")
    base = mosaic_set_name(kind, moment)
    if product == "image":
        return f"{base}.fits"
    return f"{base}-{product}{'.png' if product == 'quicklook' else '.fits'}"


def measurements_file(moment: datetime | str) -> str:
    """One image's source measurements: `date=YYYY-MM-DD/<group id>.parquet` under
    `photometry/measurements/` (Hive-style, so DuckDB reads the date as a column)."""
    return f"date={date_dir(moment)}/{group_id(moment)}.parquet"


def light_curve_name(source_name: str) -> str:
    """A light-curve picture's file name: the source name made safe for file systems."""
    return re.sub(r"[^A-Za-z0-9+.-]", "_", source_name) + ".png"
