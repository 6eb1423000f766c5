"""Archive and retention with the real rclone against a local-directory remote."""

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from contimg.layout import resolve_layout
from contimg.ops.archive import CompressionSettings, archive_products
from contimg.ops.retention import RetentionPolicy, apply_retention, plan_retention
from contimg.state import StateStore
from contimg.state.connection import utc_now

OLD = time.time() - 200 * 86400


def _image(layout, name: str, seed: int) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(seed).normal(0, 1e-3, (128, 128)).astype(np.float32)
    data[64, 64] = 0.5  # a source
    path = layout.images_dir / f"{name}.img-image-pb.fits"
    fits.PrimaryHDU(data).writeto(path)
    os.utime(path, (OLD, OLD))
    return path, data


def _register(store: StateStore, path: Path, table: str = "images") -> None:
    if table == "images":
        store.execute("products", "INSERT INTO images (path, group_id, kind, mid_mjd, status,"
                      " created) VALUES (?, ?, 'wsclean', 60961.5, 'ready', ?)",
                      (str(path), path.name[:19], utc_now()))
    else:
        store.execute("products", "INSERT INTO mosaics (name, path, start_mjd, end_mjd, status,"
                      " created) VALUES (?, ?, 60961, 60962, 'ready', ?)",
                      (path.stem, str(path), utc_now()))


@pytest.fixture
def lifecycle(layout_env, tmp_path, monkeypatch):
    monkeypatch.setenv("CONTIMG_RCLONE_REMOTE", str(tmp_path / "remote"))
    layout = resolve_layout().ensure()
    store = StateStore(layout.state_dir)
    store.migrate_all()
    return layout, store, tmp_path / "remote"


@pytest.mark.parametrize("quantize_level", [16.0, 0.0])
def test_archived_images_decompress_within_quantisation(lifecycle, quantize_level):
    layout, store, remote = lifecycle
    path, original = _image(layout, "2025-10-13T13:28:03", 1)
    _register(store, path)
    report = archive_products(layout, store, CompressionSettings(quantize_level))
    archived = remote / "archive" / report.images[0]
    restored = fits.getdata(archived, 1)
    if quantize_level == 0:
        np.testing.assert_array_equal(restored, original)  # lossless: bit for bit
    else:
        noise = 1e-3
        assert np.abs(restored - original).max() <= noise / quantize_level * 1.01
        assert restored[64, 64] == pytest.approx(0.5, abs=noise / quantize_level)
    row = store.query("products", "SELECT archive_path, archive_sha256 FROM images")[0]
    assert row["archive_path"].endswith(report.images[0]) and len(row["archive_sha256"]) == 64


def test_archive_tars_mosaics_and_a_second_run_moves_nothing(lifecycle):
    layout, store, remote = lifecycle
    mosaic = layout.mosaics_dir / "2025-10-13_hourly.fits"
    fits.PrimaryHDU(np.ones((16, 16), np.float32)).writeto(mosaic)
    (layout.mosaics_dir / "2025-10-13_hourly.weights.fits").write_bytes(b"w" * 100)
    _register(store, mosaic, "mosaics")
    first = archive_products(layout, store)
    assert first.mosaics == ["images/mosaics/2025-10-13_hourly.tar.gz"]
    tarball = remote / "archive" / first.mosaics[0]
    before = tarball.stat().st_mtime_ns
    second = archive_products(layout, store)
    assert second.images == [] and second.mosaics == []
    assert tarball.stat().st_mtime_ns == before


def test_aggressive_retention_deletes_only_verified_archives(lifecycle, monkeypatch):
    layout, store, remote = lifecycle
    archived, _ = _image(layout, "2025-10-13T13:28:03", 1)
    tampered, _ = _image(layout, "2025-10-13T13:33:12", 2)
    never, _ = _image(layout, "2025-10-13T13:38:21", 3)
    for path in (archived, tampered):
        _register(store, path)
    report = archive_products(layout, store)
    _register(store, never)  # registered after the archive ran: not archived
    victim = remote / "archive" / next(r for r in report.images if "13:33:12" in r)
    victim.write_bytes(victim.read_bytes() + b"tampered")
    (layout.incoming_dir / "2025-10-13T13:28:03_sb00.hdf5").write_bytes(b"\0")
    os.utime(layout.incoming_dir / "2025-10-13T13:28:03_sb00.hdf5", (OLD, OLD))

    policy = RetentionPolicy.from_env({"CONTIMG_RETENTION_PROFILE": "phase4",
                                       "CONTIMG_RETENTION_IMAGES_DAYS": "1"})
    plan = plan_retention(layout, store, policy)
    decisions = {Path(i.path).name: (i.action, i.reason) for i in plan.items}
    assert decisions[archived.name] == ("delete", "archived and verified")
    assert decisions[tampered.name][0] == "keep"
    assert "does not match" in decisions[tampered.name][1]
    assert decisions[never.name] == ("keep", "not yet archived")
    assert decisions["2025-10-13T13:28:03_sb00.hdf5"] == ("keep", "not registered by ingest")
    assert [Path(i.path) for i in plan.deletions] == [archived]
    assert all(p.exists() for p in (archived, tampered, never)), "a plan deletes nothing"

    assert apply_retention(store, plan) == [str(archived)]
    assert not archived.exists() and tampered.exists() and never.exists()
    assert (layout.incoming_dir / "2025-10-13T13:28:03_sb00.hdf5").exists()
    status = store.query("products", "SELECT status FROM images WHERE path = ?", (str(archived),))
    assert status[0][0] == "purged"
    audit = store.query("products", "SELECT action FROM file_moves WHERE source = ?",
                        (str(archived),))
    assert [a[0] for a in audit] == ["delete"]


def test_seed_policy_keeps_everything(lifecycle):
    layout, store, _ = lifecycle
    path, _ = _image(layout, "2025-10-13T13:28:03", 1)
    _register(store, path)
    archive_products(layout, store)
    assert plan_retention(layout, store, RetentionPolicy.from_env({})).items == []


def test_lifecycle_assets_alert_on_archive_and_retention(lifecycle, monkeypatch, webhook):
    from dagster import materialize

    from contimg_assets.lifecycle import product_archive, retention
    from resources import NotifierResource, StateDatabasesResource, StorageLayoutResource

    url, received = webhook
    layout, store, _ = lifecycle
    path, _ = _image(layout, "2025-10-13T13:28:03", 1)
    _register(store, path)
    monkeypatch.setenv("CONTIMG_RETENTION_PROFILE", "phase4")
    monkeypatch.setenv("CONTIMG_RETENTION_IMAGES_DAYS", "1")
    storage = StorageLayoutResource()
    result = materialize([product_archive, retention], resources={
        "storage": storage, "state": StateDatabasesResource(storage=storage),
        "notifier": NotifierResource(storage=storage, webhook_url=url)})
    assert result.success
    deadline = time.monotonic() + 20
    while len(received) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    kinds = sorted(p["contimg"]["kind"] for p in received)
    assert kinds == ["archive_complete", "retention_run"]
    assert path.exists(), "retention is a dry run unless CONTIMG_RETENTION_APPLY=1"


def test_archive_after_emptying_local_staging_keeps_every_remote_copy(lifecycle):
    """Issue 7 item 1: the archive only adds to the remote (copy + check, never sync)."""
    layout, store, remote = lifecycle
    first_paths = [_image(layout, f"2025-10-13T13:{m:02d}:03", m)[0] for m in (28, 33)]
    for path in first_paths:
        _register(store, path)
    first = archive_products(layout, store)
    copies = [remote / "archive" / name for name in first.images]
    digests = {copy: copy.read_bytes() for copy in copies}
    for entry in layout.archive_dir.iterdir():  # an operator empties the local staging
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    newcomer, _ = _image(layout, "2025-10-13T13:38:21", 3)
    _register(store, newcomer)
    second = archive_products(layout, store)
    assert len(second.images) == 1
    assert all(copy.read_bytes() == digests[copy] for copy in copies), "remote copies survive"
    assert (remote / "archive" / second.images[0]).exists()
    third = archive_products(layout, store)  # with an empty staging and nothing new
    assert third.images == [] and all(copy.exists() for copy in copies)


def test_retention_rearchives_an_image_changed_after_archiving(lifecycle):
    """Issue 7 item 2: the local file must match what was archived, else it is re-archived."""
    layout, store, remote = lifecycle
    path, _ = _image(layout, "2025-10-13T13:28:03", 1)
    _register(store, path)
    first = archive_products(layout, store)
    old_copy = remote / "archive" / first.images[0]
    old_bytes = old_copy.read_bytes()
    changed = np.full((128, 128), 0.25, np.float32)  # reprocessed: same name, new content
    fits.PrimaryHDU(changed).writeto(path, overwrite=True)
    os.utime(path, (OLD, OLD))
    aggressive = RetentionPolicy.from_env({"CONTIMG_RETENTION_PROFILE": "phase4",
                                           "CONTIMG_RETENTION_IMAGES_DAYS": "0"})

    plan = plan_retention(layout, store, aggressive)
    assert [(i.action, "changed since it was archived" in i.reason) for i in plan.items] == [
        ("rearchive", True)]
    assert apply_retention(store, plan) == []
    assert path.exists(), "a changed image is never deleted"
    row = store.query("products", "SELECT archive_path, status FROM images")[0]
    assert row["archive_path"] is None and row["status"] == "ready"

    second = archive_products(layout, store)
    assert len(second.images) == 1 and second.images != first.images
    assert old_copy.read_bytes() == old_bytes, "the earlier archive copy stays"
    np.testing.assert_allclose(fits.getdata(remote / "archive" / second.images[0], 1), changed,
                               atol=1e-3)
    plan = plan_retention(layout, store, aggressive)
    assert [(i.action, i.reason) for i in plan.items] == [("delete", "archived and verified")]
    assert apply_retention(store, plan) == [str(path)] and not path.exists()


def test_plan_and_apply_recheck_the_local_file_just_before_deleting(lifecycle):
    """A file changed between the (dry-run) plan and --apply is still not deleted."""
    layout, store, _ = lifecycle
    path, _ = _image(layout, "2025-10-13T13:28:03", 1)
    _register(store, path)
    archive_products(layout, store)
    plan = plan_retention(layout, store, RetentionPolicy({"images": 0}))
    assert [i.action for i in plan.items] == ["delete"]
    with open(path, "ab") as handle:
        handle.write(b"\0" * 2880)  # appended after the plan was made
    assert apply_retention(store, plan) == [] and path.exists()
    assert store.query("products", "SELECT archive_path FROM images")[0][0] is None
