"""Operator settings for ingest: a typed view of the validated settings object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from contimg.settings import Settings, load_settings


@dataclass(frozen=True)
class IngestSettings:
    """How files become groups and what happens to groups that never complete."""

    expected_subbands: int = 16
    tolerance_s: float = 60.0  # subband timestamps within this of the group id join it
    settle_s: float = 5.0  # a file unchanged for this long (and across ticks) is complete
    incomplete_timeout_s: float = 600.0
    incomplete_policy: str = "wait"  # or "convert" (missing subbands flagged)

    stale_run_s: float = 900.0  # in_progress this long with no live run: back to the queue
    max_attempts: int = 5
    convert_timeout_s: float = 1800.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestSettings:
        """The ingest settings of the validated settings object (contimg.settings)."""
        return cls.from_settings(load_settings(env))

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestSettings:
        """Pick the ingest values out of the one validated settings object."""
        return cls(
            expected_subbands=int(settings["CONTIMG_EXPECTED_SUBBANDS"]),  # type: ignore[arg-type]
            tolerance_s=float(settings["CONTIMG_GROUP_TOLERANCE_S"]),  # type: ignore[arg-type]
            settle_s=float(settings["CONTIMG_FILE_SETTLE_S"]),  # type: ignore[arg-type]
            incomplete_timeout_s=float(settings["CONTIMG_INCOMPLETE_TIMEOUT_S"]),  # type: ignore[arg-type]
            incomplete_policy=str(settings["CONTIMG_INCOMPLETE_POLICY"]),
            stale_run_s=float(settings["CONTIMG_STALE_RUN_S"]),  # type: ignore[arg-type]
            max_attempts=int(settings["CONTIMG_MAX_ATTEMPTS"]),  # type: ignore[arg-type]
            convert_timeout_s=float(settings["CONTIMG_CONVERT_TIMEOUT_S"]),  # type: ignore[arg-type]
        )
