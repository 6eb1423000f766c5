"""Astropy set up for an observatory with no network: no IERS downloads, fast start.

Astropy would try to download a fresh IERS-A table once its bundled copy is older
than 30 days; here that must never happen. Parsing the bundled ASCII table costs
~0.6 s per process (each Dagster run is a new process), so the parsed columns are
cached in the layout's own `tmp/cache/` as a NumPy `.npz` read with
`allow_pickle=False` (~0.04 s): plain arrays and a JSON header, nothing in the file
can run code. (The former pickle in the shared system temporary directory let anyone
who could write there run code as the platform's user.)
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np

log = logging.getLogger("contimg.astro_offline")
_CONFIGURED = False
_HEADER = "__header__"
CACHE_FORMAT = 1


def configure_offline_astropy(cache_dir: Path | None = None) -> None:
    """Disable IERS downloads and load the IERS-A table from the layout's cache."""
    global _CONFIGURED
    if _CONFIGURED:
        return
    from astropy.utils import iers

    iers.conf.auto_download = False
    iers.conf.iers_degraded_accuracy = "warn"
    try:
        cache = cache_dir or default_cache_dir()
        iers.earth_orientation_table.set(cached_iers_table(cache))
    except (OSError, ImportError, ValueError) as exc:
        # Astropy then parses its bundled table on first use: slower, still offline.
        log.warning("IERS cache unusable (%s); using astropy's bundled table", exc)
    _CONFIGURED = True


def default_cache_dir() -> Path:
    """`tmp/cache/` of the resolved layout: the platform's own, not the shared /tmp."""
    from contimg.layout import resolve_layout

    return resolve_layout().tmp_dir / "cache"


def cache_path(cache_dir: Path) -> Path:
    """The cache file for the installed astropy-iers-data version."""
    import astropy_iers_data

    version = getattr(astropy_iers_data, "__version__", "unknown")
    return cache_dir / f"contimg-iers-a-{version}.v{CACHE_FORMAT}.npz"


def cached_iers_table(cache_dir: Path):  # -> astropy.utils.iers.IERS_Auto
    """The IERS-A table from the `.npz` cache, rebuilt (and re-cached) when missing or bad."""
    from astropy.utils import iers

    path = cache_path(cache_dir)
    if path.exists():
        try:
            return _read_table(path)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            # Pickled content is refused by allow_pickle=False with a ValueError: rebuild.
            log.warning("IERS cache %s rejected (%s); rebuilding it", path, exc)
    table = iers.IERS_Auto.open()
    _write_table(table, path)
    return table


def _write_table(table, path: Path) -> None:
    """Every column as a plain array (unit and mask in a JSON header), written atomically."""
    arrays: dict[str, np.ndarray] = {}
    header: dict[str, object] = {"columns": list(table.colnames), "units": {}, "masked": [],
                                 "meta": {}}
    for number, name in enumerate(table.colnames):
        column = table[name]
        unit = getattr(column, "unit", None)
        arrays[f"c{number}"] = np.asarray(column.value if unit is not None else column)
        header["units"][name] = str(unit) if unit is not None else ""
        if getattr(column, "mask", None) is not None:
            arrays[f"m{number}"] = np.asarray(column.mask, dtype=bool)
            header["masked"].append(name)
    for key, value in table.meta.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, (int, float, str)):
            header["meta"][key] = value
    arrays[_HEADER] = np.array(json.dumps(header))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(partial, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(partial, path)


def _read_table(path: Path):
    """Rebuild the IERS_Auto table; object (pickled) arrays raise ValueError unread."""
    import astropy.units as u
    from astropy.table import MaskedColumn
    from astropy.utils import iers

    with np.load(path, allow_pickle=False) as data:
        header = json.loads(str(data[_HEADER]))
        columns = []
        for number, name in enumerate(header["columns"]):
            values = data[f"c{number}"]
            if values.dtype.kind not in "biufU":
                raise ValueError(f"column {name} has dtype {values.dtype}")
            unit = header["units"][name]
            if unit:
                columns.append(u.Quantity(values, u.Unit(unit), copy=False))
            elif name in header["masked"]:
                columns.append(MaskedColumn(values, mask=data[f"m{number}"], name=name))
            else:
                columns.append(values)
    return iers.IERS_Auto(columns, names=header["columns"], meta=header["meta"])
