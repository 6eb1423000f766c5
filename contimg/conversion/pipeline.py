"""Convert a group into the organised tree: stage, convert, validate, classify, move,
register — or quarantine with the reason. Plain Python; the Dagster asset calls it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from casacore import tables

from contimg import naming
from contimg.conversion.classification import Classification, classify_group
from contimg.conversion.group_validation import validate_group
from contimg.conversion.isolation import run_in_child
from contimg.conversion.ms_writer import ConversionReport, convert_group
from contimg.conversion.staging import (
    FreeSpace,
    estimate_ms_bytes,
    free_bytes,
    move_into_place,
    workspace,
)
from contimg.layout import StorageLayout
from contimg.state import StateStore, products_db
from contimg.state.connection import write_transaction
from contimg.timeutil import datetime_to_mjd


class MsValidationError(RuntimeError):
    """The written MS is not what was asked for (rows, columns or shape)."""


class AlreadyConvertedError(FileExistsError):
    """The group's MS is already in the organised tree; nothing was written or changed."""


@dataclass
class ConversionOutcome:
    """Where the MS went and everything an operator wants to see about it."""

    group_id: str
    ms_path: Path
    kind: str
    classification: Classification
    report: ConversionReport
    staging: str
    size_bytes: int
    timings_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ConversionOptions:
    """Operator-tunable choices for conversion and classification."""

    expected_subbands: int | None = 16
    calibrator_flux_floor_jy: float = 5.0
    calibrator_max_dec_offset_deg: float = 1.5
    keep_failed_output: bool = True
    timeout_s: float | None = 1800.0  # the converter is killed after this (a stalled disk)


def convert_into_tree(group_id: str, files: Sequence[Path], layout: StorageLayout,
                      store: StateStore, options: ConversionOptions = ConversionOptions(),
                      progress: Callable[[str], None] | None = None, *,
                      allow_missing: bool = False,
                      free: FreeSpace = free_bytes) -> ConversionOutcome:
    """Convert one group and place its MS under ms/{calibrators,science}/YYYY-MM-DD/.

    On failure nothing appears in the organised tree; the partial MS (if any and if
    kept) goes to ms/failed/YYYY-MM-DD/ and the reason is recorded; the error is re-raised.
    """
    group_iso = naming.iso_timestamp(group_id)
    began = time.perf_counter()
    refuse_if_converted(layout, group_iso)
    plan = validate_group(files, expected_subbands=options.expected_subbands,
                          allow_missing=allow_missing)
    needed = estimate_ms_bytes(plan.n_blts, plan.n_channels, len(plan.polarizations))
    with workspace(layout, naming.group_id(group_iso), needed, free) as space:
        staged = space.path / naming.ms_name(group_iso)
        try:
            # In a child process: a casacore abort (a full tmpfs) becomes an exception here.
            report = run_in_child(convert_group, plan.files, staged, progress=progress, plan=plan,
                                  timeout_s=options.timeout_s)
            lap = time.perf_counter()
            check_ms(staged, report.n_rows, report.n_channels)
            classification = classify_group(
                report.start_mjd, report.end_mjd, report.pointing_dec_deg,
                flux_floor_jy=options.calibrator_flux_floor_jy,
                max_dec_offset_deg=options.calibrator_max_dec_offset_deg)
            destination = layout.ms_date_dir(classification.kind, group_iso) / staged.name
            size = directory_bytes(staged)
            report.timings_s["check_classify"] = round(time.perf_counter() - lap, 3)
            lap = time.perf_counter()
            move_into_place(staged, destination)
            report.timings_s["move"] = round(time.perf_counter() - lap, 3)
        except Exception as exc:
            quarantine(group_iso, staged, layout, store, reason=f"{type(exc).__name__}: {exc}",
                       keep=options.keep_failed_output)
            raise
    register_ms(store, group_iso, destination, classification, report, size,
                source=space.path, staging=space.kind)
    timings = dict(report.timings_s, total=round(time.perf_counter() - began, 3))
    return ConversionOutcome(group_iso, destination, classification.kind, classification,
                             report, space.kind, size, timings)


def refuse_if_converted(layout: StorageLayout, group_iso: str) -> None:
    """Raise AlreadyConvertedError when the group's MS already sits in the tree."""
    for kind in ("calibrators", "science"):
        existing = layout.ms_date_dir(kind, group_iso) / naming.ms_name(group_iso)
        if existing.exists():
            raise AlreadyConvertedError(
                f"{existing} already exists: group {group_iso} was converted; nothing was changed. "
                "Fix: to rebuild it, move that MS aside first (then `contimg requeue`).")


def check_ms(ms_path: Path, n_rows: int, n_channels: int) -> None:
    """The MS opens, has the expected rows, and DATA has the expected channel count."""
    try:
        with tables.table(str(ms_path), ack=False) as main:
            if main.nrows() != n_rows:
                raise MsValidationError(f"{ms_path}: {main.nrows()} rows, expected {n_rows}")
            for column in ("DATA", "FLAG", "UVW", "TIME", "ANTENNA1", "ANTENNA2", "WEIGHT"):
                if column not in main.colnames():
                    raise MsValidationError(f"{ms_path}: column {column} missing")
            shape = main.getcell("DATA", 0).shape
            if shape[0] != n_channels:
                raise MsValidationError(f"{ms_path}: DATA has {shape[0]} channels, "
                                        f"expected {n_channels}")
    except RuntimeError as exc:
        if isinstance(exc, MsValidationError):
            raise
        raise MsValidationError(f"{ms_path}: casacore cannot open the MS ({exc})") from exc


def directory_bytes(path: Path) -> int:
    """Total size of the files below a directory."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def register_ms(store: StateStore, group_iso: str, path: Path, classification: Classification,
                report: ConversionReport, size: int, *, source: Path, staging: str) -> None:
    """Record the MS in ms_index and the move in the audit table, in one transaction."""
    conn = store.connection("products")
    with write_transaction(conn):
        products_db.upsert_ms(conn, path=path, group_id=group_iso, kind=classification.kind,
                              start_mjd=report.start_mjd, end_mjd=report.end_mjd,
                              dec_deg=report.pointing_dec_deg,
                              calibrator=classification.calibrator, status="converted",
                              size_bytes=size)
        products_db.record_move(conn, source / path.name, path, action="move",
                                reason=f"converted ({staging} staging)", actor="measurement_set",
                                size_bytes=size)


def quarantine(group_iso: str, staged: Path, layout: StorageLayout, store: StateStore, *,
               reason: str, keep: bool) -> Path | None:
    """Move a partial MS to ms/failed/YYYY-MM-DD/ (or drop it) and record why."""
    destination = None
    if staged.exists() and keep:
        destination = layout.ms_date_dir("failed", group_iso) / staged.name
        if destination.exists():
            shutil.rmtree(destination)
        move_into_place(staged, destination)
        products_db.log_move(store, staged, destination, action="quarantine", reason=reason,
                             actor="measurement_set")
    mjd = datetime_to_mjd(naming.parse_timestamp(group_iso))
    conn = store.connection("products")
    with write_transaction(conn):
        products_db.upsert_ms(conn, path=destination or staged, group_id=group_iso, kind="failed",
                              start_mjd=mjd, end_mjd=mjd, status=f"failed: {reason}"[:2000])
    return destination
