"""End to end in Dagster: files dropped into incoming/ become exactly one MS each in the
right date directory; bad input is failed or set aside with a clear reason while other
groups keep flowing."""

import os
import shutil
import time
from pathlib import Path

import numpy as np
from dagster import build_sensor_context, materialize

from contimg.ingest.registry import IngestRegistry
from contimg.ingest.settings import IngestSettings
from contimg.simulation.telescope import SimulationRequest, simulate
from contimg.state import StateStore
from contimg_assets.measurement_set import measurement_set
from contimg_assets.uvh5_group import uvh5_group
from sensors.incoming_files import incoming_files_sensor

OLD = time.time() - 3600


def _drop(files, incoming: Path) -> None:
    for src in files:
        dst = incoming / Path(src).name
        shutil.copyfile(src, dst)
        os.utime(dst, (OLD, OLD))


def _tick(instance, resources):
    with build_sensor_context(instance=instance, resources=resources) as context:
        return incoming_files_sensor(context)


def _convert(group_id, instance, resources):
    instance.add_dynamic_partitions("observation_groups", [group_id])
    return materialize([uvh5_group, measurement_set], partition_key=group_id, instance=instance,
                       resources=resources, raise_on_error=False)


def test_dropped_groups_become_one_ms_each_in_the_date_tree(platform, tiny_groups):
    layout, resources, instance = platform
    for group in tiny_groups:
        _drop(group.files, layout.incoming_dir)
    result = _tick(instance, resources)
    keys = sorted(r.partition_key for r in result.run_requests)
    assert keys == sorted(g.group_id for g in tiny_groups)
    assert {r.run_key for r in result.run_requests} == {f"convert-{k}" for k in keys}
    assert _tick(instance, resources).__class__.__name__ == "SkipReason"  # never twice

    # The calibrator transits during the first group only.
    kinds = {keys[0]: ("calibrators", "0834+555"), keys[1]: ("science", None)}
    for key in keys:
        outcome = _convert(key, instance, resources)
        assert outcome.success
        ms = layout.ms_dir / kinds[key][0] / key[:10] / f"{key}.ms"
        assert ms.is_dir(), f"{ms} missing"
    store = StateStore(layout.state_dir)
    rows = store.query("products", "SELECT group_id, kind, calibrator, status FROM ms_index"
                                   " ORDER BY group_id")
    assert [tuple(r) for r in rows] == [(k, *kinds[k], "converted") for k in keys]
    moves = store.query("products", "SELECT destination, action FROM file_moves")
    assert sorted(Path(m[0]).name for m in moves) == [f"{k}.ms" for k in keys]
    registry = IngestRegistry(store, IngestSettings())
    assert {registry.group_state(k)[0] for k in keys} == {"completed"}
    assert not any(layout.tmpfs_root.iterdir()), "workspace left behind"
    assert len(list(layout.incoming_dir.glob("*.hdf5"))) == 32  # raw files untouched


def _bad_group_then_good_group(platform, tiny_groups, corrupt) -> tuple:
    layout, resources, instance = platform
    bad, good = tiny_groups
    _drop(bad.files, layout.incoming_dir)
    _drop(good.files, layout.incoming_dir)
    victim = layout.incoming_dir / sorted(Path(f).name for f in bad.files)[3]
    corrupt(victim)
    os.utime(victim, (OLD, OLD))
    _tick(instance, resources)
    failed = _convert(bad.group_id, instance, resources)
    passed = _convert(good.group_id, instance, resources)
    return layout, failed, passed, victim


def _failure_text(result) -> str:
    return "\n".join(str(e.event_specific_data.error) for e in result.all_events
                     if e.is_step_failure)


def _assert_failed_cleanly(layout, failed, passed, victim, expected: str) -> None:
    assert not failed.success
    text = _failure_text(failed)
    assert victim.name in text and expected in text, text
    assert passed.success, "the good group must still convert"
    assert victim.exists(), "bad input stays where it is"
    bad_group = failed.dagster_run.tags["dagster/partition"]
    assert not list(layout.ms_dir.glob(f"*/*/{bad_group}.ms")), "nothing in the tree"
    registry = IngestRegistry(StateStore(layout.state_dir), IngestSettings())
    state, error, _ = registry.group_state(bad_group)
    assert state == "failed" and victim.name in error


def test_corrupt_file_fails_its_group_only(platform, tiny_groups):
    def corrupt(path: Path) -> None:
        path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))

    result = _bad_group_then_good_group(platform, tiny_groups, corrupt)
    _assert_failed_cleanly(*result, expected="cannot read the UVH5 header")


def test_truncated_file_fails_its_group_only(platform, tiny_groups):
    def truncate(path: Path) -> None:
        with open(path, "r+b") as handle:
            handle.truncate(path.stat().st_size - 4096)

    result = _bad_group_then_good_group(platform, tiny_groups, truncate)
    _assert_failed_cleanly(*result, expected="truncated")


def _same_subband_from(tmp_path: Path, victim: Path, **request) -> bytes:
    """The victim's subband from another simulated group (same start and sky)."""
    (group,) = simulate(SimulationRequest(out_dir=tmp_path / "other", calibrator="0834+555",
                                          seed=11, **request))
    sb = victim.name[-7:]
    return next(Path(f) for f in group.files if f.name.endswith(sb)).read_bytes()


def test_subband_with_other_antennas_fails_its_group_only(platform, tiny_groups, tmp_path):
    def swap(path: Path) -> None:
        path.write_bytes(_same_subband_from(tmp_path, path, size="tiny", n_antennas=5))

    result = _bad_group_then_good_group(platform, tiny_groups, swap)
    _assert_failed_cleanly(*result, expected="baseline-times")


def test_subband_with_other_channels_fails_its_group_only(platform, tiny_groups, tmp_path):
    def swap(path: Path) -> None:
        # Same antennas and times, but 8 channels per subband instead of 2.
        path.write_bytes(_same_subband_from(tmp_path, path, size="small", n_antennas=6))

    result = _bad_group_then_good_group(platform, tiny_groups, swap)
    _assert_failed_cleanly(*result, expected="channels of")


def test_incomplete_group_converts_with_missing_subbands_flagged(platform, tiny_groups,
                                                                 monkeypatch):
    from casacore import tables

    layout, resources, instance = platform
    monkeypatch.setenv("CONTIMG_INCOMPLETE_POLICY", "convert")
    monkeypatch.setenv("CONTIMG_INCOMPLETE_TIMEOUT_S", "0")
    group = tiny_groups[0]
    files = sorted(group.files, key=lambda f: f.name[-7:])
    _drop([f for f in files if not f.name.endswith(("_sb04.hdf5", "_sb09.hdf5"))],
          layout.incoming_dir)
    assert _tick(instance, resources).__class__.__name__ == "SkipReason"
    time.sleep(1.1)
    result = _tick(instance, resources)
    assert [r.partition_key for r in result.run_requests] == [group.group_id]
    alerts = (layout.logs_dir / "alerts.jsonl").read_text()
    assert "incomplete_group" in alerts and group.group_id in alerts
    assert _convert(group.group_id, instance, resources).success
    ms = next(layout.ms_dir.glob(f"*/*/{group.group_id}.ms"))
    with tables.table(str(ms), ack=False) as main:
        flags = main.getcol("FLAG")
    flagged_channels = np.flatnonzero(flags.all(axis=(0, 2)))
    assert flags.shape[1] == 32 and flagged_channels.size == 4  # 2 subbands x 2 channels
    assert not flags[:, np.setdiff1d(np.arange(32), flagged_channels)].any()
