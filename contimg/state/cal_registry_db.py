"""The SQL of cal_registry.sqlite3: calibration tables, their sets and validity windows.

Lookup rules for a group at time t (MJD):
- bandpass: the set of the most recently created *active* `bpcal` whose window
  contains t (with the `kcal` of the same set when one was solved);
- gains: the *active* set of `gpcal` + `2gcal` whose window contains t and whose
  window centre is nearest to t (the newest on a tie);
- apply order: kcal, bpcal, gpcal, 2gcal; bandpass interpolated `nearest`, gains
  `linear` in time within their table.
A set is registered in one transaction, after its tables are complete in their final
place, so a lookup sees all of a set or none of it. A failed solve is recorded with
status `failed` and never becomes active; re-solving a group supersedes its earlier set.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from contimg.state.connection import StateStore, utc_now, write_transaction

APPLY_ORDER = {"kcal": 0, "bpcal": 1, "gpcal": 2, "2gcal": 3}
BANDPASS_KINDS = ("kcal", "bpcal")
GAIN_KINDS = ("gpcal", "2gcal")


@dataclass(frozen=True)
class RegisteredTable:
    """One table of a set, as the registry keeps it."""

    kind: str
    path: Path
    quality_json: str
    flagged_fraction: float


@dataclass(frozen=True)
class ApplySet:
    """The tables to apply to one group, in order, and where they came from."""

    bandpass_set: str
    gain_set: str
    paths: tuple[str, ...]
    kinds: tuple[str, ...]

    @property
    def interp(self) -> list[str]:
        """CASA interpolation per table: nearest for delay/bandpass, linear for gains."""
        return ["nearest" if kind in BANDPASS_KINDS else "linear" for kind in self.kinds]


def register_set(store: StateStore, *, set_id: str, group_id: str, source_ms: Path,
                 calibrator: str | None, refant: str, registered: list[RegisteredTable],
                 windows: dict[str, tuple[float, float]], status: str = "active") -> None:
    """Record every table of one solve at once; an earlier set of the same group and
    kinds is superseded in the same transaction."""
    conn = store.connection("cal_registry")
    now = utc_now()
    kinds = [table.kind for table in registered]
    with write_transaction(conn):
        conn.execute(f"UPDATE caltables SET status = 'superseded' WHERE group_id = ? AND status ="
                     f" 'active' AND kind IN ({','.join('?' * len(kinds))})", (group_id, *kinds))
        for table in registered:
            start, end = windows[table.kind]
            conn.execute(
                "INSERT INTO caltables (path, kind, group_id, source_ms, calibrator,"
                " valid_start_mjd, valid_end_mjd, status, flagged_fraction, created, set_id, refant,"
                " quality, apply_order) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(path) DO UPDATE SET status = excluded.status, set_id = excluded.set_id,"
                " valid_start_mjd = excluded.valid_start_mjd, valid_end_mjd = excluded.valid_end_mjd,"
                " quality = excluded.quality, flagged_fraction = excluded.flagged_fraction,"
                " refant = excluded.refant, created = excluded.created",
                (str(table.path), table.kind, group_id, str(source_ms), calibrator, start, end,
                 status, table.flagged_fraction, now, set_id, refant, table.quality_json,
                 APPLY_ORDER[table.kind]))


def record_unsolvable(store: StateStore, *, kind: str, group_id: str,
                      window: tuple[float, float], reason: str) -> None:
    """Record that a solve for `window` could not produce tables at all (no sky model to
    solve against): for the fallback, the window's own solve failed, as if its tables had
    failed their limits."""
    store.execute("cal_registry", "INSERT INTO solve_failures (kind, group_id, valid_start_mjd,"
                  " valid_end_mjd, reason, created) VALUES (?, ?, ?, ?, ?, ?)",
                  (kind, group_id, window[0], window[1], reason, utc_now()))


def tables_for(store: StateStore, mjd: float, *, gain_fallback_h: float = 0.0) -> ApplySet | None:
    """The bandpass and gain tables valid at `mjd` (None when either is missing).

    When the gains solved for `mjd`'s time failed their limits (a field too faint for the
    array, say) or could not be solved at all (an empty sky model), and no other gains are
    valid there, the active gains centred nearest `mjd` within `gain_fallback_h` hours are
    used: the group is calibrated with neighbouring gains instead of waiting for ever.
    Gains not yet solved are waited for, not replaced. The three reads share one snapshot
    (a read transaction): a set registered between them could otherwise pair a new
    bandpass with the previous set's gains."""
    conn = store.connection("cal_registry")
    conn.execute("BEGIN")
    try:
        bandpass = _best_set(conn, "bpcal", mjd, nearest=False)
        gains = _best_set(conn, "2gcal", mjd, nearest=True)
        if gains is None and gain_fallback_h > 0 and _failed_at(conn, "2gcal", mjd):
            gains = _nearest_set(conn, "2gcal", mjd, gain_fallback_h / 24.0)
        if bandpass is None or gains is None:
            return None
        rows = conn.execute(
            "SELECT kind, path FROM caltables WHERE status = 'active' AND ((set_id = ? AND kind IN"
            " ('kcal', 'bpcal')) OR (set_id = ? AND kind IN ('gpcal', '2gcal'))) ORDER BY"
            " apply_order", (bandpass, gains)).fetchall()
    finally:
        conn.execute("COMMIT")
    return ApplySet(bandpass, gains, tuple(r[1] for r in rows), tuple(r[0] for r in rows))


def newest(store: StateStore, kind: str) -> sqlite3.Row | None:
    """The newest active table of a kind (for age checks and metrics)."""
    rows = store.query("cal_registry", "SELECT path, group_id, valid_start_mjd, valid_end_mjd,"
                       " created, quality FROM caltables WHERE status = 'active' AND kind = ?"
                       " ORDER BY valid_end_mjd DESC, created DESC LIMIT 1", (kind,))
    return rows[0] if rows else None


def _best_set(conn: sqlite3.Connection, kind: str, mjd: float, *, nearest: bool) -> str | None:
    """The active set of `kind` valid at `mjd`: the newest, or the one centred nearest."""
    row = conn.execute(
        "SELECT set_id FROM caltables WHERE status = 'active' AND kind = ? AND valid_start_mjd <= ?"
        " AND valid_end_mjd > ? ORDER BY CASE WHEN ? = 1 THEN abs((valid_start_mjd + valid_end_mjd) / 2"
        " - ?) ELSE 0 END, created DESC, id DESC LIMIT 1",
        (kind, mjd, mjd, int(nearest), mjd)).fetchone()
    return row[0] if row else None


def _failed_at(conn: sqlite3.Connection, kind: str, mjd: float) -> bool:
    """Whether a table of `kind` solved for `mjd`'s time failed its limits, or its solve
    could not be made at all."""
    return conn.execute("SELECT 1 FROM caltables WHERE status = 'failed' AND kind = ? AND"
                        " valid_start_mjd <= ? AND valid_end_mjd > ? UNION ALL SELECT 1 FROM"
                        " solve_failures WHERE kind = ? AND valid_start_mjd <= ? AND"
                        " valid_end_mjd > ? LIMIT 1",
                        (kind, mjd, mjd, kind, mjd, mjd)).fetchone() is not None


def _nearest_set(conn: sqlite3.Connection, kind: str, mjd: float, within_days: float) -> str | None:
    """The active set of `kind` centred nearest `mjd`, no further than `within_days`."""
    row = conn.execute(
        "SELECT set_id, abs((valid_start_mjd + valid_end_mjd) / 2 - ?) AS away FROM caltables"
        " WHERE status = 'active' AND kind = ? AND abs((valid_start_mjd + valid_end_mjd) / 2 - ?) <= ?"
        " ORDER BY away, created DESC LIMIT 1",
        (mjd, kind, mjd, within_days)).fetchone()
    return row[0] if row else None


def record_moved_aside(store: StateStore, old: Path, new: Path) -> None:
    """A table re-solved under the same name was kept aside: its row follows it and is
    no longer active."""
    store.execute("cal_registry", "UPDATE caltables SET path = ?, status = CASE WHEN status ="
                  " 'active' THEN 'superseded' ELSE status END WHERE path = ?", (str(new), str(old)))


def newest_solved_mjd(store: StateStore, kind: str) -> float | None:
    """Centre (MJD) of the validity window of the newest active table of `kind`: the
    mid-time of the group it was solved on (for calibration-age checks and metrics)."""
    row = newest(store, kind)
    return (row["valid_start_mjd"] + row["valid_end_mjd"]) / 2 if row else None


def set_tables(store: StateStore, set_id: str) -> list[sqlite3.Row]:
    """Every table of one set (kind, path, status, refant, quality, validity), apply order."""
    return store.query("cal_registry", "SELECT kind, path, status, refant, calibrator, quality,"
                       " valid_start_mjd, valid_end_mjd, group_id FROM caltables WHERE set_id = ?"
                       " ORDER BY apply_order", (set_id,))


def bandpass_at(store: StateStore, mjd: float) -> ApplySet | None:
    """The active bandpass set valid at `mjd` (its kcal and bpcal, apply order), by the
    bandpass lookup rule above; None when there is none (gains are not looked at)."""
    conn = store.connection("cal_registry")
    bandpass = _best_set(conn, "bpcal", mjd, nearest=False)
    if bandpass is None:
        return None
    rows = conn.execute("SELECT kind, path FROM caltables WHERE status = 'active' AND set_id = ?"
                        " AND kind IN ('kcal', 'bpcal') ORDER BY apply_order", (bandpass,)).fetchall()
    return ApplySet(bandpass, "", tuple(r[1] for r in rows), tuple(r[0] for r in rows))


def gains_solved_since(store: StateStore, first_group: str, last_group: str,
                       bandpass_set: str) -> bool:
    """True when an active gain set was solved on a group in [first_group, last_group)
    (ISO times) after the bandpass set was registered (so with it applied)."""
    rows = store.query("cal_registry", "SELECT 1 FROM caltables WHERE status = 'active' AND kind ="
                       " '2gcal' AND group_id >= ? AND group_id < ? AND created >= (SELECT"
                       " min(created) FROM caltables WHERE set_id = ?) LIMIT 1",
                       (first_group, last_group, bandpass_set))
    return bool(rows)


def solved_on(store: StateStore, group_id: str, kind: str) -> bool:
    """True when an active table of `kind` was solved on this group."""
    rows = store.query("cal_registry", "SELECT 1 FROM caltables WHERE status = 'active' AND kind = ?"
                       " AND group_id = ? LIMIT 1", (kind, group_id))
    return bool(rows)
