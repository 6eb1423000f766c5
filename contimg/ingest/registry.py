"""The ingest registry: which files are complete, which group each belongs to, and
which groups are ready — kept in ingest.sqlite3 so the sensor's cursor stays tiny.

A file counts as complete once its size and mtime have stayed unchanged for
`settle_s` seconds. That uses the stat the directory scan already has, so a tick
over a week of files (~31k) opens none of them; reading HDF5 headers instead
would open every new file on every tick. A file that a slow writer pauses on is
caught later by group validation (the truncation check), not lost.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from contimg import naming
from contimg.ingest.scanner import FileObservation
from contimg.ingest.settings import IngestSettings
from contimg.state import StateStore
from contimg.state.connection import utc_now, write_transaction

GROUP_STATES = ("collecting", "pending", "in_progress", "completed", "failed")
REREQUEST_AFTER = timedelta(minutes=15)


@dataclass
class TickReport:
    """What one registry update found, for the sensor to act on and log."""

    new_files: int = 0
    writing: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    ready: list[str] = field(default_factory=list)
    incomplete: list[tuple[str, list[int]]] = field(default_factory=list)


class IngestRegistry:
    """Files and groups in ingest.sqlite3."""

    def __init__(self, store: StateStore, settings: IngestSettings) -> None:
        self.store = store
        self.settings = settings
        self.conn = store.connection("ingest")

    def update(self, observations: Iterable[FileObservation], now: float) -> TickReport:
        """Record what the scan saw, group complete files, and report ready groups."""
        report = TickReport()
        known = {row[0]: (row[1], row[2], row[3]) for row in self.conn.execute(
            "SELECT path, size_bytes, mtime, state FROM subband_files")}
        complete: list[tuple[datetime, int, FileObservation]] = []
        stamp = utc_now()
        with write_transaction(self.conn):
            for obs in observations:
                previous = known.get(obs.path)
                if previous and previous[:2] == (obs.size, obs.mtime) and previous[2] != "writing":
                    continue  # unchanged and already handled: the common case, nothing to do
                parsed = naming.parse_subband_filename(obs.name)
                if parsed is None:
                    if previous is None:
                        self._reject(obs, stamp, report)
                    continue
                if previous is None:
                    report.new_files += 1
                if now - obs.mtime < self.settings.settle_s or (
                        previous is not None and previous[:2] != (obs.size, obs.mtime)):
                    self._mark_writing(obs, parsed, stamp, report)
                    continue
                complete.append((parsed[0], parsed[1], obs))
            self._assign(sorted(complete, key=lambda item: (item[0], item[1])), stamp, report)
            self._find_incomplete(now, stamp, report)
            report.ready = self._take_ready(now)
        return report

    def group_files(self, group_id: str) -> list[Path]:
        """The files of a group (excluding duplicates), ordered by subband."""
        rows = self.conn.execute(
            "SELECT path FROM subband_files WHERE group_id = ? AND state != 'duplicate'"
            " ORDER BY subband", (group_id,)).fetchall()
        return [Path(r[0]) for r in rows]

    def group_state(self, group_id: str) -> tuple[str, str | None, str | None] | None:
        """(state, error, missing subbands) of a group, or None if unknown."""
        row = self.conn.execute("SELECT state, error, missing_subbands FROM groups"
                                " WHERE group_id = ?", (group_id,)).fetchone()
        return tuple(row) if row else None  # type: ignore[return-value]

    def mark_group(self, group_id: str, state: str, error: str | None = None) -> None:
        """Move a group (and its files) to a new state, with the reason on failure."""
        if state not in GROUP_STATES:
            raise ValueError(f"unknown group state {state!r}")
        stamp = utc_now()
        with write_transaction(self.conn):
            self.conn.execute("UPDATE groups SET state = ?, error = ?, updated = ?"
                              " WHERE group_id = ?", (state, error, stamp, group_id))
            self.conn.execute("UPDATE subband_files SET state = ?, updated = ?"
                              " WHERE group_id = ? AND state != 'duplicate'",
                              (state, stamp, group_id))

    # -- internals -----------------------------------------------------------------

    def _reject(self, obs: FileObservation, stamp: str, report: TickReport) -> None:
        reason = (f"{obs.name}: not a subband file (expected YYYY-MM-DDTHH:MM:SS_sbNN.hdf5); "
                  "ignored. Fix: rename it or move it out of the incoming directory.")
        self.conn.execute(
            "INSERT OR REPLACE INTO subband_files (path, group_id, subband, size_bytes, mtime,"
            " state, first_seen, updated, reason) VALUES (?, '', -1, ?, ?, 'rejected', ?, ?, ?)",
            (obs.path, obs.size, obs.mtime, stamp, stamp, reason))
        report.rejected.append((obs.path, reason))

    def _mark_writing(self, obs: FileObservation, parsed: tuple[datetime, int], stamp: str,
                      report: TickReport) -> None:
        self.conn.execute(
            "INSERT INTO subband_files (path, group_id, subband, size_bytes, mtime, state,"
            " first_seen, updated) VALUES (?, '', ?, ?, ?, 'writing', ?, ?)"
            " ON CONFLICT(path) DO UPDATE SET size_bytes = excluded.size_bytes,"
            " mtime = excluded.mtime, state = 'writing', updated = excluded.updated",
            (obs.path, parsed[1], obs.size, obs.mtime, stamp, stamp))
        report.writing.append(obs.path)

    def _assign(self, complete: list[tuple[datetime, int, FileObservation]], stamp: str,
                report: TickReport) -> None:
        """Cluster complete files into groups, in memory, then write the changes in batches.

        One query loads the groups (and their members) near the new files, so a first
        tick over a week of files costs a few batched statements, not queries per file.
        """
        if not complete:
            return
        tolerance = self.settings.tolerance_s
        groups = self._groups_near(complete[0][0], complete[-1][0], tolerance)
        keys = [g[0] for g in groups]  # epoch seconds, sorted
        members = self._members([g[1] for g in groups])
        rows, touched = [], set()
        for moment, subband, obs in complete:
            seconds = moment.timestamp()
            index = _nearest(keys, seconds, tolerance)
            if index is None:
                group_iso = naming.iso_timestamp(moment)
                self.conn.execute(
                    "INSERT INTO groups (group_id, state, n_subbands, first_seen, updated)"
                    " VALUES (?, 'collecting', 0, ?, ?)", (group_iso, stamp, stamp))
                index = bisect.bisect_left(keys, seconds)
                keys.insert(index, seconds)
                groups.insert(index, [seconds, group_iso, "collecting"])
                members[group_iso] = {}
            group = groups[index]
            if seconds < group[0] and group[2] == "collecting":
                old = group[1]
                group[1] = self._rekey(old, naming.iso_timestamp(moment), stamp, rows)
                group[0] = keys[index] = seconds
                members[group[1]] = members.pop(old)
                touched.discard(old)
            rows.append(self._place(group, subband, obs, members[group[1]], stamp, report))
            touched.add(group[1])
        self.conn.executemany(
            "INSERT INTO subband_files (path, group_id, subband, size_bytes, mtime, state,"
            " first_seen, updated, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(path) DO UPDATE SET group_id = excluded.group_id,"
            " size_bytes = excluded.size_bytes, mtime = excluded.mtime, state = excluded.state,"
            " updated = excluded.updated, reason = excluded.reason", rows)
        expected = self.settings.expected_subbands
        self.conn.executemany(
            "UPDATE groups SET n_subbands = ?, updated = ?,"
            " state = CASE WHEN state = 'collecting' AND ? >= ? THEN 'pending' ELSE state END"
            " WHERE group_id = ?",
            [(len(members[g]), stamp, len(members[g]), expected, g) for g in touched])

    def _groups_near(self, first: datetime, last: datetime, tolerance: float) -> list[list]:
        low = naming.iso_timestamp(datetime.fromtimestamp(first.timestamp() - tolerance, UTC))
        high = naming.iso_timestamp(datetime.fromtimestamp(last.timestamp() + tolerance, UTC))
        rows = self.conn.execute("SELECT group_id, state FROM groups WHERE group_id BETWEEN ? AND ?"
                                 " ORDER BY group_id", (low, high)).fetchall()
        return [[naming.parse_timestamp(r[0]).timestamp(), r[0], r[1]] for r in rows]

    def _members(self, group_ids: list[str]) -> dict[str, dict[int, str]]:
        members: dict[str, dict[int, str]] = {g: {} for g in group_ids}
        if group_ids:
            for group_id, subband, path in self.conn.execute(
                    "SELECT group_id, subband, path FROM subband_files WHERE group_id BETWEEN ? AND ?"
                    " AND state NOT IN ('duplicate', 'writing', 'rejected')",
                    (min(group_ids), max(group_ids))):
                if group_id in members:
                    members[group_id][subband] = path
        return members

    def _rekey(self, old: str, new: str, stamp: str, pending_rows: list[tuple]) -> str:
        # The group id is the earliest timestamp: an earlier subband renames the group.
        self.conn.execute("UPDATE groups SET group_id = ?, updated = ? WHERE group_id = ?",
                          (new, stamp, old))
        self.conn.execute("UPDATE subband_files SET group_id = ? WHERE group_id = ?", (new, old))
        for position, row in enumerate(pending_rows):
            if row[1] == old:
                pending_rows[position] = (row[0], new, *row[2:])
        return new

    def _place(self, group: list, subband: int, obs: FileObservation,
               members: dict[int, str], stamp: str, report: TickReport) -> tuple:
        """The subband_files row for one complete file: a member, or a duplicate."""
        group_iso, group_state = group[1], group[2]
        holder = members.get(subband)
        if (holder is not None and holder != obs.path) or group_state != "collecting":
            why = (f"subband sb{subband:02d} of group {group_iso} already comes from {holder}"
                   if holder and holder != obs.path else f"group {group_iso} is already {group_state}")
            reason = f"{obs.name}: duplicate ({why}); kept aside, not converted."
            report.duplicates.append((obs.path, reason))
            return (obs.path, group_iso, subband, obs.size, obs.mtime, "duplicate", stamp, stamp,
                    reason)
        members[subband] = obs.path
        if len(members) >= self.settings.expected_subbands:
            group[2] = "pending"
        return (obs.path, group_iso, subband, obs.size, obs.mtime, "collecting", stamp, stamp, None)

    def _find_incomplete(self, now: float, stamp: str, report: TickReport) -> None:
        cutoff = datetime.fromtimestamp(now - self.settings.incomplete_timeout_s, UTC)
        rows = self.conn.execute(
            "SELECT group_id FROM groups WHERE state = 'collecting' AND error IS NULL"
            " AND first_seen < ?", (cutoff.strftime("%Y-%m-%dT%H:%M:%S"),)).fetchall()
        for (group_iso,) in rows:
            present = {r[0] for r in self.conn.execute(
                "SELECT subband FROM subband_files WHERE group_id = ? AND state = 'collecting'",
                (group_iso,))}
            missing = [sb for sb in range(self.settings.expected_subbands) if sb not in present]
            policy = self.settings.incomplete_policy
            error = (f"incomplete after {self.settings.incomplete_timeout_s:.0f} s: missing "
                     + ", ".join(f"sb{sb:02d}" for sb in missing)
                     + ("; converting with them flagged" if policy == "convert" else
                        "; waiting (CONTIMG_INCOMPLETE_POLICY=wait)"))
            self.conn.execute(
                "UPDATE groups SET error = ?, missing_subbands = ?, updated = ?,"
                " state = CASE WHEN ? = 'convert' THEN 'pending' ELSE state END"
                " WHERE group_id = ?",
                (error, ",".join(map(str, missing)), stamp, policy, group_iso))
            report.incomplete.append((group_iso, missing))

    def _take_ready(self, now: float) -> list[str]:
        # Pending groups not yet requested, plus ones requested long ago that never
        # started (e.g. the sensor died between this commit and submitting the run);
        # the run key makes a repeated request harmless.
        retry_before = (datetime.fromtimestamp(now, UTC) - REREQUEST_AFTER).strftime(
            "%Y-%m-%dT%H:%M:%S")
        rows = self.conn.execute(
            "SELECT group_id FROM groups WHERE state = 'pending'"
            " AND (run_requested = 0 OR updated < ?) ORDER BY group_id",
            (retry_before,)).fetchall()
        ready = [r[0] for r in rows]
        stamp = utc_now()
        self.conn.executemany("UPDATE groups SET run_requested = 1, updated = ? WHERE group_id = ?",
                              [(stamp, g) for g in ready])
        return ready


def _nearest(keys: list[float], value: float, tolerance: float) -> int | None:
    index = bisect.bisect_left(keys, value)
    best = None
    for candidate in (index - 1, index):
        if 0 <= candidate < len(keys) and abs(keys[candidate] - value) <= tolerance and (
                best is None or abs(keys[candidate] - value) < abs(keys[best] - value)):
            best = candidate
    return best
