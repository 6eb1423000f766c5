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


# -- issue 7 item 17: the seed's Phase 4 plan for raw files and MS, and the floor --------

GB = 1_000_000_000


def _ms(layout, store: StateStore, kind: str, group: str, age_days: float, size: int = 1000,
        status: str = "converted") -> Path:
    """A registered MS directory (a table.dat and one column file of `size` bytes)."""
    path = layout.ms_dir / kind / group[:10] / f"{group}.ms"
    path.mkdir(parents=True)
    (path / "table.dat").write_bytes(b"t")
    (path / "table.f0").write_bytes(b"\0" * (size - 1))
    stamp = time.time() - age_days * 86400
    os.utime(path, (stamp, stamp))
    store.execute("products", "INSERT INTO ms_index (path, group_id, kind, start_mjd, end_mjd,"
                  " status, size_bytes, created, updated) VALUES (?, ?, ?, 60961, 60961.01, ?, ?,"
                  " ?, ?)", (str(path), group, kind, status, size, utc_now(), utc_now()))
    return path


def test_incoming_purged_once_its_group_is_really_converted(lifecycle, tiny_groups):
    """Raw files go only when their group is completed and its MS registered and on disk."""
    from contimg.conversion.pipeline import convert_into_tree
    from contimg.ingest.registry import IngestRegistry
    from contimg.ingest.scanner import scan_incoming
    from contimg.ingest.settings import IngestSettings

    layout, store, _ = lifecycle
    calibrator, science = tiny_groups
    for group in tiny_groups:
        for src in group.files:
            shutil.copyfile(src, layout.incoming_dir / Path(src).name)
            os.utime(layout.incoming_dir / Path(src).name, (OLD, OLD))
    registry = IngestRegistry(store, IngestSettings())
    registry.update(scan_incoming(layout.incoming_dir), time.time())
    registry.mark_group(science.group_id, "in_progress")
    outcome = convert_into_tree(science.group_id, registry.group_files(science.group_id),
                                layout, store)
    registry.mark_group(science.group_id, "completed")
    # The calibrator group stays pending (not converted): its files must stay.
    policy = RetentionPolicy.from_env({"CONTIMG_RETENTION_PROFILE": "phase4"})
    plan = plan_retention(layout, store, policy)
    actions = {Path(i.path).name: i.action for i in plan.items if i.data_type == "incoming"}
    assert {actions[Path(f).name] for f in science.files} == {"delete"}
    assert {actions[Path(f).name] for f in calibrator.files} == {"keep"}
    assert all(f.exists() for f in layout.incoming_dir.iterdir()), "a plan deletes nothing"

    removed = apply_retention(store, plan)
    assert sorted(Path(p).name for p in removed) == sorted(Path(f).name for f in science.files)
    assert outcome.ms_path.is_dir(), "the MS stays (7 days; it is new)"
    left = sorted(f.name for f in layout.incoming_dir.iterdir())
    assert left == sorted(Path(f).name for f in calibrator.files)
    states = store.query("ingest", "SELECT DISTINCT state FROM subband_files WHERE group_id = ?",
                         (science.group_id,))
    assert [s[0] for s in states] == ["purged"]
    audit = store.query("products", "SELECT source FROM file_moves WHERE action = 'delete'")
    assert sorted(a[0] for a in audit) == sorted(removed)


def test_incoming_kept_when_the_ms_is_missing_or_the_file_changed(lifecycle):
    layout, store, _ = lifecycle
    group = "2025-10-13T13:28:03"
    files = []
    for subband in range(2):
        path = layout.incoming_dir / f"{group}_sb{subband:02d}.hdf5"
        path.write_bytes(b"\0" * 100)
        os.utime(path, (OLD, OLD))
        files.append(path)
        store.execute("ingest", "INSERT INTO subband_files (path, group_id, subband, size_bytes,"
                      " mtime, state, first_seen, updated) VALUES (?, ?, ?, 100, ?, 'completed',"
                      " ?, ?)", (str(path), group, subband, path.stat().st_mtime, utc_now(), utc_now()))
    store.execute("ingest", "INSERT INTO groups (group_id, state, n_subbands, first_seen, updated)"
                  " VALUES (?, 'completed', 2, ?, ?)", (group, utc_now(), utc_now()))
    policy = RetentionPolicy.from_env({"CONTIMG_RETENTION_PROFILE": "phase4"})
    reasons = {i.reason for i in plan_retention(layout, store, policy).items}
    assert reasons == {f"no converted MS registered for group {group}"}
    ms = _ms(layout, store, "science", group, 0)
    files[1].write_bytes(b"\1" * 120)  # replaced after conversion
    os.utime(files[1], (OLD, OLD))
    plan = plan_retention(layout, store, policy)
    decisions = {Path(i.path).name: (i.action, i.reason) for i in plan.items}
    assert decisions[files[0].name][0] == "delete"
    assert decisions[files[1].name] == ("keep", "file changed since its group was converted")
    shutil.rmtree(ms)  # the MS vanishes between plan and apply
    assert apply_retention(store, plan) == [] and all(f.exists() for f in files)


def test_science_ms_after_n_days_calibrator_and_failed_ms_kept(lifecycle):
    layout, store, _ = lifecycle
    old_science = _ms(layout, store, "science", "2025-10-01T00:00:00", 10)
    new_science = _ms(layout, store, "science", "2025-10-12T00:00:00", 1)
    calibrator = _ms(layout, store, "calibrators", "2025-10-01T00:05:09", 30)
    failed = _ms(layout, store, "failed", "2025-10-01T00:10:18", 30, status="failed: bad")
    caltable = layout.ms_dir / "calibrators" / "2025-10-01" / "2025-10-01T00:05:09_bpcal"
    caltable.mkdir()
    policy = RetentionPolicy.from_env({"CONTIMG_RETENTION_PROFILE": "phase4"})
    plan = plan_retention(layout, store, policy)
    assert [(i.path, i.action) for i in plan.items] == [(str(old_science), "delete")]
    assert apply_retention(store, plan) == [str(old_science)]
    assert not old_science.exists()
    assert new_science.is_dir() and calibrator.is_dir() and failed.is_dir() and caltable.is_dir()
    status = store.query("products", "SELECT status FROM ms_index WHERE path = ?", (str(old_science),))
    assert status[0][0] == "purged"
    with pytest.raises(ValueError, match="CONTIMG_RETENTION_CALIBRATOR_MS_DAYS"):
        RetentionPolicy.from_env({"CONTIMG_RETENTION_PROFILE": "phase4",
                                  "CONTIMG_RETENTION_CALIBRATOR_MS_DAYS": "3"})


@pytest.mark.parametrize("archive_first", [{"CONTIMG_RETENTION_ARCHIVE_FIRST": "1"}, {}],
                         ids=["explicit", "phase4-default"])
def test_archive_first_copies_and_verifies_the_ms_before_deleting(lifecycle, archive_first):
    # phase4 archives first by default: a science MS is the only copy of its data.
    layout, store, remote = lifecycle
    science = _ms(layout, store, "science", "2025-10-01T00:00:00", 10)
    policy = RetentionPolicy.from_env({"CONTIMG_RETENTION_PROFILE": "phase4", **archive_first})
    plan = plan_retention(layout, store, policy)
    assert apply_retention(store, plan) == [str(science)]
    copy = remote / "ms" / "science" / "2025-10-01" / science.name
    assert (copy / "table.dat").read_bytes() == b"t" and (copy / "table.f0").stat().st_size == 999
    row = store.query("products", "SELECT status, archive_path FROM ms_index")[0]
    assert row["status"] == "purged" and row["archive_path"] == str(copy)
    audit = store.query("products", "SELECT destination FROM file_moves WHERE action = 'delete'")
    assert [a[0] for a in audit] == [str(copy)]


def test_free_space_floor_deletes_the_oldest_eligible_first(lifecycle):
    """Below the floor: oldest eligible first, until the projected free space meets it;
    nothing the profile keeps (calibrator MS, unarchived images) is touched."""
    layout, store, _ = lifecycle
    science = [_ms(layout, store, "science", f"2025-10-0{day}T00:00:00", 6 - day)
               for day in range(1, 6)]  # 5, 4, 3, 2, 1 days old: none due by age (7 days)
    calibrator = _ms(layout, store, "calibrators", "2025-09-01T00:00:00", 40)
    image, _ = _image(layout, "2025-09-01T00:05:09", 1)  # older than all, never archived
    _register(store, image)
    policy = RetentionPolicy.from_env({"CONTIMG_RETENTION_PROFILE": "phase4",
                                       "CONTIMG_MIN_FREE_GB": "1"})
    free_now = GB - 2500  # 2500 bytes short: three 1000-byte MS must go

    plan = plan_retention(layout, store, policy, free=lambda: free_now)
    assert [Path(i.path) for i in plan.deletions] == science[:3]
    assert all("below the 1 GB floor" in i.reason for i in plan.deletions)
    assert plan.floor.below and plan.floor.met and plan.floor.floor_deletions == 3
    assert any("free space" in line and "(met)" in line for line in plan.lines())
    assert str(calibrator) not in {i.path for i in plan.items}
    assert {i.action for i in plan.items if i.path == str(image)} <= {"keep"}

    assert apply_retention(store, plan) == [str(p) for p in science[:3]]
    assert [p.exists() for p in science] == [False, False, False, True, True]
    assert calibrator.is_dir() and image.exists()
    assert plan_retention(layout, store, policy, free=lambda: GB).deletions == []  # floor met


def test_floor_not_met_when_nothing_is_eligible_and_seed_profile_never_deletes(lifecycle):
    layout, store, _ = lifecycle
    science = _ms(layout, store, "science", "2025-10-01T00:00:00", 30)
    seed = RetentionPolicy.from_env({"CONTIMG_MIN_FREE_GB": "100"})
    plan = plan_retention(layout, store, seed, free=lambda: 0)
    assert plan.deletions == [] and plan.floor.below and not plan.floor.met
    assert science.is_dir()


def test_cli_min_free_gb_uses_the_fake_free_space_file(lifecycle, tmp_path, monkeypatch, capsys):
    from contimg.cli import main

    layout, store, _ = lifecycle
    science = _ms(layout, store, "science", "2025-10-01T00:00:00", 2)
    fake = tmp_path / "disk.json"
    fake.write_text('{"fast_disk_free_gb": 5}')
    monkeypatch.setenv("CONTIMG_FAKE_DISK_USAGE", str(fake))
    monkeypatch.setenv("CONTIMG_RETENTION_PROFILE", "phase4")
    assert main(["retention", "--min-free-gb", "10"]) == 0
    out = capsys.readouterr().out
    assert "free space 5.0 GB, floor 10.0 GB" in out and "dry run: 1 file(s)" in out
    assert science.is_dir()
    assert main(["retention", "--min-free-gb", "10", "--apply"]) == 0
    assert not science.exists()
    with pytest.raises(SystemExit):
        main(["retention", "--min-free-gb", "nan"])


def test_retention_asset_alerts_below_the_floor_and_applies_when_told(lifecycle, tmp_path,
                                                                      monkeypatch, webhook):
    from dagster import materialize

    from contimg_assets.lifecycle import retention
    from resources import NotifierResource, StateDatabasesResource, StorageLayoutResource

    url, received = webhook
    layout, store, _ = lifecycle
    science = _ms(layout, store, "science", "2025-10-01T00:00:00", 2)
    fake = tmp_path / "disk.json"
    fake.write_text('{"fast_disk_free_gb": 50}')
    for key, value in {"CONTIMG_FAKE_DISK_USAGE": str(fake), "CONTIMG_MIN_FREE_GB": "100",
                       "CONTIMG_RETENTION_PROFILE": "phase4", "CONTIMG_RETENTION_APPLY": "1"}.items():
        monkeypatch.setenv(key, value)
    storage = StorageLayoutResource()
    result = materialize([retention], resources={
        "storage": storage, "state": StateDatabasesResource(storage=storage),
        "notifier": NotifierResource(storage=storage, webhook_url=url)})
    assert result.success and not science.exists()
    deadline = time.monotonic() + 20
    while len(received) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    floor = [p["contimg"] for p in received if p["contimg"]["kind"] == "retention_floor"]
    assert len(floor) == 1 and floor[0]["deleted"] == [str(science)]


def test_products_sharing_a_name_never_collide_on_the_remote(lifecycle):
    """Two images with one stem (different directories) get two remote copies."""
    layout, store, remote = lifecycle
    first, _ = _image(layout, "2025-10-13T13:28:03", 1)
    other_dir = layout.images_dir / "reprocessed"
    other_dir.mkdir()
    second = other_dir / first.name
    fits.PrimaryHDU(np.full((8, 8), 2.0, np.float32)).writeto(second)
    for path in (first, second):
        _register(store, path)
    report = archive_products(layout, store)
    assert len(set(report.images)) == 2
    rows = store.query("products", "SELECT path, archive_path FROM images ORDER BY id")
    assert fits.getdata(rows[1]["archive_path"], 1)[0, 0] == 2.0
    assert fits.getdata(rows[0]["archive_path"], 1)[64, 64] == pytest.approx(0.5, abs=1e-3)


def test_rearchive_keeps_the_earlier_copy_in_the_audit_and_cli_names_bad_input(lifecycle, tmp_path,
                                                                              monkeypatch, capsys):
    from contimg.cli import main

    layout, store, _ = lifecycle
    path, _ = _image(layout, "2025-10-13T13:28:03", 1)
    _register(store, path)
    first = archive_products(layout, store)
    fits.PrimaryHDU(np.zeros((4, 4), np.float32)).writeto(path, overwrite=True)
    apply_retention(store, plan_retention(layout, store, RetentionPolicy({"images": 0})))
    audit = store.query("products", "SELECT destination FROM file_moves WHERE action = 'rearchive'")
    assert [a[0] for a in audit] == [f"{first.remote}/{first.images[0]}"]
    fake = tmp_path / "broken.json"
    fake.write_text("{not json")
    monkeypatch.setenv("CONTIMG_FAKE_DISK_USAGE", str(fake))
    assert main(["retention", "--min-free-gb", "1"]) == 2
    assert "CONTIMG_FAKE_DISK_USAGE" in capsys.readouterr().err


def test_retention_verifies_an_archive_whose_remote_credentials_were_not_stored(lifecycle,
                                                                                 monkeypatch):
    """The recorded location has the credentials masked; retention finds the copy again."""
    layout, store, remote = lifecycle
    remote.mkdir()
    monkeypatch.setenv("CONTIMG_RCLONE_REMOTE", f":local,description=s3cr3t:{remote}")
    path, _ = _image(layout, "2025-10-13T13:28:03", 1)
    _register(store, path)
    report = archive_products(layout, store)
    assert "s3cr3t" not in report.remote
    row = store.query("products", "SELECT archive_path FROM images")[0]
    assert "s3cr3t" not in row[0] and "***" in row[0]
    plan = plan_retention(layout, store, RetentionPolicy({"images": 0}))
    assert [(i.action, i.reason) for i in plan.items] == [("delete", "archived and verified")]
    assert not any("s3cr3t" in str(r[0]) for r in store.query(
        "products", "SELECT destination || reason FROM file_moves"))


def test_the_remote_is_never_overwritten(tmp_path):
    """A staged file that differs from the remote copy of the same name is refused."""
    from contimg.ops.rclone_remote import ArchiveVerificationError, copy_verified

    local, remote = tmp_path / "staging", tmp_path / "remote"
    local.mkdir()
    (local / "a.fits.fz").write_bytes(b"first")
    copy_verified(local, str(remote), ["a.fits.fz"])
    (local / "a.fits.fz").write_bytes(b"second, different")
    with pytest.raises(ArchiveVerificationError, match="never overwrites"):
        copy_verified(local, str(remote), ["a.fits.fz"])
    assert (remote / "a.fits.fz").read_bytes() == b"first"


def test_a_name_taken_on_the_remote_only_never_blocks_the_archive(lifecycle):
    """The database forgot an archived copy (restored from an older backup) and staging
    was emptied: the remote still holds a different file under the plain name."""
    layout, store, remote = lifecycle
    path, _ = _image(layout, "2025-10-13T13:28:03", 1)
    taken = remote / "archive" / "images" / f"{path.stem}.fits.fz"
    taken.parent.mkdir(parents=True)
    taken.write_bytes(b"an older, different copy")
    _register(store, path)
    report = archive_products(layout, store)
    (name,) = report.images
    assert name != f"images/{path.stem}.fits.fz" and name.endswith(".fits.fz")
    assert (remote / "archive" / name).exists()
    assert taken.read_bytes() == b"an older, different copy", "never overwritten"


def test_retention_of_a_mosaic_takes_its_sidecars_and_set_directory(lifecycle):
    """An archived mosaic's tarball holds its noise, weight and quick-look: once retention
    deletes the mosaic, those and its `.mosaic/` directory go too, nothing else does."""
    import tarfile

    layout, store, remote = lifecycle
    set_dir = layout.mosaics_dir / "hourly" / "2025-10-13" / "2025-10-13T13.mosaic"
    set_dir.mkdir(parents=True)
    mosaic = set_dir / "2025-10-13T13.mosaic.fits"
    fits.PrimaryHDU(np.ones((16, 16), np.float32)).writeto(mosaic)
    for sidecar in ("noise.fits", "weight.fits", "quicklook.png"):
        (set_dir / f"2025-10-13T13.mosaic-{sidecar}").write_bytes(b"s" * 64)
    neighbour = layout.mosaics_dir / "hourly" / "2025-10-13" / "other.fits"
    neighbour.write_bytes(b"n")
    for path in [mosaic, *set_dir.iterdir(), neighbour]:
        os.utime(path, (OLD, OLD))
    _register(store, mosaic, "mosaics")
    report = archive_products(layout, store)
    with tarfile.open(remote / "archive" / report.mosaics[0]) as tar:
        assert len(tar.getnames()) == 4
    policy = RetentionPolicy.from_env({"CONTIMG_RETENTION_PROFILE": "phase4",
                                       "CONTIMG_RETENTION_MOSAICS_DAYS": "1"})
    assert apply_retention(store, plan_retention(layout, store, policy)) == [str(mosaic)]
    assert not set_dir.exists() and neighbour.exists()
