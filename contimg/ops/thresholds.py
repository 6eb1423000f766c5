"""Disk thresholds (the seed's monitoring section) and how an observation fares."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from contimg.ops.storage_usage import StorageObservation

LEVELS = ("OK", "WARN", "ERROR")


@dataclass(frozen=True)
class DiskThresholds:
    """Fast disk free < warn -> WARN, < error -> ERROR; tmpfs use > limit -> ERROR."""

    fast_disk_warn_free_gb: float = 200.0
    fast_disk_error_free_gb: float = 100.0
    tmpfs_error_used_percent: float = 95.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DiskThresholds:
        """CONTIMG_DISK_WARN_FREE_GB, CONTIMG_DISK_ERROR_FREE_GB, CONTIMG_TMPFS_ERROR_PERCENT."""
        env = os.environ if env is None else env
        try:
            thresholds = cls(
                float(env.get("CONTIMG_DISK_WARN_FREE_GB", cls.fast_disk_warn_free_gb)),
                float(env.get("CONTIMG_DISK_ERROR_FREE_GB", cls.fast_disk_error_free_gb)),
                float(env.get("CONTIMG_TMPFS_ERROR_PERCENT", cls.tmpfs_error_used_percent)))
        except ValueError as exc:
            raise ValueError(f"bad disk threshold in the environment ({exc}); use numbers") from exc
        if thresholds.fast_disk_error_free_gb > thresholds.fast_disk_warn_free_gb:
            raise ValueError("CONTIMG_DISK_ERROR_FREE_GB must not exceed CONTIMG_DISK_WARN_FREE_GB")
        return thresholds

    def fast_disk_level(self, observation: StorageObservation) -> str:
        """OK, WARN or ERROR for the fast disk's free space."""
        free = observation.fast_disk_free_gb
        if free < self.fast_disk_error_free_gb:
            return "ERROR"
        return "WARN" if free < self.fast_disk_warn_free_gb else "OK"

    def tmpfs_level(self, observation: StorageObservation) -> str:
        """OK or ERROR for tmpfs use."""
        return "ERROR" if observation.tmpfs_used_percent > self.tmpfs_error_used_percent else "OK"
