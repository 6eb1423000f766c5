"""Sensor that drives the demo feeder at an accelerated, configurable cadence."""


import os

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, sensor

from contimg_assets.demo_telescope import simulated_telescope_job

DEMO_CADENCE_S = int(os.environ.get("CONTIMG_DEMO_CADENCE_S", "60"))
DEMO_MAX_GROUPS = int(os.environ.get("CONTIMG_DEMO_MAX_GROUPS", "100"))


@sensor(
    job=simulated_telescope_job,
    minimum_interval_seconds=DEMO_CADENCE_S,
    default_status=(DefaultSensorStatus.RUNNING if os.environ.get("CONTIMG_DEMO") == "1"
                    else DefaultSensorStatus.STOPPED),
    description="Demo only: writes one simulated group into incoming/ per tick "
                "(CONTIMG_DEMO_CADENCE_S, default 60 s; stops after CONTIMG_DEMO_MAX_GROUPS).",
)
def simulated_telescope_sensor(context: SensorEvaluationContext):
    """Request the next demo group; the cursor is the index of the next group."""
    index = int(context.cursor or 0)
    if index >= DEMO_MAX_GROUPS:
        return None
    context.update_cursor(str(index + 1))
    return RunRequest(
        run_key=f"demo-group-{index}",
        run_config={"ops": {"write_simulated_group": {"config": {"group_index": index}}}},
    )
