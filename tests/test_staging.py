"""Staging: tmpfs first, scratch when tmpfs lacks room, refusal when neither has it;
partial output never reaches the organised tree; stale workspaces are reaped."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from contimg.conversion.pipeline import convert_into_tree
from contimg.conversion.staging import (
    InsufficientSpaceError,
    choose_workspace,
    move_into_place,
    reap_stale_workspaces,
)
from contimg.layout import resolve_layout
from contimg.state import StateStore
from tests.conftest import VENV_BIN

GB = 1_000_000_000


def _free(tmpfs_gb: float, scratch_gb: float):
    def free(path: Path) -> int:
        return int((tmpfs_gb if "shm" in str(path) else scratch_gb) * GB)
    return free


def test_tmpfs_first_then_scratch_then_refusal(layout_env):
    layout = resolve_layout().ensure()
    assert choose_workspace(layout, "g", 2 * GB, _free(47, 400)).kind == "tmpfs"
    fallback = choose_workspace(layout, "g", 2 * GB, _free(1, 400))
    assert fallback.kind == "scratch" and fallback.path.parent == layout.staging_dir
    with pytest.raises(InsufficientSpaceError, match="Nothing was written"):
        choose_workspace(layout, "g", 2 * GB, _free(1, 1))


def test_conversion_refuses_before_writing_when_no_room(layout_env, tiny_groups):
    layout = resolve_layout().ensure()
    store = StateStore(layout.state_dir)
    group = tiny_groups[0]
    with pytest.raises(InsufficientSpaceError):
        convert_into_tree(group.group_id, group.files, layout, store, free=_free(0, 0))
    assert not list(layout.ms_dir.rglob("*.ms"))
    assert not any(layout.staging_dir.iterdir())


def test_scratch_fallback_converts_into_the_tree(layout_env, tiny_groups):
    layout = resolve_layout().ensure()
    store = StateStore(layout.state_dir)
    group = tiny_groups[1]
    outcome = convert_into_tree(group.group_id, group.files, layout, store,
                                free=_free(0, 400))
    assert outcome.staging == "scratch"
    assert outcome.ms_path == layout.ms_dir / "science" / group.group_id[:10] / f"{group.group_id}.ms"
    assert outcome.ms_path.is_dir() and not any(layout.staging_dir.iterdir())


def test_failure_mid_conversion_quarantines_the_partial_ms(layout_env, tiny_groups, tmp_path):
    layout = resolve_layout().ensure()
    store = StateStore(layout.state_dir)
    group = tiny_groups[0]
    files = [Path(shutil.copy(f, tmp_path)) for f in group.files]
    doomed = sorted(files, key=lambda f: f.name[-7:])[8]

    def vanish_midway(message: str) -> None:
        # An operator removes a file while the group is being converted.
        if message.startswith("subband 2/") and doomed.exists():
            doomed.unlink()

    with pytest.raises(OSError):
        convert_into_tree(group.group_id, files, layout, store, progress=vanish_midway)
    assert not list(layout.ms_dir.glob("calibrators/*/*.ms"))
    assert not list(layout.ms_dir.glob("science/*/*.ms"))
    quarantined = layout.ms_dir / "failed" / group.group_id[:10] / f"{group.group_id}.ms"
    assert quarantined.is_dir()
    row = store.query("products", "SELECT kind, status FROM ms_index WHERE group_id = ?",
                      (group.group_id,))[0]
    assert row["kind"] == "failed" and doomed.name in row["status"]
    audit = store.query("products", "SELECT action FROM file_moves")
    assert [a["action"] for a in audit] == ["quarantine"]
    assert not any(layout.tmpfs_root.iterdir())


def test_move_into_place_never_overwrites(tmp_path):
    source, destination = tmp_path / "a.ms", tmp_path / "b.ms"
    source.mkdir()
    destination.mkdir()
    with pytest.raises(FileExistsError):
        move_into_place(source, destination)


def test_stale_workspaces_of_dead_runs_are_reaped(layout_env):
    layout = resolve_layout().ensure()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = layout.tmpfs_root / "2025-10-13_13_28_03"
    stale.mkdir(parents=True)
    (stale / ".owner").write_text(f"{dead.pid} 0\n")
    live = layout.staging_dir / "2025-10-13_13_33_12"
    live.mkdir(parents=True)
    (live / ".owner").write_text(f"{os.getpid()} 0\n")  # started long ago, still running
    foreign = layout.tmpfs_root / "someone-elses-cache"  # e.g. CONTIMG_TMPFS_DIR=/dev/shm
    foreign.mkdir()
    os.utime(foreign, (0, 0))
    solve = layout.staging_dir / "cal-2025-10-13_12_03_55"  # a killed solve's workspace
    solve.mkdir(parents=True)
    (solve / ".owner").write_text(f"{dead.pid} 0\n")
    imaging = layout.tmpfs_root / "img-2025-10-13_12_03_55"  # a killed imaging run's
    imaging.mkdir(parents=True)
    (imaging / ".owner").write_text(f"{dead.pid} 0\n")
    assert sorted(reap_stale_workspaces(layout)) == sorted([stale, solve, imaging])
    assert live.exists() and foreign.exists() and not stale.exists() and not solve.exists()


def test_cli_convert_writes_an_ms_and_reports_bad_input(tiny_groups, tmp_path):
    out = tmp_path / "group.ms"
    result = subprocess.run([str(VENV_BIN / "contimg"), "convert", *map(str, tiny_groups[0].files),
                             "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert out.is_dir() and "wrote" in result.stdout
    short = subprocess.run([str(VENV_BIN / "contimg"), "convert",
                            *map(str, tiny_groups[0].files[:15]), "--out", str(tmp_path / "x.ms")],
                           capture_output=True, text=True, timeout=300)
    assert short.returncode == 2 and "expected 16" in short.stderr
    assert not (tmp_path / "x.ms").exists()
