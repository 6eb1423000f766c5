"""What made an image, written into every FITS product's header and the products database:
the group, its MS, the raw files, the calibration tables, the software versions and the
imaging parameters (with the exact command)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from astropy.io import fits


@dataclass(frozen=True)
class Provenance:
    """The inputs and tools of one group image."""

    group_id: str
    ms_path: str
    raw_files: tuple[str, ...]
    cal_tables: tuple[str, ...]
    imager: str
    imager_version: str
    contimg_version: str
    parameters: dict[str, object] = field(default_factory=dict)
    command: tuple[str, ...] = ()

    def as_json(self) -> str:
        """Compact JSON for the products database."""
        return json.dumps(asdict(self))


def contimg_version() -> str:
    """The installed contimg package's version."""
    try:
        return version("contimg")
    except PackageNotFoundError:
        return "unknown"


@cache
def imager_version(imager: str) -> str:
    """`WSClean 3.1.0` from `wsclean --version`; casatasks' version for tclean."""
    if imager == "tclean":
        try:
            return f"casatasks {version('casatasks')}"
        except PackageNotFoundError:
            return "casatasks unknown"
    executable = shutil.which("wsclean")
    if executable is None:
        return "wsclean not installed"
    text = subprocess.run([executable, "--version"], capture_output=True, text=True,
                          check=False, timeout=30).stdout
    found = re.search(r"WSClean version ([0-9][^\s]*)", text)
    return f"WSClean {found.group(1)}" if found else "WSClean (version unknown)"


@cache
def _site_xyz_m() -> tuple[float, float, float]:
    from astropy.coordinates import EarthLocation

    from contimg.instrument import SITE_HEIGHT_M, SITE_LAT_DEG, SITE_LON_DEG

    site = EarthLocation.from_geodetic(SITE_LON_DEG, SITE_LAT_DEG, SITE_HEIGHT_M)
    return tuple(float(v) for v in (site.x.value, site.y.value, site.z.value))  # type: ignore[return-value]


def stamp(path: Path, provenance: Provenance, quality: dict[str, object] | None = None) -> None:
    """Add the provenance (and quality figures) to a FITS file's primary header in place."""
    with fits.open(path, mode="update") as hdul:
        header = hdul[0].header
        # WSClean 3.1 writes OBSGEO-X/Y/Z near the Earth's centre for these MSs; the
        # telescope's own site keeps every viewer's WCS (and velocity frames) right.
        for axis, metres in zip("XYZ", _site_xyz_m(), strict=True):
            header[f"OBSGEO-{axis}"] = (metres, "[m] DSA-110 site, ITRF")
        header["GROUPID"] = (provenance.group_id, "contimg observation group")
        header["MSPATH"] = provenance.ms_path
        header["IMAGER"] = provenance.imager_version
        header["CONTIMG"] = (provenance.contimg_version, "contimg version")
        header["NRAW"] = (len(provenance.raw_files), "raw UVH5 files of the group")
        header["NCALTAB"] = (len(provenance.cal_tables), "calibration tables applied")
        # One keyword each (long values continue over CONTINUE cards; HISTORY would cut
        # a path at 72 characters).
        for index, name in enumerate(provenance.raw_files, start=1):
            header[f"RAWF{index:02d}"] = (name, "raw UVH5 file")
        for index, table in enumerate(provenance.cal_tables, start=1):
            header[f"CALTAB{index:02d}"] = table
        for key, value in provenance.parameters.items():
            header.add_history(f"imaging {key} = {value}")
        if provenance.command:
            header.add_history("command: " + " ".join(provenance.command))
        for key, value in (quality or {}).items():
            header[f"Q_{key[:6].upper()}"] = (value, key)
