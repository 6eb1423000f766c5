"""`contimg migrate`: dry run by default; flat MS directory organised and registered;
state databases moved to persistent storage behind a symlink."""

import shutil
import subprocess
from pathlib import Path

from contimg.conversion.ms_writer import convert_group
from contimg.layout import resolve_layout
from contimg.state import StateStore, products_db
from tests.conftest import VENV_BIN


def _contimg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "contimg"), *args], capture_output=True, text=True,
                          timeout=300)


def test_flat_ms_directory_is_organised_and_registered(layout_env, tiny_groups, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for group in tiny_groups:
        convert_group(group.files, flat / f"{group.group_id}.ms")
    (flat / "mystery.ms").mkdir()
    dry = _contimg("migrate", "ms", "--from", str(flat))
    assert dry.returncode == 0 and "dry run: 3 MS would move" in dry.stdout
    assert len(list(flat.glob("*.ms"))) == 3, "a dry run moves nothing"

    done = _contimg("migrate", "ms", "--from", str(flat), "--apply")
    assert done.returncode == 0, done.stderr
    layout = resolve_layout()
    first, second = (g.group_id for g in tiny_groups)
    assert (layout.ms_dir / "calibrators" / first[:10] / f"{first}.ms").is_dir()
    assert (layout.ms_dir / "science" / second[:10] / f"{second}.ms").is_dir()
    assert (layout.ms_dir / "failed" / "undated" / "mystery.ms").is_dir()
    assert not list(flat.iterdir())
    store = StateStore(layout.state_dir)
    kinds = {r["group_id"]: r["kind"] for r in store.query("products",
                                                           "SELECT group_id, kind FROM ms_index")}
    assert kinds == {first: "calibrators", second: "science", "mystery.ms": "failed"}
    assert store.query("products", "SELECT count(*) FROM file_moves WHERE actor = 'migrate'"
                       )[0][0] == 3


def test_state_databases_move_to_persistent_storage_behind_a_symlink(layout_env, tmp_path):
    layout = resolve_layout().ensure()
    old = tmp_path / "stage_state"
    old_store = StateStore(old)
    old_store.migrate_all()
    products_db.log_move(old_store, "/x", "/y", action="move")
    old_store.close()
    shutil.rmtree(layout.state_dir)
    dry = _contimg("migrate", "state", "--from", str(old))
    assert dry.returncode == 0 and "dry run: 4 database(s) would move" in dry.stdout
    assert not old.is_symlink()
    done = _contimg("migrate", "state", "--from", str(old), "--apply")
    assert done.returncode == 0, done.stderr
    assert old.is_symlink() and Path(old.resolve()) == layout.state_dir.resolve()
    assert StateStore(old).query("products", "SELECT count(*) FROM file_moves")[0][0] == 1
    assert (tmp_path / "stage_state.migrated" / "products.sqlite3").exists(), "originals kept"
