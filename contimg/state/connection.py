"""Connections to the state databases: WAL, busy timeout, migrations, retried writes.

Many run processes write at once. WAL lets readers proceed during a write; a
generous busy timeout makes writers queue instead of failing; `BEGIN IMMEDIATE`
takes the write lock up front so a transaction never has to upgrade a read lock
(the case where SQLite gives up immediately with "database is locked").
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contimg.state.schema import MIGRATIONS, latest_version

DATABASES = tuple(MIGRATIONS)
BUSY_TIMEOUT_MS = 60_000
_LOCK_RETRIES = 20


def connect(path: Path | str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """Open a state database with the platform's pragmas (autocommit mode)."""
    conn = sqlite3.connect(str(path), timeout=busy_timeout_ms / 1000, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        _retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"))
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A `BEGIN IMMEDIATE` transaction: commits on success, rolls back on error."""
    _retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"))
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        _retry_locked(lambda: conn.execute("COMMIT"))


def migrate(conn: sqlite3.Connection, database: str) -> int:
    """Apply the forward migrations this database lacks; return its schema version."""
    if database not in MIGRATIONS:
        raise ValueError(f"unknown state database {database!r}; expected one of {DATABASES}")
    target = latest_version(database)
    if _check_version(conn, database, target) == target:
        return target
    with write_transaction(conn):
        # Re-read inside the lock: another process may have migrated meanwhile.
        current = _check_version(conn, database, target)
        for version in range(current, target):
            for statement in _statements(MIGRATIONS[database][version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
    return target


def _check_version(conn: sqlite3.Connection, database: str, target: int) -> int:
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > target:
        raise RuntimeError(
            f"state database {database} has schema version {current}, newer than this "
            f"code ({target}). Fix: upgrade contimg, or restore a backup made by this version."
        )
    return current


def utc_now() -> str:
    """The current UTC time as an ISO string with seconds, for created/updated columns."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


class StateStore:
    """The four state databases under one directory, opened and migrated on demand."""

    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = Path(state_dir)
        self._connections: dict[str, sqlite3.Connection] = {}

    def path(self, database: str) -> Path:
        """File path of one database, e.g. state/products.sqlite3."""
        return self.state_dir / f"{database}.sqlite3"

    def connection(self, database: str) -> sqlite3.Connection:
        """A migrated connection to one database, reused within this process."""
        if database not in self._connections:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            conn = connect(self.path(database))
            migrate(conn, database)
            self._connections[database] = conn
        return self._connections[database]

    def migrate_all(self) -> dict[str, int]:
        """Create or upgrade every database; return each schema version."""
        return {name: migrate(self.connection(name), name) for name in DATABASES}

    def execute(self, database: str, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one parameterised write in its own transaction; return rows changed."""
        conn = self.connection(database)
        with write_transaction(conn):
            return conn.execute(sql, params).rowcount

    def query(self, database: str, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run one parameterised read and return every row."""
        return self.connection(database).execute(sql, params).fetchall()

    def log_move(self, source: Path | str, destination: Path | str, *, action: str,
                 reason: str = "", actor: str = "", size_bytes: int | None = None) -> None:
        """Record a file move (or copy, delete, quarantine) in the products audit table."""
        self.execute(
            "products",
            "INSERT INTO file_moves (moved_at, source, destination, action, reason, actor,"
            " size_bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (utc_now(), str(source), str(destination), action, reason, actor, size_bytes),
        )

    def register_storage_locations(self, locations: dict[str, Path]) -> None:
        """Upsert the base directory of each kind of product (seed: storage_locations)."""
        conn = self.connection("products")
        now = utc_now()
        with write_transaction(conn):
            conn.executemany(
                "INSERT INTO storage_locations (name, path, updated) VALUES (?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET path = excluded.path, updated = excluded.updated",
                [(name, str(path), now) for name, path in locations.items()],
            )

    def close(self) -> None:
        """Close every open connection."""
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


def _retry_locked(action: Any) -> Any:
    # The busy timeout covers ordinary contention; this covers the rare SQLITE_BUSY
    # that SQLite returns without waiting (e.g. during WAL recovery or checkpoint).
    for attempt in range(_LOCK_RETRIES):
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if attempt == _LOCK_RETRIES - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    return None
