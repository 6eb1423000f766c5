"""Sensor that drives the demo feeder at an accelerated, configurable cadence."""


from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, sensor

from contimg.settings import load_settings

_SETTINGS = load_settings()
DEMO_CADENCE_S = int(_SETTINGS["CONTIMG_DEMO_CADENCE_S"])
DEMO_MAX_GROUPS = int(_SETTINGS["CONTIMG_DEMO_MAX_GROUPS"])


# The job is named, not passed: a sensor holding a job whose resources come from the
# Definitions is rebuilt by Dagster 1.13 when the resources are bound, and that rebuild
# passes the beta `owners` parameter, printing a BetaWarning every time the code
# location loads (each tick, each run). Naming the job binds it without the rebuild.
@sensor(
    job_name="simulated_telescope_job",
    minimum_interval_seconds=DEMO_CADENCE_S,
    default_status=(DefaultSensorStatus.RUNNING if _SETTINGS["CONTIMG_DEMO"]
                    else DefaultSensorStatus.STOPPED),
    description="Demo only: writes one simulated group into incoming/ per tick "
                "(CONTIMG_DEMO_CADENCE_S, default 60 s; stops after CONTIMG_DEMO_MAX_GROUPS).",
)
def simulated_telescope_sensor(context: SensorEvaluationContext) -> RunRequest | None:
    """Request the next demo group; the cursor is the index of the next group."""
    index = int(context.cursor or 0)
    if index >= DEMO_MAX_GROUPS:
        return None
    context.update_cursor(str(index + 1))
    return RunRequest(
        run_key=f"demo-group-{index}",
        run_config={"ops": {"write_simulated_group": {"config": {"group_index": index}}}},
    )
