"""Operator settings for ingest, from the environment (with the seed's defaults)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

INCOMPLETE_POLICIES = ("wait", "convert")


@dataclass(frozen=True)
class IngestSettings:
    """How files become groups and what happens to groups that never complete."""

    expected_subbands: int = 16
    tolerance_s: float = 60.0  # subband timestamps within this of the group id join it
    settle_s: float = 5.0  # a file unchanged for this long (and across ticks) is complete
    incomplete_timeout_s: float = 600.0
    incomplete_policy: str = "wait"  # or "convert" (missing subbands flagged)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestSettings:
        """Read CONTIMG_EXPECTED_SUBBANDS, CONTIMG_GROUP_TOLERANCE_S, CONTIMG_FILE_SETTLE_S,
        CONTIMG_INCOMPLETE_TIMEOUT_S and CONTIMG_INCOMPLETE_POLICY; validate them."""
        env = os.environ if env is None else env
        try:
            settings = cls(
                expected_subbands=int(env.get("CONTIMG_EXPECTED_SUBBANDS", cls.expected_subbands)),
                tolerance_s=float(env.get("CONTIMG_GROUP_TOLERANCE_S", cls.tolerance_s)),
                settle_s=float(env.get("CONTIMG_FILE_SETTLE_S", cls.settle_s)),
                incomplete_timeout_s=float(env.get("CONTIMG_INCOMPLETE_TIMEOUT_S",
                                                   cls.incomplete_timeout_s)),
                incomplete_policy=env.get("CONTIMG_INCOMPLETE_POLICY", cls.incomplete_policy),
            )
        except ValueError as exc:
            raise ValueError(f"bad ingest setting in the environment: {exc}. Fix: use numbers "
                             "for CONTIMG_*_S and CONTIMG_EXPECTED_SUBBANDS.") from exc
        if settings.incomplete_policy not in INCOMPLETE_POLICIES:
            raise ValueError(f"CONTIMG_INCOMPLETE_POLICY={settings.incomplete_policy!r}: "
                             f"expected one of {INCOMPLETE_POLICIES}")
        if settings.expected_subbands < 1 or settings.tolerance_s <= 0:
            raise ValueError("CONTIMG_EXPECTED_SUBBANDS must be >= 1 and "
                             "CONTIMG_GROUP_TOLERANCE_S > 0")
        return settings
