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
from contimg.settings import load_settings

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
                    fake_file: str | None = None,
                    cache_file: Path | None = None) -> StorageObservation:
    """Measure the fast disk, tmpfs and every area now.

    `fake_file` (default: `CONTIMG_FAKE_DISK_USAGE`) names a JSON file that, when it
    exists, overrides the free-space call, e.g. {"fast_disk_free_gb": 150,
    "tmpfs_used_percent": 96}: it is read on every observation, so an operator or a
    test can drive the thresholds on a running platform and take it back.
    """
    now = time.time() if now is None else now
    fast, tmpfs = volume_usage(layout, fake_file)
    cache = _load_cache(cache_file)
    areas = [_area_usage(name, path, now, cache)
             for name, path in layout.monitored_areas().items()]
    _save_cache(cache_file, cache)
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
                      else str(load_settings()["CONTIMG_FAKE_DISK_USAGE"]))
    if "fast_disk_free_gb" in fake:
        free = int(float(fake["fast_disk_free_gb"]) * GB)
        fast = DiskUsage(max(fast.total, free), max(fast.total - free, 0), free)
    if "tmpfs_used_percent" in fake and tmpfs.total:
        used = int(tmpfs.total * float(fake["tmpfs_used_percent"]) / 100)
        tmpfs = DiskUsage(tmpfs.total, used, tmpfs.total - used)
    return fast, tmpfs


def _load_cache(cache_file: Path | None) -> dict | None:
    if cache_file is None:
        return None
    try:
        return json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}  # missing or damaged: walk everything once and rebuild it


def _save_cache(cache_file: Path | None, cache: dict | None) -> None:
    if cache_file is None or cache is None:
        return
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    partial = cache_file.with_name(f".{cache_file.name}.partial")
    partial.write_text(json.dumps(cache))
    os.replace(partial, cache_file)


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


def _area_usage(name: str, path: Path, now: float, cache: dict | None = None) -> AreaUsage:
    """Count an area: files at its top level, plus each subdirectory (e.g. a date
    directory of MS). With a cache, a subdirectory whose own mtime and whose children's
    mtimes are unchanged since the last walk is not walked again — a year of MS is
    hundreds of thousands of files, of which a 5-minute observation re-reads today's."""
    count, total, oldest = 0, 0, None
    if not path.is_dir():
        return AreaUsage(name, str(path), 0, 0, None)
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                sub = _subtree(Path(entry.path), cache)
            elif entry.is_file(follow_symlinks=False):
                stat = entry.stat(follow_symlinks=False)
                sub = (1, stat.st_size, stat.st_mtime)
            else:
                continue
            count, total = count + sub[0], total + sub[1]
            if sub[2] is not None:
                oldest = sub[2] if oldest is None else min(oldest, sub[2])
    return AreaUsage(name, str(path), count, total, None if oldest is None else now - oldest)


def _subtree(path: Path, cache: dict | None) -> tuple[int, int, float | None]:
    signature = _signature(path) if cache is not None else None
    cached = cache.get(str(path)) if cache is not None else None
    if cached and cached["signature"] == signature:
        return cached["count"], cached["bytes"], cached["oldest_mtime"]
    count, total, oldest = 0, 0, None
    stack = [path]
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
    if cache is not None:
        cache[str(path)] = {"signature": signature, "count": count, "bytes": total,
                            "oldest_mtime": oldest}
    return count, total, oldest


def _signature(path: Path) -> list[float]:
    # A directory's mtime changes when entries are added or removed; its children's
    # mtimes catch a product (an MS) that gained or lost files, e.g. CORRECTED_DATA.
    children = [e.stat(follow_symlinks=False).st_mtime for e in os.scandir(path)]
    return [path.stat().st_mtime, max(children, default=0.0), float(len(children))]
