"""A platform home and Dagster instance with one group really converted, calibrated,
imaged and measured through the real jobs, and a check that has failed: what the
browser test (tests/test_browser_ui.py) looks at in the UI."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from contimg.simulation.telescope import SimulatedGroup
from tests.conftest import drop_groups_with_their_catalogue

# The settings the runs see. The bandpass is solved on the calibrator transit five
# minutes before the science group: a 0.01 h limit makes that group's (WARN, non-
# blocking) bandpass_age check fail while the group still goes on to its image.
RUN_ENV = {"CONTIMG_CAL_GAP_ALERT_MIN": "0", "CONTIMG_BANDPASS_WARN_AGE_H": "0.01"}
# No disk has this much free: storage_usage's fast_disk_free check fails with ERROR.
FULL_DISK_ENV = {"CONTIMG_DISK_WARN_FREE_GB": "1e9", "CONTIMG_DISK_ERROR_FREE_GB": "1e9"}


@dataclass(frozen=True)
class PreparedPlatform:
    """What was materialised, where, and the environment a webserver needs to load it."""

    env: dict[str, str]
    dagster_home: Path
    incoming_dir: Path
    calibrator: str
    science: str
    image_metadata: dict
    bandpass_metadata: dict
    gain_metadata: dict


def platform_env(base: Path) -> dict[str, str]:
    """The process environment with every CONTIMG_* location under `base`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTIMG_")}
    env.update(CONTIMG_HOME=str(base / "home"), CONTIMG_TMPFS_DIR=str(base / "shm"), **RUN_ENV)
    return env


def prepare(base: Path, groups: list[SimulatedGroup]) -> PreparedPlatform:
    """Drop the calibrator and science groups into incoming/, tick the incoming sensor
    (its partition requests applied as the daemon would), then run the real jobs:
    convert the calibrator, solve the day's bandpass and the science hour's gains,
    convert (calibrate, image, measure) the science group, and observe the disks with
    thresholds no disk meets. Must run with `platform_env(base)` as os.environ."""
    from dagster import DagsterInstance, build_sensor_context

    from benchmarks.dagster_ui import write_instance_yaml
    from contimg.layout import resolve_layout
    from contimg_assets.definitions import defs

    layout = resolve_layout().ensure()
    drop_groups_with_their_catalogue(layout, groups)
    dagster_home = base / "dagster_home"
    write_instance_yaml(dagster_home)
    instance = DagsterInstance.from_config(str(dagster_home))
    sensor = defs.resolve_sensor_def("incoming_files_sensor")
    with build_sensor_context(instance=instance, resources=defs.resources) as context:
        result = sensor(context)
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    calibrator, science = (g.group_id for g in groups)

    def run(job: str, key: str | None = None):
        outcome = defs.resolve_job_def(job).execute_in_process(
            partition_key=key, instance=instance, raise_on_error=False)
        assert outcome.success, [str(e.event_specific_data.error) for e in outcome.all_events
                                 if e.is_step_failure]
        return outcome

    run("convert_group_job", calibrator)
    bandpass = run("bandpass_solution_job", calibrator[:10])
    converted = run("convert_group_job", science)
    gains = run("gain_solution_job", f"{science[:10]}-{science[11:13]}:00")
    env = dict(os.environ)  # what the webserver loads the code location with
    # Only this run sees the impossible disk thresholds (settings are read per call).
    os.environ.update(FULL_DISK_ENV)
    try:
        run("storage_usage_job")
    finally:
        for key in FULL_DISK_ENV:
            del os.environ[key]
    return PreparedPlatform(
        env=env, dagster_home=dagster_home, incoming_dir=layout.incoming_dir,
        calibrator=calibrator, science=science,
        image_metadata=_metadata(converted, "image"),
        bandpass_metadata=_metadata(bandpass, "bandpass_solution"),
        gain_metadata=_metadata(gains, "gain_solution"))


def _metadata(result, asset: str) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events()
                if e.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}
