"""Database backups: SQLite's online backup API, integrity-checked, kept 14 days locally
and shipped to the rclone remote; and the restore procedure."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from contimg.layout import StorageLayout
from contimg.ops.rclone_remote import copy_verified, remote_path
from contimg.state.connection import DATABASES, connect

BACKUP_FORMAT = "%Y-%m-%dT%H%M%SZ"
LOCAL_RETENTION = timedelta(days=14)


class BackupError(RuntimeError):
    """A backup or restore could not be made safely; the message says why."""


@dataclass(frozen=True)
class BackupSet:
    """One backup: a directory of database copies and a manifest of their row counts."""

    path: Path
    row_counts: dict[str, dict[str, int]]


def backup_databases(layout: StorageLayout, now: datetime | None = None) -> BackupSet:
    """Copy every state database with the online backup API while others keep writing."""
    now = now or datetime.now(UTC)
    final = layout.backups_dir / now.strftime(BACKUP_FORMAT)
    partial = final.with_name(f".{final.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    counts: dict[str, dict[str, int]] = {}
    try:
        for name in DATABASES:
            source_path = layout.database_path(name)
            if not source_path.exists():
                continue
            copy_path = partial / source_path.name
            source = connect(source_path)
            target = sqlite3.connect(copy_path)
            try:
                source.backup(target)  # a consistent snapshot, even under concurrent writes
            finally:
                target.close()
                source.close()
            counts[name] = check_copy(copy_path)
        (partial / "manifest.json").write_text(json.dumps(
            {"created": now.isoformat(), "row_counts": counts}, indent=2))
        os.rename(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return BackupSet(final, counts)


def check_copy(path: Path) -> dict[str, int]:
    """PRAGMA integrity_check on a copy; return its row count per table."""
    conn = sqlite3.connect(path)
    try:
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise BackupError(f"{path}: integrity_check says {result!r}")
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        conn.close()


def ship_backup(layout: StorageLayout, backup: Path) -> str:
    """Copy one backup set to the remote and verify it; mark it shipped."""
    destination = remote_path(layout, "backups", backup.name)
    copy_verified(backup, destination)
    (backup / "SHIPPED").write_text(destination + "\n")
    return destination


def prune_local_backups(layout: StorageLayout, now: datetime | None = None) -> list[Path]:
    """Delete local backup sets older than 14 days — only those verified on the remote."""
    now = now or datetime.now(UTC)
    removed = []
    for backup in list_backups(layout):
        taken = datetime.strptime(backup.name, BACKUP_FORMAT).replace(tzinfo=UTC)
        if now - taken > LOCAL_RETENTION and (backup / "SHIPPED").exists():
            shutil.rmtree(backup)
            removed.append(backup)
    return removed


def list_backups(layout: StorageLayout) -> list[Path]:
    """Backup sets, oldest first."""
    found = []
    for path in layout.backups_dir.iterdir() if layout.backups_dir.is_dir() else []:
        try:
            datetime.strptime(path.name, BACKUP_FORMAT)
        except ValueError:
            continue
        found.append(path)
    return sorted(found)


def restore_databases(layout: StorageLayout, backup: Path, now: datetime | None = None) -> Path:
    """Replace the state databases by a backup's copies; keep the current ones aside.

    Stop the platform first (`scripts/run.sh`): writers must not hold the databases.
    Returns the directory holding the databases as they were before the restore.
    """
    manifest = backup / "manifest.json"
    if not manifest.exists():
        raise BackupError(f"{backup}: no manifest.json; not a contimg backup set. "
                          f"Fix: choose one of {[p.name for p in list_backups(layout)]}")
    expected = json.loads(manifest.read_text())["row_counts"]
    for name, counts in expected.items():
        if check_copy(backup / f"{name}.sqlite3") != counts:
            raise BackupError(f"{backup}/{name}.sqlite3 does not match its manifest")
    now = now or datetime.now(UTC)
    aside = layout.state_dir / f"pre-restore-{now.strftime(BACKUP_FORMAT)}"
    aside.mkdir(parents=True)
    for name in expected:
        live = layout.database_path(name)
        for suffix in ("", "-wal", "-shm"):
            current = live.with_name(live.name + suffix)
            if current.exists():
                shutil.move(current, aside / current.name)
        staged = live.with_name(f".{live.name}.restoring")
        shutil.copyfile(backup / live.name, staged)
        os.replace(staged, live)
    return aside
