"""Observe every volume and area of the layout: free space, tmpfs use, and per area the
file count, bytes and oldest file age. Plain Python; the Dagster asset calls it."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from contimg.layout import StorageLayout

GB = 1e9


class DiskUsage(NamedTuple):
    """Same fields as shutil.disk_usage."""

    total: int
    used: int
    free: int


@dataclass(frozen=True)
class AreaUsage:
    """One area of the layout."""

    area: str
    path: str
    file_count: int
    bytes: int
    oldest_age_s: float | None


@dataclass
class StorageObservation:
    """A snapshot of the fast disk, tmpfs and every area."""

    observed_at: str
    fast_disk_total_bytes: int
    fast_disk_free_bytes: int
    tmpfs_total_bytes: int
    tmpfs_used_bytes: int
    areas: list[AreaUsage] = field(default_factory=list)

    @property
    def fast_disk_free_gb(self) -> float:
        """Free space of the fast (stage) disk in GB."""
        return self.fast_disk_free_bytes / GB

    @property
    def tmpfs_used_percent(self) -> float:
        """tmpfs use in percent (0 when there is no tmpfs)."""
        return 100.0 * self.tmpfs_used_bytes / self.tmpfs_total_bytes if self.tmpfs_total_bytes else 0.0


def observe_storage(layout: StorageLayout, *, now: float | None = None,
                    fake_file: str | None = None) -> StorageObservation:
    """Measure the fast disk, tmpfs and every area now.

    `fake_file` (default: `CONTIMG_FAKE_DISK_USAGE`) names a JSON file that, when it
    exists, overrides the free-space call, e.g. {"fast_disk_free_gb": 150,
    "tmpfs_used_percent": 96}: it is read on every observation, so an operator or a
    test can drive the thresholds on a running platform and take it back.
    """
    now = time.time() if now is None else now
    fast, tmpfs = volume_usage(layout, fake_file)
    areas = [_area_usage(name, path, now) for name, path in layout.monitored_areas().items()]
    return StorageObservation(
        observed_at=datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        fast_disk_total_bytes=fast.total, fast_disk_free_bytes=fast.free,
        tmpfs_total_bytes=tmpfs.total, tmpfs_used_bytes=tmpfs.used, areas=areas)


def volume_usage(layout: StorageLayout, fake_file: str | None = None
                 ) -> tuple[DiskUsage, DiskUsage]:
    """(fast disk, tmpfs) usage: the real free-space call, or the fake file's figures."""
    fast = _disk_usage(layout.ms_dir)
    tmpfs = _disk_usage(layout.tmpfs_root) if layout.tmpfs_usable() else DiskUsage(0, 0, 0)
    fake = _read_fake(fake_file if fake_file is not None
                      else os.environ.get("CONTIMG_FAKE_DISK_USAGE"))
    if "fast_disk_free_gb" in fake:
        free = int(float(fake["fast_disk_free_gb"]) * GB)
        fast = DiskUsage(max(fast.total, free), max(fast.total - free, 0), free)
    if "tmpfs_used_percent" in fake and tmpfs.total:
        used = int(tmpfs.total * float(fake["tmpfs_used_percent"]) / 100)
        tmpfs = DiskUsage(tmpfs.total, used, tmpfs.total - used)
    return fast, tmpfs


def _disk_usage(path: Path) -> DiskUsage:
    while not path.exists():
        path = path.parent
    real = shutil.disk_usage(path)
    return DiskUsage(real.total, real.used, real.free)


def _read_fake(fake_file: str | None) -> dict:
    if not fake_file or not os.path.exists(fake_file):
        return {}
    try:
        return json.loads(Path(fake_file).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"CONTIMG_FAKE_DISK_USAGE={fake_file}: not valid JSON ({exc}). Fix the "
                         "file or remove it to use the real free space.") from exc


def _area_usage(name: str, path: Path, now: float) -> AreaUsage:
    count, total, oldest = 0, 0, None
    stack = [path] if path.is_dir() else []
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    count += 1
                    total += stat.st_size
                    oldest = stat.st_mtime if oldest is None else min(oldest, stat.st_mtime)
    return AreaUsage(name, str(path), count, total, None if oldest is None else now - oldest)
