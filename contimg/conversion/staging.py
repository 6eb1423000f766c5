"""Staging workspaces and atomic moves into the organised tree.

A conversion writes into `/dev/shm/<app>/<group>/` (tmpfs) when it has room for the
estimated size, else into the scratch disk's `tmp/staging/<group>/`. The finished
MS is validated, then moved into place: a rename on the same file system, or a copy
into a hidden sibling of the destination followed by a rename, so a partial
product never appears under its final name. Workspaces are removed on success and
on failure; ones left by a killed run are reaped.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from contimg.layout import MS_KINDS, StorageLayout

# The MS as the converter lays it out (ms_skeleton): DATA and FLAG in tiles of
# ROWS_PER_TILE rows, so rows are padded up to whole tiles; DATA is complex64 and FLAG
# one bit per value; per row UVW (3 doubles), WEIGHT and SIGMA (a float per
# polarisation) in tiles too, and ~100 bytes of scalar columns; plus the subtables and
# table headers, a fixed ~0.7 MB. Checked against written MS by tests/test_staging.py.
ROWS_PER_TILE = 1024
FIXED_OVERHEAD_BYTES = 768 * 1024
SCALAR_ROW_BYTES = 112
SAFETY_FACTOR = 1.15
STALE_AFTER_S = 6 * 3600
PARTIAL_MARK = ".partial-"
# A conversion workspace is named by its group id; a solve's and an image's by `cal-`/`img-` and it.
# A group's workspaces (conversion, solve, imaging), a mosaic's (`mosaic-hourly-<time>`) and
# `contimg image`'s (`img-ms-<name>`).
_GROUP_DIR = re.compile(r"(cal-|img-|mosaic-hourly-|mosaic-daily-)?"
                        r"[0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{2}_[0-9]{2}_[0-9]{2}|img-ms-[A-Za-z0-9._-]+")

class InsufficientSpaceError(RuntimeError):
    """Neither tmpfs nor scratch can hold the product: refuse before writing anything."""


@dataclass(frozen=True)
class Workspace:
    """Where a conversion is being written, and on which kind of storage."""

    path: Path
    kind: str  # "tmpfs" or "scratch"


def estimate_ms_bytes(n_rows: int, n_channels: int, n_pols: int) -> int:
    """Bytes an MS of this shape needs while being written (with a safety margin)."""
    padded = -(-n_rows // ROWS_PER_TILE) * ROWS_PER_TILE
    data = padded * n_channels * n_pols * 8
    flags = padded * n_channels * n_pols / 8
    row_columns = padded * (3 * 8 + 2 * n_pols * 4) + n_rows * SCALAR_ROW_BYTES
    return int((FIXED_OVERHEAD_BYTES + data + flags + row_columns) * SAFETY_FACTOR)


def free_bytes(path: Path) -> int:
    """Free bytes on the file system holding `path` (its nearest existing parent)."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


FreeSpace = Callable[[Path], int]


def choose_workspace(layout: StorageLayout, name: str, needed_bytes: int,
                     free: FreeSpace = free_bytes) -> Workspace:
    """tmpfs when it has room, else the scratch disk; raise when neither has.

    `free` answers the free bytes of a path (the real call by default; tests and
    dry runs may pass their own).
    """
    tmpfs_free = free(layout.tmpfs_root) if layout.tmpfs_usable() else 0
    if tmpfs_free >= needed_bytes:
        return Workspace(layout.tmpfs_root / name, "tmpfs")
    scratch_free = free(layout.staging_dir)
    if scratch_free >= needed_bytes:
        return Workspace(layout.staging_dir / name, "scratch")
    raise InsufficientSpaceError(
        f"no room to stage {name}: needs {needed_bytes / 1e9:.2f} GB; tmpfs "
        f"{layout.tmpfs_root} has {tmpfs_free / 1e9:.2f} GB free and scratch "
        f"{layout.staging_dir} {scratch_free / 1e9:.2f} GB. Nothing was written. Fix: free "
        "space (archive and retention) or point CONTIMG_TMP_DIR at a larger disk.")


@contextmanager
def workspace(layout: StorageLayout, name: str, needed_bytes: int,
              free: FreeSpace = free_bytes) -> Iterator[Workspace]:
    """A fresh workspace directory, removed afterwards whatever happens."""
    chosen = choose_workspace(layout, name, needed_bytes, free)
    fresh_owned_directory(chosen.path)
    try:
        yield chosen
    finally:
        shutil.rmtree(chosen.path, ignore_errors=True)


def keep_for_operator(workspace: Path, destination: Path, reason: str) -> Path | None:
    """Move what a failed stage left in its workspace to `destination` (under a
    `failed/` tree), with the reason in FAILED.txt; None when even that is refused (a
    full disk): the caller still records the reason."""
    try:
        (workspace / "FAILED.txt").write_text(reason + "\n")
        move_into_place(workspace, destination)
    except OSError:
        return None
    return destination


def fresh_owned_directory(path: Path) -> Path:
    """An empty directory at `path` marked with its owner (pid, start time), so that
    `reap_stale_workspaces` removes it once that process is gone (a killed run)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    (path / ".owner").write_text(f"{os.getpid()} {time.time():.0f}\n")
    return path


def move_into_place(source: Path, destination: Path) -> None:
    """Move a directory to its final name atomically (never a partial destination)."""
    if destination.exists():
        raise FileExistsError(f"{destination} already exists; refusing to replace it")
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(source, destination)
        return
    except OSError as exc:
        if exc.errno != 18:  # EXDEV: across file systems -> copy, then rename
            raise
    reap_partial_moves(destination.parent)
    hidden = destination.with_name(f".{destination.name}{PARTIAL_MARK}{os.getpid()}")
    shutil.rmtree(hidden, ignore_errors=True)
    try:
        shutil.copytree(source, hidden)
        os.rename(hidden, destination)
    except BaseException:
        shutil.rmtree(hidden, ignore_errors=True)
        raise
    shutil.rmtree(source, ignore_errors=True)


def reap_partial_moves(directory: Path) -> list[Path]:
    """Remove `.X.ms.partial-PID` copies in `directory` whose process is gone (a run
    killed during a cross-file-system move). Returns what was removed."""
    removed = []
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        if not entry.name.startswith(".") or PARTIAL_MARK not in entry.name:
            continue
        pid_text = entry.name.rsplit(PARTIAL_MARK, 1)[1]
        if pid_text.isdigit() and not _process_alive(int(pid_text)):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def reap_group_partials(layout: StorageLayout, group_id: str) -> list[Path]:
    """Partial copies in every MS kind's directory for the group's date (its retry would
    move into one of them; a kill during the move left the copy there)."""
    return [path for kind in MS_KINDS
            for path in reap_partial_moves(layout.ms_date_dir(kind, group_id))]


def reap_stale_workspaces(layout: StorageLayout, *, older_than_s: float = STALE_AFTER_S
                          ) -> list[Path]:
    """Remove workspaces whose owning process is gone (or that are very old)."""
    removed = []
    for root in (layout.tmpfs_root, layout.staging_dir):
        if not root.is_dir():
            continue
        for entry in root.iterdir():
            if entry.is_dir() and _is_stale(entry, older_than_s):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def _is_stale(path: Path, older_than_s: float) -> bool:
    """Only our own workspaces (a group-id name) are ever judged: one whose owner process
    is gone, or, when the owner file is unreadable, one untouched for `older_than_s`.
    A workspace whose owner still runs is never removed, however old."""
    if not _GROUP_DIR.fullmatch(path.name):
        return False  # not a contimg workspace: someone else's directory
    owner = path / ".owner"
    try:
        pid_text, _started = owner.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return time.time() - path.stat().st_mtime > older_than_s
    return not _process_alive(pid)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True
