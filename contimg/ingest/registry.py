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
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from contimg import naming
from contimg.ingest.scanner import FileObservation
from contimg.ingest.settings import IngestSettings
from contimg.state import StateStore
from contimg.state.connection import utc_now, write_transaction

GROUP_STATES = ("collecting", "pending", "in_progress", "completed", "failed")
# A requested group whose run Dagster no longer has (never submitted: the daemon died
# between the sensor's commit and the run's creation; or killed before it marked the group
# started) is requested again after this: longer than a sensor tick can take (60 s).
REREQUEST_AFTER = timedelta(minutes=5)
RETRY_BACKOFF_S = (60.0, 300.0, 900.0, 1800.0)  # after the 1st, 2nd, 3rd, later failures
NOT_MEMBERS = ("duplicate", "rejected", "missing")  # subband_files states outside any group
KEEP_FILE_STATES = (*NOT_MEMBERS, "writing", "purged")  # group state changes leave these be
IsBusy = Callable[[str], bool]


@dataclass(frozen=True)
class ReadyGroup:
    """A group to convert now, and the request number that makes its run key unique."""

    group_id: str
    request: int

    @property
    def run_key(self) -> str:
        """`convert-<group>` for the first request, `convert-<group>-r<n>` after: Dagster
        skips a run key it has seen, so every re-request needs a new one."""
        return f"convert-{self.group_id}" + (f"-r{self.request}" if self.request > 1 else "")


@dataclass
class TickReport:
    """What one registry update found, for the sensor to act on and log."""

    new_files: int = 0
    writing: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    ready: list[ReadyGroup] = field(default_factory=list)
    incomplete: list[tuple[str, list[int]]] = field(default_factory=list)
    requeued: list[tuple[str, str]] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    changed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ready_ids(self) -> list[str]:
        """The group ids of the ready groups."""
        return [ready.group_id for ready in self.ready]


class IngestRegistry:
    """Files and groups in ingest.sqlite3."""

    def __init__(self, store: StateStore, settings: IngestSettings) -> None:
        self.store = store
        self.settings = settings
        self.conn = store.connection("ingest")

    def update(self, observations: Iterable[FileObservation], now: float, *,
               lock_held: IsBusy | None = None, run_queued: IsBusy | None = None,
               hold: bool = False) -> TickReport:
        """Record what the scan saw, group complete files, and report ready groups.

        `lock_held(group)` says a live process is converting the group (its lock is
        held); `run_queued(group)` says Dagster still has a run for it waiting or
        running. Without them, nothing is taken for dead and nothing is re-requested.
        With `hold` (the fast disk below its floor), files are still recorded and groups
        formed, but none is taken for conversion: they stay pending.
        """
        report = TickReport()
        observations = list(observations)
        known = {row[0]: (row[1], row[2], row[3]) for row in self.conn.execute(
            "SELECT path, size_bytes, mtime, state FROM subband_files")}
        complete: list[tuple[datetime, int, FileObservation]] = []
        stamp = utc_now()
        with write_transaction(self.conn):
            for obs in observations:
                previous = known.get(obs.path)
                if previous and previous[:2] == (obs.size, obs.mtime) and previous[2] != "writing":
                    continue  # unchanged and already handled: the common case, nothing to do
                problem = _problem(obs)
                if problem is not None:
                    if previous is None or previous[2] != "rejected":
                        self._reject(obs, problem, stamp, report)
                    continue
                parsed = naming.parse_subband_filename(obs.name)
                assert parsed is not None
                if previous is None:
                    report.new_files += 1
                if now - obs.mtime < self.settings.settle_s or (
                        previous is not None and previous[:2] != (obs.size, obs.mtime)):
                    self._mark_writing(obs, parsed, stamp, report)
                    continue
                complete.append((parsed[0], parsed[1], obs))
            on_disk = {obs.path for obs in observations}
            self._assign(sorted(complete, key=lambda item: (item[0], item[1])), stamp, report,
                         on_disk)
            self._revive_failed_with_replacements(report)
            self._find_incomplete(now, stamp, report)
            if lock_held is not None:
                self._requeue_abandoned(now, lock_held, report)
            report.ready = [] if hold else self._take_ready(now, run_queued)
        return report

    def group_files(self, group_id: str) -> list[Path]:
        """The files of a group (excluding duplicates), ordered by subband."""
        return group_member_files(self.store, group_id)

    def group_state(self, group_id: str) -> tuple[str, str | None, str | None] | None:
        """(state, error, missing subbands) of a group, or None if unknown."""
        row = self.conn.execute("SELECT state, error, missing_subbands FROM groups"
                                " WHERE group_id = ?", (group_id,)).fetchone()
        return tuple(row) if row else None  # type: ignore[return-value]

    def mark_group(self, group_id: str, state: str, error: str | None = None) -> None:
        """Move a group (and its files) to a new state, with the reason on failure."""
        with write_transaction(self.conn):
            self._set_state(group_id, state, error)

    def _set_state(self, group_id: str, state: str, error: str | None, **columns: object) -> None:
        """The state change itself (inside the caller's transaction), plus extra columns."""
        if state not in GROUP_STATES:
            raise ValueError(f"unknown group state {state!r}")
        stamp = utc_now()
        extra = "".join(f", {name} = ?" for name in columns)
        if state == "failed" or "retry_after" in columns:  # a failure, final or retried
            extra += ", failures = failures + 1"
        self.conn.execute(f"UPDATE groups SET state = ?, error = ?, updated = ?{extra}"
                          " WHERE group_id = ?", (state, error, stamp, *columns.values(), group_id))
        self.conn.execute("UPDATE subband_files SET state = ?, updated = ? WHERE group_id = ?"
                          f" AND state NOT IN ({','.join('?' * len(KEEP_FILE_STATES))})",
                          (state, stamp, group_id, *KEEP_FILE_STATES))

    def start(self, group_id: str, run_id: str | None = None) -> None:
        """The group's conversion began (its lock is held): state in_progress."""
        with write_transaction(self.conn):
            self._set_state(group_id, "in_progress", None, run_id=run_id)

    def defer(self, group_id: str, reason: str, now: float) -> str:
        """A transient failure (no room, a crashed converter, an unexpected error): back
        in line after a backoff, or failed once the attempts are used up. Returns the state."""
        with write_transaction(self.conn):
            row = self.conn.execute("SELECT attempts FROM groups WHERE group_id = ?",
                                    (group_id,)).fetchone()
            attempts = int(row[0]) if row else 0
            if attempts >= self.settings.max_attempts:
                self._set_state(group_id, "failed", f"gave up after {attempts} attempt(s); last: "
                                f"{reason}. Fix the cause, then `contimg requeue {group_id}`.")
                return "failed"
            delay = RETRY_BACKOFF_S[min(max(attempts - 1, 0), len(RETRY_BACKOFF_S) - 1)]
            retry_at = datetime.fromtimestamp(now + delay, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._set_state(group_id, "pending", f"attempt {attempts} failed: {reason}; retrying "
                            f"after {retry_at} UTC", run_requested=0, retry_after=retry_at)
        return "pending"

    def requeue(self, group_id: str, reason: str, *, force: bool = False) -> str:
        """Put a group back in line (an operator's `contimg requeue`): replacement files
        stand in for members gone from disk, attempts start again and the next run gets a
        new run key. A completed group is refused unless `force`. Returns the new state."""
        row = self.conn.execute("SELECT state FROM groups WHERE group_id = ?",
                                (group_id,)).fetchone()
        if row is None:
            raise KeyError(f"unknown group {group_id}: not in the ingest registry. Fix: check the "
                           "id (YYYY-MM-DDTHH:MM:SS) with `contimg groups`.")
        if row[0] == "completed" and not force:
            raise ValueError(f"group {group_id} is already converted. Fix: to rebuild it, move its "
                             "MS aside, then `contimg requeue --force`.")
        with write_transaction(self.conn):
            self._swap_in_replacements(group_id, utc_now())
            state = self._reopen(group_id, f"requeued: {reason}")
        return state

    def _reopen(self, group_id: str, note: str) -> str:
        """Back to pending (complete, or incomplete under the convert policy) or collecting,
        inside the caller's transaction; the incomplete timeout applies again."""
        n_members, missing = self.conn.execute(
            "SELECT (SELECT count(*) FROM subband_files WHERE group_id = ? AND state NOT IN"
            " (?, ?, ?)), missing_subbands FROM groups WHERE group_id = ?",
            (group_id, *NOT_MEMBERS, group_id)).fetchone()
        by_policy = bool(missing) and self.settings.incomplete_policy == "convert"
        state = "pending" if n_members >= self.settings.expected_subbands or by_policy else "collecting"
        stamp = utc_now()
        self.conn.execute(
            "UPDATE groups SET state = ?, error = ?, updated = ?, n_subbands = ?, run_requested = 0,"
            " attempts = 0, retry_after = NULL, missing_subbands = ? WHERE group_id = ?",
            (state, note, stamp, n_members, missing if by_policy else None, group_id))
        self.conn.execute("UPDATE subband_files SET state = ?, updated = ? WHERE group_id = ?"
                          f" AND state NOT IN ({','.join('?' * len(KEEP_FILE_STATES))})",
                          ("collecting", stamp, group_id, *KEEP_FILE_STATES))
        return state

    def _swap_in_replacements(self, group_id: str, stamp: str) -> list[str]:
        """Files kept aside as duplicates take the place of members gone from disk (an
        operator removed the bad file after copying a good one under another name)."""
        rows = self.conn.execute(
            "SELECT path, subband, state FROM subband_files WHERE group_id = ?"
            " AND state NOT IN ('rejected', 'missing', 'writing') ORDER BY mtime DESC",
            (group_id,)).fetchall()
        members = {sb: path for path, sb, state in rows if state != "duplicate"}
        swapped = []
        for path, subband, state in rows:
            holder = members.get(subband)
            if state != "duplicate" or not os.path.exists(path) or (
                    holder is not None and os.path.exists(holder)):
                continue
            if holder is not None:
                self.conn.execute("UPDATE subband_files SET state = 'missing', updated = ?,"
                                  " reason = ? WHERE path = ?",
                                  (stamp, f"gone from disk; replaced by {path}", holder))
            self.conn.execute("UPDATE subband_files SET state = 'collecting', updated = ?,"
                              " reason = NULL WHERE path = ?", (stamp, path))
            members[subband] = path
            swapped.append(path)
        return swapped

    def _revive_failed_with_replacements(self, report: TickReport) -> None:
        """Each tick: a failed group whose member vanished and whose replacement waits as a
        duplicate is put back in line (failed groups are few; this is a handful of queries)."""
        stamp = utc_now()
        for (group_iso,) in self.conn.execute(
                "SELECT group_id FROM groups WHERE state = 'failed'").fetchall():
            if self._swap_in_replacements(group_iso, stamp):
                self._reopen(group_iso, "a replacement file took the place of a vanished one")
                report.requeued.append((group_iso, "a replacement took the place of a vanished file"))

    def list_groups(self, state: str | None = None, limit: int = 50) -> list[tuple]:
        """(group_id, state, n_subbands, error) of the newest groups, optionally of one state."""
        where, params = ("WHERE state = ?", [state]) if state else ("", [])
        return [tuple(r) for r in self.conn.execute(
            f"SELECT group_id, state, n_subbands, error FROM groups {where}"
            " ORDER BY group_id DESC LIMIT ?", (*params, limit)).fetchall()]

    def missing_subbands(self, group_id: str) -> list[int]:
        """Subband indices the group has no file for (by the sbNN names)."""
        present = {r[0] for r in self.conn.execute(
            "SELECT subband FROM subband_files WHERE group_id = ? AND state NOT IN (?, ?, ?)",
            (group_id, *NOT_MEMBERS))}
        return [sb for sb in range(self.settings.expected_subbands) if sb not in present]

    # -- internals -----------------------------------------------------------------

    def _reject(self, obs: FileObservation, problem: str, stamp: str, report: TickReport) -> None:
        reason = (f"{obs.name!r}: {problem}; ignored. Fix: rename it or move it out of the "
                  "incoming directory.")
        self.conn.execute(
            "INSERT INTO subband_files (path, group_id, subband, size_bytes, mtime,"
            " state, first_seen, updated, reason) VALUES (?, '', -1, ?, ?, 'rejected', ?, ?, ?)"
            " ON CONFLICT(path) DO UPDATE SET group_id = '', subband = -1,"
            " size_bytes = excluded.size_bytes, mtime = excluded.mtime, state = 'rejected',"
            " first_seen = excluded.first_seen, updated = excluded.updated, reason = excluded.reason",
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
                report: TickReport, on_disk: set[str]) -> None:
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
        rows, touched, revived = [], set(), set()
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
            if group[2] == "failed" and self._replaces_member(members[group[1]], subband, obs,
                                                                on_disk, stamp):
                # A changed or replacement file of a failed group puts the group back in line.
                group[2] = "collecting"
                revived.add(group[1])
            rows.append(self._place(group, subband, obs, members[group[1]], stamp, report))
            touched.add(group[1])
        self.conn.executemany(
            "INSERT INTO subband_files (path, group_id, subband, size_bytes, mtime, state,"
            " first_seen, updated, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(path) DO UPDATE SET group_id = excluded.group_id,"
            " size_bytes = excluded.size_bytes, mtime = excluded.mtime, state = excluded.state,"
            " updated = excluded.updated, reason = excluded.reason", rows)
        for group_iso in revived:
            self.conn.execute("UPDATE groups SET state = 'collecting', error = NULL,"
                              " run_requested = 0, attempts = 0, retry_after = NULL"
                              " WHERE group_id = ?", (group_iso,))
            self.conn.execute("UPDATE subband_files SET state = 'collecting' WHERE group_id = ?"
                              " AND state = 'failed'", (group_iso,))
            report.requeued.append((group_iso, "a file of this failed group was replaced"))
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
                    # 'writing' rows with a group are members being rewritten: still members.
                    "SELECT group_id, subband, path FROM subband_files WHERE group_id BETWEEN ? AND ?"
                    " AND state NOT IN (?, ?, ?)",
                    (min(group_ids), max(group_ids), *NOT_MEMBERS)):
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

    def _replaces_member(self, members: dict[int, str], subband: int, obs: FileObservation,
                         on_disk: set[str], stamp: str) -> bool:
        """True when `obs` may stand in for a failed group's subband: the same file
        rewritten, a subband it never had, or a new name where the old file is gone."""
        holder = members.get(subband)
        if holder is None or holder == obs.path:
            return True
        if holder in on_disk:
            return False
        self.conn.execute("UPDATE subband_files SET state = 'missing', updated = ?, reason = ?"
                          " WHERE path = ?", (stamp, f"gone from disk; replaced by {obs.path}", holder))
        del members[subband]
        return True

    def _place(self, group: list, subband: int, obs: FileObservation,
               members: dict[int, str], stamp: str, report: TickReport) -> tuple:
        """The subband_files row for one complete file: a member, or a duplicate."""
        group_iso, group_state = group[1], group[2]
        holder = members.get(subband)
        if holder == obs.path and group_state != "collecting":
            # A member rewritten after its group moved on stays the member (never a
            # duplicate of itself); the operator hears that it changed.
            report.changed.append((obs.path, f"{obs.name} changed after its group {group_iso} "
                                   f"was {group_state}; it stays the group's sb{subband:02d}"))
            return (obs.path, group_iso, subband, obs.size, obs.mtime, group_state, stamp, stamp,
                    None)
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
            "SELECT group_id FROM groups WHERE state = 'collecting' AND missing_subbands IS NULL"
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

    def _requeue_abandoned(self, now: float, lock_held: IsBusy, report: TickReport) -> None:
        """Groups in_progress whose lock is free lost their run (killed, crashed host):
        back in line. Ones whose lock is held for longer than `stale_run_s` are reported."""
        stuck_before = datetime.fromtimestamp(now - self.settings.stale_run_s, UTC).strftime(
            "%Y-%m-%dT%H:%M:%S")
        for group_iso, run_id, updated in self.conn.execute(
                "SELECT group_id, run_id, updated FROM groups WHERE state = 'in_progress'").fetchall():
            if lock_held(group_iso):
                if updated < stuck_before:
                    report.stuck.append(group_iso)
                continue
            reason = f"its run {run_id or '(unknown)'} ended without finishing (killed?)"
            self._set_state(group_iso, "pending", f"requeued: {reason}", run_requested=0)
            report.requeued.append((group_iso, reason))

    def _take_ready(self, now: float, run_queued: IsBusy | None) -> list[ReadyGroup]:
        # Pending groups not yet requested (and past any retry backoff), plus ones
        # requested long ago whose run never started and that Dagster no longer has
        # queued (e.g. the sensor died between this commit and submitting the run).
        moment = datetime.fromtimestamp(now, UTC)
        retry_before = (moment - REREQUEST_AFTER).strftime("%Y-%m-%dT%H:%M:%S")
        rows = self.conn.execute(
            "SELECT group_id, run_requested, attempts FROM groups WHERE state = 'pending'"
            " AND (retry_after IS NULL OR retry_after <= ?)"
            " AND (run_requested = 0 OR updated < ?) ORDER BY group_id",
            (moment.strftime("%Y-%m-%dT%H:%M:%S"), retry_before)).fetchall()
        ready = [r[0] for r in rows
                 if r[1] == 0 or (run_queued is not None and not run_queued(r[0]))]
        for group_iso, requested, attempts in rows:
            # Runs that keep ending without recording anything (a step that dies before
            # it can) must not be requested forever: the attempt limit applies here too.
            if requested and group_iso in ready and attempts >= self.settings.max_attempts:
                ready.remove(group_iso)
                self._set_state(group_iso, "failed", f"requested {attempts} times, but no run "
                                "finished it; see the runs of this partition in the UI. Fix the "
                                f"cause, then `contimg requeue {group_iso}`.")
        stamp = utc_now()
        self.conn.executemany(
            "UPDATE groups SET run_requested = 1, run_requests = run_requests + 1,"
            " attempts = attempts + 1, retry_after = NULL, updated = ? WHERE group_id = ?",
            [(stamp, g) for g in ready])
        requests = dict(self.conn.execute(
            f"SELECT group_id, run_requests FROM groups WHERE group_id IN ({','.join('?' * len(ready))})",
            ready).fetchall()) if ready else {}
        return [ReadyGroup(g, int(requests[g])) for g in ready]


def _problem(obs: FileObservation) -> str | None:
    """Why an entry of incoming/ is not a subband file to ingest, or None."""
    if obs.kind != "file":
        return f"a {obs.kind}, not a regular file"
    return naming.subband_name_problem(obs.name)


def _nearest(keys: list[float], value: float, tolerance: float) -> int | None:
    index = bisect.bisect_left(keys, value)
    best = None
    for candidate in (index - 1, index):
        if 0 <= candidate < len(keys) and abs(keys[candidate] - value) <= tolerance and (
                best is None or abs(keys[candidate] - value) < abs(keys[best] - value)):
            best = candidate
    return best


def group_member_files(store: StateStore, group_id: str) -> list[Path]:
    """The files of a group (excluding duplicates, rejected and missing), by subband."""
    rows = store.query("ingest", "SELECT path FROM subband_files WHERE group_id = ? AND state"
                                 " NOT IN (?, ?, ?) ORDER BY subband", (group_id, *NOT_MEMBERS))
    return [Path(r[0]) for r in rows]
