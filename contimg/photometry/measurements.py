"""Source measurements as Parquet: one file per image, `photometry/measurements/
date=YYYY-MM-DD/<group>.parquet`, written whole (a temporary name, then one rename), so a
reader never sees half a file and a re-measured image replaces its own file only."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from contimg import naming

SCHEMA = pa.schema([
    ("source_id", pa.int64()), ("source_name", pa.string()), ("group_id", pa.string()),
    ("mid_mjd", pa.float64()), ("ra_deg", pa.float64()), ("dec_deg", pa.float64()),
    ("flux_jy", pa.float64()), ("flux_err_jy", pa.float64()), ("local_rms_jy", pa.float64()),
    ("pb", pa.float64()), ("snr", pa.float64()), ("is_new", pa.bool_()), ("flags", pa.int8()),
    ("image_path", pa.string()),
])


def measurements_root(photometry_dir: Path) -> Path:
    """Where the Parquet files live."""
    return Path(photometry_dir) / "measurements"


def measurements_path(photometry_dir: Path, group_id: str) -> Path:
    """The Parquet file of one group's image."""
    return measurements_root(photometry_dir) / naming.measurements_file(group_id)


def measurements_glob(photometry_dir: Path) -> str:
    """The pattern DuckDB reads every measurement through."""
    return str(measurements_root(photometry_dir) / "date=*" / "*.parquet")


def write_measurements(path: Path, columns: dict[str, np.ndarray | list]) -> Path:
    """Write (or replace) one image's measurements atomically."""
    table = pa.table({field.name: pa.array(columns[field.name], type=field.type) for field in SCHEMA},
                     schema=SCHEMA)
    path.parent.mkdir(parents=True, exist_ok=True)
    _reap_dead_partials(path)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        pq.write_table(table, partial)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)  # a full disk or an interrupt leaves no half file
        raise
    return path


def _reap_dead_partials(path: Path) -> None:
    """Remove `.<name>.partial-PID` files of writers that no longer run (killed with -9)."""
    for partial in path.parent.glob(f".{path.name}.partial-*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            partial.unlink(missing_ok=True)


def quarantine_unreadable(photometry_dir: Path) -> list[tuple[Path, Path, str]]:
    """Move every measurements file whose Parquet footer cannot be read (truncated,
    overwritten) to `photometry/quarantine/`; (from, to, reason) of each move."""
    moved = []
    for path in sorted(measurements_root(photometry_dir).glob("date=*/*.parquet")):
        try:
            pq.read_metadata(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is set aside, with why
            target = Path(photometry_dir) / "quarantine" / f"{path.parent.name}_{path.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            moved.append((path, target, f"unreadable Parquet: {exc}"))
    return moved


def read_measurements(path: Path) -> dict[str, np.ndarray]:
    """One file's columns as arrays (empty arrays when the file does not exist)."""
    if not path.exists():
        return {field.name: np.array([], dtype=object if pa.types.is_string(field.type) else None)
                for field in SCHEMA}
    table = pq.read_table(path)
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
