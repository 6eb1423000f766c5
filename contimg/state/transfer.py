"""A PostgreSQL state schema to and from a SQLite file of the same database.

Backups of PostgreSQL state are SQLite files, so a backup set has one format whatever
held the state: `contimg restore` checks it the same way (sha256, integrity, row
counts), and a set made on one backend restores onto the other.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

from contimg.state.connection import connect, migrate, write_transaction
from contimg.state.postgres import PgConnection

ROWS_PER_BATCH = 5000


def _tables(copy: sqlite3.Connection) -> dict[str, list[str]]:
    """Each table of a SQLite copy and the columns both backends share (SQLite's implicit
    rowid, a column in PostgreSQL, for tables without an integer id)."""
    names = [r[0] for r in copy.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " ORDER BY name")]
    tables = {}
    for name in names:
        columns = [r[1] for r in copy.execute(f'PRAGMA table_info("{name}")')]
        tables[name] = columns if "id" in columns else ["rowid", *columns]
    return tables


def export_schema(conn: PgConnection, database: str, target: Path) -> None:
    """Write one schema into a new SQLite file at `target`: one snapshot of every table."""
    copy = connect(target)
    try:
        migrate(copy, database)
        copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        cursor = conn.raw.cursor()
        cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            with write_transaction(copy):
                for table, columns in _tables(copy).items():
                    _copy_rows(cursor, f"SELECT {', '.join(columns)} FROM {table}", copy,
                               f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                               f"({', '.join('?' * len(columns))})")
        finally:
            cursor.execute("COMMIT")
    finally:
        copy.close()


def _copy_rows(cursor, select: str, copy: sqlite3.Connection, insert: str) -> None:
    cursor.execute(select)
    while rows := cursor.fetchmany(ROWS_PER_BATCH):
        copy.executemany(insert, [tuple(row) for row in rows])


def import_schema(conn: PgConnection, database: str, source: Path) -> dict[str, int]:
    """Replace every table of one schema by the rows of a SQLite copy (migrated first
    when an older version made it), in one transaction; return the rows per table."""
    with tempfile.TemporaryDirectory(prefix="contimg-import-") as work:
        staged = Path(work) / source.name
        shutil.copyfile(source, staged)
        copy = connect(staged)
        try:
            migrate(copy, database)
            counts = {}
            with conn.write_transaction():
                cursor = conn.raw.cursor()
                for table, columns in _tables(copy).items():
                    cursor.execute(f"DELETE FROM {table}")
                    rows = copy.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
                    cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                                       f"({', '.join(['%s'] * len(columns))})", [tuple(r) for r in rows])
                    counts[table] = len(rows)
                    identity = columns[0] if columns[0] == "rowid" else "id"
                    # the identity continues after the restored rows, as SQLite's rowid does
                    cursor.execute(f"SELECT setval(pg_get_serial_sequence('{database}.{table}', "
                                   f"'{identity}'), COALESCE(max({identity}), 0) + 1, false) FROM {table}")
        finally:
            copy.close()
    return counts
