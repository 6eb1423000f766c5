"""Disk thresholds (the seed's monitoring section) and how an observation fares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from contimg.layout import StorageLayout
from contimg.ops.storage_usage import StorageObservation, volume_usage
from contimg.settings import Settings, load_settings

LEVELS = ("OK", "WARN", "ERROR")


@dataclass(frozen=True)
class DiskThresholds:
    """Fast disk free < warn -> WARN, < error -> ERROR; tmpfs use > limit -> ERROR."""

    fast_disk_warn_free_gb: float = 200.0
    fast_disk_error_free_gb: float = 100.0
    tmpfs_error_used_percent: float = 95.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DiskThresholds:
        """CONTIMG_DISK_WARN_FREE_GB, CONTIMG_DISK_ERROR_FREE_GB, CONTIMG_TMPFS_ERROR_PERCENT
        from the validated settings object (contimg.settings)."""
        return cls.from_settings(load_settings(env))

    @classmethod
    def from_settings(cls, settings: Settings) -> DiskThresholds:
        """The thresholds from the one validated settings object."""
        return cls(float(settings["CONTIMG_DISK_WARN_FREE_GB"]),  # type: ignore[arg-type]
                   float(settings["CONTIMG_DISK_ERROR_FREE_GB"]),  # type: ignore[arg-type]
                   float(settings["CONTIMG_TMPFS_ERROR_PERCENT"]))  # type: ignore[arg-type]

    def fast_disk_level(self, observation: StorageObservation) -> str:
        """OK, WARN or ERROR for the fast disk's free space."""
        free = observation.fast_disk_free_gb
        if free < self.fast_disk_error_free_gb:
            return "ERROR"
        return "WARN" if free < self.fast_disk_warn_free_gb else "OK"

    def tmpfs_level(self, observation: StorageObservation) -> str:
        """OK or ERROR for tmpfs use."""
        return "ERROR" if observation.tmpfs_used_percent > self.tmpfs_error_used_percent else "OK"


def conversion_hold(layout: StorageLayout, settings: Settings) -> str | None:
    """Why new conversions must wait now, or None: the fast disk has less free space than
    CONTIMG_DISK_HOLD_FREE_GB (the free-space call, or CONTIMG_FAKE_DISK_USAGE's figure)."""
    floor = float(settings["CONTIMG_DISK_HOLD_FREE_GB"])  # type: ignore[arg-type]
    free_gb = volume_usage(layout)[0].free / 1e9
    if floor <= 0 or free_gb >= floor:
        return None
    return (f"the fast disk ({layout.ms_dir}) has {free_gb:.1f} GB free, below "
            f"CONTIMG_DISK_HOLD_FREE_GB={floor:g}: complete groups wait (pending) until space is "
            "freed (retention, archive) or the hold is lowered")
