"""Connections to the state databases: WAL, busy timeout, migrations, retried writes.

Many run processes write at once. WAL lets readers proceed during a write; a
generous busy timeout makes writers queue instead of failing; `BEGIN IMMEDIATE`
takes the write lock up front so a transaction never has to upgrade a read lock
(the case where SQLite gives up immediately with "database is locked").

Two guards keep the databases from being lost silently. A marker file
(`state/.databases`) lists every database this state directory has held, so a
database deleted while the platform runs is refused (`MissingDatabaseError`, pointing
at `contimg restore`) instead of being recreated empty. And every `StateStore` holds a
shared `flock` on `state/.state.lock` while it has connections open: `contimg restore`
takes it exclusively, so it refuses while any process holds the databases, and a
process opening them waits until a restore has finished.

With `CONTIMG_STATE_URL` set (a postgresql:// URL) the same databases live as schemas
of one PostgreSQL database instead, reachable from every node (`contimg.state.postgres`,
which keeps each of these guarantees in PostgreSQL's terms).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from contimg.state import postgres
from contimg.state.postgres import PgConnection
from contimg.state.schema import MIGRATIONS, latest_version

DATABASES = tuple(MIGRATIONS)
BUSY_TIMEOUT_MS = 60_000
_LOCK_RETRIES = 20
STATE_LOCK_NAME = ".state.lock"
MARKER_NAME = ".databases"
_MARKER_LOCK_NAME = ".databases.lock"
STATE_LOCK_WAIT_S = 120.0
# Databases this process has opened: a whole state directory removed under a running
# process (marker included) is still recognised as lost, not recreated.
_OPENED_IN_PROCESS: set[str] = set()


class StateDatabaseError(RuntimeError):
    """A state database is unusable; the message names the file and the fix."""


class MissingDatabaseError(StateDatabaseError):
    """A database this state directory held is gone (or emptied): refuse to recreate it."""


class CorruptDatabaseError(StateDatabaseError, sqlite3.DatabaseError):
    """A state database file is not a readable SQLite database."""


class StateInUseError(StateDatabaseError):
    """The state databases are held by other processes (restore) or being restored (open)."""


# What a state database's driver raises, whichever backend holds the state.
DRIVER_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, postgres.psycopg2.Error)
StateConnection = sqlite3.Connection | PgConnection


def configured_state_url(environ: dict[str, str] | None = None) -> str:
    """CONTIMG_STATE_URL from the environment or the settings file ("" = SQLite files)."""
    from contimg.settings import state_url  # settings import this package: not at the top

    return state_url(environ)


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
def write_transaction(conn: StateConnection) -> Iterator[StateConnection]:
    """A `BEGIN IMMEDIATE` transaction: commits on success, rolls back on error."""
    if isinstance(conn, PgConnection):
        with conn.write_transaction():
            yield conn
        return
    _retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"))
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        _retry_locked(lambda: conn.execute("COMMIT"))


def migrate(conn: StateConnection, database: str) -> int:
    """Apply the forward migrations this database lacks; return its schema version."""
    if database not in MIGRATIONS:
        raise ValueError(f"unknown state database {database!r}; expected one of {DATABASES}")
    if isinstance(conn, PgConnection):
        return postgres.migrate_schema(conn, database)
    target = latest_version(database)
    if _check_version(conn, database, target) == target:
        return target
    with write_transaction(conn):
        # Re-read inside the lock: another process may have migrated meanwhile.
        current = _check_version(conn, database, target)
        for version in range(current, target):
            for statement in split_statements(MIGRATIONS[database][version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
    return target


def _check_version(conn: sqlite3.Connection, database: str, target: int) -> int:
    return check_schema_version(conn.execute("PRAGMA user_version").fetchone()[0], database, target)


def check_schema_version(current: int, database: str, target: int) -> int:
    """`current`, or RuntimeError when a newer code version wrote the database."""
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
    """The four state databases, opened and migrated on demand: SQLite files under one
    directory, or with a PostgreSQL `url` (default: CONTIMG_STATE_URL) its schemas."""

    def __init__(self, state_dir: Path | str, url: str | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.url = configured_state_url() if url is None else url
        if self.url:
            postgres.check_state_url(self.url)
        self._connections: dict[str, StateConnection] = {}
        self._lock: IO[bytes] | None = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        # A store dropped without close() (e.g. `StateStore(d).query(...)`) must not leave
        # connections open until the cycle collector runs: sqlite3 connections reference
        # themselves through their statement cache, so only an explicit close is prompt.
        with suppress(Exception):  # at interpreter shutdown there is nothing left to do
            self.close()

    def path(self, database: str) -> Path:
        """File path of one database, e.g. state/products.sqlite3 (SQLite only)."""
        return self.state_dir / f"{database}.sqlite3"

    def connection(self, database: str) -> StateConnection:
        """A migrated connection to one database, reused within this process.

        Raises MissingDatabaseError when the database existed here once but its file is
        gone or empty, and CorruptDatabaseError when the file is not a SQLite database.
        """
        if database not in self._connections:
            if database not in MIGRATIONS:
                raise ValueError(f"unknown state database {database!r}; expected one of {DATABASES}")
            if self.url:
                self._connections[database] = postgres.open_schema(
                    self.url, database, lock_wait_s=STATE_LOCK_WAIT_S)
                return self._connections[database]
            if self._lock is None:
                self._lock = acquire_shared_state_lock(self.state_dir, url="")  # the files' flock
            self._connections[database] = _open_database(self.path(database), database)
        return self._connections[database]

    def migrate_all(self) -> dict[str, int]:
        """Create or upgrade every database; return each schema version."""
        return {name: migrate(self.connection(name), name) for name in DATABASES}

    def execute(self, database: str, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one parameterised write in its own transaction; return rows changed."""
        conn = self.connection(database)
        with write_transaction(conn):
            return conn.execute(sql, params).rowcount

    def query(self, database: str, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one parameterised read and return every row."""
        return self.connection(database).execute(sql, params).fetchall()

    def probe(self, database: str) -> int:
        """Open one database and read its catalogue (a damaged file fails here); return
        how many tables it has."""
        if self.url:
            sql = ("SELECT count(*) FROM information_schema.tables"
                   " WHERE table_schema = current_schema()")
        else:
            sql = "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
        return int(self.query(database, sql)[0][0])

    def close(self) -> None:
        """Close every open connection and release the shared state lock."""
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()
        if self._lock is not None:
            self._lock.close()  # closing the descriptor releases the flock
            self._lock = None


def _open_database(path: Path, database: str) -> sqlite3.Connection:
    """Connect to and migrate one database, refusing to recreate one that was lost."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Serialise first creation: a concurrent creator must find the file (or the
        # marker entry), never a half-written pair that looks like a lost database.
        with _marker_lock(path.parent):
            if not path.exists():
                if database in known_databases(path.parent) or str(path.resolve()) in _OPENED_IN_PROCESS:
                    raise MissingDatabaseError(_missing_message(path, "is missing"))
                conn = _connect_checked(path)
                migrate(conn, database)
                _remember(path, database)
                return conn
    # Read the marker before the schema version: a creator migrates before it records.
    known = database in known_databases(path.parent)
    conn = _connect_checked(path)
    if known and conn.execute("PRAGMA user_version").fetchone()[0] == 0:
        conn.close()
        raise MissingDatabaseError(_missing_message(path, "is empty (no schema)"))
    migrate(conn, database)
    if not known:
        with _marker_lock(path.parent):
            _remember(path, database)
    else:
        _OPENED_IN_PROCESS.add(str(path.resolve()))
    return conn


def _connect_checked(path: Path) -> sqlite3.Connection:
    try:
        return connect(path)
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise
        raise CorruptDatabaseError(
            f"state database {path} cannot be opened ({exc}). Fix: stop the platform, then "
            f"`contimg restore --list` and `contimg restore --backup <set> --yes`.") from exc


def _missing_message(path: Path, what: str) -> str:
    inside, shadow = marker_paths(path.parent)
    return (f"state database {path} {what}, but it existed before (listed in {inside} or "
            f"{shadow}); refusing to recreate it empty. Fix: stop the platform, then "
            f"`contimg restore --list` and `contimg restore --backup <set> --yes`; to start this "
            f"database afresh on purpose, remove its name from both files.")


def marker_paths(state_dir: Path) -> tuple[Path, Path]:
    """The marker inside the state directory and its shadow beside it: a wiped or
    rebuilt state directory (`rm -rf state/`) still leaves the shadow to refuse on."""
    return state_dir / MARKER_NAME, state_dir.parent / f".{state_dir.name}{MARKER_NAME}"


def known_databases(state_dir: Path) -> set[str]:
    """Names of the databases this state directory has held (from either marker file)."""
    return set().union(*(_marker_entries(marker) for marker in marker_paths(state_dir)))


def _marker_entries(marker: Path) -> dict[str, str]:
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return {}  # no marker yet, or unreadable: it is rewritten on the next creation
    names = data.get("databases", {}) if isinstance(data, dict) else {}
    return {n: str(t) for n, t in names.items() if n in MIGRATIONS} if isinstance(names, dict) else {}


def _remember(path: Path, database: str) -> None:
    """Add one database to both markers (call under the marker lock); atomic replace."""
    _OPENED_IN_PROCESS.add(str(path.resolve()))
    for marker in marker_paths(path.parent):
        entries = _marker_entries(marker)
        if database in entries:
            continue
        entries[database] = utc_now()
        partial = marker.with_name(f"{marker.name}.{os.getpid()}.tmp")
        try:
            partial.write_text(json.dumps({"databases": entries}, indent=2, sort_keys=True) + "\n")
            os.replace(partial, marker)
        except OSError:
            if marker.parent == path.parent:
                raise  # the state directory's own marker must be written
            # the shadow is a second line of defence: an unwritable parent does not stop us


@contextmanager
def _marker_lock(state_dir: Path) -> Iterator[None]:
    """An exclusive lock, held only while a database is first created and recorded."""
    with open(state_dir / _MARKER_LOCK_NAME, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def acquire_shared_state_lock(state_dir: Path, wait_s: float = STATE_LOCK_WAIT_S,
                              url: str | None = None) -> IO[bytes] | PgConnection:
    """Take the shared state lock (held while databases are open); return its handle
    (close it to release): a flock on the state directory, or on PostgreSQL (`url`,
    default CONTIMG_STATE_URL) a session advisory lock.

    Waits while `contimg restore` holds it exclusively, then raises StateInUseError.
    """
    url = configured_state_url() if url is None else url
    if url:
        conn = PgConnection(url, postgres.META_SCHEMA)
        try:
            postgres.hold_shared_state_lock(conn, wait_s)
        except BaseException:
            conn.close()
            raise
        return conn
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = open(state_dir / STATE_LOCK_NAME, "a+b")  # noqa: SIM115 - held until close()
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise StateInUseError(
                    f"the state databases in {state_dir} are locked exclusively (a `contimg restore` "
                    f"is running) for more than {wait_s:.0f} s. Fix: let the restore finish.") from None
            time.sleep(0.2)


@contextmanager
def exclusive_state_lock(state_dir: Path, url: str | None = None) -> Iterator[None]:
    """Hold the state lock exclusively (restore), or raise StateInUseError at once; on
    PostgreSQL (`url`, default CONTIMG_STATE_URL) across every node."""
    url = configured_state_url() if url is None else url
    if url:
        with postgres.exclusive_state_lock(url):
            yield
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    lock_path = state_dir / STATE_LOCK_NAME
    with open(lock_path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pids = state_lock_holders(lock_path)
            count = str(len(pids)) if pids else "one or more"
            shown = f" (pid {', '.join(map(str, pids))})" if pids else ""
            raise StateInUseError(
                f"stop the platform first: {count} process(es){shown} hold the state databases "
                f"in {state_dir}. Fix: stop `scripts/run.sh` (Ctrl-C) and any running contimg "
                "command, then retry.") from None
        yield


def state_holders(state_dir: Path, url: str | None = None) -> list[str]:
    """Who holds the state databases open now: process ids (SQLite files), or `host:pid`
    on PostgreSQL (`url`, default CONTIMG_STATE_URL)."""
    url = configured_state_url() if url is None else url
    if url:
        return postgres.holders(url)
    return [str(pid) for pid in state_lock_holders(state_dir / STATE_LOCK_NAME)]


def state_lock_holders(lock_path: Path) -> list[int]:
    """Process ids holding a flock on the state lock file (from /proc/locks; Linux)."""
    try:
        inode = os.stat(lock_path).st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    pids = set()
    for line in lines:
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue  # blocked waiters and POSIX locks are not holders
        if fields[5].rsplit(":", 1)[-1] == str(inode) and int(fields[4]) != os.getpid():
            pids.add(int(fields[4]))
    return sorted(pids)


def split_statements(script: str) -> list[str]:
    """The statements of a migration script."""
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
