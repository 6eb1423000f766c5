"""Retention: a policy per data type, the seed's Phase 4 plan, and a free-space floor.

Profiles: "seed" (the seed's current policy: keep everything, report only) and
"phase4" (the seed's Phase 4 example: incoming and science MS 7 days, images 90
days). `CONTIMG_RETENTION_<TYPE>_DAYS` overrides one type ("none" keeps it forever).
What may go, and only when it is safe:

- incoming raw files: once their group is `completed` in ingest.sqlite3, its MS is
  registered in ms_index as `converted` and present on disk, and the file is the one
  that was converted (same size and mtime);
- science MS: registered and past conversion (status `converted`);
- images and mosaics: archived, the remote copy matching the checksum recorded at
  archive time AND the local file still matching the source checksum recorded then
  (a file changed since archiving is marked for re-archive, never deleted);
- calibrator MS (with their calibration tables) and failed MS: never.

The floor (`CONTIMG_MIN_FREE_GB`, `contimg retention --min-free-gb`): while free space
on the fast disk is below it, the oldest products that the profile's rules allow
(ignoring their age) go first until the projected free space meets it.
`CONTIMG_RETENTION_ARCHIVE_FIRST` copies raw files and science MS to the remote,
verified, before they are deleted. Planning touches nothing; applying updates the
database (and the audit table) before each file goes.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path

from rclone_python import rclone

from contimg.layout import StorageLayout
from contimg.ops.archive import sha256
from contimg.ops.rclone_remote import copy_verified, remote_path
from contimg.ops.storage_usage import GB, volume_usage
from contimg.secrets import REDACTED, redact_remote
from contimg.settings import Settings, SettingsError, load_settings
from contimg.state import StateStore, ingest_db, products_db
from contimg.state.connection import write_transaction
from contimg.state.products_db import (
    archived_product,
    converted_ms_by_group,
    live_products,
    mark_for_rearchive,
    mark_ms_purged,
    mark_product_purged,
    ms_for_retention,
    record_move,
)

DATA_TYPES = ("incoming", "science_ms", "calibrator_ms", "failed_ms", "images", "mosaics")
# Phase 4 deletes raw files and science MS, the only copies of the data until later
# stages exist: it archives them (copy + verify) first unless told otherwise.
PROFILE_ARCHIVES_FIRST = {"seed": False, "phase4": True}
PROFILES: dict[str, dict[str, float | None]] = {
    "seed": dict.fromkeys(DATA_TYPES),
    "phase4": {"incoming": 7, "science_ms": 7, "calibrator_ms": None, "failed_ms": None,
               "images": 90, "mosaics": None},
}
ALWAYS_KEPT = {"calibrator_ms": "calibrator MS and calibration tables are always kept",
               "failed_ms": "failed MS are kept for manual review"}
ARCHIVED_TYPES = {"images": "images", "mosaics": "mosaics"}
MS_KINDS = {"science": "science_ms", "calibrators": "calibrator_ms", "failed": "failed_ms"}
# ms_index statuses of an MS whose conversion is finished and good; later stages add theirs.
RETIRABLE_MS_STATUSES = ("converted",)
FreeSpace = Callable[[], int]


@dataclass(frozen=True)
class RetentionPolicy:
    """Days to keep each data type on the fast disk (None: indefinitely), the free-space
    floor in GB (None: none), and whether raw files and MS are archived before deletion."""

    days: Mapping[str, float | None]
    min_free_gb: float | None = None
    archive_first: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RetentionPolicy:
        """The validated settings: CONTIMG_RETENTION_PROFILE, per-type overrides
        (default "profile": the profile's value), CONTIMG_MIN_FREE_GB and
        CONTIMG_RETENTION_ARCHIVE_FIRST."""
        return cls.from_settings(load_settings(env))

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        """The policy from the one validated settings object."""
        days = dict(PROFILES[str(settings["CONTIMG_RETENTION_PROFILE"])])
        for data_type in DATA_TYPES:
            variable = f"CONTIMG_RETENTION_{data_type.upper()}_DAYS"
            value = settings[variable]
            if value == "profile":
                continue
            if data_type in ALWAYS_KEPT and value is not None:
                raise SettingsError(f"{variable}={value}: {ALWAYS_KEPT[data_type]}. "
                                    "Fix: unset it (or set it to 'none').")
            days[data_type] = value  # type: ignore[assignment]
        profile = str(settings["CONTIMG_RETENTION_PROFILE"])
        archive_first = settings["CONTIMG_RETENTION_ARCHIVE_FIRST"]
        if archive_first == "profile":
            archive_first = PROFILE_ARCHIVES_FIRST[profile]
        return cls(days, settings["CONTIMG_MIN_FREE_GB"],  # type: ignore[arg-type]
                   bool(archive_first))

    def with_floor(self, min_free_gb: float | None) -> RetentionPolicy:
        """The same policy with another floor (the CLI's --min-free-gb)."""
        return replace(self, min_free_gb=min_free_gb)


@dataclass(frozen=True)
class PlanItem:
    """One file the policy looked at, and what happens to it."""

    data_type: str
    path: str
    age_days: float
    action: str  # "delete", "keep" or "rearchive"
    reason: str
    size_bytes: int = 0
    archive_to: str | None = None  # copied there (verified) before deletion


@dataclass(frozen=True)
class FloorStatus:
    """The free-space floor: where free space was, and where the plan leaves it."""

    floor_gb: float
    free_gb: float
    projected_gb: float
    floor_deletions: int

    @property
    def below(self) -> bool:
        """Free space was below the floor when the plan was made."""
        return self.free_gb < self.floor_gb

    @property
    def met(self) -> bool:
        """The plan's deletions bring free space up to the floor."""
        return self.projected_gb >= self.floor_gb

    def line(self) -> str:
        """One line for the operator (and the alert)."""
        verdict = "met" if self.met else "NOT met: nothing else is eligible"
        return (f"free space {self.free_gb:.1f} GB, floor {self.floor_gb:.1f} GB: "
                f"{self.floor_deletions} oldest eligible product(s) added, projected "
                f"{self.projected_gb:.1f} GB ({verdict})")


@dataclass
class RetentionPlan:
    """Everything past its retention age (or taken for the floor), with the decision."""

    items: list[PlanItem] = field(default_factory=list)
    floor: FloorStatus | None = None

    @property
    def deletions(self) -> list[PlanItem]:
        """Items that will be (or were) deleted."""
        return [i for i in self.items if i.action == "delete"]

    def lines(self) -> list[str]:
        """Human-readable plan, one line per item (and the floor, if one is set)."""
        lines = [f"{i.action:9s} {i.data_type:13s} {i.age_days:7.1f} d {i.size_bytes / GB:8.3f} GB"
                 f"  {i.path}  ({i.reason})" for i in self.items]
        if self.floor is not None and self.floor.below:
            lines.append(self.floor.line())
        return lines


@dataclass
class Candidate:
    """A product the profile's rules could delete, before its age or safety is judged."""

    data_type: str
    path: Path
    mtime: float
    size_bytes: int
    device: int
    verdict: Callable[[], tuple[str, str]]  # -> (action, reason), evaluated only when due
    archive_to: str | None = None


def plan_retention(layout: StorageLayout, store: StateStore, policy: RetentionPolicy,
                   now: float | None = None, *, free: FreeSpace | None = None) -> RetentionPlan:
    """Decide, without touching anything, what the policy (and the floor) would delete.

    `free` returns the fast disk's free bytes (default: the real call, which honours
    CONTIMG_FAKE_DISK_USAGE); it is only asked when a floor is set."""
    now = time.time() if now is None else now
    plan = RetentionPlan()
    candidates = sorted(_candidates(layout, store, policy), key=lambda c: (c.mtime, str(c.path)))
    undecided = []
    for candidate in candidates:
        age = (now - candidate.mtime) / 86400
        if age >= policy.days[candidate.data_type]:  # type: ignore[operator]
            plan.items.append(_decide(candidate, age))
        else:
            undecided.append(candidate)
    if policy.min_free_gb is not None:
        plan.floor = _meet_floor(layout, plan, undecided, policy.min_free_gb, now,
                                 free or (lambda: fast_disk_free_bytes(layout)))
    return plan


def apply_retention(store: StateStore, plan: RetentionPlan) -> list[str]:
    """Carry out the plan, checking each item again first: archive it when asked (copy
    and verify), mark it in the database and the audit table, then delete the file.
    Items marked for re-archive get their archive record cleared. Returns what was deleted."""
    removed = []
    for item in plan.items:
        if item.action == "rearchive":
            _mark_rearchive(store, item)
        elif item.action == "delete" and _still_safe(store, item) and _delete(store, item):
            removed.append(item.path)
    return removed


def fast_disk_free_bytes(layout: StorageLayout) -> int:
    """Free bytes on the fast disk (the MS volume), or the rehearsal file's figure."""
    fake = str(load_settings()["CONTIMG_FAKE_DISK_USAGE"])
    return volume_usage(layout, fake)[0].free


# -- candidates per data type ----------------------------------------------------------


def _candidates(layout: StorageLayout, store: StateStore, policy: RetentionPolicy) -> list[Candidate]:
    """Every product of a type the profile allows deleting (days not None)."""
    allowed = {t for t, days in policy.days.items() if days is not None and t not in ALWAYS_KEPT}
    found: list[Candidate] = []
    if "incoming" in allowed:
        found += _incoming_candidates(layout, store, policy.archive_first)
    if "science_ms" in allowed:
        found += _science_ms_candidates(layout, store, policy.archive_first)
    for data_type in ("images", "mosaics"):
        if data_type in allowed:
            found += _product_candidates(layout, store, data_type)
    return found


def _incoming_candidates(layout: StorageLayout, store: StateStore,
                         archive_first: bool) -> list[Candidate]:
    """Raw files in incoming/, each judged against the ingest registry and ms_index."""
    records = ingest_db.incoming_records(store)
    converted = converted_ms_by_group(store)
    found = []
    if not layout.incoming_dir.is_dir():
        return found
    with os.scandir(layout.incoming_dir) as entries:
        for entry in entries:
            if not entry.is_file(follow_symlinks=False):
                continue  # symlinks, FIFOs, directories: never retention's to delete
            stat = entry.stat(follow_symlinks=False)
            record = records.get(entry.path)
            ms = converted.get(record["group_id"]) if record else None
            archive_to = (remote_path(layout, "incoming", (record["group_id"] or "unknown")[:10])
                          if archive_first and record else None)
            found.append(Candidate(
                "incoming", Path(entry.path), stat.st_mtime, stat.st_size, stat.st_dev,
                _bind(_incoming_verdict, record, ms, stat.st_size, stat.st_mtime), archive_to))
    return found


def _incoming_verdict(record, ms: str | None, size: int, mtime: float) -> tuple[str, str]:
    """Delete a raw file only once the MS made from exactly it is registered and on disk."""
    if record is None:
        return "keep", "not registered by ingest"
    if record["state"] not in ("completed", "purged"):
        return "keep", f"not converted (file is {record['state']})"
    if record["group_state"] != "completed":
        return "keep", f"group {record['group_id']} is {record['group_state']}"
    if (record["size_bytes"], record["mtime"]) != (size, mtime):
        return "keep", "file changed since its group was converted"
    if ms is None:
        return "keep", f"no converted MS registered for group {record['group_id']}"
    if not (Path(ms) / "table.dat").is_file():
        return "keep", f"registered MS {ms} is missing on disk"
    return "delete", f"converted: MS verified and registered ({ms})"


def _science_ms_candidates(layout: StorageLayout, store: StateStore,
                           archive_first: bool) -> list[Candidate]:
    """Registered science MS (calibrator and failed MS are never candidates)."""
    found = []
    for row in ms_for_retention(store):
        if MS_KINDS.get(row["kind"]) != "science_ms":
            continue
        path = Path(row["path"])
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        size = row["size_bytes"] or _directory_bytes(path)
        archive_to = (remote_path(layout, "ms", "science", path.parent.name, path.name)
                      if archive_first else None)
        found.append(Candidate("science_ms", path, stat.st_mtime, size, stat.st_dev,
                               _bind(_ms_verdict, row["status"], path), archive_to))
    return found


def _ms_verdict(status: str, path: Path) -> tuple[str, str]:
    """A science MS goes once its conversion is finished and good."""
    if status not in RETIRABLE_MS_STATUSES:
        return "keep", f"ms_index status is {status!r}"
    if not (path / "table.dat").is_file():
        return "keep", "not a complete MS on disk (no table.dat)"
    return "delete", f"science MS past conversion ({status})"


def _product_candidates(layout: StorageLayout, store: StateStore,
                        data_type: str) -> list[Candidate]:
    """Registered images or mosaics still on disk."""
    table = ARCHIVED_TYPES[data_type]
    found = []
    for row in live_products(store, table):
        path = Path(row["path"])
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        found.append(Candidate(data_type, path, stat.st_mtime, stat.st_size, stat.st_dev,
                               _bind(_product_verdict, row, path, _archive_copy(layout, row))))
    return found


def _archive_copy(layout: StorageLayout, row) -> str:
    """Where the archive copy is: the recorded location, or — when credentials were
    masked out of it before it was stored — the same place on the configured remote."""
    recorded = row["archive_path"] or ""
    if REDACTED in recorded and row["archive_staged"]:
        return remote_path(layout, "archive", row["archive_staged"])
    return recorded


def _product_verdict(row, path: Path, archive_copy: str) -> tuple[str, str]:
    """Delete only what is archived, verified remotely, and unchanged locally since."""
    if not row["archive_path"]:
        return "keep", "not yet archived"
    if not path.exists():
        return "keep", "file vanished"
    local = _local_change(row, path)
    if local is not None:
        return "rearchive", local
    remote = _remote_mismatch(archive_copy, row["archive_sha256"])
    if remote is not None:
        return "keep", remote
    return "delete", "archived and verified"


def _local_change(row, path: Path) -> str | None:
    """None when the local file still has the checksum recorded when it was archived."""
    expected = row["archive_source_sha256"]
    if not expected:
        return "archived before source checksums were recorded: kept, marked for re-archive"
    actual = sha256(path)
    if actual != expected:
        return (f"changed since it was archived (now {actual[:12]}..., archived "
                f"{expected[:12]}...): kept, marked for re-archive")
    return None


def _remote_mismatch(archive_path: str, expected: str) -> str | None:
    """None when the remote copy matches the checksum recorded at archive time."""
    try:
        remote_hash = rclone.hash("sha256", archive_path)
    except Exception as exc:  # noqa: BLE001 - any failure to verify means keep the file
        return redact_remote(f"archive copy unreadable ({exc})")
    actual = remote_hash if isinstance(remote_hash, str) else next(iter(remote_hash.values()), "")
    if actual != expected:
        return f"archive copy does not match its checksum (remote {actual[:12]}..., " \
               f"recorded {str(expected)[:12]}...): kept"
    return None


# -- deciding ----------------------------------------------------------------------------


def _bind(function: Callable[..., tuple[str, str]], *args) -> Callable[[], tuple[str, str]]:
    """A deferred verdict: hashing an image is only worth it when the image is due."""
    return lambda: function(*args)


def _decide(candidate: Candidate, age: float, why: str = "") -> PlanItem:
    """The plan item for one candidate that is due (by age, or for the floor)."""
    action, reason = candidate.verdict()
    archive_to = candidate.archive_to if action == "delete" else None
    if archive_to:
        reason += "; archived first"
    return PlanItem(candidate.data_type, str(candidate.path), age, action,
                    f"{why}{reason}", candidate.size_bytes, archive_to)


def _meet_floor(layout: StorageLayout, plan: RetentionPlan, undecided: list[Candidate],
                floor_gb: float, now: float, free: FreeSpace) -> FloorStatus:
    """Below the floor, add the oldest eligible products (on the fast disk) until the
    projected free space meets it. Only the profile's deletable types are candidates."""
    free_bytes = free()
    device = _device(layout.ms_dir)
    projected = free_bytes + sum(i.size_bytes for i in plan.deletions
                                 if _device(Path(i.path)) == device)
    added = 0
    why = f"free space below the {floor_gb:g} GB floor; "
    for candidate in undecided:  # oldest first
        if projected >= floor_gb * GB:
            break
        if candidate.device != device:
            continue  # deleting it would not free the fast disk
        item = _decide(candidate, (now - candidate.mtime) / 86400, why)
        plan.items.append(item)
        if item.action == "delete":
            projected += item.size_bytes
            added += 1
    return FloorStatus(floor_gb, free_bytes / GB, projected / GB, added)


def _device(path: Path) -> int | None:
    """The file system a path is on (walking up to an existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return path.stat().st_dev
    except OSError:
        return None


# -- applying ----------------------------------------------------------------------------


def _still_safe(store: StateStore, item: PlanItem) -> bool:
    """Check again, just before deleting, what the plan checked (the plan may be old)."""
    path = Path(item.path)
    if item.data_type == "incoming":
        record = ingest_db.incoming_records(store, str(path)).get(str(path))
        ms = converted_ms_by_group(store).get(record["group_id"]) if record else None
        try:
            stat = path.stat()
        except FileNotFoundError:
            return False
        return _incoming_verdict(record, ms, stat.st_size, stat.st_mtime)[0] == "delete"
    if item.data_type == "science_ms":
        rows = [r for r in ms_for_retention(store) if r["path"] == item.path]
        return bool(rows) and _ms_verdict(rows[0]["status"], path)[0] == "delete"
    row = archived_product(store, ARCHIVED_TYPES[item.data_type], item.path)
    if row is None or not row["archive_path"] or not path.is_file():
        return False
    if _local_change(row, path) is not None:
        _mark_rearchive(store, replace(item, action="rearchive"))
        return False
    return True


def _delete(store: StateStore, item: PlanItem) -> bool:
    """Archive (when asked), mark the database and the audit table, then delete."""
    path = Path(item.path)
    if item.archive_to:
        try:
            if path.is_dir():
                copy_verified(path, item.archive_to)
            else:
                copy_verified(path.parent, item.archive_to, [path.name])
        except Exception as exc:  # noqa: BLE001 - an unverified archive means keep the file
            products_db.log_move(store, path, redact_remote(item.archive_to), action="archive-failed",
                           actor="retention", reason=redact_remote(f"kept: {exc}")[:2000])
            return False
    conn = store.connection("products")
    destination = redact_remote(f"{item.archive_to}/{path.name}" if item.archive_to
                                and not path.is_dir() else item.archive_to or "")
    with write_transaction(conn):
        if item.data_type in ARCHIVED_TYPES:
            mark_product_purged(conn, ARCHIVED_TYPES[item.data_type], item.path)
        elif item.data_type == "science_ms":
            mark_ms_purged(conn, item.path, redact_remote(item.archive_to or "") or None)
        record_move(conn, path, destination, action="delete", actor="retention",
                    reason=f"retention: {item.reason}"[:2000], size_bytes=item.size_bytes)
    if item.data_type == "incoming":
        ingest_db.mark_file_purged(store, item.path)
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    if item.data_type == "mosaics":
        _delete_mosaic_sidecars(path)
    return True


def _delete_mosaic_sidecars(image: Path) -> None:
    """A mosaic's noise, weight and quick-look files (same stem) went into its archived
    tarball with it: they go with it, and so does its set directory once empty."""
    for sidecar in image.parent.glob(f"{image.stem}*"):
        if sidecar.is_file():
            sidecar.unlink(missing_ok=True)
    if image.parent.name.endswith(".mosaic"):
        with suppress(OSError):
            image.parent.rmdir()


def _mark_rearchive(store: StateStore, item: PlanItem) -> None:
    """Clear the archive record so the next archive run stages the current content; the
    audit row keeps where the earlier copy is (it stays on the remote)."""
    table = ARCHIVED_TYPES[item.data_type]
    row = archived_product(store, table, item.path)
    conn = store.connection("products")
    with write_transaction(conn):
        mark_for_rearchive(conn, table, item.path)
        record_move(conn, item.path, (row["archive_path"] if row else None) or "",
                    action="rearchive", actor="retention", reason=item.reason[:2000])


def _directory_bytes(path: Path) -> int:
    """Total size of the files below a directory."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())



