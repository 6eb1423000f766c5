"""What an operator sees: schedule names as the README says them, a terminal without
BetaWarnings or DEBUG events, growth only from a meaningful span of history, and
run-failure alerts that carry the group and the reason."""

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from dagster import (
    DagsterInstance,
    build_sensor_context,
    execute_job,
    job,
    materialize,
    multiprocess_executor,
    op,
    reconstructable,
)

from contimg.layout import resolve_layout
from contimg.ops.storage_usage import observe_storage
from contimg.ops.usage_history import append_observation, estimate_growth
from tests.conftest import REPO, fire_run_failure_sensor

HOUR = 3600.0


# --- item 14: names and terminal noise -------------------------------------------------

def _readme_schedules() -> dict[str, str]:
    """{schedule name: cron} from the README's Schedules table."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("**Schedules**"):]
    table = section[:section.index("\n\n", section.index("| schedule |"))]
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \|", table, flags=re.MULTILINE)
    return dict(rows)


def test_schedule_names_and_crons_match_the_readme_table(layout_env):
    from contimg_assets.definitions import defs

    readme = _readme_schedules()
    assert len(readme) == 6, readme
    loaded = {s.name: s.cron_schedule for s in defs.get_repository_def().schedule_defs}
    assert loaded == readme
    assert not [name for name in loaded if name.endswith("_job_schedule")]


def test_loading_the_code_location_emits_no_beta_or_preview_warning(layout_env):
    # A fresh interpreter, as each Dagster process (daemon tick, run worker) loads it.
    script = ("import warnings\n"
              "warnings.simplefilter('always')\n"
              "with warnings.catch_warnings(record=True) as caught:\n"
              "    warnings.simplefilter('always')\n"
              "    from contimg_assets.definitions import defs\n"
              "    defs.get_repository_def()\n"
              "for w in caught:\n"
              "    print('WARNING', type(w.category.__name__) and w.category.__name__, w.message)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, timeout=300, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    dagster_warnings = [line for line in result.stdout.splitlines()
                        if re.search(r"BetaWarning|PreviewWarning|SupersessionWarning|owners",
                                     line)]
    assert dagster_warnings == []


def _run_storage_locations(home: Path, capfd) -> tuple[str, list[str]]:
    """Materialise storage_locations on the instance in `home`; (terminal, event levels)."""
    from contimg_assets.storage_locations import storage_locations
    from resources import StateDatabasesResource, StorageLayoutResource

    storage = StorageLayoutResource()
    capfd.readouterr()
    with DagsterInstance.from_config(str(home)) as instance:
        result = materialize([storage_locations], instance=instance, resources={
            "storage": storage, "state": StateDatabasesResource(storage=storage)})
        assert result.success
        levels = sorted({logging.getLevelName(e.level) for e in instance.all_logs(result.run_id)})
    captured = capfd.readouterr()
    return captured.out + captured.err, levels


def test_run_command_instance_logs_runs_at_info_and_upgrades_an_old_file(layout_env, tmp_path,
                                                                          capfd):
    home = tmp_path / "dagster"
    home.mkdir()
    # The file an earlier run command wrote (no python_logs): every DEBUG event printed.
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nconcurrency:\n  runs:\n"
                                       "    max_concurrent_runs: 4\n")
    before, _ = _run_storage_locations(home, capfd)
    assert " - DEBUG - " in before
    subprocess.run(["bash", str(REPO / "scripts" / "dagster_instance.sh"), str(home)],
                   check=True, timeout=60)
    subprocess.run(["bash", str(REPO / "scripts" / "dagster_instance.sh"), str(home)],
                   check=True, timeout=60)  # idempotent: one block, not two
    text = (home / "dagster.yaml").read_text()
    assert text.count("python_logs:") == 1 and "max_concurrent_runs: 4" in text
    after, levels = _run_storage_locations(home, capfd)
    assert " - DEBUG - " not in after
    assert "registered 10 storage locations" in after  # the op's INFO line still shows
    assert "DEBUG" in levels, "DEBUG events must still reach the event log (the UI)"
    assert "BetaWarning" not in after


def test_run_command_writes_a_fresh_instance_file_with_info_logs(tmp_path):
    home = tmp_path / "fresh"
    subprocess.run(["bash", str(REPO / "scripts" / "dagster_instance.sh"), str(home)],
                   check=True, timeout=60)
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.python_log_level == "INFO"
    run_sh = (REPO / "scripts" / "run.sh").read_text()
    assert "scripts/dagster_instance.sh" in run_sh and "--log-level warning" in run_sh


# --- item 15: growth only over a meaningful span ----------------------------------------

def _history(layout, tmp_path: Path, points: list[tuple[float, float]]) -> Path:
    """Write observations (epoch seconds, fast-disk free GB) into the asset's history."""
    history = layout.state_dir / "history" / "storage_usage"
    fake = tmp_path / "fake_history.json"
    for moment, free_gb in points:
        fake.write_text(json.dumps({"fast_disk_free_gb": free_gb, "tmpfs_used_percent": 1}))
        append_observation(history, observe_storage(layout, now=moment, fake_file=str(fake)))
    return history


def _materialise_storage_usage(tmp_path: Path, monkeypatch, free_gb: float) -> dict:
    from contimg_assets.storage_usage import storage_usage
    from resources import NotifierResource, StateDatabasesResource, StorageLayoutResource

    fake = tmp_path / "fake_now.json"
    fake.write_text(json.dumps({"fast_disk_free_gb": free_gb, "tmpfs_used_percent": 1}))
    monkeypatch.setenv("CONTIMG_FAKE_DISK_USAGE", str(fake))
    storage = StorageLayoutResource()
    result = materialize([storage_usage], resources={
        "storage": storage, "state": StateDatabasesResource(storage=storage),
        "notifier": NotifierResource(storage=storage)})
    assert result.success
    (materialisation,) = result.asset_materializations_for_node("storage_usage")
    return {key: value.value for key, value in materialisation.metadata.items()}


def test_ten_minutes_of_steep_decline_give_no_days_until_full(layout_env, tmp_path,
                                                              monkeypatch):
    layout = resolve_layout().ensure()
    now = time.time()
    # 500 -> 400 GB in ten minutes: a naive slope says full in about half an hour.
    history = _history(layout, tmp_path, [(now - 600, 500.0), (now - 300, 450.0)])
    estimate = estimate_growth(history, min_span_h=6)
    assert not estimate.enough_history and estimate.per_day == {}
    metadata = _materialise_storage_usage(tmp_path, monkeypatch, free_gb=400.0)
    assert metadata["days_until_full"] == "not enough history (10 min of 6 h)"
    assert 0.16 <= metadata["growth_span_h"] <= 0.2
    assert metadata["growth_min_span_h"] == 6.0


def test_eight_hours_of_history_give_an_estimate_with_its_span(layout_env, tmp_path,
                                                               monkeypatch):
    layout = resolve_layout().ensure()
    now = time.time()
    # 1 GB lost per hour for eight hours: 24 GB/day, so 400 GB last about 16.7 days.
    _history(layout, tmp_path, [(now - h * HOUR, 400.0 + h) for h in range(8, 0, -1)])
    metadata = _materialise_storage_usage(tmp_path, monkeypatch, free_gb=400.0)
    assert 7.99 <= metadata["growth_span_h"] <= 8.01
    assert metadata["days_until_full"] == pytest.approx(400 / 24, abs=0.2)


def test_the_minimum_span_is_a_setting(layout_env, tmp_path, monkeypatch):
    layout = resolve_layout().ensure()
    now = time.time()
    _history(layout, tmp_path, [(now - 2 * HOUR, 402.0), (now - HOUR, 401.0)])
    monkeypatch.setenv("CONTIMG_GROWTH_MIN_SPAN_H", "0.5")
    metadata = _materialise_storage_usage(tmp_path, monkeypatch, free_gb=400.0)
    assert metadata["growth_min_span_h"] == 0.5
    assert metadata["days_until_full"] == pytest.approx(400 / 24, abs=0.2)


# --- item 16: the run-failure alert carries the group and the reason --------------------

def test_run_failure_alert_names_the_group_and_the_offending_file(layout_env, tiny_groups,
                                                                  webhook):

    from contimg_assets.measurement_set import measurement_set
    from contimg_assets.uvh5_group import uvh5_group
    from resources import NotifierResource, StateDatabasesResource, StorageLayoutResource
    from sensors.incoming_files import incoming_files_sensor
    from sensors.run_failures import failure_alert

    url, payloads = webhook
    layout = resolve_layout().ensure()
    storage = StorageLayoutResource()
    resources = {"storage": storage, "state": StateDatabasesResource(storage=storage),
                 "notifier": NotifierResource(storage=storage, webhook_url=url)}
    instance = DagsterInstance.ephemeral()
    group = tiny_groups[0]
    old = time.time() - 3600
    for source in group.files:
        target = layout.incoming_dir / Path(source).name
        shutil.copyfile(source, target)
        os.utime(target, (old, old))
    victim = layout.incoming_dir / sorted(Path(f).name for f in group.files)[3]
    victim.write_bytes(np.random.default_rng(0).bytes(victim.stat().st_size))
    os.utime(victim, (old, old))
    with build_sensor_context(instance=instance, resources=resources) as context:
        incoming_files_sensor(context)  # registers the files and the group
    instance.add_dynamic_partitions("observation_groups", [group.group_id])
    result = materialize([uvh5_group, measurement_set], partition_key=group.group_id,
                         instance=instance, resources=resources, raise_on_error=False)
    assert not result.success

    message, details = failure_alert(instance, result.dagster_run)
    assert group.group_id in message and victim.name in message, message
    assert "cannot read the UVH5 header" in message
    assert "Steps failed" not in message
    assert details["group"] == group.group_id and details["steps"] == ["uvh5_group"]

    fire_run_failure_sensor(instance, result, resources)
    deadline = time.monotonic() + 20
    while not payloads and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(payloads) == 1
    assert victim.name in payloads[0]["text"] and group.group_id in payloads[0]["text"]
    assert payloads[0]["contimg"]["group"] == group.group_id


def test_run_failure_alert_of_an_unexpected_exception_gives_its_class_and_text(layout_env):
    from dagster import asset

    from sensors.run_failures import failure_alert

    @asset
    def exploding() -> None:
        raise ValueError("Nblts is 'many' in 2025-10-13T13:28:03_sb04.hdf5")

    instance = DagsterInstance.ephemeral()
    result = materialize([exploding], instance=instance, raise_on_error=False,
                         tags={"contimg/group": "2025-10-13T13:28:03"})
    message, details = failure_alert(instance, result.dagster_run)
    assert "for group 2025-10-13T13:28:03" in message
    assert "exploding: ValueError: Nblts is 'many' in 2025-10-13T13:28:03_sb04.hdf5" in message


@op
def crashing_step() -> None:
    """Dies without Dagster recording a step failure (as a killed or aborting process)."""
    os._exit(3)


@job(executor_def=multiprocess_executor, tags={"contimg/group": "2025-10-13T13:28:03"})
def crashing_job() -> None:
    """A run whose only step process crashes."""
    crashing_step()


def test_run_failure_alert_of_a_crashed_step_process_gives_the_exit_code(tmp_path):
    from sensors.run_failures import failure_alert

    with (DagsterInstance.from_config(str(tmp_path)) as instance,
          execute_job(reconstructable(crashing_job), instance=instance) as result):
        assert not result.success
        message, details = failure_alert(instance, result.dagster_run)
    assert "for group 2025-10-13T13:28:03" in message
    assert details["steps"] == ["crashing_step"]
    assert "crashing_step" in message and "exited with code 3" in message, message
