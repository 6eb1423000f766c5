"""The seed's migration plan: organise a flat MS directory into
{calibrators,science,failed}/YYYY-MM-DD/ with registration, and move the state
databases from the fast disk to persistent storage, leaving a symlink."""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from casacore import tables

from contimg import naming
from contimg.conversion.classification import classify_group
from contimg.conversion.staging import move_into_place
from contimg.layout import StorageLayout
from contimg.state import StateStore, products_db
from contimg.state.connection import write_transaction


@dataclass(frozen=True)
class MsMove:
    """One MS and where it belongs."""

    source: Path
    destination: Path
    kind: str
    group_id: str
    start_mjd: float
    end_mjd: float
    dec_deg: float | None
    calibrator: str | None
    reason: str


def plan_ms_migration(flat_dir: Path, layout: StorageLayout) -> list[MsMove]:
    """Where each MS directly inside `flat_dir` goes (nothing is touched)."""
    moves = []
    for source in sorted(flat_dir.glob("*.ms")):
        try:
            moment = naming.parse_timestamp(source.name[:-3])
        except ValueError:
            moves.append(MsMove(source, layout.ms_dir / "failed" / "undated" / source.name,
                                "failed", source.name, 0, 0, None, None,
                                "name is not <YYYY-MM-DDTHH:MM:SS>.ms"))
            continue
        group = naming.iso_timestamp(moment)
        try:
            start, end, dec = _ms_span(source)
        except RuntimeError as exc:
            moves.append(MsMove(source, layout.ms_date_dir("failed", group) / source.name,
                                "failed", group, 0, 0, None, None, f"unreadable MS ({exc})"))
            continue
        found = classify_group(start, end, dec)
        moves.append(MsMove(source, layout.ms_date_dir(found.kind, group) / source.name,
                            found.kind, group, start, end, dec, found.calibrator, "classified"))
    return moves


def apply_ms_migration(moves: list[MsMove], store: StateStore) -> None:
    """Move each MS atomically and register it (and the move) in the products database."""
    conn = store.connection("products")
    for move in moves:
        move_into_place(move.source, move.destination)
        with write_transaction(conn):
            products_db.upsert_ms(conn, path=move.destination, group_id=move.group_id,
                                  kind=move.kind, start_mjd=move.start_mjd, end_mjd=move.end_mjd,
                                  dec_deg=move.dec_deg, calibrator=move.calibrator,
                                  status=f"migrated: {move.reason}")
            products_db.record_move(conn, move.source, move.destination, action="move",
                                    reason=move.reason, actor="migrate")


def _ms_span(ms: Path) -> tuple[float, float, float | None]:
    with tables.table(str(ms), ack=False) as main:
        times = main.getcol("TIME")
        interval = float(np.median(main.getcol("INTERVAL")))
    with tables.table(str(ms / "FIELD"), ack=False) as field:
        dec = float(np.degrees(field.getcol("PHASE_DIR")[0, 0, 1]))
    return ((times.min() - interval / 2) / 86400.0, (times.max() + interval / 2) / 86400.0, dec)


def plan_state_migration(old_dir: Path, new_dir: Path) -> list[tuple[Path, Path]]:
    """Database files to move from `old_dir` (fast disk) to `new_dir` (persistent)."""
    if old_dir.is_symlink():
        return []
    return [(p, new_dir / p.name) for p in sorted(old_dir.glob("*.sqlite3"))]


def apply_state_migration(old_dir: Path, new_dir: Path) -> Path:
    """Checkpoint, copy and check each database, then replace `old_dir` by a symlink to
    `new_dir`. Stop the platform first. Returns the symlink."""
    new_dir.mkdir(parents=True, exist_ok=True)
    for source, target in plan_state_migration(old_dir, new_dir):
        if target.exists():
            raise FileExistsError(f"{target} exists; refusing to overwrite a database")
        conn = sqlite3.connect(source)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        partial = target.with_name(f".{target.name}.partial")
        shutil.copy2(source, partial)
        check = sqlite3.connect(partial)
        ok = check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        check.close()
        if not ok:
            partial.unlink()
            raise RuntimeError(f"copy of {source} failed its integrity check; nothing moved")
        os.replace(partial, target)
    # Everything is safely in new_dir: keep the old directory aside, then link.
    aside = old_dir.with_name(f"{old_dir.name}.migrated")
    os.rename(old_dir, aside)
    old_dir.symlink_to(new_dir.resolve(), target_is_directory=True)
    return old_dir
