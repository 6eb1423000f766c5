"""The SQL of products.sqlite3, in one place: the audit table, ms_index, images, mosaics,
operations runs and alert levels. Callers pass a connection (inside their own
transaction when several statements must commit together) or a StateStore."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from contimg.state.connection import StateStore, utc_now, write_transaction


def record_move(conn: sqlite3.Connection, source: Path | str, destination: Path | str, *,
                action: str, reason: str = "", actor: str = "",
                size_bytes: int | None = None) -> None:
    """One row of the audit table `file_moves` (move, copy, delete, quarantine, archive)."""
    conn.execute(
        "INSERT INTO file_moves (moved_at, source, destination, action, reason, actor,"
        " size_bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (utc_now(), str(source), str(destination), action, reason, actor, size_bytes))


def log_move(store: StateStore, source: Path | str, destination: Path | str, *, action: str,
             reason: str = "", actor: str = "", size_bytes: int | None = None) -> None:
    """`record_move` in a transaction of its own."""
    conn = store.connection("products")
    with write_transaction(conn):
        record_move(conn, source, destination, action=action, reason=reason, actor=actor,
                    size_bytes=size_bytes)
