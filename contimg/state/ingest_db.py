"""SQL on ingest.sqlite3 used outside the ingest registry (which owns the rest of it):
what metrics and retention read, and the purge mark of a raw file."""

from __future__ import annotations

from collections.abc import Mapping

from contimg.state.connection import StateStore, utc_now, write_transaction


def group_counts(store: StateStore) -> dict[str, int]:
    """Number of groups in each state."""
    return {state: count for state, count in
            store.query("ingest", "SELECT state, count(*) FROM groups GROUP BY state")}


def failures_total(store: StateStore) -> int:
    """Every failure ever recorded (each group's count only grows, requeues included)."""
    return int(store.query("ingest", "SELECT coalesce(sum(failures), 0) FROM groups")[0][0])


def incoming_records(store: StateStore, path: str | None = None) -> dict[str, Mapping]:
    """path -> registered raw file (group, size, mtime, file state, group state)."""
    sql = ("SELECT f.path, f.group_id, f.size_bytes, f.mtime, f.state, g.state AS group_state"
           " FROM subband_files f LEFT JOIN groups g ON g.group_id = f.group_id")
    rows = (store.query("ingest", sql + " WHERE f.path = ?", (path,)) if path is not None
            else store.query("ingest", sql))
    return {row["path"]: row for row in rows}


def mark_file_purged(store: StateStore, path: str) -> None:
    """Record that a converted raw file is (about to be) deleted by retention."""
    conn = store.connection("ingest")
    with write_transaction(conn):
        conn.execute("UPDATE subband_files SET state = 'purged', updated = ? WHERE path = ?",
                     (utc_now(), path))
