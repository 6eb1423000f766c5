"""Retention: a policy per data type; nothing is deleted unless archived and verified.

Profiles: "seed" (the seed's current policy: keep everything, report only) and
"phase4" (the seed's Phase 4 example: incoming and science MS 7 days, images 90
days). `CONTIMG_RETENTION_<TYPE>_DAYS` overrides one type. Only types contimg
archives (images, mosaics) can be deleted, and only after their remote copy's
checksum matches the one recorded at archive time; the database is updated before
the file goes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rclone_python import rclone

from contimg.layout import StorageLayout
from contimg.state import StateStore
from contimg.state.connection import utc_now, write_transaction

DATA_TYPES = ("incoming", "science_ms", "calibrator_ms", "failed_ms", "images", "mosaics")
PROFILES: dict[str, dict[str, float | None]] = {
    "seed": dict.fromkeys(DATA_TYPES),
    "phase4": {"incoming": 7, "science_ms": 7, "calibrator_ms": None, "failed_ms": None,
               "images": 90, "mosaics": None},
}
ARCHIVED_TYPES = {"images": "images", "mosaics": "mosaics"}


@dataclass(frozen=True)
class RetentionPolicy:
    """Days to keep each data type on the fast disk (None: indefinitely)."""

    days: Mapping[str, float | None]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RetentionPolicy:
        """CONTIMG_RETENTION_PROFILE (seed | phase4) plus per-type overrides."""
        env = os.environ if env is None else env
        profile = env.get("CONTIMG_RETENTION_PROFILE", "seed")
        if profile not in PROFILES:
            raise ValueError(f"CONTIMG_RETENTION_PROFILE={profile!r}: expected one of "
                             f"{sorted(PROFILES)}")
        days = dict(PROFILES[profile])
        for data_type in DATA_TYPES:
            value = env.get(f"CONTIMG_RETENTION_{data_type.upper()}_DAYS")
            if value is not None:
                days[data_type] = None if value.lower() in ("", "none", "indefinite") else float(value)
        return cls(days)


@dataclass(frozen=True)
class PlanItem:
    """One file the policy looked at, and what happens to it."""

    data_type: str
    path: str
    age_days: float
    action: str  # "delete" or "keep"
    reason: str


@dataclass
class RetentionPlan:
    """Everything past its retention age, with the decision for each."""

    items: list[PlanItem] = field(default_factory=list)

    @property
    def deletions(self) -> list[PlanItem]:
        """Items that will be (or were) deleted."""
        return [i for i in self.items if i.action == "delete"]

    def lines(self) -> list[str]:
        """Human-readable plan, one line per item."""
        return [f"{i.action:6s} {i.data_type:13s} {i.age_days:7.1f} d  {i.path}  ({i.reason})"
                for i in self.items]


def plan_retention(layout: StorageLayout, store: StateStore, policy: RetentionPolicy,
                   now: float | None = None) -> RetentionPlan:
    """Decide, without touching anything, what the policy would delete."""
    now = time.time() if now is None else now
    plan = RetentionPlan()
    for data_type, days in policy.days.items():
        if days is None:
            continue
        for path, age in _files_older_than(layout, store, data_type, days, now):
            if data_type not in ARCHIVED_TYPES:
                plan.items.append(PlanItem(data_type, str(path), age, "keep",
                                           "not archived by contimg: report only"))
                continue
            verdict = _verify_archive(store, ARCHIVED_TYPES[data_type], path)
            plan.items.append(PlanItem(data_type, str(path), age,
                                       "delete" if verdict is None else "keep",
                                       "archived and verified" if verdict is None else verdict))
    return plan


def apply_retention(store: StateStore, plan: RetentionPlan) -> list[str]:
    """Delete what the plan allows: mark the product purged, log it, then remove the file."""
    removed = []
    conn = store.connection("products")
    for item in plan.deletions:
        table = ARCHIVED_TYPES[item.data_type]
        with write_transaction(conn):
            conn.execute(_PURGE_SQL[table], (item.path,))
            conn.execute("INSERT INTO file_moves (moved_at, source, destination, action, reason,"
                         " actor) VALUES (?, ?, '', 'delete', ?, 'retention')",
                         (utc_now(), item.path, f"retention: {item.reason}"))
        Path(item.path).unlink(missing_ok=True)
        removed.append(item.path)
    return removed


_PURGE_SQL = {table: f"UPDATE {table} SET status = 'purged' WHERE path = ?"
              for table in ("images", "mosaics")}
_ARCHIVE_SQL = {table: f"SELECT archive_path, archive_sha256 FROM {table} WHERE path = ?"
                for table in ("images", "mosaics")}


def _files_older_than(layout: StorageLayout, store: StateStore, data_type: str, days: float,
                      now: float) -> list[tuple[Path, float]]:
    cutoff = now - days * 86400
    if data_type in ARCHIVED_TYPES:
        rows = store.query("products", f"SELECT path FROM {ARCHIVED_TYPES[data_type]}"
                                       " WHERE status != 'purged'")
        paths = [Path(r[0]) for r in rows]
    else:
        base = {"incoming": layout.incoming_dir, "science_ms": layout.ms_dir / "science",
                "calibrator_ms": layout.ms_dir / "calibrators",
                "failed_ms": layout.ms_dir / "failed"}[data_type]
        paths = list(base.iterdir()) if data_type == "incoming" else list(base.glob("*/*.ms"))
    found = []
    for path in paths:
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            continue
        if mtime < cutoff:
            found.append((path, (now - mtime) / 86400))
    return sorted(found)


def _verify_archive(store: StateStore, table: str, path: Path) -> str | None:
    """None when the remote copy matches the checksum recorded at archive time."""
    row = store.query("products", _ARCHIVE_SQL[table], (str(path),))
    if not row or not row[0]["archive_path"]:
        return "not yet archived"
    archive_path, expected = row[0]["archive_path"], row[0]["archive_sha256"]
    try:
        remote_hash = rclone.hash("sha256", archive_path)
    except Exception as exc:  # noqa: BLE001 - any failure to verify means keep the file
        return f"archive copy unreadable ({exc})"
    actual = remote_hash if isinstance(remote_hash, str) else next(iter(remote_hash.values()), "")
    if actual != expected:
        return f"archive copy does not match its checksum (remote {actual[:12]}..., " \
               f"recorded {str(expected)[:12]}...): kept"
    return None
