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
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from contimg.layout import StorageLayout

# An MS holds DATA (complex64) + FLAG (bool) per visibility, plus ~10% metadata.
BYTES_PER_VISIBILITY = 8 + 1
SAFETY_FACTOR = 1.2
STALE_AFTER_S = 6 * 3600


class InsufficientSpaceError(RuntimeError):
    """Neither tmpfs nor scratch can hold the product: refuse before writing anything."""


@dataclass(frozen=True)
class Workspace:
    """Where a conversion is being written, and on which kind of storage."""

    path: Path
    kind: str  # "tmpfs" or "scratch"


def estimate_ms_bytes(n_rows: int, n_channels: int, n_pols: int) -> int:
    """Bytes an MS of this shape needs while being written (with a safety margin)."""
    return int(n_rows * n_channels * n_pols * BYTES_PER_VISIBILITY * SAFETY_FACTOR)


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
    shutil.rmtree(chosen.path, ignore_errors=True)
    chosen.path.mkdir(parents=True)
    (chosen.path / ".owner").write_text(f"{os.getpid()} {time.time():.0f}\n")
    try:
        yield chosen
    finally:
        shutil.rmtree(chosen.path, ignore_errors=True)


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
    hidden = destination.with_name(f".{destination.name}.partial-{os.getpid()}")
    shutil.rmtree(hidden, ignore_errors=True)
    try:
        shutil.copytree(source, hidden)
        os.rename(hidden, destination)
    except BaseException:
        shutil.rmtree(hidden, ignore_errors=True)
        raise
    shutil.rmtree(source, ignore_errors=True)


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
    owner = path / ".owner"
    try:
        pid_text, started = owner.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return time.time() - path.stat().st_mtime > older_than_s
    if time.time() - float(started) > older_than_s:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
