import json
import multiprocessing as mp
import os
import shutil
import sqlite3
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contimg.doctor import quick_check
from contimg.layout import resolve_layout
from contimg.state import DATABASES, StateStore, products_db
from contimg.state.connection import (
    MARKER_NAME,
    CorruptDatabaseError,
    MissingDatabaseError,
    connect,
    known_databases,
    migrate,
    utc_now,
)
from contimg.state.discovery import find_products
from contimg.state.schema import latest_version
from tests.conftest import VENV_BIN

WRITERS = 8
SECONDS = 4.0


def _writer(state_dir: str, worker: int, seconds: float, queue: mp.Queue) -> None:
    store = StateStore(state_dir)
    written, errors = 0, []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            store.execute(
                "ingest",
                "INSERT INTO groups (group_id, state, n_subbands, first_seen, updated)"
                " VALUES (?, 'pending', 16, ?, ?)",
                (f"w{worker}-{written:06d}", utc_now(), utc_now()),
            )
            products_db.log_move(store, f"/in/{worker}/{written}", f"/out/{worker}/{written}",
                                 action="move")
            written += 1
    except Exception as exc:  # reported to the parent, which fails the test
        errors.append(repr(exc))
    queue.put((worker, written, errors))


@pytest.mark.usefixtures("state_backend")  # SQLite files and PostgreSQL
def test_many_processes_write_concurrently_without_lock_errors(tmp_path: Path):
    StateStore(tmp_path).migrate_all()  # the schema exists before the race starts
    queue: mp.Queue = mp.get_context("spawn").Queue()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, SECONDS, queue))
             for w in range(WRITERS)]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    errors = [e for _, _, errs in results for e in errs]
    assert errors == []
    expected = sum(n for _, n, _ in results)
    assert expected > WRITERS * 10  # every writer really wrote, for several seconds
    store = StateStore(tmp_path)
    assert store.query("ingest", "SELECT count(*) FROM groups")[0][0] == expected
    assert store.query("products", "SELECT count(*) FROM file_moves")[0][0] == expected
    for worker, written, _ in results:
        rows = store.query("ingest", "SELECT count(*) FROM groups WHERE group_id LIKE ?",
                           (f"w{worker}-%",))
        assert rows[0][0] == written


def test_concurrent_first_open_migrates_once(tmp_path: Path):
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 0.5, queue)) for w in range(4)]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    assert [e for _, _, errs in results for e in errs] == []
    conn = connect(tmp_path / "ingest.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == latest_version("ingest")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused_with_a_fix(tmp_path: Path):
    conn = connect(tmp_path / "products.sqlite3")
    conn.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="newer than this code"):
        migrate(conn, "products")


@pytest.mark.usefixtures("state_backend")  # SQLite files and PostgreSQL
def test_parameters_are_bound_not_formatted(tmp_path: Path):
    store = StateStore(tmp_path)
    hostile = "x'); DROP TABLE ms_index; --"
    products_db.log_move(store, hostile, "/dst", action="move", reason=hostile)
    row = store.query("products", "SELECT source, reason FROM file_moves")[0]
    assert tuple(row) == (hostile, hostile)
    assert store.query("products", "SELECT count(*) FROM ms_index")[0][0] == 0


def _register_ms(store: StateStore, path: Path, group: str, kind: str, mjd: float) -> None:
    now = utc_now()
    store.execute(
        "products",
        "INSERT INTO ms_index (path, group_id, kind, start_mjd, end_mjd, status, created, updated)"
        " VALUES (?, ?, ?, ?, ?, 'converted', ?, ?)",
        (str(path), group, kind, mjd, mjd + 309.24 / 86400, now, now),
    )


@pytest.mark.usefixtures("state_backend")  # SQLite files and PostgreSQL
def test_discovery_asks_the_database_first_then_globs(layout_env):
    layout = resolve_layout().ensure()
    store = StateStore(layout.state_dir)
    on_disk = layout.ms_date_dir("science", "2025-10-13T13:28:03") / "2025-10-13T13:28:03.ms"
    on_disk.mkdir(parents=True)
    (layout.ms_date_dir("calibrators", "2025-10-14T01:00:00") / "2025-10-14T01:00:00.ms").mkdir(
        parents=True)

    found = find_products(store, layout, "ms", group="2025-10-13_13_28_03")
    assert [(f.path, f.found_by) for f in found] == [(on_disk, "filesystem")]

    registered = Path("/elsewhere/2025-10-13T13:28:03.ms")
    _register_ms(store, registered, "2025-10-13T13:28:03", "science", 60961.561)
    found = find_products(store, layout, "ms", group="2025-10-13T13:28:03")
    assert [(f.path, f.found_by) for f in found] == [(registered, "database")]

    window = find_products(store, layout, "ms", kind="calibrators",
                           start=datetime(2025, 10, 14, tzinfo=UTC),
                           end=datetime(2025, 10, 15, tzinfo=UTC))
    assert [f.group_id for f in window] == ["2025-10-14T01:00:00"]
    assert window[0].found_by == "filesystem"
    naive = find_products(store, layout, "ms", kind="calibrators", start=datetime(2025, 10, 14),
                          end=datetime(2025, 10, 15))  # naive times are UTC
    assert naive == window


def test_unknown_database_is_rejected(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown state database"):
        migrate(sqlite3.connect(":memory:"), "nope")


def _open_in_new_process(state_dir: Path, database: str) -> subprocess.CompletedProcess:
    """Open one database from a fresh interpreter (no memory of this process's opens)."""
    code = ("import sys; from contimg.state import StateStore; "
            f"StateStore(sys.argv[1]).connection({database!r}); print('opened')")
    return subprocess.run([str(VENV_BIN / "python"), "-c", code, str(state_dir)],
                          capture_output=True, text=True, timeout=120)


def test_first_creation_on_an_empty_state_dir_records_the_databases(tmp_path: Path):
    state_dir = tmp_path / "state"
    with StateStore(state_dir) as store:
        store.migrate_all()
    assert known_databases(state_dir) == set(DATABASES)
    assert json.loads((state_dir / MARKER_NAME).read_text())["databases"].keys() == set(DATABASES)


def test_a_deleted_database_is_refused_not_recreated_empty(tmp_path: Path):
    with StateStore(tmp_path) as store:
        products_db.log_move(store, "/a", "/b", action="move")
    for path in tmp_path.glob("products.sqlite3*"):
        path.unlink()
    with pytest.raises(MissingDatabaseError, match="contimg restore") as caught:
        StateStore(tmp_path).connection("products")
    assert str(tmp_path / "products.sqlite3") in str(caught.value)
    other = _open_in_new_process(tmp_path, "products")  # knows only the marker
    assert other.returncode != 0 and "MissingDatabaseError" in other.stderr
    assert not (tmp_path / "products.sqlite3").exists(), "nothing was recreated"
    assert StateStore(tmp_path).query("ingest", "SELECT count(*) FROM groups")[0][0] == 0


def test_an_emptied_database_is_refused(tmp_path: Path):
    StateStore(tmp_path).migrate_all()
    for path in tmp_path.glob("ingest.sqlite3*"):
        path.unlink()
    (tmp_path / "ingest.sqlite3").write_bytes(b"")  # e.g. truncated by `> ingest.sqlite3`
    result = _open_in_new_process(tmp_path, "ingest")
    assert result.returncode != 0 and "is empty" in result.stderr


def test_a_wiped_state_dir_is_refused_by_a_process_that_had_it_open(tmp_path: Path):
    state_dir = tmp_path / "state"
    StateStore(state_dir).migrate_all()
    shutil.rmtree(state_dir)  # marker gone too: this process still remembers
    with pytest.raises(MissingDatabaseError):
        StateStore(state_dir).connection("ingest")


def test_a_corrupt_database_is_named(tmp_path: Path):
    StateStore(tmp_path).migrate_all()
    for path in tmp_path.glob("cal_registry.sqlite3-*"):
        path.unlink()
    (tmp_path / "cal_registry.sqlite3").write_bytes(b"\x00garbage" * 4096)
    with pytest.raises(CorruptDatabaseError, match="cal_registry.sqlite3"):
        StateStore(tmp_path).connection("cal_registry")


def test_doctor_quick_checks_and_names_the_broken_database(layout_env):
    layout = resolve_layout().ensure()
    StateStore(layout.state_dir).migrate_all()
    good = subprocess.run([str(VENV_BIN / "contimg"), "doctor"], capture_output=True, text=True,
                          timeout=300)
    assert "ingest v" in good.stdout and "PROBLEM: state" not in good.stdout
    path = layout.database_path("products")
    for extra in layout.state_dir.glob("products.sqlite3-*"):
        extra.unlink()
    path.write_bytes(os.urandom(path.stat().st_size))  # garbage over the whole file
    bad = subprocess.run([str(VENV_BIN / "contimg"), "doctor"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode != 0
    problems = [ln for ln in bad.stdout.splitlines() if ln.startswith("PROBLEM: state")]
    assert len(problems) == 1 and "products" in problems[0] and "contimg restore" in problems[0]
    assert "quick_check" in problems[0]


def test_a_partly_damaged_database_fails_quick_check(tmp_path: Path):
    with StateStore(tmp_path) as store:
        for n in range(2000):
            products_db.log_move(store, f"/a/{n}" * 10, f"/b/{n}" * 10, action="move")
        store.connection("products").execute("PRAGMA wal_checkpoint(TRUNCATE)")
    path = tmp_path / "products.sqlite3"
    assert quick_check(path) == "ok"
    data = bytearray(path.read_bytes())
    page = 4096
    for number in range(2, 6):  # b-tree page headers; the file header (page 1) stays intact
        data[number * page: number * page + 12] = b"\xff" * 12
    path.write_bytes(bytes(data))
    assert quick_check(path) != "ok"


def test_a_wiped_state_dir_is_refused_by_a_new_process_too(layout_env):
    layout = resolve_layout().ensure()
    StateStore(layout.state_dir).migrate_all()
    shutil.rmtree(layout.state_dir)  # a rebuilt disk, an operator's rm -rf
    layout.state_dir.mkdir()
    result = _open_in_new_process(layout.state_dir, "ingest")
    assert result.returncode != 0 and "MissingDatabaseError" in result.stderr
    assert "contimg restore" in result.stderr
    assert not layout.database_path("ingest").exists()
