"""Backups: consistent under concurrent writers, shipped and verified with the real rclone,
pruned only when safe, and restored end to end by the operator command."""

import hashlib
import json
import multiprocessing as mp
import os
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import materialize

from contimg.layout import resolve_layout
from contimg.ops.backup import (
    BACKUP_FORMAT,
    backup_databases,
    list_backups,
    prune_local_backups,
    ship_backup,
)
from contimg.state import StateStore, products_db
from contimg.state.connection import (
    state_holders,
    utc_now,
    write_transaction,
)
from contimg_assets.state_backup import state_backup
from resources import NotifierResource, StateDatabasesResource, StorageLayoutResource
from tests.conftest import VENV_BIN


def _paired_writer(state_dir: str, worker: int, seconds: float) -> None:
    """Each transaction adds one group and one file: a consistent copy has equal counts."""
    store = StateStore(state_dir)
    conn = store.connection("ingest")
    deadline, n = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        with write_transaction(conn):
            group = f"w{worker}-{n:06d}"
            conn.execute("INSERT INTO groups (group_id, state, first_seen, updated)"
                         " VALUES (?, 'collecting', ?, ?)", (group, utc_now(), utc_now()))
            conn.execute("INSERT INTO subband_files (path, group_id, subband, size_bytes, mtime,"
                         " first_seen, updated) VALUES (?, ?, 0, 1, 0, ?, ?)",
                         (f"/in/{group}", group, utc_now(), utc_now()))
        n += 1


@pytest.mark.usefixtures("state_backend")  # SQLite files and PostgreSQL
def test_backup_under_concurrent_writes_is_consistent(layout_env):
    layout = resolve_layout().ensure()
    StateStore(layout.state_dir).migrate_all()
    ctx = mp.get_context("spawn")
    writers = [ctx.Process(target=_paired_writer, args=(str(layout.state_dir), w, 8.0))
               for w in range(4)]
    for proc in writers:
        proc.start()
    probe = StateStore(layout.state_dir)
    deadline = time.monotonic() + 60
    while probe.query("ingest", "SELECT count(*) FROM groups")[0][0] < 50:
        assert time.monotonic() < deadline, "writers never started"
        time.sleep(0.1)
    backups = [backup_databases(layout, datetime.now(UTC) + timedelta(seconds=i))
               for i in range(3)]
    still_writing = sum(proc.is_alive() for proc in writers)
    for proc in writers:
        proc.join(timeout=60)
    assert still_writing == 4, "the backups must overlap the writes"
    for backup in backups:
        counts = backup.row_counts["ingest"]
        assert counts["groups"] > 0
        assert counts["groups"] == counts["subband_files"], "a torn (inconsistent) snapshot"
        assert (backup.path / "ingest.sqlite3").exists()
    assert not list(layout.backups_dir.glob(".*partial"))


def test_ship_and_prune_only_what_the_remote_holds(layout_env, tmp_path, monkeypatch):
    remote = tmp_path / "remote"
    monkeypatch.setenv("CONTIMG_RCLONE_REMOTE", str(remote))
    layout = resolve_layout().ensure()
    StateStore(layout.state_dir).migrate_all()
    now = datetime.now(UTC)
    old_shipped = backup_databases(layout, now - timedelta(days=20)).path
    old_local = backup_databases(layout, now - timedelta(days=19)).path
    recent = backup_databases(layout, now).path
    destination = ship_backup(layout, old_shipped)
    assert (remote / "backups" / old_shipped.name / "ingest.sqlite3").exists()
    assert destination.endswith(old_shipped.name)
    assert prune_local_backups(layout, now) == [old_shipped]
    assert list_backups(layout) == [old_local, recent]


def test_state_backup_asset_records_and_ships(layout_env, tmp_path, monkeypatch):
    monkeypatch.setenv("CONTIMG_RCLONE_REMOTE", str(tmp_path / "remote"))
    storage = StorageLayoutResource()
    result = materialize([state_backup], resources={
        "storage": storage, "state": StateDatabasesResource(storage=storage),
        "notifier": NotifierResource(storage=storage)})
    assert result.success
    layout = resolve_layout()
    (backup,) = list_backups(layout)
    assert (tmp_path / "remote" / "backups" / backup.name / "products.sqlite3").exists()
    rows = StateStore(layout.state_dir).query("products", "SELECT operation, status FROM ops_runs")
    assert [tuple(r) for r in rows] == [("backup", "ok")]


@pytest.mark.usefixtures("state_backend")  # SQLite files and PostgreSQL
def test_restore_command_brings_back_the_backed_up_rows(layout_env):
    layout = resolve_layout().ensure()
    store = StateStore(layout.state_dir)
    for n in range(5):
        products_db.log_move(store, f"/a/{n}", f"/b/{n}", action="move")
    backup = backup_databases(layout)
    for n in range(7):
        products_db.log_move(store, f"/c/{n}", f"/d/{n}", action="move")
    store.close()
    command = [str(VENV_BIN / "contimg"), "restore", "--backup", backup.path.name]
    dry = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0 and "dry run" in dry.stdout
    assert StateStore(layout.state_dir).query("products", "SELECT count(*) FROM file_moves")[0][0] == 12
    done = subprocess.run([*command, "--yes"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    restored = StateStore(layout.state_dir)
    assert restored.query("products", "SELECT count(*) FROM file_moves")[0][0] == 5
    for name, counts in backup.row_counts.items():
        for table, count in counts.items():
            assert restored.query(name, f'SELECT count(*) FROM "{table}"')[0][0] == count
    (aside,) = layout.state_dir.glob("pre-restore-*")
    assert (aside / "products.sqlite3").exists(), "the replaced databases are kept"
    assert datetime.strptime(aside.name[len("pre-restore-"):], BACKUP_FORMAT)
    assert os.path.getsize(aside / "products.sqlite3") > 0


_HOLDER = """
import sys, time
from pathlib import Path
from contimg.state import StateStore, products_db
store = StateStore(sys.argv[1])
n = 0
while not Path(sys.argv[2]).exists():
    products_db.log_move(store, f"/w/{n}", f"/x/{n}", action="move")
    n += 1
    if n == 1:
        print("writing", flush=True)
    time.sleep(0.01)
store.close()
print(n, flush=True)
"""


def _restore(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "contimg"), "restore", *args], capture_output=True,
                          text=True, timeout=120)


def test_backup_manifest_carries_a_sha256_per_file(layout_env):
    layout = resolve_layout().ensure()
    StateStore(layout.state_dir).migrate_all()
    backup = backup_databases(layout)
    manifest = json.loads((backup.path / "manifest.json").read_text())
    assert set(manifest["files"]) == {f"{name}.sqlite3" for name in manifest["row_counts"]}
    for name, entry in manifest["files"].items():
        data = (backup.path / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


@pytest.mark.usefixtures("state_backend")  # SQLite files and PostgreSQL
def test_restore_refuses_while_a_writer_holds_the_databases(layout_env, tmp_path):
    layout = resolve_layout().ensure()
    StateStore(layout.state_dir).migrate_all()
    backup = backup_databases(layout)
    stop = tmp_path / "stop"
    writer = subprocess.Popen([str(VENV_BIN / "python"), "-c", _HOLDER, str(layout.state_dir),
                               str(stop)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        dry = _restore("--backup", backup.path.name)
        assert dry.returncode == 0 and "stop the platform first" in dry.stdout
        refused = _restore("--backup", backup.path.name, "--yes")
        assert refused.returncode == 2
        assert "stop the platform first: 1 process(es)" in refused.stderr
        assert str(writer.pid) in refused.stderr and "Traceback" not in refused.stderr
    finally:
        stop.write_text("")
        written = int(writer.communicate(timeout=60)[0].split()[-1])
    assert not list(layout.state_dir.glob("pre-restore-*")), "nothing was moved aside"
    with StateStore(layout.state_dir) as store:  # the writer's rows, all of them, are live
        assert store.query("products", "SELECT count(*) FROM file_moves")[0][0] == written
    done = _restore("--backup", backup.path.name, "--yes")
    assert done.returncode == 0, done.stderr
    with StateStore(layout.state_dir) as store:
        assert store.query("products", "SELECT count(*) FROM file_moves")[0][0] == 0


@pytest.mark.usefixtures("state_backend")  # SQLite files and PostgreSQL
def test_restore_refuses_while_the_metrics_server_runs(layout_env):
    layout = resolve_layout().ensure()
    StateStore(layout.state_dir).migrate_all()
    backup = backup_databases(layout)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([str(VENV_BIN / "contimg"), "metrics", "serve", "--port", str(port)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert "serving" in server.stdout.readline()
        deadline = time.monotonic() + 60
        while not state_holders(layout.state_dir):
            assert time.monotonic() < deadline, "the server never took the state lock"
            time.sleep(0.2)
        refused = _restore("--backup", backup.path.name, "--yes")
        assert refused.returncode == 2 and "stop the platform first" in refused.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert _restore("--backup", backup.path.name, "--yes").returncode == 0


def _flip_bytes(backup: Path) -> None:
    path = backup / "ingest.sqlite3"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit_manifest(backup: Path, change) -> None:
    path = backup / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


TAMPERING = {
    "bytes changed": (_flip_bytes, "does not match the sha256"),
    "file missing": (lambda b: (b / "products.sqlite3").unlink(), "missing from the backup set"),
    "manifest garbage": (lambda b: (b / "manifest.json").write_bytes(b"\x00{not json\xff"),
                         "not JSON"),
    "manifest a list": (lambda b: (b / "manifest.json").write_text("[1, 2]"), "lists no databases"),
    "manifest missing": (lambda b: (b / "manifest.json").unlink(), "no manifest.json"),
    "row count edited": (lambda b: _edit_manifest(
        b, lambda m: m["row_counts"]["products"].update(file_moves=99)), "row counts differ"),
    "checksum edited": (lambda b: _edit_manifest(
        b, lambda m: m["files"]["products.sqlite3"].update(sha256="0" * 64)),
        "does not match the sha256"),
    "checksums removed": (lambda b: _edit_manifest(b, lambda m: m.pop("files")),
                          "carries no checksums"),
    "unknown database": (lambda b: _edit_manifest(
        b, lambda m: m["row_counts"].update({"../../evil": {}})), "unknown databases"),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_a_tampered_backup_is_refused_with_a_clear_message(layout_env, case):
    layout = resolve_layout().ensure()
    with StateStore(layout.state_dir) as store:
        store.migrate_all()
        products_db.log_move(store, "/a", "/b", action="move")
    backup = backup_databases(layout).path
    with StateStore(layout.state_dir) as store:
        products_db.log_move(store, "/c", "/d", action="move")
    tamper, message = TAMPERING[case]
    tamper(backup)
    for extra in ((), ("--yes",)):
        result = _restore("--backup", backup.name, *extra)
        assert result.returncode == 2, result.stdout
        assert "contimg restore: error:" in result.stderr and message in result.stderr
        assert "Traceback" not in result.stderr + result.stdout
    assert not list(layout.state_dir.glob("pre-restore-*"))
    with StateStore(layout.state_dir) as store:
        assert store.query("products", "SELECT count(*) FROM file_moves")[0][0] == 2
