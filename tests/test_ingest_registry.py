"""The ingest registry: completeness, grouping, duplicates, rejects and timeouts."""

import os
import shutil
import time
from datetime import timedelta
from pathlib import Path

import pytest

from contimg import naming
from contimg.ingest.registry import REREQUEST_AFTER, IngestRegistry
from contimg.ingest.scanner import scan_incoming
from contimg.ingest.settings import IngestSettings
from contimg.state import StateStore

# Every test here runs on both state backends: SQLite files and PostgreSQL.
pytestmark = pytest.mark.usefixtures("state_backend")

OLD = time.time() - 3600


def _shift(group_iso: str, seconds: int) -> str:
    return naming.iso_timestamp(naming.parse_timestamp(group_iso) + timedelta(seconds=seconds))


def _drop(files, incoming: Path, *, mtime: float = OLD, rename=None) -> list[Path]:
    incoming.mkdir(parents=True, exist_ok=True)
    placed = []
    for src in files:
        dst = incoming / (rename(src.name) if rename else src.name)
        shutil.copyfile(src, dst)
        os.utime(dst, (mtime, mtime))
        placed.append(dst)
    return placed


def _registry(tmp_path: Path, **settings) -> IngestRegistry:
    return IngestRegistry(StateStore(tmp_path / "state"), IngestSettings(**settings))


def test_complete_group_becomes_ready_exactly_once(tiny_groups, tmp_path):
    incoming = tmp_path / "incoming"
    _drop(tiny_groups[0].files, incoming)
    registry = _registry(tmp_path)
    first = registry.update(scan_incoming(incoming), time.time())
    assert first.ready_ids == [tiny_groups[0].group_id]
    assert first.new_files == 16
    again = registry.update(scan_incoming(incoming), time.time())
    assert again.ready_ids == [] and again.new_files == 0
    assert registry.group_state(tiny_groups[0].group_id)[0] == "pending"
    assert len(registry.group_files(tiny_groups[0].group_id)) == 16


def test_a_requested_group_whose_run_vanished_is_requested_again(tiny_groups, tmp_path):
    """A run that never marked its group started (worker killed first, or never submitted)
    leaves the group requested: asked again once Dagster has no live run for it and
    REREQUEST_AFTER has passed, under a new run key; never while a run is still queued."""
    incoming = tmp_path / "incoming"
    _drop(tiny_groups[0].files, incoming)
    registry = _registry(tmp_path)
    group = tiny_groups[0].group_id
    assert registry.update(scan_incoming(incoming), time.time()).ready_ids == [group]
    gone, queued = (lambda g: False), (lambda g: True)
    soon = time.time() + REREQUEST_AFTER.total_seconds() - 30
    assert registry.update(scan_incoming(incoming), soon, run_queued=gone).ready_ids == []
    later = time.time() + REREQUEST_AFTER.total_seconds() + 5
    assert registry.update(scan_incoming(incoming), later, run_queued=queued).ready_ids == []
    again = registry.update(scan_incoming(incoming), later, run_queued=gone)
    assert [r.run_key for r in again.ready] == [f"convert-{group}-r2"]
    assert REREQUEST_AFTER.total_seconds() <= 600, "a killed worker's group waits minutes, not hours"


def test_file_being_written_waits_until_it_settles(tiny_groups, tmp_path):
    incoming = tmp_path / "incoming"
    files = sorted(tiny_groups[0].files)
    _drop(files[:15], incoming)
    _drop(files[15:], incoming, mtime=time.time())  # just modified: still being written
    registry = _registry(tmp_path, settle_s=30)
    report = registry.update(scan_incoming(incoming), time.time())
    assert report.ready_ids == [] and len(report.writing) == 1
    report = registry.update(scan_incoming(incoming), time.time() + 60)
    assert report.ready_ids == [tiny_groups[0].group_id]


def test_hidden_partial_files_are_not_seen(tiny_groups, tmp_path):
    incoming = tmp_path / "incoming"
    _drop(tiny_groups[0].files[:1], incoming, rename=lambda n: f".{n}.partial")
    assert scan_incoming(incoming) == []


def test_timestamps_cluster_and_the_earliest_names_the_group(tiny_groups, tmp_path):
    incoming = tmp_path / "incoming"
    files = sorted(tiny_groups[0].files, key=lambda p: p.name[-7:])  # by subband
    group = tiny_groups[0].group_id
    later = _shift(group, 20)  # 20 s later, same group
    _drop(files[1:], incoming, rename=lambda n: later + n[19:])
    registry = _registry(tmp_path)
    assert registry.update(scan_incoming(incoming), time.time()).ready_ids == []
    _drop(files[:1], incoming)  # sb00 at the true (earlier) start arrives last
    report = registry.update(scan_incoming(incoming), time.time())
    assert report.ready_ids == [group]


def test_duplicate_subband_is_kept_aside(tiny_groups, tmp_path):
    incoming = tmp_path / "incoming"
    files = sorted(tiny_groups[0].files)
    _drop(files, incoming)
    group = tiny_groups[0].group_id
    dup_name = _shift(group, 5) + files[0].name[19:]
    _drop(files[:1], incoming, rename=lambda n: dup_name)
    registry = _registry(tmp_path)
    report = registry.update(scan_incoming(incoming), time.time())
    assert report.ready_ids == [group]
    assert len(report.duplicates) == 1
    assert "duplicate" in report.duplicates[0][1] and dup_name in report.duplicates[0][1]
    assert dup_name not in [p.name for p in registry.group_files(group)]


def test_a_file_that_is_not_a_subband_is_rejected_once(tmp_path):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "notes.txt").write_text("operator notes")
    registry = _registry(tmp_path)
    report = registry.update(scan_incoming(incoming), time.time())
    assert len(report.rejected) == 1 and "not a subband file" in report.rejected[0][1]
    assert registry.update(scan_incoming(incoming), time.time()).rejected == []


@pytest.mark.parametrize("policy", ["wait", "convert"])
def test_incomplete_group_is_reported_then_handled_by_policy(tiny_groups, tmp_path, policy):
    incoming = tmp_path / "incoming"
    _drop(sorted(tiny_groups[0].files)[:14], incoming)
    registry = _registry(tmp_path, incomplete_timeout_s=600, incomplete_policy=policy)
    assert registry.update(scan_incoming(incoming), time.time()).incomplete == []
    report = registry.update(scan_incoming(incoming), time.time() + 601)
    group = tiny_groups[0].group_id
    assert [g for g, _ in report.incomplete] == [group]
    assert len(report.incomplete[0][1]) == 2
    assert report.ready_ids == ([group] if policy == "convert" else [])
    # Reported once, not on every tick.
    assert registry.update(scan_incoming(incoming), time.time() + 700).incomplete == []


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="CONTIMG_INCOMPLETE_POLICY"):
        IngestSettings.from_env({"CONTIMG_INCOMPLETE_POLICY": "maybe"})
    with pytest.raises(ValueError, match="CONTIMG_GROUP_TOLERANCE_S=.soon. is not a number"):
        IngestSettings.from_env({"CONTIMG_GROUP_TOLERANCE_S": "soon"})
