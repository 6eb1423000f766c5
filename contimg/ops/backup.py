"""Database backups: SQLite's online backup API (state on PostgreSQL: each schema exported
to a SQLite file of the same format, `contimg.state.transfer`), integrity-checked, kept
14 days locally and shipped to the rclone remote; and the restore procedure.

Each set's `manifest.json` carries the row counts and the sha256 and size of every
copy. A restore verifies all of it before touching anything, and runs only while it
holds the state lock exclusively, i.e. while no process has a database open.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from contimg.layout import StorageLayout
from contimg.ops.archive import sha256
from contimg.ops.rclone_remote import copy_verified, remote_path
from contimg.secrets import redact_remote
from contimg.state import postgres
from contimg.state.connection import (
    DATABASES,
    StateInUseError,
    StateStore,
    acquire_shared_state_lock,
    configured_state_url,
    connect,
    exclusive_state_lock,
)
from contimg.state.postgres import PgConnection
from contimg.state.transfer import export_schema, import_schema

BACKUP_FORMAT = "%Y-%m-%dT%H%M%SZ"
LOCAL_RETENTION = timedelta(days=14)
MANIFEST_VERSION = 2  # 2: sha256 and size of every copy


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
    files: dict[str, dict[str, object]] = {}
    url = configured_state_url()
    # Shared, like any reader: a backup never copies a database while a restore swaps it.
    lock = acquire_shared_state_lock(layout.state_dir, url=url)
    try:
        for name in DATABASES:
            copy_path = partial / layout.database_path(name).name
            if url:
                with StateStore(layout.state_dir, url) as store:
                    export_schema(store.connection(name), name, copy_path)
            elif not _copy_file_database(layout.database_path(name), copy_path):
                continue
            counts[name] = check_copy(copy_path)
            files[copy_path.name] = {"sha256": sha256(copy_path),
                                     "bytes": copy_path.stat().st_size}
        (partial / "manifest.json").write_text(json.dumps(
            {"format": MANIFEST_VERSION, "created": now.isoformat(), "row_counts": counts,
             "files": files}, indent=2))
        os.rename(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        lock.close()
    return BackupSet(final, counts)



def _copy_file_database(source_path: Path, copy_path: Path) -> bool:
    """SQLite's online backup of one database file (False when it does not exist)."""
    if not source_path.exists():
        return False
    source = connect(source_path)
    target = sqlite3.connect(copy_path)
    try:
        source.backup(target)  # a consistent snapshot, even under concurrent writes
    finally:
        target.close()
        source.close()
    return True


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
    # Where it went, never how to get in: the remote may carry credentials.
    (backup / "SHIPPED").write_text(redact_remote(destination) + "\n")
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


def read_manifest(backup: Path) -> dict:
    """The backup set's manifest, checked for shape; BackupError (never a traceback) else."""
    manifest_path = backup / "manifest.json"
    if not backup.is_dir() or not manifest_path.is_file():
        raise BackupError(f"{backup} has no manifest.json: not a contimg backup set. "
                          "Fix: choose one from `contimg restore --list`.")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BackupError(f"{manifest_path} is unreadable or not JSON ({exc}): the set is "
                          "damaged or tampered with. Fix: restore another set.") from None
    counts = manifest.get("row_counts") if isinstance(manifest, dict) else None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(counts, dict) or not counts:
        raise BackupError(f"{manifest_path} lists no databases (no row_counts): damaged or "
                          "tampered with. Fix: restore another set.")
    if not isinstance(files, dict):
        raise BackupError(f"{manifest_path} carries no checksums (made before checksums were "
                          "recorded, or edited), so the copies cannot be verified. Fix: restore "
                          "a set made by this version.")
    unknown = sorted(set(counts) - set(DATABASES))
    if unknown:
        raise BackupError(f"{manifest_path} names unknown databases {unknown}: tampered with. "
                          "Fix: restore another set.")
    for name in counts:
        entry = files.get(f"{name}.sqlite3")
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                and isinstance(counts[name], dict)):
            raise BackupError(f"{manifest_path} has no checksum for {name}.sqlite3: damaged or "
                              "tampered with. Fix: restore another set.")
    return manifest


def verify_backup(backup: Path) -> dict:
    """Check every copy against the manifest (sha256, then integrity and row counts).

    Returns the manifest; raises BackupError naming the first file that does not match.
    """
    manifest = read_manifest(backup)
    for name, expected_counts in manifest["row_counts"].items():
        copy = backup / f"{name}.sqlite3"
        if not copy.is_file():
            raise BackupError(f"{copy} is missing from the backup set. Fix: restore another set.")
        expected = manifest["files"][copy.name]["sha256"]
        if sha256(copy) != expected:
            raise BackupError(f"{copy} does not match the sha256 in its manifest: the copy was "
                              "changed or damaged after the backup. Fix: restore another set.")
        try:
            counts = check_copy(copy)
        except (sqlite3.Error, BackupError) as exc:
            raise BackupError(f"{copy} is not a sound database ({exc}). Fix: restore another "
                              "set.") from None
        if counts != expected_counts:
            raise BackupError(f"{copy} row counts differ from its manifest: the manifest was "
                              "edited. Fix: restore another set.")
    return manifest


def restore_databases(layout: StorageLayout, backup: Path, now: datetime | None = None) -> Path:
    """Replace the state databases by a backup's verified copies; keep the current ones aside.

    Refuses (BackupError) while any process holds the state databases open, or when the
    set does not verify. Returns the directory holding the databases as they were.
    """
    url = configured_state_url()
    try:
        with exclusive_state_lock(layout.state_dir, url=url):
            if url:
                return _restore_postgres(layout, url, backup, now or datetime.now(UTC))
            return _restore_locked(layout, backup, now or datetime.now(UTC))
    except StateInUseError as exc:
        raise BackupError(str(exc)) from None


def _restore_postgres(layout: StorageLayout, url: str, backup: Path, now: datetime) -> Path:
    """Each schema replaced by its verified copy, after the schema as it was is exported
    beside the state directory (the same `pre-restore-` folder a file restore keeps)."""
    manifest = verify_backup(backup)
    aside = layout.state_dir / f"pre-restore-{now.strftime(BACKUP_FORMAT)}"
    aside.mkdir(parents=True)
    for name in manifest["row_counts"]:
        # Not through a StateStore: that would wait for the lock this restore holds.
        conn = PgConnection(url, name)
        try:
            postgres.migrate_schema(conn, name)
            export_schema(conn, name, aside / layout.database_path(name).name)
            restored = import_schema(conn, name, backup / layout.database_path(name).name)
        finally:
            conn.close()
        if {t: restored.get(t) for t in manifest["row_counts"][name]} != manifest["row_counts"][name]:
            raise BackupError(f"{name} restored {restored} rows, not the manifest's "
                              f"{manifest['row_counts'][name]}; the schema as it was is in {aside}.")
    return aside


def _restore_locked(layout: StorageLayout, backup: Path, now: datetime) -> Path:
    # Verified under the lock, just before use: nothing can change between check and copy
    # but the backup directory itself, and each copy is re-hashed after staging.
    manifest = verify_backup(backup)
    staged: dict[str, Path] = {}
    try:
        for name in manifest["row_counts"]:
            live = layout.database_path(name)
            staged[name] = live.with_name(f".{live.name}.restoring")
            shutil.copyfile(backup / live.name, staged[name])
            if sha256(staged[name]) != manifest["files"][live.name]["sha256"]:
                raise BackupError(f"{backup / live.name} changed while it was being restored. "
                                  "Fix: retry.")
    except BaseException:
        for path in staged.values():
            path.unlink(missing_ok=True)
        raise
    aside = layout.state_dir / f"pre-restore-{now.strftime(BACKUP_FORMAT)}"
    aside.mkdir(parents=True)
    for name, path in staged.items():
        live = layout.database_path(name)
        for suffix in ("", "-wal", "-shm"):
            current = live.with_name(live.name + suffix)
            if current.exists():
                shutil.move(current, aside / current.name)
        os.replace(path, live)
    return aside
