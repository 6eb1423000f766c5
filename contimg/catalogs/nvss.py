"""NVSS source tables as published: VizieR (VIII/65) TSV or CSV, and FITS tables.

The real NVSS (~1.8 million sources) is not shipped; the platform reads it from a
configurable path (`CONTIMG_NVSS_CATALOG`, under `static/catalogs/`), in whichever
form it was downloaded:

- VizieR tab-separated values (the simulator writes this form too): optional `#`
  comment lines, a header row, an optional units row and an optional dashes row;
- VizieR CSV export (a header row, perhaps a units row);
- a FITS binary table: VizieR's (RAJ2000/DEJ2000 sexagesimal or degrees, S1.4 in mJy)
  or NRAO's own catalogue (`RA(2000)`/`DEC(2000)` in degrees, `PEAK INT` in Jy,
  `MAJOR AX`/`MINOR AX` in degrees), with units from the columns' TUNIT.

Positions may be sexagesimal (RA in hours, Dec in degrees) or decimal degrees. The
format is chosen from the suffix, else sniffed from the content. A missing or
malformed file raises `CatalogError` naming the path and how to obtain the file.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import Angle

COLUMNS = ("NVSS", "RAJ2000", "DEJ2000", "S1.4", "e_S1.4", "MajAxis", "MinAxis", "PA")
UNITS = ("", '"h:m:s"', '"d:m:s"', "mJy", "mJy", "arcsec", "arcsec", "deg")
HOW_TO_OBTAIN = ("Fix: download the NVSS catalogue (VizieR VIII/65, https://vizier.cds.unistra.fr/"
                 "viz-bin/VizieR?-source=VIII/65, as tab-separated values, CSV or FITS; or the "
                 "FITS catalogue from https://www.cv.nrao.edu/nvss/) and put it there, or point "
                 "CONTIMG_NVSS_CATALOG at it.")

# Column names (lower case, letters and digits only) -> role, most specific first.
_ALIASES = {
    "ra": ("raj2000", "ra2000", "ra", "radeg", "rajd", "raj2000deg"),
    "dec": ("dej2000", "decj2000", "dec2000", "dec", "dedeg", "decdeg", "dejd", "dej2000deg"),
    "flux": ("s14", "s1400", "peakint", "fluxjy", "fluxmjy", "flux"),
    "major": ("majaxis", "majorax", "majoraxis", "maj", "major"),
    "minor": ("minaxis", "minorax", "minoraxis", "min", "minor"),
    "pa": ("pa", "posangle", "positionangle"),
    "name": ("nvss", "name", "id"),
}
# Units a column name implies when the file gives none (VizieR and NRAO conventions).
_DEFAULT_UNITS = {"s14": "mjy", "s1400": "mjy", "peakint": "jy", "fluxjy": "jy", "fluxmjy": "mjy",
                  "majaxis": "arcsec", "minaxis": "arcsec", "majorax": "deg", "minorax": "deg"}
_FLUX_SCALE = {"jy": 1.0, "jy/beam": 1.0, "jybeam": 1.0, "mjy": 1e-3, "mjy/beam": 1e-3,
               "mjybeam": 1e-3}
_ANGLE_SCALE_ARCSEC = {"arcsec": 1.0, "arcsecond": 1.0, "asec": 1.0, "deg": 3600.0,
                       "degree": 3600.0, "degrees": 3600.0, "arcmin": 60.0}
_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")


class CatalogError(ValueError):
    """A catalogue is missing or unreadable; the message names the path and the fix."""


class CatalogMissingError(CatalogError, FileNotFoundError):
    """The catalogue file does not exist."""


@dataclass(frozen=True)
class CatalogSource:
    """One catalogue entry: J2000 position (deg) and 1.4 GHz flux (Jy)."""

    ra_deg: float
    dec_deg: float
    flux_jy: float
    major_arcsec: float = 0.0
    minor_arcsec: float = 0.0
    pa_deg: float = 0.0

    @property
    def name(self) -> str:
        """IAU-style NVSS name, e.g. J083457+553248."""
        return nvss_name(self.ra_deg, self.dec_deg)


@dataclass(frozen=True)
class NvssTable:
    """A whole catalogue as arrays (a list of objects would cost ~0.4 GB for the real NVSS)."""

    path: Path
    ra_deg: np.ndarray
    dec_deg: np.ndarray
    flux_jy: np.ndarray  # at 1.4 GHz
    major_arcsec: np.ndarray
    minor_arcsec: np.ndarray
    pa_deg: np.ndarray

    def __len__(self) -> int:
        return int(self.ra_deg.size)

    def source(self, index: int) -> CatalogSource:
        """Row `index` as a CatalogSource."""
        return CatalogSource(float(self.ra_deg[index]), float(self.dec_deg[index]),
                             float(self.flux_jy[index]), float(self.major_arcsec[index]),
                             float(self.minor_arcsec[index]), float(self.pa_deg[index]))


def nvss_name(ra_deg: float, dec_deg: float) -> str:
    """IAU-style name from a J2000 position, e.g. J083457+553248."""
    ra = Angle(ra_deg, u.deg).to_string(unit=u.hour, sep="", precision=0, pad=True)
    dec = Angle(dec_deg, u.deg).to_string(sep="", precision=0, alwayssign=True, pad=True)
    return f"J{ra}{dec}"


def write_nvss_table(path: Path, sources: Iterable[CatalogSource]) -> Path:
    """Write sources as a VizieR-style NVSS TSV (header, units, dashes, rows)."""
    lines = ["\t".join(COLUMNS), "\t".join(UNITS), "\t".join("-" * max(len(c), 3) for c in COLUMNS)]
    for src in sources:
        ra = Angle(src.ra_deg, u.deg).to_string(unit=u.hour, sep=" ", precision=2, pad=True)
        dec = Angle(src.dec_deg, u.deg).to_string(sep=" ", precision=1, alwayssign=True, pad=True)
        flux_mjy = src.flux_jy * 1e3
        lines.append("\t".join([
            src.name, ra, dec, f"{flux_mjy:.1f}", f"{max(0.45, 0.03 * flux_mjy):.1f}",
            f"{src.major_arcsec:.1f}", f"{src.minor_arcsec:.1f}", f"{src.pa_deg:.1f}",
        ]))
    path.write_text("\n".join(lines) + "\n")
    return path


def read_nvss_table(path: Path) -> list[CatalogSource]:
    """Every source of an NVSS table (TSV, CSV or FITS) as CatalogSource objects.

    Meant for small tables (tests, the simulator's truth); the sky model uses
    `load_nvss`, which keeps the arrays and caches them per file version."""
    table = load_nvss(path)
    return [table.source(i) for i in range(len(table))]


def load_nvss(path: Path) -> NvssTable:
    """The catalogue at `path` as arrays, read once per file version (path, size, mtime)."""
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise CatalogMissingError(f"NVSS catalogue {path} does not exist. {HOW_TO_OBTAIN}") from None
    if not path.is_file() or stat.st_size == 0:
        raise CatalogError(f"NVSS catalogue {path} is {'empty' if path.is_file() else 'not a file'}. "
                           f"{HOW_TO_OBTAIN}")
    return _load_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=2)
def _load_cached(path_text: str, _size: int, _mtime_ns: int) -> NvssTable:
    path = Path(path_text)
    kind = catalogue_format(path)
    try:
        columns = _fits_columns(path) if kind == "fits" else _text_columns(path, kind)
        return _build_table(path, columns)
    except CatalogError:
        raise
    except (ValueError, KeyError, IndexError, OSError, TypeError) as exc:
        raise CatalogError(f"NVSS catalogue {path} is malformed ({exc}). {HOW_TO_OBTAIN}") from exc


def catalogue_format(path: Path) -> str:
    """"fits", "csv" or "tsv": from the suffix, else from the first bytes."""
    name = path.name.lower()
    if name.endswith(_FITS_SUFFIXES):
        return "fits"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".tsv", ".tab")):
        return "tsv"
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if head.startswith(b"SIMPLE  ="):
        return "fits"
    lines = [ln for ln in head.decode("latin-1").splitlines() if ln.strip() and not ln.startswith("#")]
    return "tsv" if lines and "\t" in lines[0] else "csv"


@dataclass
class _Column:
    """One named column: raw values (text or numbers) and the unit the file states."""

    key: str  # normalised name
    values: Sequence
    unit: str


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _text_columns(path: Path, kind: str) -> dict[str, _Column]:
    """Columns of a VizieR TSV/CSV: header, optional units and dashes rows, data rows."""
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        lines = (ln for ln in handle if ln.strip() and not ln.startswith("#"))
        reader = csv.reader(lines, delimiter="\t" if kind == "tsv" else ",",
                            quoting=csv.QUOTE_NONE if kind == "tsv" else csv.QUOTE_MINIMAL)
        rows = [[field.strip() for field in row] for row in reader]
    if not rows:
        raise CatalogError(f"NVSS catalogue {path} has no header row. {HOW_TO_OBTAIN}")
    header = rows[0]
    body = rows[1:]
    units = [""] * len(header)
    roles = _roles(path, [_normalise(h) for h in header])
    flux_index = roles["flux"]
    # VizieR puts a units row and a row of dashes under the header.
    while body and len(body[0]) == len(header) and not _is_number(body[0][flux_index]):
        if not all(set(f) <= {"-"} for f in body[0]):
            units = [f.strip('"').lower() for f in body[0]]
        body = body[1:]
    if not body:
        raise CatalogError(f"NVSS catalogue {path} has a header but no sources. {HOW_TO_OBTAIN}")
    for number, row in enumerate(body[:1] + body[-1:]):
        if len(row) < len(header):
            raise CatalogError(f"NVSS catalogue {path}: a row has {len(row)} fields, the header "
                               f"{len(header)} ({'first' if number == 0 else 'last'} data row). "
                               f"{HOW_TO_OBTAIN}")
    columns = {}
    for role, index in roles.items():
        values = [row[index] if index < len(row) else "" for row in body]
        columns[role] = _Column(_normalise(header[index]), values, units[index])
    return columns


def _fits_columns(path: Path) -> dict[str, _Column]:
    """Columns of the first FITS binary table (VizieR's or NRAO's NVSS)."""
    from astropy.io import fits

    with fits.open(path, memmap=True) as hdus:
        table = next((hdu for hdu in hdus if isinstance(hdu, fits.BinTableHDU | fits.TableHDU)), None)
        if table is None:
            raise CatalogError(f"NVSS catalogue {path} is a FITS file without a table. {HOW_TO_OBTAIN}")
        names = list(table.columns.names)
        roles = _roles(path, [_normalise(n) for n in names])
        columns = {}
        for role, index in roles.items():
            column = table.columns[index]
            values = np.array(table.data[column.name])
            if values.dtype.kind in "SU":
                values = np.char.strip(values.astype(str))
            columns[role] = _Column(_normalise(column.name), values, (column.unit or "").lower())
    return columns


def _roles(path: Path, names: list[str]) -> dict[str, int]:
    """Index of each role's column; RA, Dec and a flux column are required."""
    roles = {}
    for role, aliases in _ALIASES.items():
        index = next((names.index(a) for a in aliases if a in names), None)
        if index is None:
            # VizieR prefixes computed columns with "_" (e.g. _RAJ2000): already removed.
            continue
        roles[role] = index
    missing = [r for r in ("ra", "dec", "flux") if r not in roles]
    if missing:
        raise CatalogError(
            f"NVSS catalogue {path} has no {'/'.join(missing)} column (found {names[:12]}; "
            f"expected e.g. RAJ2000, DEJ2000, S1.4). {HOW_TO_OBTAIN}")
    return roles


def _build_table(path: Path, columns: dict[str, _Column]) -> NvssTable:
    ra = _angle_deg(columns["ra"], hours=True)
    dec = _angle_deg(columns["dec"], hours=False)
    flux = _numbers(columns["flux"].values) * _flux_scale(path, columns["flux"])
    bad = ~(np.isfinite(ra) & np.isfinite(dec)) | (np.abs(dec) > 90.0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise CatalogError(f"NVSS catalogue {path}: data row {row + 1} has an unusable position "
                           f"({columns['ra'].values[row]!r}, {columns['dec'].values[row]!r}). "
                           f"{HOW_TO_OBTAIN}")
    sizes = [_size(columns.get(role), ra.size) for role in ("major", "minor")]
    pa = _numbers(columns["pa"].values) if "pa" in columns else np.zeros(ra.size)
    return NvssTable(path, ra % 360.0, dec, np.nan_to_num(flux, nan=0.0), sizes[0], sizes[1],
                     np.nan_to_num(pa, nan=0.0))


def _angle_deg(column: _Column, *, hours: bool) -> np.ndarray:
    """Degrees from sexagesimal text (RA in hours) or from numbers in the column's unit."""
    values = column.values
    if len(values) and isinstance(values[0], str) and _looks_sexagesimal(values[0]):
        return _sexagesimal(values) * (15.0 if hours else 1.0)
    numbers = _numbers(values)
    unit = column.unit.strip().lower()
    if unit in ("h", "hour", "hours", "hourangle"):
        return numbers * 15.0
    if unit in ("rad", "radian", "radians"):
        return np.degrees(numbers)
    return numbers


def _looks_sexagesimal(text: str) -> bool:
    return bool(re.search(r"[\s:hdms'\"]", text.strip().lstrip("+-")))


_SEPARATORS = str.maketrans({c: " " for c in ":hdms'\"°"})


def _sexagesimal(values: Sequence[str]) -> np.ndarray:
    """'08 34 54.90', '+55 34 21.1', '08:34:54.9' or '08h34m54.9s' -> decimal units."""
    out = np.empty(len(values))
    for index, text in enumerate(values):
        parts = text.translate(_SEPARATORS).split()
        negative = text.strip().startswith("-")
        magnitude = sum(abs(float(p)) / 60.0 ** k for k, p in enumerate(parts[:3])) if parts else np.nan
        out[index] = -magnitude if negative else magnitude
    return out


def _numbers(values: Sequence) -> np.ndarray:
    """Floats; blank text is NaN (VizieR leaves unmeasured sizes blank)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        return values.astype(float)
    return np.array([float(v) if str(v).strip() else np.nan for v in values], dtype=float)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _flux_scale(path: Path, column: _Column) -> float:
    """Jy per stored unit: the file's unit, else the column name's convention."""
    unit = _normalise_unit(column.unit) or _DEFAULT_UNITS.get(column.key, "")
    if unit not in _FLUX_SCALE:
        raise CatalogError(f"NVSS catalogue {path}: cannot tell the unit of flux column "
                           f"{column.key!r} (unit {column.unit!r}; expected mJy or Jy). {HOW_TO_OBTAIN}")
    return _FLUX_SCALE[unit]


def _normalise_unit(unit: str) -> str:
    return unit.strip().strip('"').lower().replace(" ", "")


def _size(column: _Column | None, n_rows: int) -> np.ndarray:
    """A source axis in arcsec (0 where unmeasured or absent)."""
    if column is None:
        return np.zeros(n_rows)
    unit = _normalise_unit(column.unit) or _DEFAULT_UNITS.get(column.key, "arcsec")
    values = _numbers(column.values) * _ANGLE_SCALE_ARCSEC.get(unit, 1.0)
    return np.nan_to_num(values, nan=0.0)
