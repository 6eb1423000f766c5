"""The fault matrix: every way the platform was broken on purpose, one test each.

It grows with every stage. Each test sets up the fault with real parts (real files,
real SQLite, real Dagster runs, real processes killed, real tmpfs mounts) and asserts
what an operator must see: nothing lost, nothing stuck, the reason named.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from dagster import build_sensor_context, materialize

from contimg.conversion.group_validation import GroupValidationError, validate_group
from contimg.conversion.isolation import ConverterCrashedError
from contimg.conversion.pipeline import convert_into_tree
from contimg.conversion.staging import estimate_ms_bytes, move_into_place, reap_partial_moves
from contimg.ingest.group_lock import group_lock
from contimg.ingest.registry import IngestRegistry
from contimg.ingest.scanner import scan_incoming
from contimg.ingest.settings import IngestSettings
from contimg.layout import resolve_layout
from contimg.state import StateStore
from contimg_assets.measurement_set import measurement_set
from contimg_assets.uvh5_group import uvh5_group
from resources import NotifierResource, StorageLayoutResource
from sensors.incoming_files import incoming_files_sensor
from tests.conftest import REPO, VENV_BIN

OLD = time.time() - 3600


# -- ingest: helpers ----------------------------------------------------------------

def _drop(files, incoming: Path, skip: tuple[str, ...] = ()) -> list[Path]:
    placed = []
    for src in files:
        if Path(src).name.endswith(skip):
            continue
        dst = incoming / Path(src).name
        shutil.copyfile(src, dst)
        os.utime(dst, (OLD, OLD))
        placed.append(dst)
    return placed


def _tick(instance, resources):
    with build_sensor_context(instance=instance, resources=resources) as context:
        return incoming_files_sensor(context)


def _requests(result) -> dict[str, str]:
    return {r.partition_key: r.run_key for r in getattr(result, "run_requests", [])}


def _materialize(group_id, instance, resources, assets=(uvh5_group, measurement_set)):
    instance.add_dynamic_partitions("observation_groups", [group_id])
    return materialize(list(assets), partition_key=group_id, instance=instance,
                       resources=resources, raise_on_error=False,
                       selection=[a.key for a in assets])


def _failure_text(result) -> str:
    return "\n".join(str(e.event_specific_data.error) for e in result.all_events
                     if e.is_step_failure)


def _registry(layout) -> IngestRegistry:
    return IngestRegistry(StateStore(layout.state_dir), IngestSettings.from_env())


# -- ingest: item 8, one bad name must not stop ingest ------------------------------

def test_bad_names_and_odd_entries_are_rejected_and_the_tick_goes_on(platform, tiny_groups):
    layout, resources, instance = platform
    incoming = layout.incoming_dir
    _drop(tiny_groups[0].files, incoming)
    odd = {
        "2025-02-30T00:00:00_sb00.hdf5": "not a real time",
        "2025-10-13T13:28:03_sb01.hdf5\n": "not a subband file name",
        "2025-10-13T13:28:0\u0663_sb02.hdf5": "not a subband file name",  # Arabic-Indic 3
    }
    for name in odd:
        (incoming / name).write_bytes(b"x")
        os.utime(incoming / name, (OLD, OLD))
    (incoming / "2025-10-13T13:28:03_sb03.hdf5").symlink_to(tiny_groups[1].files[0])
    os.mkfifo(incoming / "2025-10-13T13:28:03_sb04.hdf5")
    (incoming / "2025-10-13T13:28:03_sb05.hdf5").mkdir()
    result = _tick(instance, resources)
    assert list(_requests(result)) == [tiny_groups[0].group_id]
    rows = dict(StateStore(layout.state_dir).query(
        "ingest", "SELECT path, reason FROM subband_files WHERE state = 'rejected'"))
    for name, why in odd.items():
        assert why in rows[str(incoming / name)], rows
    for name, kind in (("sb03", "symlink"), ("sb04", "fifo"), ("sb05", "directory")):
        assert f"a {kind}, not a regular file" in rows[str(incoming / f"2025-10-13T13:28:03_{name}.hdf5")]
    assert _tick(instance, resources).__class__.__name__ == "SkipReason"  # and again, no error


# -- ingest: item 4, an unexpected header value is a validation failure naming the file

def test_malformed_header_value_fails_validation_naming_the_file(tmp_path, tiny_groups):
    files = [Path(shutil.copy(f, tmp_path)) for f in tiny_groups[0].files]
    victim = sorted(files)[5]
    with h5py.File(victim, "r+") as handle:
        del handle["Header/Nblts"]
        handle["Header/Nblts"] = "many"
    with pytest.raises(GroupValidationError, match=victim.name) as info:
        validate_group(files)
    assert "ValueError" in str(info.value) and "Fix:" in str(info.value)


def test_missing_subband_is_named(tmp_path, tiny_groups):
    files = [f for f in tiny_groups[0].files if not f.name.endswith("_sb07.hdf5")]
    with pytest.raises(GroupValidationError, match=r"missing sb07 \(no \*_sb07\.hdf5 near "):
        validate_group(files)


# -- ingest: item 3, a failed group comes back when its file is replaced --------------

def test_replaced_file_of_a_failed_group_is_converted_under_a_new_run_key(platform, tiny_groups):
    layout, resources, instance = platform
    group = tiny_groups[0]
    placed = _drop(group.files, layout.incoming_dir)
    victim = sorted(placed)[3]
    good = victim.read_bytes()
    with open(victim, "r+b") as handle:  # a writer paused past the settle time
        handle.truncate(len(good) - 4096)
    os.utime(victim, (OLD, OLD))
    assert _requests(_tick(instance, resources)) == {group.group_id: f"convert-{group.group_id}"}
    failed = _materialize(group.group_id, instance, resources)
    assert not failed.success and victim.name in _failure_text(failed)
    assert _registry(layout).group_state(group.group_id)[0] == "failed"

    victim.write_bytes(good)  # the writer finishes (or an operator replaces the file)
    os.utime(victim, (OLD + 60, OLD + 60))
    _tick(instance, resources)  # sees the change: the file is being written
    requests = _requests(_tick(instance, resources))
    assert requests == {group.group_id: f"convert-{group.group_id}-r2"}
    dupes = StateStore(layout.state_dir).query(
        "ingest", "SELECT count(*) FROM subband_files WHERE state = 'duplicate'")[0][0]
    assert dupes == 0, "the replacement must not be kept aside as a duplicate"
    assert _materialize(group.group_id, instance, resources).success
    assert _registry(layout).group_state(group.group_id)[0] == "completed"


def test_requeue_command_puts_a_failed_group_back_in_line(platform, tiny_groups):
    layout, resources, instance = platform
    group = tiny_groups[0]
    _drop(group.files, layout.incoming_dir)
    _tick(instance, resources)
    _registry(layout).mark_group(group.group_id, "failed", "a problem since fixed")
    assert _tick(instance, resources).__class__.__name__ == "SkipReason"
    done = subprocess.run([str(VENV_BIN / "contimg"), "requeue", group.group_id],
                          capture_output=True, text=True, env=dict(os.environ), cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert _requests(_tick(instance, resources)) == {group.group_id: f"convert-{group.group_id}-r2"}
    unknown = subprocess.run([str(VENV_BIN / "contimg"), "requeue", "2020-01-01T00:00:00"],
                             capture_output=True, text=True, env=dict(os.environ), cwd=REPO)
    assert unknown.returncode == 2 and "unknown group 2020-01-01T00:00:00" in unknown.stderr


# -- ingest: item 4, a transient failure is retried under a new run key ---------------

def test_no_room_to_stage_defers_the_group_and_retries_with_a_new_key(platform, tiny_groups,
                                                                       tmp_path):
    layout, resources, instance = platform
    group = tiny_groups[0]
    _drop(group.files, layout.incoming_dir)
    _tick(instance, resources)
    with _small_tmpfs(tmp_path / "full", "16k") as full:
        os.environ["CONTIMG_TMPFS_DIR"] = str(full / "shm")
        os.environ["CONTIMG_TMP_DIR"] = str(full / "tmp")
        try:
            result = _materialize(group.group_id, instance, resources)
        finally:
            del os.environ["CONTIMG_TMPFS_DIR"], os.environ["CONTIMG_TMP_DIR"]
    assert not result.success and "no room to stage" in _failure_text(result)
    state, error, _ = _registry(layout).group_state(group.group_id)
    assert state == "pending" and "retrying after" in error
    assert _tick(instance, resources).__class__.__name__ == "SkipReason"  # backoff first
    later = _registry(layout).update(scan_incoming(layout.incoming_dir), time.time() + 120,
                                     lock_held=lambda g: False, run_queued=lambda g: False)
    assert [r.run_key for r in later.ready] == [f"convert-{group.group_id}-r2"]


# -- ingest: item 5, a killed run does not leave its group in_progress forever --------

_HOLDER = """
import sys, time
from contimg.ingest.group_lock import group_lock
from contimg.ingest.registry import IngestRegistry
from contimg.ingest.settings import IngestSettings
from contimg.layout import resolve_layout
from contimg.state import StateStore
layout = resolve_layout()
with group_lock(layout, sys.argv[1]):
    IngestRegistry(StateStore(layout.state_dir), IngestSettings.from_env()).start(sys.argv[1], "r1")
    print("holding", flush=True)
    time.sleep(600)
"""


def test_killed_run_returns_its_group_to_the_queue(platform, tiny_groups):
    layout, resources, instance = platform
    group = tiny_groups[0]
    _drop(group.files, layout.incoming_dir)
    _tick(instance, resources)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, group.group_id],
                              stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert _tick(instance, resources).__class__.__name__ == "SkipReason"  # alive: left alone
        assert _registry(layout).group_state(group.group_id)[0] == "in_progress"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert _requests(_tick(instance, resources)) == {group.group_id: f"convert-{group.group_id}-r2"}
    assert "killed" in _registry(layout).group_state(group.group_id)[1]


def test_partial_copy_left_by_a_killed_move_is_reaped(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    target_dir = tmp_path / "ms" / "science" / "2025-10-13"
    leftover = target_dir / f".2025-10-13T13:28:03.ms.partial-{dead.pid}"
    leftover.mkdir(parents=True)
    mine = target_dir / f".2025-10-13T13:33:12.ms.partial-{os.getpid()}"
    mine.mkdir()
    assert reap_partial_moves(target_dir) == [leftover]
    assert mine.exists(), "a live process's copy is left alone"
    source = tmp_path / "src.ms"
    source.mkdir()
    move_into_place(source, target_dir / "2025-10-13T13:38:21.ms")
    assert (target_dir / "2025-10-13T13:38:21.ms").is_dir()


# -- ingest: item 6, a second materialisation or a concurrent run changes nothing -----

def test_rematerialising_a_converted_group_is_refused_without_touching_anything(platform,
                                                                                 tiny_groups):
    layout, resources, instance = platform
    group = tiny_groups[1]
    _drop(group.files, layout.incoming_dir)
    _tick(instance, resources)
    assert _materialize(group.group_id, instance, resources).success
    store = StateStore(layout.state_dir)
    before = [tuple(r) for r in store.query("products", "SELECT * FROM ms_index")]
    again = _materialize(group.group_id, instance, resources)
    assert not again.success and "already converted" in _failure_text(again)
    assert _registry(layout).group_state(group.group_id)[0] == "completed"
    assert [tuple(r) for r in store.query("products", "SELECT * FROM ms_index")] == before
    assert not list(layout.ms_dir.glob("failed/*/*.ms")), "nothing quarantined"


def test_two_runs_of_one_group_never_share_a_workspace(platform, tiny_groups):
    layout, resources, instance = platform
    group = tiny_groups[0]
    _drop(group.files, layout.incoming_dir)
    _tick(instance, resources)
    with group_lock(layout, group.group_id):  # a first run is converting it
        second = _materialize(group.group_id, instance, resources, assets=(measurement_set,))
    assert not second.success and "being converted by another run" in _failure_text(second)
    assert _registry(layout).group_state(group.group_id)[0] == "pending"
    assert _materialize(group.group_id, instance, resources, assets=(measurement_set,)).success


# -- ingest: item 7, a full tmpfs is a recorded failure, not an aborted process -------

class _small_tmpfs:
    """A real tmpfs of `size` mounted at `path` (the platform runs as root here)."""

    def __init__(self, path: Path, size: str) -> None:
        self.path, self.size = path, size

    def __enter__(self) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs",
                        str(self.path)], check=True)
        return self.path

    def __exit__(self, *exc: object) -> None:
        # A process still holding a file there (a killed run's child) would make a plain
        # umount fail and leave the mount behind: detach it lazily then.
        if subprocess.run(["umount", str(self.path)], check=False).returncode:
            subprocess.run(["umount", "-l", str(self.path)], check=True)


def test_tmpfs_filling_up_mid_write_is_a_recorded_failure(layout_env, tiny_groups, tmp_path):
    layout = resolve_layout().ensure()
    store = StateStore(layout.state_dir)
    group = tiny_groups[0]
    with _small_tmpfs(tmp_path / "shm", "256k") as shm:
        crowded = resolve_layout({**os.environ, "CONTIMG_TMPFS_DIR": str(shm / "contimg")})

        def lying_free(path: Path) -> int:  # a neighbour fills tmpfs after the check
            return 10 * 1024**3

        with pytest.raises(ConverterCrashedError, match="SIGABRT"):
            convert_into_tree(group.group_id, group.files, crowded, store, free=lying_free)
        assert not any((shm / "contimg").iterdir()), "workspace removed"
    assert not list(layout.ms_dir.glob("science/*/*.ms")) + list(layout.ms_dir.glob("calibrators/*/*.ms"))
    status = store.query("products", "SELECT kind, status FROM ms_index")[0]
    assert status["kind"] == "failed" and "ConverterCrashedError" in status["status"]


def test_staging_estimate_covers_what_is_written(layout_env, tiny_groups):
    layout = resolve_layout().ensure()
    outcome = convert_into_tree(tiny_groups[0].group_id, tiny_groups[0].files, layout,
                                StateStore(layout.state_dir))
    plan = validate_group(tiny_groups[0].files)
    estimate = estimate_ms_bytes(plan.n_blts, plan.n_channels, len(plan.polarizations))
    assert outcome.size_bytes <= estimate <= 1.5 * outcome.size_bytes


# -- storage lifecycle: items 1, 2 and 17 (archive only adds; retention verifies) ----

def _archived_image(layout_env, tmp_path, monkeypatch):
    """An image registered and archived to a local-directory remote (real rclone)."""
    import numpy as np
    from astropy.io import fits

    from contimg.ops.archive import archive_products
    from contimg.state.connection import utc_now

    monkeypatch.setenv("CONTIMG_RCLONE_REMOTE", str(tmp_path / "remote"))
    layout = resolve_layout().ensure()
    store = StateStore(layout.state_dir)
    store.migrate_all()
    path = layout.images_dir / "2025-10-13T13:28:03.img-image-pb.fits"
    fits.PrimaryHDU(np.ones((16, 16), np.float32)).writeto(path)
    os.utime(path, (OLD - 86400 * 365, OLD - 86400 * 365))
    store.execute("products", "INSERT INTO images (path, group_id, kind, mid_mjd, status, created)"
                  " VALUES (?, 'g', 'wsclean', 60961.5, 'ready', ?)", (str(path), utc_now()))
    report = archive_products(layout, store)
    return layout, store, path, tmp_path / "remote" / "archive" / report.images[0]


def test_emptied_archive_staging_never_erases_the_remote(layout_env, tmp_path, monkeypatch):
    from contimg.ops.archive import archive_products

    layout, store, _, copy = _archived_image(layout_env, tmp_path, monkeypatch)
    shutil.rmtree(layout.archive_dir)
    layout.archive_dir.mkdir()
    archive_products(layout, store)
    assert copy.is_file(), "the remote copy survives an emptied local staging"


def test_image_changed_after_archiving_is_rearchived_never_deleted(layout_env, tmp_path,
                                                                    monkeypatch):
    import numpy as np
    from astropy.io import fits

    from contimg.ops.archive import archive_products
    from contimg.ops.retention import RetentionPolicy, apply_retention, plan_retention

    layout, store, path, copy = _archived_image(layout_env, tmp_path, monkeypatch)
    fits.PrimaryHDU(np.full((16, 16), 3.0, np.float32)).writeto(path, overwrite=True)
    policy = RetentionPolicy.from_env({"CONTIMG_RETENTION_PROFILE": "phase4",
                                       "CONTIMG_RETENTION_IMAGES_DAYS": "0"})
    assert apply_retention(store, plan_retention(layout, store, policy)) == []
    assert path.is_file() and copy.is_file()
    again = archive_products(layout, store)
    assert fits.getdata(copy.parent / Path(again.images[0]).name, 1)[0, 0] == 3.0


def test_free_space_floor_spares_what_the_profile_keeps(layout_env, tmp_path, monkeypatch):
    from contimg.ops.retention import RetentionPolicy, apply_retention, plan_retention

    layout, store, image, _ = _archived_image(layout_env, tmp_path, monkeypatch)
    calibrator = layout.ms_dir / "calibrators" / "2025-10-01" / "2025-10-01T00:00:00.ms"
    calibrator.mkdir(parents=True)
    (calibrator / "table.dat").write_bytes(b"t")
    fake = tmp_path / "disk.json"
    fake.write_text('{"fast_disk_free_gb": 0}')
    monkeypatch.setenv("CONTIMG_FAKE_DISK_USAGE", str(fake))
    keep_images = RetentionPolicy.from_env({"CONTIMG_RETENTION_PROFILE": "phase4",
                                            "CONTIMG_RETENTION_IMAGES_DAYS": "none",
                                            "CONTIMG_MIN_FREE_GB": "100",
                                            "CONTIMG_FAKE_DISK_USAGE": str(fake)})
    plan = plan_retention(layout, store, keep_images)
    assert apply_retention(store, plan) == [] and plan.floor.below and not plan.floor.met
    assert image.is_file() and calibrator.is_dir()


# --- Item 12: the IERS cache never executes code --------------------------------------------


class _PlantedPayload:
    """Unpickling this creates `marker`: proof that a planted file was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


_IERS_PROBE = """
from astropy.time import Time
from astropy.utils import iers
from contimg.astro_offline import configure_offline_astropy
configure_offline_astropy()
table = iers.earth_orientation_table.get()
print(type(table).__name__, float(table.ut1_utc(Time("2025-10-13T13:00:00")).value))
"""


def _iers_probe(home: Path, tmpdir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTIMG_")}
    env.update(CONTIMG_HOME=str(home), CONTIMG_TMPFS_DIR=str(home / "shm"), TMPDIR=str(tmpdir))
    return subprocess.run([str(VENV_BIN / "python"), "-c", _IERS_PROBE], env=env,
                          capture_output=True, text=True, timeout=300)


def test_planted_iers_pickles_are_never_executed(layout_env, tmp_path):
    import pickle

    import astropy_iers_data
    import numpy as np

    from contimg.astro_offline import cache_path

    marker = tmp_path / "EXECUTED"
    payload = pickle.dumps(_PlantedPayload(marker))
    shared_tmp = tmp_path / "shared-tmp"  # stands in for /tmp, writable by anyone
    shared_tmp.mkdir()
    version = getattr(astropy_iers_data, "__version__", "unknown")
    (shared_tmp / f"contimg-iers-a-{version}.pkl").write_bytes(payload)  # the old location
    cache = cache_path(resolve_layout().tmp_dir / "cache")
    cache.parent.mkdir(parents=True)
    cache.write_bytes(payload)  # a pickle where the new cache lives
    first = _iers_probe(layout_env, shared_tmp)
    assert first.returncode == 0, first.stderr
    assert not marker.exists(), "a planted pickle was executed"
    kind, ut1 = first.stdout.split()
    assert kind == "IERS_Auto" and abs(float(ut1) - 0.0937) < 1e-3
    with np.load(cache, allow_pickle=False) as rebuilt:  # replaced by a pickle-free cache
        assert all(rebuilt[name].dtype != object for name in rebuilt.files)
    # A well-formed .npz whose column is an object array (pickled inside) is refused too.
    np.savez(cache.with_suffix(".planted.npz"), c0=np.array([_PlantedPayload(marker)], dtype=object))
    os.replace(cache.with_suffix(".planted.npz"), cache)
    second = _iers_probe(layout_env, shared_tmp)
    assert second.returncode == 0, second.stderr
    assert not marker.exists(), "a pickled array inside the cache was executed"
    assert second.stdout.split()[0] == "IERS_Auto"
    assert not list(shared_tmp.glob("contimg-iers-*.npz")), "nothing is cached in the shared tmp"
    started = time.perf_counter()
    third = _iers_probe(layout_env, shared_tmp)
    assert third.returncode == 0 and time.perf_counter() - started < 60


def test_iers_cache_gives_the_same_table_as_parsing(tmp_path):
    # Its speed (0.07 s load against 0.6 s parse, in a fresh process) is not asserted
    # here: within one process astropy may have parsed the table already, and timings
    # on a shared CI machine are noise. Only the equality is a test.
    import numpy as np
    from astropy.utils import iers

    from contimg.astro_offline import cached_iers_table

    iers.conf.auto_download = False
    parsed = cached_iers_table(tmp_path)  # builds the cache
    assert any(tmp_path.iterdir()), "the cache file was written"
    cached = cached_iers_table(tmp_path)
    assert parsed.colnames == cached.colnames and parsed.meta == cached.meta
    for name in ("MJD", "UT1_UTC", "PM_x", "PM_y", "dX_2000A", "dY_2000A"):
        np.testing.assert_array_equal(np.asarray(parsed[name]), np.asarray(cached[name]))
    for name in ("UT1Flag", "PolPMFlag", "NutFlag"):
        assert list(parsed[name]) == list(cached[name])


# --- Item 13: the webhook URL and the remote's credentials ----------------------------------

_TOKEN = "T0SECRET/B0SECRET/XXTOKENXX"


def test_webhook_url_without_a_scheme_never_raises_nor_prints_the_token(layout_env, caplog,
                                                                        monkeypatch):
    import json
    import logging
    import threading

    from contimg.ops.notifier import Notifier

    uncaught: list = []
    monkeypatch.setattr(threading, "excepthook", uncaught.append)
    logs_dir = resolve_layout().ensure().logs_dir
    caplog.set_level(logging.DEBUG)
    sent = Notifier(logs_dir, f"hooks.slack.com/services/{_TOKEN}").notify("disk", "fast disk low")
    if sent is not None:
        sent.join(timeout=30)
    assert uncaught == []
    assert "SECRET" not in caplog.text and "CONTIMG_ALERT_WEBHOOK_URL" in caplog.text
    alerts = [json.loads(line) for line in (logs_dir / "alerts.jsonl").read_text().splitlines()]
    assert [a["kind"] for a in alerts] == ["disk"], "the alert is kept, not lost"


def test_unreachable_webhook_logs_neither_url_nor_token(layout_env, caplog):
    import logging
    import socket

    from contimg.ops.notifier import Notifier

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    caplog.set_level(logging.DEBUG)
    notifier = Notifier(resolve_layout().ensure().logs_dir,
                        f"http://127.0.0.1:{port}/services/{_TOKEN}", retries=2, timeout_s=2)
    notifier.notify("disk", "fast disk low").join(timeout=60)
    assert "not delivered" in caplog.text
    assert "SECRET" not in caplog.text and "/services/" not in caplog.text


def test_webhook_resource_reads_the_validated_setting(layout_env, monkeypatch, webhook):
    from contimg.settings import SettingsError

    url, payloads = webhook
    monkeypatch.setenv("CONTIMG_ALERT_WEBHOOK_URL", url)
    storage = StorageLayoutResource()
    NotifierResource(storage=storage).notifier().notify("probe", "hello").join(timeout=30)
    assert [p["contimg"]["kind"] for p in payloads] == ["probe"]
    monkeypatch.setenv("CONTIMG_ALERT_WEBHOOK_URL", f"hooks.slack.com/services/{_TOKEN}")
    with pytest.raises(SettingsError, match="CONTIMG_ALERT_WEBHOOK_URL") as caught:
        NotifierResource(storage=storage).notifier()
    assert "SECRET" not in str(caught.value)


def test_code_location_refuses_a_malformed_webhook_url_at_start_up(layout_env):
    env = dict(os.environ, CONTIMG_ALERT_WEBHOOK_URL=f"hooks.slack.com/services/{_TOKEN}")
    result = subprocess.run([str(VENV_BIN / "python"), "-c", "import contimg_assets.definitions"],
                            env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode != 0
    assert "CONTIMG_ALERT_WEBHOOK_URL" in result.stderr and "SECRET" not in result.stderr


@pytest.mark.parametrize(("remote", "expected"), [
    (":s3,access_key_id=AKIAXX,secret_access_key=SECRETYY:bucket/dsa110",
     ":s3,access_key_id=***,secret_access_key=***:bucket/dsa110"),
    (':s3,secret_access_key="SEC,RET:YY",region=us:bucket', ":s3,secret_access_key=***,region=***:bucket"),
    ("archive,pass=SECRET:dsa110/archive/x.fits.fz", "archive,pass=***:dsa110/archive/x.fits.fz"),
    ("sftp://ops:SECRET@archive.example/dsa110", "sftp://ops:***@archive.example/dsa110"),
    ("archive:dsa110-contimg", "archive:dsa110-contimg"),
    ("/data/remote/archive/images/a.fits.fz", "/data/remote/archive/images/a.fits.fz"),
])
def test_redact_remote_masks_credentials(remote, expected):
    from contimg.secrets import redact_remote

    assert redact_remote(remote) == expected
    assert redact_remote(expected) == expected


_REMOTE_SECRET = "S3CR3TKEYZZ"


def _files_holding(secret: str, *roots: Path) -> list[Path]:
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and secret.encode() in path.read_bytes():
                found.append(path)
    return found


def _secret_remote(tmp_path: Path, monkeypatch) -> Path:
    """A credential-bearing connection string (rclone accepts it) to a local directory."""
    remote = tmp_path / "remote"
    remote.mkdir()
    monkeypatch.setenv("CONTIMG_RCLONE_REMOTE", f":local,description={_REMOTE_SECRET}:{remote}")
    return remote


def test_shipped_backups_do_not_store_the_remote_credentials(layout_env, tmp_path, monkeypatch):
    from contimg.ops.backup import backup_databases, ship_backup

    remote = _secret_remote(tmp_path, monkeypatch)
    layout = resolve_layout().ensure()
    with StateStore(layout.state_dir) as store:
        store.migrate_all()
    backup = backup_databases(layout)
    ship_backup(layout, backup.path)
    assert (backup.path / "SHIPPED").is_file()
    assert _files_holding(_REMOTE_SECRET, layout.state_dir, layout.backups_dir, remote) == []


def test_archive_and_backup_store_no_remote_credentials(layout_env, tmp_path, monkeypatch):
    import numpy as np
    from astropy.io import fits

    from contimg.ops.archive import archive_products
    from contimg.ops.backup import backup_databases, ship_backup
    from contimg.state.connection import utc_now

    remote = _secret_remote(tmp_path, monkeypatch)
    layout = resolve_layout().ensure()
    with StateStore(layout.state_dir) as store:
        store.migrate_all()
        path = layout.images_dir / "2025-10-13T13:28:03.img-image-pb.fits"
        fits.PrimaryHDU(np.ones((16, 16), np.float32)).writeto(path)
        store.execute("products", "INSERT INTO images (path, group_id, kind, mid_mjd, status,"
                      " created) VALUES (?, 'g', 'wsclean', 60961.5, 'ready', ?)",
                      (str(path), utc_now()))
        report = archive_products(layout, store)
    assert report.images and list((remote / "archive").rglob("*.fits.fz")), "really archived"
    backup = backup_databases(layout)
    ship_backup(layout, backup.path)
    assert _files_holding(_REMOTE_SECRET, layout.state_dir, layout.backups_dir, remote) == []


# -- what an operator sees: item 14, descriptions are not eaten as HTML ---------------

def test_descriptions_shown_in_the_ui_have_no_html_like_placeholders(layout_env):
    import re

    from contimg_assets.definitions import defs

    texts = {spec.key.to_user_string(): spec.description or ""
             for spec in defs.resolve_all_asset_specs()}
    for kind in ("sensors", "schedules"):
        texts.update({definition.name: definition.description or ""
                      for definition in getattr(defs, kind) or []})
    placeholder = re.compile(r"<[A-Za-z_][A-Za-z_0-9]*>")
    offenders = {name: placeholder.findall(text) for name, text in texts.items()
                 if placeholder.search(text)}
    assert not offenders, offenders
    assert "measurement_set" in texts and "TIMESTAMP.ms" in texts["measurement_set"]


# -- state: item 9, a state database deleted under a running platform -----------------

def test_sensor_refuses_and_alerts_when_the_ingest_database_vanishes(platform, tiny_groups):
    from contimg.state.connection import MissingDatabaseError

    layout, resources, instance = platform
    _drop(tiny_groups[0].files, layout.incoming_dir)
    assert list(_requests(_tick(instance, resources))) == [tiny_groups[0].group_id]
    for suffix in ("", "-wal", "-shm"):
        Path(f"{layout.database_path('ingest')}{suffix}").unlink(missing_ok=True)
    with pytest.raises(MissingDatabaseError, match="contimg restore"):
        _tick(instance, resources)
    assert not layout.database_path("ingest").exists(), "never recreated empty"
    alerts = (layout.logs_dir / "alerts.jsonl").read_text()
    assert "state_database" in alerts and "ingest.sqlite3" in alerts


# -- ingest: found in review: members rewritten late, replacements, requeue edges ------

def test_member_rewritten_while_its_group_is_pending_stays_the_member(platform, tiny_groups):
    layout, resources, instance = platform
    group = tiny_groups[0]
    placed = _drop(group.files, layout.incoming_dir)
    assert list(_requests(_tick(instance, resources))) == [group.group_id]
    os.utime(placed[4], (OLD + 30, OLD + 30))  # the writer touched it once more
    _tick(instance, resources)
    _tick(instance, resources)
    dupes = StateStore(layout.state_dir).query(
        "ingest", "SELECT count(*) FROM subband_files WHERE state = 'duplicate'")[0][0]
    assert dupes == 0 and len(_registry(layout).group_files(group.group_id)) == 16
    assert _materialize(group.group_id, instance, resources).success


def test_header_without_antenna_arrays_fails_validation_naming_the_file(tmp_path, tiny_groups):
    files = [Path(shutil.copy(f, tmp_path)) for f in tiny_groups[0].files]
    victim = sorted(files)[9]
    with h5py.File(victim, "r+") as handle:
        del handle["Header/ant_1_array"]
    with pytest.raises(GroupValidationError, match=victim.name):
        validate_group(files)


def test_replacement_under_another_name_takes_over_once_the_bad_file_is_removed(platform,
                                                                               tiny_groups):
    layout, resources, instance = platform
    group = tiny_groups[0]
    placed = _drop(group.files, layout.incoming_dir)
    bad = sorted(placed)[5]
    good = bad.read_bytes()
    bad.write_bytes(good[: len(good) // 2])
    os.utime(bad, (OLD, OLD))
    _tick(instance, resources)
    assert not _materialize(group.group_id, instance, resources).success
    # The operator copies a good file under a name one second later, then removes the bad one.
    stamp = bad.name[:19]
    later = stamp[:-2] + f"{(int(stamp[-2:]) + 1) % 60:02d}"
    replacement = bad.with_name(bad.name.replace(stamp, later))
    replacement.write_bytes(good)
    os.utime(replacement, (OLD, OLD))
    _tick(instance, resources)  # kept aside while the bad file is still there
    bad.unlink()
    requests = _requests(_tick(instance, resources))
    assert requests == {group.group_id: f"convert-{group.group_id}-r2"}
    assert replacement in _registry(layout).group_files(group.group_id)
    assert _materialize(group.group_id, instance, resources).success


def test_requeued_incomplete_group_gets_its_timeout_again(platform, tiny_groups, monkeypatch):
    layout, resources, instance = platform
    group = tiny_groups[0]
    _drop(group.files, layout.incoming_dir, skip=("_sb11.hdf5",))
    monkeypatch.setenv("CONTIMG_INCOMPLETE_TIMEOUT_S", "0")
    time.sleep(1.1)
    _tick(instance, resources)  # incomplete: alerted, waiting
    registry = _registry(layout)
    registry.mark_group(group.group_id, "failed", "an operator gave up on it")
    assert registry.requeue(group.group_id, "try again") == "collecting"
    monkeypatch.setenv("CONTIMG_INCOMPLETE_POLICY", "convert")
    time.sleep(1.1)
    assert list(_requests(_tick(instance, resources))) == [group.group_id]


def test_requeue_refuses_a_converted_group_unless_forced(platform, tiny_groups):
    layout, resources, instance = platform
    group = tiny_groups[1]
    _drop(group.files, layout.incoming_dir)
    _tick(instance, resources)
    assert _materialize(group.group_id, instance, resources).success
    with pytest.raises(ValueError, match="already converted"):
        _registry(layout).requeue(group.group_id, "by mistake")
    assert _registry(layout).group_state(group.group_id)[0] == "completed"
    assert _registry(layout).requeue(group.group_id, "rebuild", force=True) == "pending"


def test_a_hung_converter_is_killed_after_the_timeout(tmp_path):
    from contimg.conversion.isolation import run_in_child

    def hang(progress=None):
        time.sleep(600)

    began = time.monotonic()
    with pytest.raises(ConverterCrashedError, match="longer than 1 s"):
        run_in_child(hang, timeout_s=1.0)
    assert time.monotonic() - began < 10


def test_partials_in_any_kind_of_the_groups_date_are_reaped_before_it_converts(platform,
                                                                              tiny_groups):
    layout, resources, instance = platform
    group = tiny_groups[1]  # a science group: its own move goes to science/, not calibrators/
    _drop(group.files, layout.incoming_dir)
    _tick(instance, resources)
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = layout.ms_date_dir("calibrators", group.group_id) / f".x.ms.partial-{dead.pid}"
    leftover.mkdir(parents=True)
    assert _materialize(group.group_id, instance, resources).success
    assert not leftover.exists()


# -- real correlator files (issue 8) --------------------------------------------------

def test_files_being_written_are_not_rejected_and_are_picked_up_once_renamed(platform,
                                                                            tiny_groups):
    layout, resources, instance = platform
    group = tiny_groups[0]
    placed = _drop(group.files, layout.incoming_dir)
    writing = placed[7].with_name(placed[7].stem + "_incomplete.hdf5")
    placed[7].rename(writing)  # the correlator's name while it writes
    assert _tick(instance, resources).__class__.__name__ == "SkipReason"
    rows = StateStore(layout.state_dir).query("ingest", "SELECT path, state FROM subband_files")
    assert str(writing) not in {r["path"] for r in rows}, "never recorded, never rejected"
    assert not (layout.logs_dir / "alerts.jsonl").exists(), "no alert"
    writing.rename(placed[7])  # done: renamed to its final name
    assert list(_requests(_tick(instance, resources))) == [group.group_id]


@pytest.mark.parametrize("field", ["Header/integration_time", "Header/antenna_positions",
                                   "Data/nsamples"])
def test_a_missing_required_field_is_named_with_its_file(tmp_path, tiny_groups, field):
    files = [Path(shutil.copy(f, tmp_path)) for f in tiny_groups[0].files]
    victim = sorted(files)[2]
    with h5py.File(victim, "r+") as handle:
        del handle[field]
    with pytest.raises(GroupValidationError, match=f"{victim.name}.*lacks {field}"):
        validate_group(files)


def test_times_in_mjd_convert_like_times_in_jd(tmp_path, tiny_groups):
    """The writer's docstring says its times are MJD while UVH5 says JD: either gives
    the same MS. (lst_array present or absent is covered by the two layouts.)"""
    from casacore import tables

    from contimg.conversion.ms_writer import convert_group

    variant = tmp_path / "mjd"
    variant.mkdir()
    for source in tiny_groups[0].files:
        target = Path(shutil.copy(source, variant))
        with h5py.File(target, "r+") as handle:
            jd = handle["Header/time_array"][()]
            del handle["Header/time_array"]
            handle["Header/time_array"] = jd - 2400000.5
    convert_group(tiny_groups[0].files, tmp_path / "jd.ms")
    convert_group(sorted(variant.glob("*.hdf5")), tmp_path / "mjd.ms")
    with tables.table(str(tmp_path / "jd.ms"), ack=False) as a, \
            tables.table(str(tmp_path / "mjd.ms"), ack=False) as b:
        for column in ("TIME", "UVW", "DATA"):
            np.testing.assert_allclose(a.getcol(column), b.getcol(column), rtol=0, atol=1e-4,
                                       err_msg=column)


# -- calibration: kill -9 mid-apply, bad input, a full disk, a second run at once -----

_APPLY = """
import sys
from contimg.calibration.stages import calibrate_group
from contimg.layout import resolve_layout
from contimg.state import StateStore
layout = resolve_layout()
calibrate_group(layout, StateStore(layout.state_dir), sys.argv[1])
"""


@pytest.fixture(scope="module")
def calibrated_day(tmp_path_factory):
    """A small 3C147 transit converted into a platform layout and its daily set solved
    through the stages (the platform's own path); yields (home, group id)."""
    import warnings

    from contimg.calibration.stages import CalibrationConfig, solve_bandpass_for_day
    from contimg.simulation.telescope import SimulationRequest, simulate

    home = tmp_path_factory.mktemp("calfault")
    env = {"CONTIMG_HOME": str(home / "home"), "CONTIMG_TMPFS_DIR": str(home / "shm")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        layout = resolve_layout().ensure()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (group,) = simulate(SimulationRequest(out_dir=home / "files", size="small", seed=21,
                                                  calibrator="3C147"))
        catalog = layout.static_dir / "catalogs" / "nvss.tsv"
        catalog.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(next(group.truth_json.parent.glob("*_nvss.tsv")), catalog)
        store = StateStore(layout.state_dir)
        convert_into_tree(group.group_id, group.files, layout, store)
        solve_bandpass_for_day(layout, store, group.group_id[:10], config=CalibrationConfig())
        yield home, group.group_id
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _calibration_status(group: str) -> str:
    from contimg.state import products_db

    return products_db.ms_record(StateStore(resolve_layout().state_dir), group)["calibration_status"]


def test_an_apply_killed_mid_write_is_redone_completely(calibrated_day):
    """kill -9 while the apply runs: the group stays `calibrating` (never `calibrated`),
    the MS has no half-written CORRECTED_DATA, and the next apply gives exactly what an
    uninterrupted one gives."""
    from casacore import tables

    from contimg.calibration.stages import calibrate_group

    _, group = calibrated_day
    layout = resolve_layout()
    ms = next(layout.ms_dir.glob(f"calibrators/*/{group}.ms"))
    killed = False
    for _ in range(5):  # the kill must land while the apply runs
        child = subprocess.Popen([sys.executable, "-c", _APPLY, group], env=dict(os.environ))
        deadline = time.monotonic() + 120
        while child.poll() is None and time.monotonic() < deadline:
            if _calibration_status(group) == "calibrating":
                time.sleep(0.05)
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        child.wait()
        if child.returncode == -signal.SIGKILL and _calibration_status(group) == "calibrating":
            killed = True
            break
    assert killed, "never caught the apply mid-way"
    with tables.table(str(ms), ack=False) as main:  # as it was (none yet), or complete
        left = main.getcol("CORRECTED_DATA") if "CORRECTED_DATA" in main.colnames() else None
    calibrate_group(layout, StateStore(layout.state_dir), group)
    assert _calibration_status(group) == "calibrated"
    with tables.table(str(ms), ack=False) as main:
        redone = main.getcol("CORRECTED_DATA")
    if left is not None:
        np.testing.assert_array_equal(left, redone)
    calibrate_group(layout, StateStore(layout.state_dir), group)
    with tables.table(str(ms), ack=False) as main:
        np.testing.assert_array_equal(main.getcol("CORRECTED_DATA"), redone)


def _run_while_another_holds_the_group(layout, group: str, action):
    """Run `action` while a thread holds the group's lock for 2 s, as a second run of the
    same stage would; (its result, whether it finished only after the lock was released)."""
    import threading

    released: list[float] = []

    def hold() -> None:
        with group_lock(layout, group):
            time.sleep(2.0)
            released.append(time.monotonic())

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.2)
    result = action()
    finished = time.monotonic()
    holder.join()
    return result, finished > released[0]


def test_a_second_calibration_of_a_group_waits_for_the_first(calibrated_day):
    from contimg.calibration.stages import calibrate_group

    _, group = calibrated_day
    layout = resolve_layout()
    outcome, waited = _run_while_another_holds_the_group(
        layout, group, lambda: calibrate_group(layout, StateStore(layout.state_dir), group))
    assert outcome.status == "calibrated" and waited


def test_a_missing_catalogue_fails_the_solve_naming_the_file(calibrated_day):
    from contimg.calibration.stages import CalibrationConfig, solve_bandpass_for_day
    from contimg.catalogs.nvss import CatalogError

    _, group = calibrated_day
    layout = resolve_layout()
    catalog = layout.static_dir / "catalogs" / "nvss.tsv"
    aside = catalog.with_name("nvss.tsv.aside")
    store = StateStore(layout.state_dir)
    before = store.query("cal_registry", "SELECT count(*) FROM caltables")[0][0]
    catalog.rename(aside)
    try:
        with pytest.raises(CatalogError, match="nvss.tsv"):
            solve_bandpass_for_day(layout, store, group[:10], config=CalibrationConfig())
    finally:
        aside.rename(catalog)
    assert store.query("cal_registry", "SELECT count(*) FROM caltables")[0][0] == before


def test_a_full_disk_during_a_solve_registers_nothing(calibrated_day, tmp_path):
    from contimg.calibration.stages import CalibrationConfig, CalibrationError, solve_bandpass_for_day

    _, group = calibrated_day
    store = StateStore(resolve_layout().state_dir)
    rows = "SELECT count(*) FROM caltables"
    before = store.query("cal_registry", rows)[0][0]
    tables_before = sorted(resolve_layout().ms_dir.glob("calibrators/*/*cal"))
    with _small_tmpfs(tmp_path / "full", "64k") as full:
        os.environ["CONTIMG_TMP_DIR"] = str(full)
        try:
            with pytest.raises(CalibrationError, match="solve_calibrator process died"):
                solve_bandpass_for_day(resolve_layout().ensure(), store, group[:10],
                                       config=CalibrationConfig())
        finally:
            del os.environ["CONTIMG_TMP_DIR"]
    assert store.query("cal_registry", rows)[0][0] == before, "nothing half-registered"
    assert sorted(resolve_layout().ms_dir.glob("calibrators/*/*cal")) == tables_before


def _children_running(parent: int, marker: str) -> list[int]:
    """Pids of `parent`'s child processes whose command line contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) \
                    == parent and marker in (entry / "cmdline").read_text():
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _crash_the_solver(parent: int, after_s: float = 3.0, timeout_s: float = 120.0) -> None:
    """SIGSEGV to the solver's child process `after_s` into its life (CASA loaded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        children = _children_running(parent, "spawn_main")
        if children:
            time.sleep(after_s)
            for pid in _children_running(parent, "spawn_main"):
                os.kill(pid, signal.SIGSEGV)
            return
        time.sleep(0.05)


def test_casa_crashing_in_a_solve_is_quarantined_with_its_reason(calibrated_day):
    import threading

    from contimg.calibration.stages import CalibrationConfig, CalibrationError, solve_bandpass_for_day

    _, group = calibrated_day
    layout = resolve_layout()
    store = StateStore(layout.state_dir)
    rows = "SELECT count(*) FROM caltables"
    before = store.query("cal_registry", rows)[0][0]
    crash = threading.Thread(target=_crash_the_solver, args=(os.getpid(),))
    crash.start()
    with pytest.raises(CalibrationError, match=r"solve_calibrator crashed.*kept in .*failed.*Fix"):
        solve_bandpass_for_day(layout, store, group[:10], config=CalibrationConfig())
    crash.join()
    assert store.query("cal_registry", rows)[0][0] == before, "nothing registered"
    kept = sorted(layout.ms_dir.glob(f"failed/{group[:10]}/cal-*.failed-*"))
    assert kept and "died" in (kept[-1] / "FAILED.txt").read_text()
    moved = store.query("products", "SELECT reason FROM file_moves WHERE action = 'quarantine'"
                                    " AND actor = 'calibration' AND destination = ?", (str(kept[-1]),))
    assert moved and "solve_calibrator crashed" in moved[0]["reason"]
    assert not list(layout.staging_dir.glob("cal-*")), "nothing left in staging"


# -- imaging: kill -9, bad input, a full disk, a second run at once --------------------

_IMAGE = """
import sys
from contimg.imaging.stage import image_group
from contimg.layout import resolve_layout
from contimg.state import StateStore
layout = resolve_layout()
image_group(layout, StateStore(layout.state_dir), sys.argv[1])
"""


@pytest.fixture(scope="module")
def imageable(calibrated_day):
    """The calibrated_day transit with its own tables applied: ready to image."""
    from contimg.calibration.stages import CalibrationConfig, calibrate_group

    _, group = calibrated_day
    layout = resolve_layout()
    calibrate_group(layout, StateStore(layout.state_dir), group, config=CalibrationConfig())
    return group


def _image_rows(group: str) -> list:
    from contimg.state import products_db

    return products_db.image_rows(StateStore(resolve_layout().state_dir), group)


def _wsclean_running() -> bool:
    return subprocess.run(["pgrep", "-x", "wsclean"], capture_output=True).returncode == 0


def test_imaging_killed_mid_wsclean_leaves_nothing_and_is_redone(imageable):
    from contimg.imaging.stage import image_group

    layout = resolve_layout()
    child = subprocess.Popen([sys.executable, "-c", _IMAGE, imageable], env=dict(os.environ))
    deadline = time.monotonic() + 120
    while not _wsclean_running() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _wsclean_running(), "never caught WSClean running"
    child.send_signal(signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 3  # killed at once, reaped by init a moment later (an
    # orphaned WSClean would still be imaging: it needs ~8 s for this group)
    while _wsclean_running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _wsclean_running(), "WSClean dies with its run"
    assert not layout.image_set_dir(imageable).exists() and _image_rows(imageable) == []
    outcome = image_group(layout, StateStore(layout.state_dir), imageable)
    assert outcome.image_set.exists() and len(_image_rows(imageable)) == 4


def test_imaging_a_group_whose_ms_is_gone_names_it(imageable):
    from contimg.imaging.stage import ImagingError, image_group
    from contimg.state import products_db

    layout = resolve_layout()
    store = StateStore(layout.state_dir)
    ms = Path(products_db.ms_record(store, imageable)["path"])
    aside = ms.with_name(ms.name + ".aside")
    ms.rename(aside)
    try:
        with pytest.raises(ImagingError, match=f"missing.*{ms.name}.*requeue"):
            image_group(layout, store, imageable)
    finally:
        aside.rename(ms)


def test_a_full_disk_during_imaging_registers_nothing(imageable, tmp_path):
    from contimg.conversion.staging import InsufficientSpaceError
    from contimg.imaging.stage import image_group

    before = [r["path"] for r in _image_rows(imageable)]
    with _small_tmpfs(tmp_path / "full", "64k") as full:
        saved = {k: os.environ.get(k) for k in ("CONTIMG_TMP_DIR", "CONTIMG_TMPFS_DIR")}
        os.environ["CONTIMG_TMP_DIR"] = str(full / "tmp")
        os.environ["CONTIMG_TMPFS_DIR"] = str(full / "shm")
        try:
            with pytest.raises(InsufficientSpaceError, match="no room to stage img-"):
                image_group(resolve_layout().ensure(), StateStore(resolve_layout().state_dir),
                            imageable)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    assert [r["path"] for r in _image_rows(imageable)] == before, "nothing half-registered"


def test_a_second_imaging_of_a_group_waits_for_the_first(imageable):
    from contimg.imaging.stage import image_group

    layout = resolve_layout()
    outcome, waited = _run_while_another_holds_the_group(
        layout, imageable, lambda: image_group(layout, StateStore(layout.state_dir), imageable))
    assert outcome.image_set.exists() and waited
    assert len(_image_rows(imageable)) == 4, "one current set"


def _signal_wsclean_once_running(signum: int, timeout_s: float = 120.0) -> None:
    """Send `signum` to the WSClean process as soon as one runs (from a thread)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-x", "wsclean"], capture_output=True, text=True)
        if found.stdout.split():
            os.kill(int(found.stdout.split()[0]), signum)
            return
        time.sleep(0.05)


def test_a_crashing_wsclean_is_quarantined_with_its_reason_and_not_retried(imageable):
    import threading

    from contimg.imaging.stage import ImagingError, image_group
    from contimg.state import products_db
    from sensors.calibration import reimage_requests

    layout = resolve_layout()
    store = StateStore(layout.state_dir)
    current = [r["path"] for r in _image_rows(imageable)]
    crash = threading.Thread(target=_signal_wsclean_once_running, args=(signal.SIGSEGV,))
    crash.start()
    with pytest.raises(ImagingError, match=r"WSClean failed \(exit -11\).*kept in .*failed.*"
                                           r"not retried automatically"):
        image_group(layout, store, imageable)
    crash.join()
    kept = sorted(layout.images_dir.glob("failed/*/*.img.failed-*"))
    assert kept, "the failed workspace is kept for the operator"
    assert "exit -11" in (kept[-1] / "FAILED.txt").read_text()
    assert [r["path"] for r in _image_rows(imageable)] == current, "the current set untouched"
    failure = store.query("products", "SELECT reason, quarantine_path FROM image_failures"
                                      " WHERE group_id = ?", (imageable,))[-1]
    assert "exit -11" in failure["reason"] and failure["quarantine_path"] == str(kept[-1])
    moved = store.query("products", "SELECT reason FROM file_moves WHERE action = 'quarantine'"
                                    " AND destination = ?", (str(kept[-1]),))
    assert moved and "WSClean failed" in moved[0]["reason"]
    # Were the current set gone too, the sensors would not re-image it: a failure is on record.
    from dagster import DagsterInstance

    with DagsterInstance.ephemeral() as instance:
        assert imageable not in [r.group for r in reimage_requests(layout, store, instance)]
    assert imageable not in [r["group_id"] for r in products_db.calibrated_without_image(store)]


def test_a_group_whose_imaging_run_died_is_requested_again(imageable):
    from dagster import DagsterInstance

    from contimg.imaging.stage import image_group
    from sensors.calibration import reimage_requests

    layout = resolve_layout()
    store = StateStore(layout.state_dir)
    # As a run killed while imaging leaves it: calibrated (again, after any failure on
    # record), no current image, no live lock.
    store.execute("products", "UPDATE images SET status = 'superseded' WHERE group_id = ?",
                  (imageable,))
    store.execute("products", "UPDATE ms_index SET calibration_since = ? WHERE group_id = ?",
                  (time.time() + 1, imageable))
    with DagsterInstance.ephemeral() as instance:
        requests = reimage_requests(layout, store, instance)
        assert [(r.job, r.partition) for r in requests] == [("image_group_job", imageable)]
        with group_lock(layout, imageable):  # a live holder: its run is still imaging
            assert reimage_requests(layout, store, instance) == []
    image_group(layout, store, imageable)
    with DagsterInstance.ephemeral() as instance:
        assert reimage_requests(layout, store, instance) == []


# -- photometry: kill -9, bad input, a full disk, a second run at once ------------------

_MEASURE_STUCK_BEFORE_RENAME = """
import os, sys, time
from contimg.photometry.stage import PhotometryOptions, measure_group
from contimg.layout import resolve_layout
from contimg.settings import load_settings
from contimg.state import StateStore
real_replace = os.replace
def stuck(src, dst):  # the writer is killed between writing its file and the rename
    if ".partial-" in str(src):
        time.sleep(600)
    return real_replace(src, dst)
os.replace = stuck
layout = resolve_layout()
options = PhotometryOptions.from_settings(load_settings())
measure_group(layout, StateStore(layout.state_dir), sys.argv[1], options)
"""


@pytest.fixture(scope="module")
def measurable(imageable):
    """The imaged transit (imaged here when the imaging tests did not run first)."""
    from contimg.imaging.stage import image_group

    if not _image_rows(imageable):
        layout = resolve_layout()
        image_group(layout, StateStore(layout.state_dir), imageable)
    return imageable


def _measure(group: str):
    from contimg.photometry.stage import PhotometryOptions, measure_group
    from contimg.settings import load_settings

    layout = resolve_layout()
    options = PhotometryOptions.from_settings(load_settings())
    return measure_group(layout, StateStore(layout.state_dir), group, options)


def _parquet(group: str) -> Path:
    from contimg.photometry.measurements import measurements_path

    return measurements_path(resolve_layout().photometry_dir, group)


def test_photometry_killed_before_its_rename_leaves_no_file_and_is_redone(measurable):
    final = _parquet(measurable)
    final.unlink(missing_ok=True)
    child = subprocess.Popen([sys.executable, "-c", _MEASURE_STUCK_BEFORE_RENAME, measurable],
                             env=dict(os.environ))
    deadline = time.monotonic() + 120
    while not list(final.parent.glob(f".{final.name}.partial-*")) and time.monotonic() < deadline:
        assert child.poll() is None, "the writer ended before writing"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not final.exists(), "no measurements file from a killed run"
    assert list(final.parent.glob(f".{final.name}.partial-*")), "its half-written file is there"
    outcome = _measure(measurable)
    assert outcome.parquet == final and final.exists()
    assert not list(final.parent.glob(f".{final.name}.partial-*")), "the dead writer's file is reaped"


def test_photometry_of_an_unreadable_image_names_the_file(measurable):
    from contimg.photometry.stage import PhotometryError

    image = Path(next(r["path"] for r in _image_rows(measurable) if r["kind"] == "image"))
    saved = image.read_bytes()
    image.write_bytes(saved[:2000])  # truncated mid-header
    try:
        with pytest.raises(PhotometryError, match=f"{image.name}.*image the group again"):
            _measure(measurable)
    finally:
        image.write_bytes(saved)


def test_a_full_disk_during_photometry_leaves_no_half_file(measurable, tmp_path):
    from contimg.photometry.stage import PhotometryError

    with _small_tmpfs(tmp_path / "full", "16k") as full:
        saved = os.environ.get("CONTIMG_PHOTOMETRY_DIR")
        os.environ["CONTIMG_PHOTOMETRY_DIR"] = str(full / "photometry")
        try:
            (full / "photometry" / "measurements").mkdir(parents=True)
            (full / "filler").write_bytes(b"\0" * 12 * 1024)
            with pytest.raises(PhotometryError, match="cannot write the measurements.*free space"):
                _measure(measurable)
            leftovers = [p for p in (full / "photometry").rglob("*") if p.is_file()]
        finally:
            if saved is None:
                os.environ.pop("CONTIMG_PHOTOMETRY_DIR", None)
            else:
                os.environ["CONTIMG_PHOTOMETRY_DIR"] = saved
    assert leftovers == [], leftovers


def test_a_second_photometry_of_a_group_waits_for_the_first(measurable):
    outcome, waited = _run_while_another_holds_the_group(
        resolve_layout(), measurable, lambda: _measure(measurable))
    assert outcome.parquet.exists() and waited


# -- mosaics: kill -9 before the set is moved in --------------------------------------

_MOSAIC_STUCK_BEFORE_MOVE = """
import sys, time
from datetime import datetime
import contimg.mosaics.stage as stage
from contimg.layout import resolve_layout
from contimg.state import StateStore
def stuck(source, destination):  # killed with every product written, before the move
    print("written", flush=True)
    time.sleep(600)
stage.move_into_place = stuck
layout = resolve_layout()
stage.make_hourly_mosaic(layout, StateStore(layout.state_dir), datetime.fromisoformat(sys.argv[1]))
"""


def test_a_mosaic_killed_before_its_move_leaves_nothing_final_and_is_redone(measurable):
    from datetime import datetime

    from contimg.conversion.staging import reap_stale_workspaces
    from contimg.mosaics.stage import make_hourly_mosaic

    layout = resolve_layout()
    store = StateStore(layout.state_dir)
    hour = datetime.fromisoformat(measurable[:13] + ":00:00")
    final = layout.mosaic_set_dir("hourly", hour)
    rows = "SELECT count(*) FROM mosaics WHERE kind = 'hourly' AND status = 'ready'"
    before = store.query("products", rows)[0][0]
    child = subprocess.Popen([sys.executable, "-c", _MOSAIC_STUCK_BEFORE_MOVE, hour.isoformat()],
                             stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    assert child.stdout.readline().strip() == "written"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not final.exists(), "no mosaic in its final location"
    assert store.query("products", rows)[0][0] == before, "nothing registered"
    left = [p for root in (layout.tmpfs_root, layout.staging_dir) if root.is_dir()
            for p in root.glob("mosaic-hourly-*")]
    assert left and set(reap_stale_workspaces(layout)) >= set(left), "the dead workspace is reaped"
    outcome = make_hourly_mosaic(layout, store, hour)
    assert outcome.set_dir == final and (final / outcome.products["image"].name).exists()
    assert store.query("products", rows)[0][0] == before + 1


# -- disk thresholds crossed while the stream runs ------------------------------------

def test_a_fast_disk_below_its_floor_holds_new_groups_pending_and_lets_them_go(
        platform, tiny_groups, tmp_path, monkeypatch):
    layout, resources, instance = platform
    fake = tmp_path / "disk.json"
    fake.write_text('{"fast_disk_free_gb": 1.5}')
    monkeypatch.setenv("CONTIMG_FAKE_DISK_USAGE", str(fake))
    _drop(tiny_groups[0].files, layout.incoming_dir)
    held = _tick(instance, resources)
    assert held.__class__.__name__ == "SkipReason"
    assert "1.5 GB free, below CONTIMG_DISK_HOLD_FREE_GB=2" in held.skip_message
    registry = _registry(layout)
    assert registry.group_state(tiny_groups[0].group_id)[0] == "pending", "recorded, not lost"
    alerts = (layout.logs_dir / "alerts.jsonl").read_text()
    assert alerts.count("conversion_held") == 1
    _tick(instance, resources)  # still held: no second alert
    assert (layout.logs_dir / "alerts.jsonl").read_text().count("conversion_held") == 1
    fake.write_text('{"fast_disk_free_gb": 400}')  # retention freed space
    assert _requests(_tick(instance, resources)) == {
        tiny_groups[0].group_id: f"convert-{tiny_groups[0].group_id}"}
    assert "conversion_resumed" in (layout.logs_dir / "alerts.jsonl").read_text()


def test_a_hold_floor_above_the_error_threshold_is_refused(layout_env, monkeypatch):
    from contimg.settings import SettingsError, load_settings

    monkeypatch.setenv("CONTIMG_DISK_HOLD_FREE_GB", "150")
    with pytest.raises(SettingsError, match="CONTIMG_DISK_HOLD_FREE_GB must not exceed"):
        load_settings()


# -- run workers: killed, detected by run monitoring, redone --------------------------

def _instance_of_the_run_command(home: Path):
    """A Dagster instance configured as `scripts/run.sh` configures the embedded default."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    subprocess.run(["bash", str(REPO / "scripts" / "dagster_instance.sh"), str(home)], check=True)
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def _started_run(instance, job: str, tags: dict, worker_pid: int):
    """A STARTED run of `job` whose worker recorded `worker_pid` as Dagster's own run
    worker does in its first event."""
    from dagster import DagsterRun, DagsterRunStatus, MetadataValue
    from dagster._core.events import EngineEventData
    from dagster._core.utils import make_new_run_id

    run = instance.add_run(DagsterRun(job_name=job, run_id=make_new_run_id(),
                                      status=DagsterRunStatus.STARTED, tags=tags))
    instance.report_engine_event(f"Started process for run (pid: {worker_pid}).", run,
                                 EngineEventData(metadata={"pid": MetadataValue.text(str(worker_pid))}))
    return run


def test_a_killed_run_worker_is_failed_by_run_monitoring_and_only_group_level_jobs_retry(tmp_path):
    import logging

    from dagster import DagsterRunStatus
    from dagster._daemon.auto_run_reexecution.auto_run_reexecution import should_retry
    from dagster._daemon.monitoring.run_monitoring import monitor_started_run

    from contimg_assets.definitions import defs
    from resources.run_launcher import LocalRunLauncher

    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with _instance_of_the_run_command(tmp_path / "dagster") as instance:
        assert isinstance(instance.run_launcher, LocalRunLauncher)
        runs = {job: _started_run(instance, job, dict(defs.resolve_job_def(job).tags), worker.pid)
                for job in ("bandpass_solution_job", "hourly_mosaic_job", "convert_group_job",
                            "image_group_job")}
        alive = instance.run_launcher.check_run_worker_health(runs["bandpass_solution_job"])
        assert alive.status.value == "RUNNING", alive
        worker.kill()
        worker.wait()
        for run in runs.values():
            monitor_started_run(instance, None, instance.get_run_record_by_id(run.run_id),
                                logging.getLogger("test"))
        failed = {job: instance.get_run_by_id(run.run_id) for job, run in runs.items()}
        assert all(run.status == DagsterRunStatus.FAILURE for run in failed.values())
        reasons = [e.message for e in instance.all_logs(runs["convert_group_job"].run_id)
                   if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_FAILURE"]
        assert any(f"pid {worker.pid}" in m and "gone" in m for m in reasons), reasons
        # A group-level job is retried by Dagster; the per-group ones are redone by the
        # sensors (a retry on top would do the group twice).
        assert should_retry(failed["bandpass_solution_job"], instance)
        assert should_retry(failed["hourly_mosaic_job"], instance)
        assert not should_retry(failed["convert_group_job"], instance)
        assert not should_retry(failed["image_group_job"], instance)


def test_a_recycled_pid_is_not_taken_for_the_run_worker():
    from resources.run_launcher import STARTED_BEFORE_EVENT_S, process_started_near

    now = time.time()
    assert process_started_near(os.getpid(), now)
    # This process started long before a worker that recorded its pid just now would have.
    assert not process_started_near(os.getpid(), now + STARTED_BEFORE_EVENT_S + 3600)
    # ...and a pid recorded before this process existed belongs to another process.
    assert not process_started_near(os.getpid(), now - 10 * 365 * 86400)
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert not process_started_near(gone.pid, now)
