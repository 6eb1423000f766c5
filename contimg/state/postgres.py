"""The state databases on PostgreSQL: one schema per database, SQLite's dialect translated.

SQLite in WAL mode is safe from one host only, and in the multi-node layout (README,
"Multi-node layout") the steps on every node write state. With
`CONTIMG_STATE_URL=postgresql://user:password@host:port/db` every node reaches the same
databases over the network: `ingest`, `cal_registry`, `products` and `master_sources`
become schemas of one PostgreSQL database. The state modules keep their SQL; this module
translates the little of SQLite's dialect they use (`?` parameters, `INSERT OR IGNORE`,
`rowid`, `strftime(..., 'unixepoch')`) and the migrations' types (REAL becomes double
precision, INTEGER 64-bit, `id INTEGER PRIMARY KEY` an identity column).

What SQLite gave for free is kept:
- writers of one database queue (`BEGIN IMMEDIATE` there; here a transaction-scoped
  advisory lock per schema), so a read-then-write transaction stays atomic;
- the schema version (`PRAGMA user_version` there; `<schema>.schema_version` here);
- a database that existed and vanished is refused, not recreated empty (the marker file
  there; `contimg_meta.databases` here);
- `contimg restore` refuses while any process holds the databases (a shared `flock`
  there; a shared session advisory lock here, which a restore takes exclusively).
"""

from __future__ import annotations

import functools
import os
import re
import socket
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import psycopg2
import psycopg2.extensions
import psycopg2.extras

from contimg.state.schema import MIGRATIONS, latest_version

META_SCHEMA = "contimg_meta"
CONNECT_TIMEOUT_S = 10
# Session advisory lock every open store holds shared and a restore takes exclusively.
STATE_LOCK_KEY = zlib.crc32(b"contimg:state")
_META_LOCK_KEY = zlib.crc32(b"contimg:meta")

# NUMERIC (what SUM and AVG of integers return) as int or float, as SQLite gives them:
# Decimal would not mix with the float arithmetic of the callers.
_NUMERIC = psycopg2.extensions.new_type(
    psycopg2.extensions.DECIMAL.values, "CONTIMG_NUMERIC",
    lambda value, _cursor: None if value is None else (int(value) if value.lstrip("-").isdigit()
                                                       else float(value)))


class StateUrlError(ValueError):
    """CONTIMG_STATE_URL is not a usable PostgreSQL URL."""


def is_postgres_url(url: str) -> bool:
    """True for a postgresql:// (or postgres://) URL."""
    return urlsplit(url).scheme in ("postgresql", "postgres")


def check_state_url(url: str) -> None:
    """A postgresql:// URL with a host and a database name, or StateUrlError (never
    printing the password)."""
    parts = urlsplit(url)
    if not is_postgres_url(url) or not parts.hostname or not parts.path.strip("/"):
        shown = f"{parts.scheme}://{parts.hostname or ''}/***" if parts.scheme else "***"
        raise StateUrlError(
            f"CONTIMG_STATE_URL ({shown}) is not a PostgreSQL URL with a host and a database. "
            "Fix: postgresql://USER:PASSWORD@HOST:PORT/DATABASE, or unset it for SQLite files "
            "in CONTIMG_STATE_DIR.")


def shown_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 5432}{parts.path}"


def connect_server(url: str, **options: Any):
    """A psycopg2 connection named after this host and process (what `contimg restore`
    shows as holders), or StateDatabaseError naming the server and the fix."""
    from contimg.state.connection import StateDatabaseError

    try:
        return psycopg2.connect(url, connect_timeout=CONNECT_TIMEOUT_S,
                                application_name=f"contimg:{socket.gethostname()}:{os.getpid()}",
                                **options)
    except psycopg2.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StateDatabaseError(
            f"cannot reach the state databases at {shown_url(url)} ({reason.replace(url, '***')}). "
            "Fix: start PostgreSQL there, or correct CONTIMG_STATE_URL (host, port, database, "
            "user, password) and the server's pg_hba.conf for this host.") from None


def lock_key(schema: str) -> int:
    """The advisory lock serialising the writers of one schema."""
    return zlib.crc32(f"contimg:{schema}".encode())


# -- SQL translation ------------------------------------------------------------------

_LITERAL_OR_PARAM = re.compile(r"'(?:[^']|'')*'|\?")
_UNIXEPOCH = re.compile(r"strftime\('%Y-%m-%dT%H:%M:%S',\s*([\w.]+),\s*'unixepoch'\)")
_NOW = re.compile(r"strftime\('%Y-%m-%dT%H:%M:%S',\s*'now'\)")
_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO", re.IGNORECASE)


@functools.lru_cache(maxsize=1024)  # the modules' statements are constants: translate once
def translate(sql: str) -> str:
    """One statement of the state modules' SQLite SQL as PostgreSQL (psycopg2 paramstyle)."""
    if re.search(r"\bINSERT\s+OR\s+REPLACE\b", sql, re.IGNORECASE):
        raise ValueError("INSERT OR REPLACE has no PostgreSQL form: write it as "
                         "INSERT ... ON CONFLICT (key) DO UPDATE, which both databases run")
    sql = _UNIXEPOCH.sub(r"""to_char(to_timestamp(\1) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')""",
                         sql)
    sql = _NOW.sub("""to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')""", sql)
    if _INSERT_OR_IGNORE.match(sql):
        sql = _INSERT_OR_IGNORE.sub("INSERT INTO", sql) + " ON CONFLICT DO NOTHING"
    sql = sql.replace("%", "%%")  # psycopg2 formats the whole string, literals included
    return _LITERAL_OR_PARAM.sub(lambda m: "%s" if m.group(0) == "?" else m.group(0), sql)


_ID_PRIMARY_KEY = re.compile(r"\bid INTEGER PRIMARY KEY\b")
_CREATE_TABLE = re.compile(r"^(\s*CREATE TABLE \w+ \()", re.IGNORECASE)


def translate_ddl(statement: str) -> str:
    """One migration statement as PostgreSQL: 64-bit integers, double-precision reals, an
    identity `id`; and a `rowid` identity on tables without one, as SQLite gives them."""
    has_id = bool(_ID_PRIMARY_KEY.search(statement))
    statement = _ID_PRIMARY_KEY.sub("id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                                    statement)
    statement = re.sub(r"\bINTEGER\b", "BIGINT", statement)
    statement = re.sub(r"\bREAL\b", "DOUBLE PRECISION", statement)
    if not has_id:
        statement = _CREATE_TABLE.sub(r"\1 rowid BIGINT GENERATED BY DEFAULT AS IDENTITY UNIQUE,",
                                      statement)
    return statement


def _params(params: Sequence[Any]) -> tuple:
    return tuple(_plain(p) for p in params)


def _plain(value: Any) -> Any:
    # A bool is a PostgreSQL boolean, but the columns are integers (as in SQLite); numpy
    # scalars (np.float64 is a float that psycopg2 would write as "np.float64(...)") are
    # bound as the Python numbers they are.
    if isinstance(value, np.generic):
        value = value.item()
    return int(value) if isinstance(value, bool) else value


# -- connections ----------------------------------------------------------------------


class PgConnection:
    """One schema's connection with the calls the state modules make on sqlite3's
    (`execute`, `executemany`, rows by name and position), in autocommit mode."""

    def __init__(self, url: str, schema: str) -> None:
        self.url, self.schema = url, schema
        self.raw = connect_server(url, cursor_factory=psycopg2.extras.DictCursor)
        self.raw.autocommit = True
        psycopg2.extensions.register_type(_NUMERIC, self.raw)
        with self.raw.cursor() as cursor:
            cursor.execute(f"SET search_path TO {schema}")

    def execute(self, sql: str, params: Sequence[Any] = ()):
        """Run one statement; return its cursor (fetchone, fetchall, rowcount, iteration)."""
        statement = sql.strip().upper()
        if statement in ("BEGIN", "BEGIN DEFERRED"):
            # SQLite's deferred read transaction is one snapshot for all its reads.
            sql = "BEGIN ISOLATION LEVEL REPEATABLE READ"
        elif statement == "BEGIN IMMEDIATE":
            return self._begin_write()
        with self._connection_kept(sql):
            cursor = self.raw.cursor()
            cursor.execute(translate(sql), _params(params))
        return cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]):
        """Run one statement for each parameter row."""
        with self._connection_kept(sql):
            cursor = self.raw.cursor()
            cursor.executemany(translate(sql), [_params(row) for row in rows])
        return cursor

    @contextmanager
    def _connection_kept(self, sql: str) -> Iterator[None]:
        """A connection lost mid-statement (the server stopped or restarted, the network
        cut) becomes a StateDatabaseError naming the server, the statement and the fix;
        errors of the statement itself stay psycopg2's."""
        from contimg.state.connection import StateDatabaseError

        try:
            yield
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            if not self.raw.closed:
                raise
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StateDatabaseError(
                f"lost the connection to the state databases at {shown_url(self.url)} (schema "
                f"{self.schema}) during `{' '.join(sql.split())[:80]}`: {reason}. The statement "
                "did not complete (an open transaction was rolled back by the server). Fix: "
                "check that PostgreSQL is up there; the run can then be retried.") from None

    def _begin_write(self):
        with self._connection_kept("BEGIN (the writer lock)"):
            cursor = self.raw.cursor()
            cursor.execute("BEGIN")
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(self.schema),))
        return cursor

    @contextmanager
    def write_transaction(self) -> Iterator[PgConnection]:
        """A transaction that holds this schema's writer lock: commit or roll back."""
        self._begin_write()
        try:
            yield self
        except BaseException:
            if not self.raw.closed:  # a lost connection's transaction is gone already
                self.raw.cursor().execute("ROLLBACK")
            raise
        else:
            with self._connection_kept("COMMIT"):
                self.raw.cursor().execute("COMMIT")

    def schema_version(self) -> int:
        """The number of migrations applied (0: no schema yet)."""
        cursor = self.raw.cursor()
        cursor.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = %s"
                       " AND table_name = 'schema_version'", (self.schema,))
        if cursor.fetchone() is None:
            return 0
        cursor.execute(f"SELECT version FROM {self.schema}.schema_version")
        row = cursor.fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """Close the connection (releasing its session locks)."""
        self.raw.close()


def open_schema(url: str, database: str, *, lock_wait_s: float) -> PgConnection:
    """A migrated connection to one database's schema, holding the shared state lock.

    A schema listed in `contimg_meta.databases` that is gone or empty raises
    MissingDatabaseError."""
    from contimg.state.connection import MissingDatabaseError

    conn = PgConnection(url, database)
    try:
        hold_shared_state_lock(conn, lock_wait_s)
        known = database in _known(conn.raw.cursor())
        version = conn.schema_version()
        if version == latest_version(database) and known:
            return conn
        if known and version == 0:
            raise MissingDatabaseError(
                f"state database {database} (schema {database} in {shown_url(url)}) is missing "
                f"or empty, but it existed before (listed in {META_SCHEMA}.databases); refusing "
                "to recreate it empty. Fix: stop the platform, then `contimg restore --list` and "
                "`contimg restore --backup <set> --yes`; to start it afresh on purpose, delete "
                f"its row from {META_SCHEMA}.databases.")
        migrate_schema(conn, database)
        return conn
    except BaseException:
        conn.close()
        raise


def migrate_schema(conn: PgConnection, database: str) -> int:
    """Create the schema and apply the migrations it lacks, under the schema's writer lock
    (another node may be migrating it too); record it in `contimg_meta.databases`."""
    from contimg.state.connection import check_schema_version, split_statements, utc_now

    target = latest_version(database)
    with conn.write_transaction():
        cursor = conn.raw.cursor()
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_META_LOCK_KEY,))
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {META_SCHEMA}")
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {META_SCHEMA}.databases"
                       " (name TEXT PRIMARY KEY, created TEXT NOT NULL)")
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {database}")
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {database}.schema_version (version BIGINT NOT NULL)")
        current = check_schema_version(conn.schema_version(), database, target)
        for version in range(current, target):
            for statement in split_statements(MIGRATIONS[database][version]):
                cursor.execute(translate_ddl(statement))
        cursor.execute(f"DELETE FROM {database}.schema_version")
        cursor.execute(f"INSERT INTO {database}.schema_version VALUES (%s)", (max(current, target),))
        cursor.execute(f"INSERT INTO {META_SCHEMA}.databases VALUES (%s, %s) ON CONFLICT DO NOTHING",
                       (database, utc_now()))
    return target


def _known(cursor) -> set[str]:
    """The databases this PostgreSQL database has held (`contimg_meta.databases`)."""
    cursor.execute("SELECT to_regclass(%s)", (f"{META_SCHEMA}.databases",))
    if cursor.fetchone()[0] is None:
        return set()
    cursor.execute(f"SELECT name FROM {META_SCHEMA}.databases")
    return {row[0] for row in cursor.fetchall()}


# -- the state lock (restore against every open store) --------------------------------


def hold_shared_state_lock(conn: PgConnection, wait_s: float) -> None:
    """Take the shared state lock on this connection's session; wait while a restore holds
    it exclusively, then raise StateInUseError."""
    from contimg.state.connection import StateInUseError

    deadline = time.monotonic() + wait_s
    cursor = conn.raw.cursor()
    while True:
        cursor.execute("SELECT pg_try_advisory_lock_shared(%s)", (STATE_LOCK_KEY,))
        if cursor.fetchone()[0]:
            return
        if time.monotonic() > deadline:
            raise StateInUseError(
                f"the state databases in {shown_url(conn.url)} are locked exclusively (a "
                f"`contimg restore` is running) for more than {wait_s:.0f} s. Fix: let the "
                "restore finish.")
        time.sleep(0.2)


@contextmanager
def exclusive_state_lock(url: str) -> Iterator[None]:
    """Hold the state lock exclusively (restore), or raise StateInUseError naming the
    processes (host and pid, from their application names) that hold the databases."""
    from contimg.state.connection import StateInUseError

    conn = connect_server(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", (STATE_LOCK_KEY,))
            if not cursor.fetchone()[0]:
                holders = state_lock_holders(cursor)
                raise StateInUseError(
                    f"stop the platform first: {len(holders) or 'one or more'} process(es)"
                    f"{' (' + ', '.join(holders) + ')' if holders else ''} hold the state "
                    f"databases in {shown_url(url)}. Fix: stop `scripts/run.sh` (Ctrl-C), the "
                    "services on every node and any running contimg command, then retry.")
        yield
    finally:
        conn.close()


def holders(url: str) -> list[str]:
    """`host:pid` of each process holding the state databases open now."""
    conn = connect_server(url)
    try:
        with conn.cursor() as cursor:
            return state_lock_holders(cursor)
    finally:
        conn.close()


def state_lock_holders(cursor) -> list[str]:
    """`host:pid` of each session holding the state lock (contimg's application names)."""
    cursor.execute(
        "SELECT DISTINCT a.application_name, a.pid FROM pg_locks l JOIN pg_stat_activity a"
        " ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted"
        " AND l.objsubid = 1 AND ((l.classid::bigint << 32) | l.objid::bigint) = %s"
        " AND a.pid <> pg_backend_pid()",
        (STATE_LOCK_KEY,))
    return sorted(name.removeprefix("contimg:") if name else f"pid {pid}"
                  for name, pid in cursor.fetchall())
