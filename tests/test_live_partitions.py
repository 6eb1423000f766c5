"""The live partition window: only the newest CONTIMG_LIVE_PARTITION_DAYS of observation-group
keys stay in Dagster's partition set; every group stays findable; a pruned group comes back
through the incoming sensor. A real SQLite Dagster instance, real state databases."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from dagster import AssetKey, AssetMaterialization, DagsterInstance, build_sensor_context, materialize

from benchmarks.dagster_ui import write_instance_yaml
from benchmarks.partition_fill import PARTITIONS, group_keys
from contimg.ops.live_partitions import cutoff_key, keys_to_prune
from contimg.settings import SettingsError, load_settings
from contimg.state import StateStore
from tests.conftest import REPO, VENV_BIN

PER_DAY = 280  # groups a day at one every 309 s (279.6)


@pytest.fixture
def instance(tmp_path: Path, layout_env: Path) -> DagsterInstance:
    """A fresh SQLite instance (the embedded default) with two days and a bit of keys."""
    write_instance_yaml(tmp_path / "dagster_home")
    instance = DagsterInstance.from_config(str(tmp_path / "dagster_home"))
    instance.add_dynamic_partitions(PARTITIONS, group_keys(2 * PER_DAY + 20))
    return instance


def _store() -> StateStore:
    from contimg.layout import resolve_layout

    return StateStore(resolve_layout().ensure().state_dir)


def _materialize_window(instance: DagsterInstance, days: float | None) -> dict:
    """Run the live_partitions asset through Dagster with the platform's resources."""
    from contimg_assets.definitions import defs
    from contimg_assets.live_partitions import live_partitions

    os.environ["CONTIMG_LIVE_PARTITION_DAYS"] = "none" if days is None else str(days)
    try:
        result = materialize([live_partitions], instance=instance, resources=defs.resources)
    finally:
        del os.environ["CONTIMG_LIVE_PARTITION_DAYS"]
    assert result.success
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_keys_to_prune_keeps_the_window_measured_from_the_newest_key():
    keys = ["2026-01-03T00:00:00", "2026-01-01T00:00:00", "2026-01-02T00:00:00",
            "2026-01-01T23:59:59", "2026-01-02T00:00:01"]
    assert cutoff_key("2026-01-03T00:00:00", 1) == "2026-01-02T00:00:00"
    # The key exactly at the cutoff stays; the second before it goes; oldest first.
    assert keys_to_prune(keys, 1) == ["2026-01-01T00:00:00", "2026-01-01T23:59:59"]
    assert keys_to_prune(keys, 1, keep={"2026-01-01T00:00:00"}) == ["2026-01-01T23:59:59"]
    assert keys_to_prune(keys, None) == [] and keys_to_prune([], 30) == []


def test_pruning_keeps_exactly_the_newest_window_and_is_idempotent(instance):
    keys = group_keys(2 * PER_DAY + 20)
    # Materialisations of an old key and a live key: the event log keeps both.
    for key in (keys[0], keys[-1]):
        instance.report_runless_asset_event(AssetMaterialization("image", partition=key))
    first = _materialize_window(instance, 1)
    cutoff = cutoff_key(keys[-1], 1)
    expected = [key for key in keys if key >= cutoff]
    live = sorted(instance.get_dynamic_partitions(PARTITIONS))
    assert live == expected
    assert PER_DAY - 1 <= len(live) <= PER_DAY + 1  # one day of groups, nothing else
    assert first["removed"] == len(keys) - len(expected) and first["live"] == len(expected)
    assert first["keys_before"] == len(keys) and first["oldest_live"] == expected[0]
    assert not instance.has_dynamic_partition(PARTITIONS, keys[0])
    assert {keys[0], keys[-1]} <= instance.get_materialized_partitions(AssetKey("image"))
    second = _materialize_window(instance, 1)
    assert second["removed"] == 0 and second["live"] == len(expected)
    assert sorted(instance.get_dynamic_partitions(PARTITIONS)) == expected
    with _store() as store:
        [row] = store.query("products", "SELECT details FROM ops_runs WHERE operation ="
                                        " 'live_partitions' ORDER BY id DESC LIMIT 1")
    assert row[0].startswith("0 of ")


def test_a_window_of_none_keeps_every_key(instance):
    report = _materialize_window(instance, None)
    assert report["removed"] == 0 and report["live_days"] == "none"
    assert len(instance.get_dynamic_partitions(PARTITIONS)) == 2 * PER_DAY + 20


def test_groups_a_sensor_may_still_request_stay_live(instance):
    from contimg_assets.live_partitions import prune_live_partitions

    keys = group_keys(2 * PER_DAY + 20)
    converting, awaiting = keys[3], keys[7]
    with _store() as store:
        store.execute("ingest", "INSERT INTO groups (group_id, state, first_seen, updated)"
                                " VALUES (?, 'in_progress', ?, ?)", (converting, converting, converting))
        store.execute("products", "INSERT INTO ms_index (path, group_id, kind, start_mjd, end_mjd,"
                                  " status, created, updated, calibration_status) VALUES"
                                  " (?, ?, 'science', 1, 2, 'converted', 'x', 'x', 'awaiting')",
                      (f"/ms/{awaiting}.ms", awaiting))
        report = prune_live_partitions(instance, store, 1, log=lambda line: None)
    live = set(instance.get_dynamic_partitions(PARTITIONS))
    assert {converting, awaiting} <= live and keys[5] not in live
    assert report.kept_unsettled == 2


def _record_products(layout, group: str) -> dict[str, str]:
    """A processed group as the pipeline records it: raw file, MS, tables, image, photometry."""
    from contimg.photometry.measurements import measurements_path

    paths = {"raw": f"{layout.incoming_dir}/{group}_sb00.hdf5", "ms": f"/ms/science/{group}.ms",
             "bp": f"/cal/{group}_bpcal", "gain": f"/cal/{group}_2gcal",
             "image": f"/images/{group}.img-image-pb.fits",
             "parquet": str(measurements_path(layout.photometry_dir, group))}
    with _store() as store:
        store.execute("ingest", "INSERT INTO groups (group_id, state, n_subbands, first_seen, updated)"
                                " VALUES (?, 'completed', 16, 'x', 'x')", (group,))
        store.execute("ingest", "INSERT INTO subband_files (path, group_id, subband, size_bytes, mtime,"
                                " state, first_seen, updated) VALUES (?, ?, 0, 1, 0, 'converted', 'x',"
                                " 'x')", (paths["raw"], group))
        store.execute("products", "INSERT INTO ms_index (path, group_id, kind, start_mjd, end_mjd,"
                                  " status, created, updated, calibration_status, cal_tables) VALUES"
                                  " (?, ?, 'science', 1, 2, 'converted', 'x', 'x', 'calibrated', ?)",
                      (paths["ms"], group, json.dumps([paths["bp"], paths["gain"]])))
        store.execute("products", "INSERT INTO images (path, group_id, ms_path, kind, mid_mjd, status,"
                                  " created) VALUES (?, ?, ?, 'pb', 1.5, 'ready', 'x')",
                      (paths["image"], group, paths["ms"]))
    Path(paths["parquet"]).parent.mkdir(parents=True, exist_ok=True)
    Path(paths["parquet"]).write_bytes(b"PAR1")
    return paths


def test_contimg_find_finds_a_pruned_group(instance, layout_env):
    from contimg.layout import resolve_layout

    group = group_keys(1)[0]
    paths = _record_products(resolve_layout().ensure(), group)
    _materialize_window(instance, 1)
    assert not instance.has_dynamic_partition(PARTITIONS, group)
    env = {**os.environ}
    found = subprocess.run([str(VENV_BIN / "contimg"), "find", group.replace(":", "_").replace("T", "_")],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    for name, path in paths.items():
        assert path in found.stdout, (name, found.stdout)
    assert "completed (16 subbands)" in found.stdout
    missing = subprocess.run([str(VENV_BIN / "contimg"), "find", group_keys(1, first=5)[0]],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "no record" in missing.stderr


def test_a_pruned_group_comes_back_through_the_incoming_sensor(instance, layout_env):
    from benchmarks.sensor import _populate
    from contimg.ingest.registry import IngestRegistry
    from contimg.ingest.settings import IngestSettings
    from contimg.layout import resolve_layout
    from contimg_assets.definitions import defs

    group = group_keys(1)[0]
    _populate(resolve_layout().ensure().incoming_dir, 16, first_group=0)
    sensor = defs.resolve_sensor_def("incoming_files_sensor")
    with build_sensor_context(instance=instance, resources=defs.resources) as context:
        sensor(context)
    with _store() as store:  # converted since; then its key leaves the live window
        store.execute("ingest", "UPDATE groups SET state = 'completed' WHERE group_id = ?", (group,))
    _materialize_window(instance, 1)
    assert not instance.has_dynamic_partition(PARTITIONS, group)
    with _store() as store:  # `contimg requeue --force GROUP`
        IngestRegistry(store, IngestSettings.from_settings(load_settings())).requeue(
            group, "re-processing", force=True)
    with build_sensor_context(instance=instance, resources=defs.resources) as context:
        result = sensor(context)
    assert [r.partition_key for r in result.run_requests] == [group]
    added = [k for r in result.dynamic_partitions_requests for k in r.partition_keys]
    assert added == [group]
    # What the daemon does with the request before it launches the run.
    instance.add_dynamic_partitions(PARTITIONS, added)
    assert instance.has_dynamic_partition(PARTITIONS, group)


@pytest.mark.parametrize("bad", ["0", "0.5", "-30", "soon", "nan", "inf"])
def test_live_partition_days_is_validated(bad, layout_env):
    with pytest.raises(SettingsError) as info:
        load_settings({"CONTIMG_HOME": str(layout_env), "CONTIMG_LIVE_PARTITION_DAYS": bad})
    assert "CONTIMG_LIVE_PARTITION_DAYS" in str(info.value) and "Fix:" in str(info.value)


def test_live_partition_days_defaults_to_30_and_takes_none(layout_env, tmp_path):
    assert load_settings({"CONTIMG_HOME": str(layout_env)})["CONTIMG_LIVE_PARTITION_DAYS"] == 30.0
    assert load_settings({"CONTIMG_HOME": str(layout_env),
                          "CONTIMG_LIVE_PARTITION_DAYS": "none"})["CONTIMG_LIVE_PARTITION_DAYS"] is None
    config = tmp_path / "contimg.toml"
    config.write_text("[retention]\nlive_partition_days = 45\n")
    settings = load_settings({"CONTIMG_HOME": str(layout_env), "CONTIMG_CONFIG": str(config)})
    assert settings["CONTIMG_LIVE_PARTITION_DAYS"] == 45.0
    assert settings.origins["CONTIMG_LIVE_PARTITION_DAYS"] == "config file"
