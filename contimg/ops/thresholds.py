"""Disk thresholds (the seed's monitoring section) and how an observation fares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from contimg.ops.storage_usage import StorageObservation
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
